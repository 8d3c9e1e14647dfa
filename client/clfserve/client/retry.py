"""Bounded retries of 429 and 503 answers, honouring ``Retry-After``."""

from __future__ import annotations

from dataclasses import dataclass

RETRIED = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``retries`` more tries after a 429 or 503.

    The wait before try ``n`` (1-based) is the server's ``Retry-After`` when it sent one, else
    ``backoff_s * 2 ** (n - 1)``, capped at ``max_backoff_s``; a ``Retry-After`` longer than
    ``max_wait_s`` is not waited for: the error is raised at once. ``RetryPolicy(retries=0)``
    never retries.
    """

    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("retries and backoff must not be negative")

    def delay(self, attempt: int, status_code: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retrying after failed try ``attempt`` (1-based), or None to
        give up."""
        if status_code not in RETRIED or attempt > self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait_s else None
        return min(self.backoff_s * 2.0 ** (attempt - 1), self.max_backoff_s)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the server sends whole seconds; dates are not used)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)
