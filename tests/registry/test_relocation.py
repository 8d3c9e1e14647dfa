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


@pytest.fixture
def old_home(tiny_artefact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clfserve home holding version 1 of ``NAME`` at ``champion``, about to be moved."""
    home = tmp_path / "old-home"
    _use_home(monkeypatch, home)
    register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    return home


def test_a_moved_home_reads_and_writes_inside_itself(
    old_home: Path, tiny_artefact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = old_home.with_name("new-home")
    shutil.move(old_home, new)

    _use_home(monkeypatch, new)
    resolved = resolve_model(f"models:/{NAME}@champion")
    assert resolved.path.is_relative_to(new), resolved.path
    assert (resolved.path / "manifest.json").is_file()
    second = register_artefact(tiny_artefact, name=NAME, alias="champion", params={}, metrics={})
    assert second.version == "2"
    assert resolve_model(f"models:/{NAME}/2").path.is_relative_to(new)
    assert not old_home.exists(), "nothing may be written into the old folder"


def test_a_home_without_its_artefacts_says_what_to_do(
    old_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = old_home.with_name("partial-home")
    partial.mkdir()
    shutil.copy(old_home / "mlflow.db", partial / "mlflow.db")  # the database alone

    _use_home(monkeypatch, partial)
    with pytest.raises(RegistryError, match="move or copy the whole home folder"):
        resolve_model(f"models:/{NAME}@champion")
