"""Logging evaluations to MLflow, linked to the registered model version being served.

Each evaluation becomes one run in the ``clfserve-staleness`` experiment (tags: model name and
version, verdict; params: threshold, metric, data; metrics: accuracy, macro-F1, per-class F1).
When the model came from the registry (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``), its
model version gets the tags ``stale=true|false``, ``stale_checked_at`` and ``stale_run_id``.

    ClfserveError
    └── TrackingError    the tracking server is unreachable, too slow, or refused a write
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from clfserve.runtime import ClfserveError

log = logging.getLogger(__name__)
T = TypeVar("T")

REGISTRY_PREFIX = "models:/"


class TrackingError(ClfserveError):
    """MLflow could not record an evaluation; the message says why."""


@dataclass(frozen=True)
class RegisteredVersion:
    """A version of a registered model, e.g. ``clfserve-sentiment`` version ``3``."""

    name: str
    version: str


@dataclass(frozen=True)
class TrackedRun:
    """Where an evaluation was logged."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    registered: RegisteredVersion | None


def tracking_uri() -> str:
    """The export pipeline's tracking URI when it defines one, else MLflow's own resolution."""
    try:
        registry = importlib.import_module("clfserve.export.registry")
        uri = registry.tracking_uri()
        if isinstance(uri, str) and uri:
            return uri
    except (ImportError, AttributeError):
        pass
    import mlflow

    return str(mlflow.get_tracking_uri())


def tracking_wanted(mode: str, model_uri: str, env: Mapping[str, str]) -> bool:
    """``auto``: on when the model came from the registry or a tracking URI is configured."""
    if mode != "auto":
        return mode == "on"
    return model_uri.startswith(REGISTRY_PREFIX) or bool(env.get("MLFLOW_TRACKING_URI"))


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """``models:/NAME@ALIAS`` -> (NAME, ALIAS, None); ``models:/NAME/3`` -> (NAME, None, '3')."""
    if not uri.startswith(REGISTRY_PREFIX):
        return None
    rest = uri[len(REGISTRY_PREFIX) :].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return name, alias, None
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return name, None, version
    return None


class MlflowTracker:
    """Writes one run per evaluation; every call is bounded by ``timeout_s``."""

    def __init__(
        self,
        model_uri: str,
        experiment: str,
        timeout_s: float,
        uri: str | None = None,
    ) -> None:
        self.model_uri = model_uri
        self.experiment = experiment
        self.timeout_s = timeout_s
        self._uri = uri
        self._registered: RegisteredVersion | None = None

    @property
    def uri(self) -> str:
        if self._uri is None:
            self._uri = tracking_uri()
        return self._uri

    def log(self, record: Mapping[str, Any]) -> TrackedRun:
        """Record ``record`` (a staleness result, see `StalenessMonitor`); `TrackingError`."""
        uri = self.uri
        try:
            return _bounded(lambda: self._log(uri, record), self.timeout_s)
        except TrackingError:
            raise
        except TimeoutError:
            raise TrackingError(
                f"MLflow at {uri} did not answer within {self.timeout_s:g} s"
            ) from None
        except Exception as exc:  # MLflow has its own hierarchy, plus OSError and friends
            raise TrackingError(f"MLflow at {uri}: {type(exc).__name__}: {exc}") from exc

    def _log(self, uri: str, record: Mapping[str, Any]) -> TrackedRun:
        _preflight(uri, min(5.0, self.timeout_s))
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        registered = self._resolve(client)
        experiment = client.get_experiment_by_name(self.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(self.experiment)
        )
        model = record["model"]
        stale = "true" if record["stale"] else "false"
        tags = {
            "clfserve.model_name": str(model["name"]),
            "clfserve.model_version": str(model["version"]),
            "clfserve.model_variant": str(model["variant"]),
            "clfserve.model_provider": str(model["provider"]),
            "clfserve.model_uri": self.model_uri,
            "clfserve.trigger": str(record["trigger"]),
            "stale": stale,
            "verdict": str(record["verdict"]),
        }
        if registered is not None:
            tags["registered_model_name"] = registered.name
            tags["registered_model_version"] = registered.version
        now_ms = int(time.time() * 1000)
        shown_version = registered.version if registered is not None else model["version"]
        run = client.create_run(
            experiment_id,
            start_time=now_ms,
            tags=tags,
            run_name=f"staleness-{model['name']}-v{shown_version}",
        )
        run_id = run.info.run_id
        metrics = {"accuracy": record["accuracy"], "macro_f1": record["macro_f1"],
                   "n_samples": record["n_samples"], "duration_s": record["duration_s"],
                   "stale": 1.0 if record["stale"] else 0.0}  # fmt: skip
        for label, scores in record["per_class"].items():
            metrics[f"f1_{label}"] = scores["f1"]
        params = {"threshold": record["threshold"], "metric": record["metric"],
                  "data_source": record["data"]["source"],
                  "data_checksum": record["data"]["checksum"]}  # fmt: skip
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)[:500]) for k, v in params.items()],
            tags=[RunTag("mlflow.note.content", _note(record))],
        )
        client.set_terminated(run_id)
        if registered is not None:
            for key, value in (
                ("stale", stale),
                ("stale_checked_at", str(record["finished_at"])),
                ("stale_run_id", run_id),
            ):
                client.set_model_version_tag(registered.name, registered.version, key, value)
        return TrackedRun(uri, str(experiment_id), run_id, registered)

    def _resolve(self, client: Any) -> RegisteredVersion | None:
        """The registered version behind ``model_uri``, resolved once and then kept.

        The alias is resolved at the first successful log, shortly after the model loaded; if
        it moved in between, the run is tagged with the version the alias named at that time.
        """
        if self._registered is not None:
            return self._registered
        parsed = parse_registry_uri(self.model_uri)
        if parsed is None:
            return None
        name, alias, version = parsed
        if alias is not None:
            version = str(client.get_model_version_by_alias(name, alias).version)
        assert version is not None
        self._registered = RegisteredVersion(name, version)
        return self._registered


def _note(record: Mapping[str, Any]) -> str:
    return (
        f"{record['verdict']}: {record['metric']} {record['value']:.4f} vs threshold "
        f"{record['threshold']:.4f} on {record['n_samples']} samples of {record['data']['source']}"
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
