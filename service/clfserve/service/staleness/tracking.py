"""Logging evaluations to MLflow, linked to the registered model version being served.

Each evaluation becomes one run in the ``clfserve-staleness`` experiment (tags: model name and
version, verdict; params: threshold, metric, data; metrics: accuracy, macro-F1, per-class F1),
created under the clfserve home like every experiment the project makes. The score on production
labels is a run of its own (tag ``clfserve.scope=feedback``, params ``data_source=feedback`` and
``data_window``). When the model came from the registry (``models:/NAME@ALIAS`` or
``models:/NAME/VERSION``), the version being served gets the tags ``stale=true|false`` (stale on
either data), ``stale_checked_at`` and ``stale_run_id``, and after a feedback score
``stale_feedback`` and ``stale_feedback_run_id``; the monitor logs that one first.

    ClfserveError
    └── TrackingError    the tracking server is unreachable, too slow, or refused a write
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from clfserve.evaluation import DataSource
from clfserve.registry import experiment_id_for, is_registry_uri, open_client, parse_model_uri
from clfserve.registry import tracking_uri as default_tracking_uri
from clfserve.runtime import ClfserveError
from clfserve.service.staleness.record import Evaluation, RegisteredVersion, Scored, Tracking

log = logging.getLogger(__name__)
T = TypeVar("T")


class TrackingError(ClfserveError):
    """MLflow could not record an evaluation; the message says why."""


def tracking_wanted(mode: str, model_uri: str, env: Mapping[str, str]) -> bool:
    """``auto``: on when the model came from the registry or a tracking URI is configured."""
    if mode != "auto":
        return mode == "on"
    return is_registry_uri(model_uri) or bool(env.get("MLFLOW_TRACKING_URI"))


class MlflowTracker:
    """Writes one run per evaluation; every call is bounded by ``timeout_s``."""

    def __init__(
        self, model_uri: str, experiment: str, timeout_s: float, uri: str | None = None
    ) -> None:
        self.model_uri = model_uri
        self.experiment = experiment
        self.timeout_s = timeout_s
        self.uri = uri or default_tracking_uri()

    def log(self, evaluation: Evaluation) -> Tracking:
        """Record ``evaluation``; `TrackingError` when MLflow cannot."""
        try:
            return _bounded(lambda: self._log(evaluation), self.timeout_s)
        except TrackingError:
            raise
        except TimeoutError:
            raise TrackingError(
                f"MLflow at {self.uri} did not answer within {self.timeout_s:g} s"
            ) from None
        except Exception as exc:  # MLflow has its own hierarchy, plus OSError and friends
            raise TrackingError(f"MLflow at {self.uri}: {type(exc).__name__}: {exc}") from exc

    def _log(self, evaluation: Evaluation) -> Tracking:
        _preflight(self.uri, min(5.0, self.timeout_s))
        from mlflow.entities import Metric, Param, RunTag

        scored, data = evaluation.scored, evaluation.data
        if scored is None or data is None:
            raise TrackingError("only an evaluation that reached a verdict is logged")
        model, result = scored.model, scored.result
        registered = self.registered_version(model.version)
        stale = "true" if evaluation.stale_on else "false"
        tags = {
            "clfserve.model_name": model.name,
            "clfserve.model_version": model.version,
            "clfserve.model_variant": model.variant,
            "clfserve.model_provider": model.provider,
            "clfserve.model_uri": self.model_uri,
            "clfserve.trigger": evaluation.trigger,
            "clfserve.scope": evaluation.scope,
            "stale": "true" if evaluation.stale else "false",
            "verdict": scored.verdict,
        }
        if registered is not None:
            tags["registered_model_name"] = registered.name
            tags["registered_model_version"] = registered.version
        metrics = {"accuracy": result.accuracy, "macro_f1": result.macro_f1,
                   "n_samples": float(result.n_samples), "duration_s": result.duration_s,
                   "stale": 1.0 if evaluation.stale else 0.0}  # fmt: skip
        for label, scores in result.per_class.items():
            metrics[f"f1_{label}"] = scores.f1
        params = {"threshold": evaluation.threshold, "metric": evaluation.metric,
                  "data_source": data.source, "data_checksum": data.checksum}  # fmt: skip
        if data.window is not None:
            params["data_window"] = data.window
        now_ms = int(time.time() * 1000)
        with open_client(self.uri) as client:
            experiment_id = experiment_id_for(client, self.experiment)
            run = client.create_run(
                experiment_id,
                start_time=now_ms,
                tags=tags,
                run_name=f"staleness-{model.name}-v{model.version}",
            )
            run_id = run.info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)[:500]) for k, v in params.items()],
                tags=[RunTag("mlflow.note.content", _note(evaluation, scored, data))],
            )
            client.set_terminated(run_id)
            if registered is not None:
                version_tags = (
                    (("stale_feedback", stale), ("stale_feedback_run_id", run_id))
                    if evaluation.scope == "feedback"
                    else (("stale", stale), ("stale_checked_at", str(evaluation.finished_at)),
                          ("stale_run_id", run_id))
                )  # fmt: skip
                for key, value in version_tags:
                    client.set_model_version_tag(registered.name, registered.version, key, value)
        return Tracking("logged", None, self.uri, str(experiment_id), run_id, registered)

    def registered_version(self, served_version: str) -> RegisteredVersion | None:
        """The registered version being served: the service reports a registry model by its
        version number, so the run and the tags name the version that was actually scored."""
        if not is_registry_uri(self.model_uri):
            return None
        return RegisteredVersion(parse_model_uri(self.model_uri).name, served_version)


def _note(evaluation: Evaluation, scored: Scored, data: DataSource) -> str:
    return (
        f"{scored.verdict}: {evaluation.metric} {scored.value:.4f} vs threshold "
        f"{evaluation.threshold:.4f} on {data.rows} samples of {data.source}"
    )


def _preflight(uri: str, timeout_s: float) -> None:
    """Fail fast on an HTTP tracking server that refuses connections (MLflow would retry
    with exponential backoff for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        httpx.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise TrackingError(f"MLflow tracking server {uri} unreachable: {exc}") from exc


def _bounded(work: Callable[[], T], timeout_s: float) -> T:
    """Run ``work`` in a daemon thread; TimeoutError after ``timeout_s`` (the thread is left
    to finish on its own: MLflow calls cannot be cancelled)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="clfserve-staleness-mlflow", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
