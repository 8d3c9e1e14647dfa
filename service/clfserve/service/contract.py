"""What a client can get back besides a success, declared once.

The OpenAPI document (`clfserve.service.openapi`) documents each route's answers from these
declarations, and the README's error table is generated from them (a test compares the two), so
the docs page, the README and the server cannot drift apart. The handlers raise the errors in
`clfserve.service.errors`; the fuzz test checks that every answer the server gives is declared.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_VERSION = "X-Model-Version"
RETRY_AFTER = "Retry-After"
RATE_LIMIT_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)
WWW_AUTHENTICATE = "WWW-Authenticate"

HEADERS: dict[str, str] = {
    MODEL_VERSION: "version of the model serving this process (`none` while none is loaded); "
    "on every response",
    RETRY_AFTER: "seconds to wait before trying again",
    "RateLimit-Limit": "requests allowed per window (when `CLFSERVE_RATE_LIMIT` is on)",
    "RateLimit-Remaining": "requests left in the current window",
    "RateLimit-Reset": "seconds until the window resets",
    "RateLimit-Policy": "the limit as `COUNT; w=SECONDS`",
    WWW_AUTHENTICATE: "`Bearer`: how to authenticate",
}
"""Every response header the contract names, with its meaning."""


@dataclass(frozen=True)
class Failure:
    """One way a request can fail: its status, when it happens and the headers it carries."""

    status: int
    when: str
    headers: tuple[str, ...] = ()
    health_body: bool = False
    """The body is a `Health` (``/health/ready``) rather than the error body."""


BAD_BODY = Failure(400, "malformed JSON, a body that is not UTF-8, an empty body")
INVALID = Failure(
    422,
    "empty or whitespace-only text, text over `CLFSERVE_MAX_TEXT_CHARS`, wrong types, missing "
    "or unknown fields, empty list, more than `CLFSERVE_MAX_BATCH_ITEMS` texts",
)
TOO_LARGE = Failure(413, "body over `CLFSERVE_MAX_BODY_BYTES`")
THROTTLED = Failure(
    429, "over the per-IP rate limit (`CLFSERVE_RATE_LIMIT`)", (RETRY_AFTER, *RATE_LIMIT_HEADERS)
)
NO_MODEL = Failure(503, "model not loaded (yet, or it failed): `Retry-After: 5`", (RETRY_AFTER,))
OVERLOADED = Failure(
    503, "too many texts waiting (`CLFSERVE_MAX_QUEUE`): `Retry-After: 1`", (RETRY_AFTER,)
)
NOT_READY = Failure(503, "no model loaded and warmed (yet, or it failed), with the reason", (),
                    health_body=True)  # fmt: skip
NO_TOKEN = Failure(401, "admin route without `Authorization: Bearer ...`", (WWW_AUTHENTICATE,))
WRONG_TOKEN = Failure(403, "admin route with a wrong token")
ADMIN_OFF = Failure(404, "admin route while `CLFSERVE_ADMIN_TOKEN` is unset")

UNKNOWN_LABEL = Failure(
    422,
    "`/feedback` with a label the model does not have, or a `prediction_id` the service "
    "did not issue",
)
FEEDBACK_TOKEN = Failure(
    401, "`/feedback` without `Authorization: Bearer $CLFSERVE_FEEDBACK_TOKEN` (when that is set)"
    " or with a wrong one", (WWW_AUTHENTICATE,),
)  # fmt: skip
FEEDBACK_DOWN = Failure(
    503, "the feedback database is unreachable (`/feedback`): `Retry-After: 5`", (RETRY_AFTER,)
)

PREDICT = (BAD_BODY, TOO_LARGE, INVALID, THROTTLED, NO_MODEL, OVERLOADED)
"""``POST /predict`` and ``POST /batch_predict``."""
FEEDBACK = (BAD_BODY, TOO_LARGE, INVALID, UNKNOWN_LABEL, FEEDBACK_TOKEN, THROTTLED, NO_MODEL,
            FEEDBACK_DOWN)  # fmt: skip
"""``POST /feedback``."""
READ = (THROTTLED,)
"""Rate-limited reads: ``GET /model``, ``GET /staleness``."""
READY = (NOT_READY,)
ADMIN = (NO_TOKEN, WRONG_TOKEN, ADMIN_OFF, THROTTLED)
EXEMPT = ()
"""``/health/live`` and ``/metrics``: never throttled, always 200."""

TABLE = (INVALID, UNKNOWN_LABEL, BAD_BODY, TOO_LARGE, THROTTLED, NO_MODEL, OVERLOADED,
         FEEDBACK_DOWN, FEEDBACK_TOKEN, NO_TOKEN, WRONG_TOKEN, ADMIN_OFF)  # fmt: skip
"""The README's error table, in its order."""


def _header_names(failure: Failure) -> str:
    shown: list[str] = []
    for name in failure.headers:
        label = "RateLimit-*" if name.startswith("RateLimit-") else name
        if label not in shown:
            shown.append(label)
    return ", ".join(f"`{name}`" for name in shown)


def markdown_table() -> str:
    """The README's error table."""
    rows = ["| when | status | headers |", "|---|---|---|"]
    rows += [f"| {f.when} | {f.status} | {_header_names(f)} |" for f in TABLE]
    return "\n".join(rows)
