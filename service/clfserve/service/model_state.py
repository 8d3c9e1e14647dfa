"""What the service knows about its model: loading, ready (with the predictor) or failed (why)."""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clfserve.runtime import ModelInfo
from clfserve.service.errors import ModelUnavailable
from clfserve.service.predictor import Predictor


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
    predictor: Predictor | None = None
    since: float = field(default_factory=time.time)
    staleness: Mapping[str, Any] | None = None
    """Latest verdict of the staleness monitor (issue 5) as JSON-able data; shown by GET /model."""

    def ready(self, predictor: Predictor) -> None:
        self.predictor, self.status, self.reason, self.since = (
            predictor, ModelStatus.READY, None, time.time(),
        )  # fmt: skip

    def failed(self, reason: str) -> None:
        self.predictor, self.status, self.reason, self.since = (
            None, ModelStatus.FAILED, reason, time.time(),
        )  # fmt: skip

    @property
    def info(self) -> ModelInfo | None:
        return self.predictor.info if self.predictor is not None else None

    @property
    def version(self) -> str:
        """Value of the ``X-Model-Version`` header: the version, or ``none`` while unavailable."""
        return self.predictor.info.version if self.predictor is not None else "none"

    def require(self) -> Predictor:
        """The predictor, or `ModelUnavailable` (503) saying why there is none."""
        if self.predictor is None:
            raise ModelUnavailable(f"model not available ({self.status}): {self.reason}")
        return self.predictor
