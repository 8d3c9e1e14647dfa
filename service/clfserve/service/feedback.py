"""Production labels in the service: the feedback store, opened on first use, used off the loop.

The database may be unreachable when the server starts or at any time later. `FeedbackDesk`
opens the store on first use and again after a failed open, so the rest of the service keeps
serving while ``POST /feedback`` answers 503. Every database call goes through
`FeedbackDesk.using`, in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from clfserve.evaluation.feedback import FeedbackStore, default_url
from clfserve.registry.home import default_home

T = TypeVar("T")


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

    async def using(self, work: Callable[[FeedbackStore], T]) -> T:
        """``work(store)`` in a worker thread, never on the event loop."""
        return await asyncio.to_thread(lambda: work(self.store()))

    def close(self) -> None:
        with self._opening:
            if self._store is not None:
                self._store.close()
                self._store = None
