"""Telling people the model turned stale (or its answers drifted): a WARNING log line and an
optional JSON webhook."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from clfserve.service.staleness.record import Evaluation

log = logging.getLogger(__name__)


class Alerter:
    """``notify`` never raises: a failing webhook is logged, the evaluation result stands."""

    def __init__(
        self,
        webhook: str | None,
        timeout_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.webhook = webhook
        self.timeout_s = timeout_s
        self._transport = transport  # a MockTransport in tests

    def notify(self, evaluation: Evaluation) -> bool | None:
        """Log the turn to stale and POST the evaluation; True/False = webhook outcome, None =
        no webhook configured."""
        scored, data = evaluation.scored, evaluation.data
        log.warning(
            "model %s v%s is STALE: %s %.4f < threshold %.4f on %s (%d samples)",
            scored.model.name if scored else "?", scored.model.version if scored else "?",
            evaluation.metric, scored.value if scored else 0.0, evaluation.threshold,
            data.source if data else "?", data.rows if data else 0,
        )  # fmt: skip
        return self.post({"event": "model_stale", **evaluation.to_json()}, "staleness")

    def post(self, payload: dict[str, Any], what: str) -> bool | None:
        """POST ``payload`` to the webhook (blocking, bounded); True/False = outcome, None = no
        webhook configured. ``what`` names the alert in log lines."""
        if self.webhook is None:
            return None
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                response = client.post(self.webhook, json=payload)
        except httpx.HTTPError as exc:
            log.error("%s alert to %s failed: %s: %s", what, self.webhook, type(exc).__name__, exc)
            return False
        if response.is_error:
            log.error("%s alert to %s answered HTTP %d", what, self.webhook, response.status_code)
            return False
        log.info("%s alert sent to %s (HTTP %d)", what, self.webhook, response.status_code)
        return True
