"""Request and response bodies, and strict request decoding with errors that say what is wrong.

Bodies are decoded here rather than by Litestar's ``data`` parameter so that every malformed
input (not UTF-8, not JSON, wrong shape, limits) gets a precise 400/422 instead of a 500 or a
generic "Validation failed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from clfserve.runtime import Prediction
from clfserve.service.errors import BadRequest, InvalidRequest


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /predict``."""

    text: str


class BatchPredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /batch_predict``."""

    texts: list[str]


class ModelRef(msgspec.Struct):
    name: str
    version: str


class PredictionOut(msgspec.Struct):
    """One text's answer."""

    label: str
    score: float
    scores: dict[str, float]
    truncated: bool
    cached: bool
    model: ModelRef
    prediction_id: str
    """Names this answer in ``POST /feedback`` (a fresh one on every answer, cached or not)."""


class BatchPredictionOut(msgspec.Struct):
    predictions: list[PredictionOut]
    model: ModelRef


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    detail: str | None = None


class ModelOut(msgspec.Struct):
    """``GET /model``: what is being served and how."""

    status: str
    uri: str
    detail: str | None = None
    name: str | None = None
    version: str | None = None
    checksum: str | None = None
    variant: str | None = None
    device: str | None = None
    providers: list[str] | None = None
    labels: list[str] | None = None
    max_length: int | None = None
    threads: int | None = None
    load_seconds: float | None = None
    staleness: dict[str, Any] | None = None
    served_from: str | None = None
    """``registry``, ``local copy`` (the registry was unreachable at start) or ``folder``."""
    follows_alias: bool = False
    reload_interval_s: float | None = None
    registry_unreachable_since: str | None = None
    candidate: dict[str, Any] | None = None
    """The latest version tried after the alias moved: version, status, reason, at."""


def prediction_out(
    prediction: Prediction, cached: bool, model: ModelRef, prediction_id: str
) -> PredictionOut:
    return PredictionOut(
        label=prediction.label,
        score=prediction.score,
        scores=prediction.scores,
        truncated=prediction.truncated,
        cached=cached,
        model=model,
        prediction_id=prediction_id,
    )


WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What `str.strip` removes (`str.isspace`); a test pins it to Python's own definition."""
NOT_ONLY_WHITESPACE = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
"""JSON Schema ``pattern`` that a text passes when `check_text` finds more than whitespace
(``\\uXXXX`` escapes, so ECMA-262 and Python engines read it the same)."""


@dataclass(frozen=True)
class Limits:
    max_text_chars: int
    max_batch_items: int

    def text_schema(self) -> dict[str, Any]:
        """The JSON Schema of one text: what `check_text` enforces."""
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_text_chars,
            "pattern": NOT_ONLY_WHITESPACE,
            "description": f"1 to {self.max_text_chars} characters, not only whitespace",
        }

    def request_schema(self, struct: type[msgspec.Struct]) -> dict[str, Any]:
        """The JSON Schema of a request body (`PredictRequest` or `BatchPredictRequest`) with
        the limits `decode_predict` and `decode_batch` enforce."""
        _, components = msgspec.json.schema_components([struct])
        schema: dict[str, Any] = components[struct.__name__]
        properties = schema["properties"]
        if "text" in properties:
            properties["text"] = self.text_schema()
        if "texts" in properties:
            properties["texts"] = {
                "type": "array",
                "items": self.text_schema(),
                "minItems": 1,
                "maxItems": self.max_batch_items,
            }
        return schema


_PREDICT = msgspec.json.Decoder(PredictRequest)
_BATCH = msgspec.json.Decoder(BatchPredictRequest)


def decode_json(decoder: msgspec.json.Decoder[Any], body: bytes, example: str) -> Any:
    if not body.strip():
        raise BadRequest(f"request body is empty; expected JSON like {example}")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid request: {exc}; expected JSON like {example}") from None
    except (UnicodeDecodeError, msgspec.DecodeError) as exc:
        _raise_if_not_utf8(body)  # msgspec counts bytes from the string it was decoding
        raise BadRequest(f"malformed JSON: {exc}") from None


def _raise_if_not_utf8(body: bytes) -> None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"request body is not valid UTF-8 (byte {exc.start} of the body: "
            f"0x{body[exc.start]:02x})"
        ) from None


def check_text(text: str, limits: Limits, where: str) -> str:
    if not text.strip():
        raise InvalidRequest(f"{where} must not be empty or only whitespace")
    if len(text) > limits.max_text_chars:
        raise InvalidRequest(
            f"{where} has {len(text)} characters; the limit is {limits.max_text_chars}"
        )
    return text


def decode_predict(body: bytes, limits: Limits) -> str:
    """The text of a ``/predict`` body, or `BadRequest`/`InvalidRequest` saying what is wrong."""
    request: PredictRequest = decode_json(_PREDICT, body, '{"text": "..."}')
    return check_text(request.text, limits, "text")


def decode_batch(body: bytes, limits: Limits) -> list[str]:
    """The texts of a ``/batch_predict`` body, checked item by item."""
    request: BatchPredictRequest = decode_json(_BATCH, body, '{"texts": ["...", "..."]}')
    texts = request.texts
    if not texts:
        raise InvalidRequest("texts must not be an empty list")
    if len(texts) > limits.max_batch_items:
        raise InvalidRequest(
            f"texts has {len(texts)} items; the limit is {limits.max_batch_items} per request"
        )
    for position, text in enumerate(texts):
        check_text(text, limits, f"texts[{position}]")
    return texts
