"""Telling people the model turned stale: a WARNING log line and an optional JSON webhook."""

from __future__ import annotations

import logging

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
        model, data = evaluation.model, evaluation.data
        log.warning(
            "model %s v%s is STALE: %s %.4f < threshold %.4f on %s (%d samples)",
            model.name if model else "?", model.version if model else "?", evaluation.metric,
            evaluation.value or 0.0, evaluation.threshold, data.source if data else "?",
            data.rows if data else 0,
        )  # fmt: skip
        if self.webhook is None:
            return None
        payload = {"event": "model_stale", **evaluation.to_json()}
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                response = client.post(self.webhook, json=payload)
        except httpx.HTTPError as exc:
            log.error("staleness alert to %s failed: %s: %s", self.webhook, type(exc).__name__, exc)
            return False
        if response.is_error:
            log.error("staleness alert to %s answered HTTP %d", self.webhook, response.status_code)
            return False
        log.info("staleness alert sent to %s (HTTP %d)", self.webhook, response.status_code)
        return True
