"""Production labels in the service: the feedback store, opened on first use, used off the loop.

The database may be unreachable when the server starts or at any time later. `FeedbackDesk`
opens the store on first use and again after a failed open, so the rest of the service keeps
serving while ``POST /feedback`` answers 503. Every database call runs in a worker thread, never
on the event loop; a row is committed before `FeedbackDesk.add` returns.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from clfserve.evaluation import Dataset, DataSource
from clfserve.evaluation.feedback import (
    Feedback,
    FeedbackStore,
    FeedbackWindow,
    default_url,
    feedback_data,
)
from clfserve.registry.home import default_home


def feedback_url(configured: str | None) -> str:
    """``CLFSERVE_FEEDBACK_DB``, else SQLite under the clfserve home."""
    return configured or default_url(default_home().resolve())


class FeedbackDesk:
    """The service's one way to the feedback store (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: FeedbackStore | None = None
        self._opening = threading.Lock()

    def store(self) -> FeedbackStore:
        """The open store; `FeedbackStoreError` while the database cannot be opened."""
        with self._opening:
            if self._store is None:
                self._store = FeedbackStore(self.url)
            return self._store

    async def add(
        self,
        text: str,
        label: str,
        *,
        prediction_id: str | None = None,
        model_version: str | None = None,
        predicted: str | None = None,
    ) -> Feedback:
        def write() -> Feedback:
            return self.store().add(
                text, label, prediction_id=prediction_id, model_version=model_version,
                predicted=predicted,
            )  # fmt: skip

        return await asyncio.to_thread(write)

    async def data(
        self, window: FeedbackWindow, now: datetime | None = None
    ) -> tuple[Dataset, DataSource]:
        """The labels ``window`` selects, read in a thread (`feedback_data`)."""
        return await asyncio.to_thread(lambda: feedback_data(self.store(), window, now))

    def close(self) -> None:
        with self._opening:
            if self._store is not None:
                self._store.close()
                self._store = None
