"""The clfserve home: where the registry database, its artefacts and local model copies live.

The home is ``$CLFSERVE_HOME`` or ``./.clfserve``. Tracking defaults to
``sqlite:///<home>/mlflow.db`` with artefacts under ``<home>/mlartifacts``;
``$MLFLOW_TRACKING_URI`` points elsewhere (a tracking server keeps its own artefact store).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CLFSERVE_HOME"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
SQLITE = "sqlite:///"


def default_home() -> Path:
    """``$CLFSERVE_HOME`` or ``./.clfserve``: registry database, artefacts, checkpoints."""
    return Path(os.environ.get(HOME_ENV) or ".clfserve")


def tracking_uri(home: Path | None = None) -> str:
    """``$MLFLOW_TRACKING_URI``, else a sqlite database in the clfserve home."""
    env = os.environ.get(TRACKING_ENV)
    if env:
        return env
    folder = (home or default_home()).resolve()
    return f"{SQLITE}{folder / 'mlflow.db'}"


def sqlite_home(uri: str) -> Path | None:
    """The folder of a ``sqlite:///`` tracking database (its home), None for other stores."""
    if not uri.startswith(SQLITE):
        return None
    return Path(uri.removeprefix(SQLITE)).resolve().parent


def artefact_store(uri: str) -> Path | None:
    """Where experiments of a sqlite registry keep their artefacts: ``<home>/mlartifacts``.

    None for a tracking server, which decides for itself.
    """
    home = sqlite_home(uri)
    return None if home is None else home / "mlartifacts"


def models_cache(home: Path | None = None) -> Path:
    """Local copies of registry models downloaded from a remote artefact store."""
    return (home or default_home()) / "cache"
