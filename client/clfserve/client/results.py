"""Typed results, built from the server's JSON (unknown keys are ignored, so a newer server
with more fields still parses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelRef:
    """The model that answered."""

    name: str
    version: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRef:
        return cls(name=str(data["name"]), version=str(data["version"]))


@dataclass(frozen=True)
class Prediction:
    """One text's answer."""

    label: str
    score: float
    scores: dict[str, float]
    truncated: bool
    cached: bool
    model: ModelRef
    prediction_id: str | None = None
    """Names this answer when posting feedback on it (None from servers older than that)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        prediction_id = data.get("prediction_id")
        return cls(
            label=str(data["label"]),
            score=float(data["score"]),
            scores={str(k): float(v) for k, v in data["scores"].items()},
            truncated=bool(data["truncated"]),
            cached=bool(data["cached"]),
            model=ModelRef.from_json(data["model"]),
            prediction_id=None if prediction_id is None else str(prediction_id),
        )


@dataclass(frozen=True)
class Feedback:
    """``POST /feedback``: the stored row's id and time; with a ``prediction_id``, the model
    version and label of the answer it named (else None)."""

    id: int
    received_at: str
    model_version: str | None
    predicted: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Feedback:
        version, predicted = data.get("model_version"), data.get("predicted")
        return cls(
            id=int(data["id"]),
            received_at=str(data["received_at"]),
            model_version=None if version is None else str(version),
            predicted=None if predicted is None else str(predicted),
        )


@dataclass(frozen=True)
class BatchPrediction:
    """Answers in the order of the texts sent."""

    predictions: list[Prediction]
    model: ModelRef

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchPrediction:
        return cls(
            predictions=[Prediction.from_json(item) for item in data["predictions"]],
            model=ModelRef.from_json(data["model"]),
        )

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.predictions]


@dataclass(frozen=True)
class Health:
    """``GET /health/ready``: ``ready`` once a model is loaded and warmed."""

    status: str
    detail: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Health:
        detail = data.get("detail")
        return cls(status=str(data["status"]), detail=None if detail is None else str(detail))


@dataclass(frozen=True)
class ModelInfo:
    """``GET /model``: what is being served and how (``raw`` holds every field)."""

    status: str
    uri: str
    name: str | None
    version: str | None
    variant: str | None
    labels: list[str]
    max_length: int | None
    detail: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(
            status=str(data["status"]),
            uri=str(data["uri"]),
            name=data.get("name"),
            version=data.get("version"),
            variant=data.get("variant"),
            labels=list(data.get("labels") or []),
            max_length=data.get("max_length"),
            detail=data.get("detail"),
            raw=dict(data),
        )
