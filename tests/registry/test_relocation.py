"""A moved or copied clfserve home keeps working: reads and new writes stay inside it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clfserve.registry import RegistryError, register_artefact, relocation, resolve_model
from clfserve.registry.home import tracking_uri

NAME = "moved-model"


def _use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> str:
    monkeypatch.setenv("CLFSERVE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(relocation, "_checked", set())  # a new process, as after a move
    return tracking_uri(home)


def test_a_moved_home_reads_and_writes_inside_itself(
    tiny_artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = tmp_path / "old-home", tmp_path / "new-home"
    _use_home(monkeypatch, old)
    register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    shutil.move(old, new)

    _use_home(monkeypatch, new)
    resolved = resolve_model(f"models:/{NAME}@champion")
    assert resolved.path.is_relative_to(new), resolved.path
    assert (resolved.path / "manifest.json").is_file()
    second = register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    assert second.version == "2"
    assert resolve_model(f"models:/{NAME}/2").path.is_relative_to(new)
    assert not old.exists(), "nothing may be written into the old folder"


def test_a_home_without_its_artefacts_says_what_to_do(
    tiny_artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, partial = tmp_path / "old-home", tmp_path / "partial-home"
    _use_home(monkeypatch, old)
    register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    partial.mkdir()
    shutil.copy(old / "mlflow.db", partial / "mlflow.db")  # the database alone

    _use_home(monkeypatch, partial)
    with pytest.raises(RegistryError, match="move or copy the whole home folder"):
        resolve_model(f"models:/{NAME}@champion")
