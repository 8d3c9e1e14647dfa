"""Local copies of served versions: bounded, and the alias's last version is what a start without
the registry gets."""

from __future__ import annotations

import os
from pathlib import Path

from clfserve.registry import ModelUri, ResolvedModel, keep_local_copy, newest_local_copy
from clfserve.registry.local_copies import KEEP, copies_root


def version_folder(root: Path, version: str) -> ResolvedModel:
    folder = root / f"mlartifacts-{version}"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(f'{{"version": "{version}"}}')
    (folder / "model.onnx").write_bytes(b"weights " + version.encode())
    return ResolvedModel(folder, "m", version, "models:/m@champion")


def test_copies_are_bounded_and_remember_the_alias(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for i, version in enumerate(("1", "2", "3", "4", "5")):
        kept = keep_local_copy(version_folder(tmp_path, version), "champion", home)
        assert kept.path == copies_root("m", home) / version
        assert (kept.path / "model.onnx").read_bytes() == b"weights " + version.encode()
        os.utime(kept.path, (1_000 + i, 1_000 + i))  # a clear order, whatever the clock does
    left = sorted(p.name for p in copies_root("m", home).iterdir() if p.is_dir())
    assert left == ["3", "4", "5"]
    assert len(left) == KEEP

    # The alias moved back to 4 (a rollback): a start without the registry serves 4, not 5.
    keep_local_copy(ResolvedModel(copies_root("m", home) / "4", "m", "4"), "champion", home)
    served = newest_local_copy(ModelUri("m", alias="champion"), home)
    assert served is not None
    assert (served.name, served.version) == ("m", "4")
    pinned = newest_local_copy(ModelUri("m", version="3"), home)
    assert pinned is not None
    assert pinned.version == "3"
    assert newest_local_copy(ModelUri("m", version="1"), home) is None
    assert newest_local_copy(ModelUri("other", alias="champion"), home) is None
