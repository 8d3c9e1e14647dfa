"""Prediction ids: every answer names itself, so feedback can point at the exact answer.

An id is ``p1.VERSION.LABEL.NONCE.TAG``, each part base64url without padding: the model version
and the predicted label (UTF-8), 9 random bytes, and the first 12 bytes of an HMAC-SHA256 of
the rest keyed with ``CLFSERVE_PREDICTION_ID_KEY``. Any replica given the same key reads any
other replica's ids, with no shared state; a cached answer gets a fresh id like any other.
Without a key a built-in one is used: ids are still checked (an edited, truncated or made-up id
is refused), but whoever knows the format can mint one; set a key to make them unforgeable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from clfserve.evaluation.feedback import NamedAnswer

PREFIX = "p1"
MAX_CHARS = 200
"""Longest id accepted (the feedback store keeps up to 200 characters)."""
ID_PATTERN = r"^p1(\.[A-Za-z0-9_-]*){2}(\.[A-Za-z0-9_-]+){2}$"
"""The shape of an id, for the API document (only the tag tells whether it was issued here)."""
_NONCE_BYTES = 9
_TAG_BYTES = 12
_BUILT_IN_KEY = b"clfserve-prediction-id"


class MalformedId(ValueError):
    """A prediction id this service did not issue (or not with this key); says what is wrong."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class PredictionIds:
    """Mints and checks ids with one key (see the module docstring)."""

    def __init__(self, key: str | None = None) -> None:
        self._key = key.encode() if key else _BUILT_IN_KEY

    def _tag(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return _b64(digest[:_TAG_BYTES])

    def mint(self, model_version: str, label: str) -> str:
        body = ".".join(
            (PREFIX, _b64(model_version.encode()), _b64(label.encode()),
             _b64(secrets.token_bytes(_NONCE_BYTES)))
        )  # fmt: skip
        return f"{body}.{self._tag(body)}"

    def read(self, prediction_id: str) -> NamedAnswer:
        """The answer an id names (its version and label); `MalformedId` unless issued here."""
        if len(prediction_id) > MAX_CHARS:
            raise MalformedId(f"prediction_id is longer than {MAX_CHARS} characters")
        parts = prediction_id.split(".")
        if len(parts) != 5 or parts[0] != PREFIX:
            raise MalformedId(
                "prediction_id is not one this service issued (expected the `prediction_id` of "
                "a /predict or /batch_predict answer, p1.<version>.<label>.<nonce>.<tag>)"
            )
        body, tag = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(tag.encode(), self._tag(body).encode()):
            raise MalformedId(
                "prediction_id does not check out (edited, or issued with another key)"
            )
        try:
            version, label = (_unb64(p).decode("utf-8") for p in parts[1:3])
        except (binascii.Error, ValueError):  # only a holder of the key could get here
            raise MalformedId("prediction_id does not decode") from None
        return NamedAnswer(prediction_id, version, label)
