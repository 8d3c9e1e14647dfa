"""The MLflow model registry: register artefact folders, resolve model URIs back to folders.

No torch here, and mlflow is imported inside functions: the service imports this module to
resolve ``models:/NAME@ALIAS`` at start-up and must stay quick to import.

Tracking defaults to ``sqlite:///<home>/mlflow.db`` with artefacts under ``<home>/mlartifacts``,
where home is ``$CLFSERVE_HOME`` or ``./.clfserve``; ``$MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from clfserve.export.errors import RegistryError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)
HOME_ENV = "CLFSERVE_HOME"
ARTEFACT_PATH = "artefact"
"""Where the artefact folder sits inside an MLflow run's artifacts."""
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


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


def default_home() -> Path:
    """``$CLFSERVE_HOME`` or ``./.clfserve``: registry database, artefacts, checkpoints."""
    return Path(os.environ.get(HOME_ENV) or ".clfserve")


def tracking_uri(home: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else a sqlite database in the clfserve home."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    folder = (home or default_home()).resolve()
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_root(home: Path | None = None) -> Path:
    return (home or default_home()).resolve() / "mlartifacts"


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

    with _client(uri) as client:
        try:
            experiment_id = _experiment_id(client, experiment)
            run = client.create_run(experiment_id, tags=dict(tags or {}))
            run_id = run.info.run_id
            for key, value in params.items():
                client.log_param(run_id, key, _param(value))
            for key, number in metrics.items():
                client.log_metric(run_id, key, float(number))
            client.log_artifacts(run_id, str(folder), ARTEFACT_PATH)
            client.set_terminated(run_id)
            _ensure_registered_model(client, name)
            source = f"{run.info.artifact_uri.rstrip('/')}/{ARTEFACT_PATH}"
            version = client.create_model_version(name, source=source, run_id=run_id)
            if alias:
                client.set_registered_model_alias(name, alias, version.version)
        except mlflow.exceptions.MlflowException as exc:
            raise _error(exc, client, f"registering {folder} as {name!r} failed") from exc
    log.info("registered %s version %s (run %s)", name, version.version, run_id)
    return Registered(
        name, str(version.version), alias, run_id, f"models:/{name}/{version.version}"
    )


def has_alias(name: str, alias: str, uri: str | None = None) -> bool:
    """Whether registered model ``name`` has ``alias`` (False when the model does not exist)."""
    import mlflow

    with _client(uri) as client:
        try:
            client.get_model_version_by_alias(name, alias)
        except mlflow.exceptions.MlflowException as exc:
            if _not_found(exc):
                return False
            raise _error(exc, client, f"cannot query {name}@{alias}") from exc
    return True


def resolve_model_uri(
    model: str, uri: str | None = None, cache: Path | None = None
) -> ResolvedModel:
    """``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a local folder -> an artefact folder.

    Registry artefacts stored on this machine are used in place; remote ones are downloaded
    once into ``cache`` (default ``<home>/cache``).
    """
    match = _MODELS_URI.match(model)
    if match is None:
        if model.startswith("models:/"):
            raise RegistryError(
                f"{model}: malformed model URI (use models:/NAME@ALIAS or models:/NAME/VERSION)"
            )
        path = Path(model)
        if not path.is_dir():
            raise RegistryError(f"{model}: neither a models:/ URI nor an existing folder")
        return ResolvedModel(path=path, uri=model)

    import mlflow

    name, alias, number = match["name"], match["alias"], match["version"]
    with _client(uri) as client:
        try:
            if alias:
                found = client.get_model_version_by_alias(name, alias)
            else:
                found = client.get_model_version(name, number)
            if not found.source:
                raise RegistryError(f"{model}: version {found.version} has no artefact source")
            path = _local_copy(found.source, name, str(found.version), cache)
        except mlflow.exceptions.MlflowException as exc:
            raise _error(exc, client, model) from exc
    return ResolvedModel(path=path, name=name, version=str(found.version), uri=model)


def _local_copy(source: str, name: str, version: str, cache: Path | None) -> Path:
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path))
        if local.is_dir():
            return local
    import mlflow

    target = (cache or default_home() / "cache") / name / version
    if not (target / "manifest.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target))
    nested = target / ARTEFACT_PATH
    return nested if nested.is_dir() else target


@contextmanager
def _client(uri: str | None) -> Iterator[MlflowClient]:
    """An MlflowClient that fails fast, with one clear line, when the server is unreachable."""
    # Defaults retry for minutes; a CLI user wants to know at once.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    target = uri or tracking_uri()
    if target.startswith("sqlite:///"):
        Path(target.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=target, registry_uri=target)
    try:
        yield client
    except RegistryError:
        raise
    except Exception as exc:
        if _is_connection_error(exc):
            raise _error(exc, client, "") from exc
        raise


def _error(exc: Exception, client: MlflowClient, what: str) -> RegistryError:
    """One line: unreachable server, missing model/alias (with what to run), or MLflow's message."""
    if _is_connection_error(exc):
        return RegistryError(
            f"MLflow tracking server {client.tracking_uri} is unreachable; "
            "start it or point MLFLOW_TRACKING_URI elsewhere"
        )
    message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
    if _not_found(exc):
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


def _experiment_id(client: MlflowClient, name: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = None
    if client.tracking_uri.startswith("sqlite:"):
        # Without an explicit location MLflow puts artefacts in ./mlruns of the current folder.
        home = Path(client.tracking_uri.removeprefix("sqlite:///")).parent
        location = (home / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if not _not_found(exc):
            raise
        client.create_registered_model(name)


def _not_found(exc: Any) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc)


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
