"""Local copies of the registry versions a server has loaded, so it can start without the registry.

Each version a server loads is kept under ``<home>/served/<name>/<version>/`` (hard links where
the filesystem allows, else a copy), the newest `KEEP` per model. ``aliases.json`` next to them
remembers which version each alias named when last seen, so a server whose registry is down at
start serves what the alias named last rather than whatever is newest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from clfserve.registry.home import default_home
from clfserve.registry.store import ResolvedModel
from clfserve.registry.uri import ModelUri

log = logging.getLogger(__name__)
SERVED = "served"
KEEP = 3
"""Versions kept per model."""
ALIASES = "aliases.json"


def copies_root(name: str, home: Path | None = None) -> Path:
    return (home or default_home()) / SERVED / name


def keep_local_copy(
    resolved: ResolvedModel, alias: str | None = None, home: Path | None = None
) -> ResolvedModel:
    """A copy of ``resolved`` (a registry version) under the home; the same model, new path."""
    if resolved.name is None or resolved.version is None:
        raise ValueError(f"{resolved.path}: only registry versions get local copies")
    root = copies_root(resolved.name, home)
    target = root / resolved.version
    if not (target / "manifest.json").is_file():
        staging = root / f".{resolved.version}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(resolved.path, staging, copy_function=_link_or_copy)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    os.utime(target)  # newest first when pruning
    if alias is not None:
        _remember_alias(root, alias, resolved.version)
    _prune(root, keep={resolved.version})
    return ResolvedModel(target, resolved.name, resolved.version, resolved.uri)


def newest_local_copy(uri: ModelUri, home: Path | None = None) -> ResolvedModel | None:
    """The local copy to serve for ``uri`` while the registry is unreachable, if any."""
    root = copies_root(uri.name, home)
    version = uri.version
    if uri.alias is not None:
        version = _aliases(root).get(uri.alias)
    candidates = [root / version] if version else _by_age(root)
    for folder in candidates:
        if (folder / "manifest.json").is_file():
            return ResolvedModel(folder, uri.name, folder.name, str(uri))
    return None


def _link_or_copy(source: str, target: str) -> object:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def _by_age(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)


def _prune(root: Path, keep: set[str]) -> None:
    for folder in _by_age(root)[KEEP:]:
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed the local copy %s (keeping the newest %d)", folder, KEEP)


def _aliases(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / ALIASES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v["version"]) for k, v in data.items() if isinstance(v, dict)}


def _remember_alias(root: Path, alias: str, version: str) -> None:
    path = root / ALIASES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data[alias] = {"version": version, "seen_at": time.time()}
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    staging.replace(path)
