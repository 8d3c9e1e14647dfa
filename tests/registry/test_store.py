"""MLflow registry: register, move the alias, resolve models:/ URIs back to loadable folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from clfserve.registry import (
    RegistryError,
    default_home,
    has_alias,
    register_artefact,
    resolve_model,
    tracking_uri,
)
from clfserve.runtime.classifier import Classifier

NAME = "clfserve-sentiment"


def _register(folder: Path) -> str:
    registered = register_artefact(
        folder, name=NAME, alias="champion", params={"p": 1}, metrics={"m": 0.5}
    )
    return registered.version


def test_register_and_load_back_by_alias(tiny_artefact: Path, mlflow_tracking: str) -> None:
    assert not has_alias(NAME, "champion")
    assert _register(tiny_artefact) == "1"
    assert has_alias(NAME, "champion")

    resolved = resolve_model(f"models:/{NAME}@champion")
    assert (resolved.name, resolved.version) == (NAME, "1")
    assert resolved.path != tiny_artefact
    texts = ["a fine film", "a dreadful bore"]
    loaded = Classifier.load(resolved.path, device="cpu").predict(texts)
    direct = Classifier.load(tiny_artefact, device="cpu").predict(texts)
    assert [p.scores for p in loaded] == [p.scores for p in direct]
    # The registry copy lives under the temp home, not in the working directory.
    assert str(resolved.path).startswith(str(default_home().resolve()))


def test_alias_moves_to_the_newest_version(tiny_artefact: Path, mlflow_tracking: str) -> None:
    _register(tiny_artefact)
    assert _register(tiny_artefact) == "2"
    assert resolve_model(f"models:/{NAME}@champion").version == "2"
    assert resolve_model(f"models:/{NAME}/1").version == "1"


def test_local_folder_resolves_to_itself(tiny_artefact: Path) -> None:
    resolved = resolve_model(str(tiny_artefact))
    assert resolved.path == tiny_artefact
    assert resolved.version is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/nope@champion", "not found.*clfserve release"),
        (f"models:/{NAME}@nope", "not found"),
        ("models:/a/b/c", "malformed model URI"),
        ("/no/such/folder", "neither a models:/ URI nor an existing folder"),
    ],
)
def test_unknown_models_raise_registry_error(mlflow_tracking: str, uri: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        resolve_model(uri)


def test_unreachable_server_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(RegistryError, match=r"http://127\.0\.0\.1:9 is unreachable"):
        has_alias(NAME, "champion")
    with pytest.raises(RegistryError, match="unreachable"):
        resolve_model(f"models:/{NAME}@champion")


def test_tracking_uri_defaults_to_sqlite_in_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CLFSERVE_HOME", str(tmp_path))
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking_uri() == "http://mlflow:5000"
