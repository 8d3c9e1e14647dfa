"""Registered versions and aliases: which version an alias names, moving it, tagging versions,
and the metrics a version's release run logged (for the promotion gate)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from clfserve.registry.store import error_for, not_found, open_client

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

T = TypeVar("T")


@dataclass(frozen=True)
class VersionRef:
    """One registered version: where its artefact is and which run logged it."""

    name: str
    version: str
    source: str
    run_id: str | None


def _with_client(uri: str | None, what: str, work: Callable[[MlflowClient], T]) -> T:
    import mlflow

    with open_client(uri) as client:
        try:
            return work(client)
        except mlflow.exceptions.MlflowException as exc:
            raise error_for(exc, client, what) from exc


def alias_version(name: str, alias: str, uri: str | None = None) -> VersionRef | None:
    """The version ``name@alias`` names now; None when the model or alias does not exist.

    `RegistryError` when the registry cannot be reached.
    """
    import mlflow

    with open_client(uri) as client:
        try:
            found = client.get_model_version_by_alias(name, alias)
        except mlflow.exceptions.MlflowException as exc:
            if not_found(exc):
                return None
            raise error_for(exc, client, f"cannot query {name}@{alias}") from exc
    return VersionRef(name, str(found.version), str(found.source or ""), found.run_id)


def has_alias(name: str, alias: str, uri: str | None = None) -> bool:
    """Whether registered model ``name`` has ``alias`` (False when the model does not exist)."""
    return alias_version(name, alias, uri) is not None


def get_version(name: str, version: str, uri: str | None = None) -> VersionRef:
    found = _with_client(
        uri, f"models:/{name}/{version}", lambda c: c.get_model_version(name, version)
    )
    return VersionRef(name, str(found.version), str(found.source or ""), found.run_id)


def set_alias(name: str, alias: str, version: str, uri: str | None = None) -> None:
    """Point ``name@alias`` at ``version`` (which must exist)."""
    get_version(name, version, uri)  # a clear "not found" rather than MLflow's
    _with_client(
        uri,
        f"moving {name}@{alias} to version {version}",
        lambda c: c.set_registered_model_alias(name, alias, version),
    )


def tag_version(name: str, version: str, tags: Mapping[str, str], uri: str | None = None) -> None:
    def work(client: MlflowClient) -> None:
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value[:5000])

    _with_client(uri, f"tagging models:/{name}/{version}", work)


def tag_run(run_id: str, tags: Mapping[str, str], uri: str | None = None) -> None:
    def work(client: MlflowClient) -> None:
        for key, value in tags.items():
            client.set_tag(run_id, key, value[:5000])

    _with_client(uri, f"tagging run {run_id}", work)


def run_metrics(run_id: str, uri: str | None = None) -> dict[str, float]:
    """The metrics the run ``run_id`` logged (latest value of each)."""
    run = _with_client(uri, f"run {run_id}", lambda c: c.get_run(run_id))
    return {key: float(value) for key, value in run.data.metrics.items()}
