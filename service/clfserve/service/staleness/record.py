"""`Evaluation`: one run of the staleness monitor, typed from start to finish.

The monitor fills it in; MLflow logging, the alert and ``GET /staleness`` read its fields, and
`Evaluation.to_json` is the one place that turns it into the JSON clients see. A run scores the
validation data, and the production labels (``POST /feedback``) when enough are stored: that
second score is an `Evaluation` too, held in ``feedback`` of the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from clfserve.evaluation import DataSource, EvaluationResult

Trigger = Literal["startup", "scheduled", "admin", "manual", "swap"]
Verdict = Literal["healthy", "stale"]
Status = Literal["healthy", "stale", "error", "skipped"]
Scope = Literal["validation", "feedback"]
TrackingStatus = Literal["off", "not attempted", "logged", "failed"]


def iso(ts: float) -> str:
    """A Unix time as ``2026-11-27T14:00:00Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelRef:
    """The model an evaluation scored, as the service serves it."""

    name: str
    version: str
    variant: str
    provider: str
    uri: str


@dataclass(frozen=True)
class RegisteredVersion:
    """A version of a registered model, e.g. ``clfserve-sentiment`` version ``3``."""

    name: str
    version: str


@dataclass(frozen=True)
class Tracking:
    """What became of logging the evaluation to MLflow."""

    status: TrackingStatus
    detail: str | None = None
    tracking_uri: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    registered_model: RegisteredVersion | None = None


@dataclass(frozen=True)
class Scored:
    """What scoring the data found: the scores, the model that gave them, the metric's value
    and the verdict it gives against the threshold."""

    result: EvaluationResult
    model: ModelRef
    value: float
    verdict: Verdict


@dataclass(frozen=True)
class Alert:
    """The alert an evaluation sent when it turned the model stale."""

    webhook: bool | None
    """The webhook POST: True sent, False failed, None no webhook configured."""


@dataclass
class Evaluation:
    """One evaluation; ``status`` is ``error`` until a verdict is reached without error."""

    id: int
    trigger: Trigger
    metric: str
    threshold: float
    started_at: str
    finished_at: str | None = None
    data: DataSource | None = None
    """The data scored (kept once read, also when the run then fails or is skipped)."""
    scored: Scored | None = None
    """What scoring found; None: no verdict (see ``error`` and ``skipped``)."""
    error: str | None = None
    tracking: Tracking = field(default_factory=lambda: Tracking("off"))
    scope: Scope = "validation"
    """Which data: the validation data, or the production labels."""
    skipped: str | None = None
    """Why there is no verdict although nothing failed (too few production labels)."""
    feedback: Evaluation | None = None
    """The same run scored on production labels (None: that evaluation is off)."""
    alert: Alert | None = None
    """Set when this evaluation turned the model stale; None when no alert was due."""

    @property
    def verdict(self) -> Verdict | None:
        return None if self.scored is None else self.scored.verdict

    @property
    def stale(self) -> bool | None:
        return None if self.verdict is None else self.verdict == "stale"

    @property
    def status(self) -> Status:
        if self.skipped and not self.error:
            return "skipped"
        return "error" if self.error or self.verdict is None else self.verdict

    @property
    def stale_on(self) -> list[Scope]:
        """The data on which this run found the model stale: validation, feedback, both, none."""
        parts = [self, self.feedback] if self.feedback is not None else [self]
        return [part.scope for part in parts if part.stale]

    def to_json(self) -> dict[str, Any]:
        """The shape of ``GET /staleness`` entries and of the alert webhook's body."""
        out: dict[str, Any] = {
            "id": self.id,
            "scope": self.scope,
            "trigger": self.trigger,
            "status": self.status,
            "verdict": self.verdict,
            "stale": self.stale,
            "error": self.error,
            "metric": self.metric,
            "threshold": self.threshold,
            "value": None if self.scored is None else self.scored.value,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.skipped:
            out["skipped"] = self.skipped
        if self.scored is not None:
            scores = self.scored.result.to_dict()
            for key in ("model_name", "model_version", "variant", "provider", "dataset"):
                scores.pop(key)
            out.update(scores)
            out["model"] = asdict(self.scored.model)
        if self.data is not None:
            out["data"] = asdict(self.data)
        out["tracking"] = {k: v for k, v in asdict(self.tracking).items() if v is not None}
        if self.alert is not None:
            out["alert"] = asdict(self.alert)
        if self.scope == "validation":
            out["stale_on"] = self.stale_on
            out["feedback"] = None if self.feedback is None else self.feedback.to_json()
        return out

    def summary(self) -> dict[str, Any]:
        """The verdict part, for ``GET /model``."""
        result = None if self.scored is None else self.scored.result
        return {
            "status": self.status,
            "verdict": self.verdict,
            "stale": self.stale,
            "metric": self.metric,
            "value": None if self.scored is None else self.scored.value,
            "threshold": self.threshold,
            "accuracy": None if result is None else result.accuracy,
            "macro_f1": None if result is None else result.macro_f1,
            "n_samples": None if result is None else result.n_samples,
            "finished_at": self.finished_at,
            "error": self.error,
            "stale_on": self.stale_on,
            "feedback": None if self.feedback is None else self.feedback.summary(),
        }
