"""What the service knows about its model: loading, ready (with the model) or failed (why)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from clfserve.runtime import Encoded, ModelInfo, Prediction
from clfserve.runtime.inputs import Rows
from clfserve.service.errors import ModelUnavailable


class Model(Protocol):
    """What the gateway runs; `clfserve.runtime.Classifier` is one, a test fake another.

    Every method is called from the gateway's inference threads.
    """

    @property
    def info(self) -> ModelInfo: ...

    @property
    def batch_size(self) -> int:
        """Rows per model call (the row budget)."""
        ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict every text (encode, plan and run), answers in the caller's order."""
        ...

    def encode(self, texts: Sequence[str]) -> Encoded: ...

    def check_references(self) -> list[str]:
        """Mismatches against the reference answers recorded at export; empty when it agrees."""
        ...

    def plan(self, encoded: Encoded) -> list[Rows]:
        """Caller positions in length-sorted chunks of at most ``batch_size`` rows."""
        ...

    def predict_rows(self, encoded: Encoded, rows: Rows) -> list[Prediction]:
        """One model call on the texts at ``rows``; answers in ``rows`` order."""
        ...


class ModelStatus(enum.StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class ModelState:
    """Mutated only on the event loop; handlers read it to decide 200 or 503."""

    uri: str
    status: ModelStatus = ModelStatus.LOADING
    reason: str | None = "the model is loading"
    model: Model | None = None
    staleness: Mapping[str, Any] | None = None
    """Latest verdict of the staleness monitor as JSON-able data; shown by ``GET /model``."""
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    """Set once loading has ended, ``READY`` or ``FAILED``: what waits for the model awaits it."""

    def ready(self, model: Model) -> None:
        self.model, self.status, self.reason = model, ModelStatus.READY, None
        self.settled.set()

    def failed(self, reason: str) -> None:
        self.model, self.status, self.reason = None, ModelStatus.FAILED, reason
        self.settled.set()

    @property
    def info(self) -> ModelInfo | None:
        return self.model.info if self.model is not None else None

    @property
    def version(self) -> str:
        """Value of the ``X-Model-Version`` header: the version, or ``none`` while unavailable."""
        return self.model.info.version if self.model is not None else "none"

    def require(self) -> Model:
        """The model, or `ModelUnavailable` saying why there is none."""
        if self.model is None:
            raise ModelUnavailable(f"model not available ({self.status}): {self.reason}")
        return self.model
