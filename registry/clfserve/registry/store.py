"""The MLflow model registry: register artefact folders, resolve model URIs to local folders.

mlflow is imported inside functions: the service resolves ``models:/NAME@ALIAS`` through this
module at start-up and must stay quick to import. Where things are stored: `clfserve.registry.home`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from clfserve.registry.errors import RegistryError
from clfserve.registry.home import artefact_store, models_cache, tracking_uri
from clfserve.registry.pyfunc import write_mlmodel
from clfserve.registry.relocation import adopt_moved_home
from clfserve.registry.uri import is_registry_uri, parse_model_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)
ARTEFACT_PATH = "artefact"
"""Where the artefact folder sits inside an MLflow run's artifacts."""


@dataclass(frozen=True)
class ResolvedModel:
    """A local artefact folder and, when it came from the registry, its name and version."""

    path: Path
    name: str | None = None
    version: str | None = None
    uri: str = ""


@dataclass(frozen=True)
class Registered:
    """What `register_artefact` created."""

    name: str
    version: str
    alias: str | None
    run_id: str
    uri: str
    """``models:/NAME/VERSION``."""


def register_artefact(
    folder: Path,
    *,
    name: str,
    alias: str | None,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    experiment: str = "clfserve",
    uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Registered:
    """Log ``folder`` in a new run, create a version of model ``name`` and point ``alias`` at it."""
    import mlflow

    with open_client(uri) as client:
        try:
            experiment_id = experiment_id_for(client, experiment)
            run = client.create_run(experiment_id, tags=dict(tags or {}))
            run_id = run.info.run_id
            for key, value in params.items():
                client.log_param(run_id, key, _param(value))
            for key, number in metrics.items():
                client.log_metric(run_id, key, float(number))
            client.log_artifacts(run_id, str(folder), ARTEFACT_PATH)
            _log_pyfunc_flavor(client, run_id)
            client.set_terminated(run_id)
            _ensure_registered_model(client, name)
            source = f"{run.info.artifact_uri.rstrip('/')}/{ARTEFACT_PATH}"
            version = client.create_model_version(name, source=source, run_id=run_id)
            if alias:
                client.set_registered_model_alias(name, alias, version.version)
        except mlflow.exceptions.MlflowException as exc:
            raise error_for(exc, client, f"registering {folder} as {name!r} failed") from exc
    log.info("registered %s version %s (run %s)", name, version.version, run_id)
    return Registered(
        name, str(version.version), alias, run_id, f"models:/{name}/{version.version}"
    )


def _log_pyfunc_flavor(client: MlflowClient, run_id: str) -> None:
    """``MLmodel`` next to the logged artefact: the version is also an MLflow pyfunc model."""
    with tempfile.TemporaryDirectory(prefix="clfserve-mlmodel-") as scratch:
        client.log_artifact(run_id, str(write_mlmodel(Path(scratch))), ARTEFACT_PATH)


def resolve_model(model: str, uri: str | None = None, cache: Path | None = None) -> ResolvedModel:
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a local folder -> an artefact folder.

    Registry artefacts stored on this machine are used in place; remote ones are downloaded
    once into ``cache`` (default ``<home>/cache``).
    """
    if not is_registry_uri(model):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise RegistryError(f"{model}: neither a models:/ URI nor an existing folder")
        return ResolvedModel(path=path, uri=model)
    parsed = parse_model_uri(model)

    import mlflow

    name, alias, number = parsed.name, parsed.alias, parsed.version
    with open_client(uri) as client:
        try:
            if alias:
                found = client.get_model_version_by_alias(name, alias)
            else:
                found = client.get_model_version(name, str(number))
            if not found.source:
                raise RegistryError(f"{model}: version {found.version} has no artefact source")
            path = _local_copy(found.source, name, str(found.version), cache)
        except mlflow.exceptions.MlflowException as exc:
            raise error_for(exc, client, model) from exc
    return ResolvedModel(path=path, name=name, version=str(found.version), uri=model)


def _local_copy(source: str, name: str, version: str, cache: Path | None) -> Path:
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path))
        if local.is_dir():
            return local
    import mlflow

    target = (cache or models_cache()) / name / version
    if not (target / "manifest.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target))
    nested = target / ARTEFACT_PATH
    return nested if nested.is_dir() else target


@contextmanager
def open_client(uri: str | None = None) -> Iterator[MlflowClient]:
    """An MlflowClient that fails fast, with one clear line, when the server is unreachable."""
    # Defaults retry for minutes; a CLI user wants to know at once.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    target = uri or tracking_uri()
    if target.startswith("sqlite:///"):
        Path(target.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        adopt_moved_home(target)
    client = MlflowClient(tracking_uri=target, registry_uri=target)
    try:
        yield client
    except RegistryError:
        raise
    except Exception as exc:
        if _is_connection_error(exc):
            raise error_for(exc, client, "") from exc
        raise


def error_for(exc: Exception, client: MlflowClient, what: str) -> RegistryError:
    """One line: unreachable server, missing model/alias (with what to run), or MLflow's message."""
    if _is_connection_error(exc):
        return RegistryError(
            f"MLflow tracking server {client.tracking_uri} is unreachable; "
            "start it or point MLFLOW_TRACKING_URI elsewhere"
        )
    message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
    if not_found(exc):
        message += " (run `clfserve release`, or `clfserve export --register`)"
    return RegistryError(f"{what}: {message}" if what else message)


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        text = str(seen)
        if "Max retries exceeded" in text or "Connection refused" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def experiment_id_for(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing.

    On a sqlite registry a new experiment keeps its artefacts under ``<home>/mlartifacts``
    (MLflow's own default is ``./mlruns`` of whatever folder the process started in).
    """
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    store = artefact_store(client.tracking_uri)
    location = None if store is None else (store / name).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if not not_found(exc):
            raise
        client.create_registered_model(name)


def not_found(exc: Any) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc)


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
