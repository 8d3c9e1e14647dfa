"""A clfserve home that was moved or copied keeps working.

A sqlite registry stores absolute artefact locations (``file:///old/home/mlartifacts/...``), so
after ``mv .clfserve /elsewhere`` MLflow would read from, and write new runs into, the old
folder. When the registry database lives in a home whose recorded artefact store is another
folder's ``mlartifacts``, and this home has its own ``mlartifacts``, the recorded locations are
rewritten to point into this home (a WARNING says so). A home whose artefacts did not come along
is reported with what to do.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from clfserve.registry.errors import RegistryError
from clfserve.registry.home import artefact_store, sqlite_home

log = logging.getLogger(__name__)

STORE = "mlartifacts"
COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
"""Where MLflow 3's sqlite schema records artefact locations."""
_checked: set[str] = set()


def adopt_moved_home(uri: str) -> str | None:
    """Point a moved home's registry at its own artefacts; the old store, or None if none moved.

    Checked once per tracking URI and process; a no-op for tracking servers.
    """
    home, store = sqlite_home(uri), artefact_store(uri)
    if home is None or store is None or uri in _checked:
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    if not database.is_file():
        _checked.add(uri)
        return None
    with sqlite3.connect(database) as db:
        old = _recorded_store(db, store)
        if old is None:
            _checked.add(uri)
            return None
        if not store.is_dir():
            raise RegistryError(
                f"the registry {database} keeps its artefacts in {old}, which is not in this "
                f"home ({home}) and {store} does not exist: move or copy the whole home folder "
                f"(mlflow.db and {STORE}/ together), or point CLFSERVE_HOME at {Path(old).parent}"
            )
        changed = _rewrite(db, old, str(store))
    _checked.add(uri)
    log.warning(
        "the clfserve home moved: %s recorded artefacts in %s; %d locations now point into %s",
        database, old, changed, store,
    )  # fmt: skip
    return old


def _recorded_store(db: sqlite3.Connection, store: Path) -> str | None:
    """The ``.../mlartifacts`` folder the registry's experiments name, if it is not ``store``."""
    try:
        rows = db.execute("SELECT artifact_location FROM experiments").fetchall()
    except sqlite3.Error:
        return None  # not an MLflow database (yet): MLflow creates its schema itself
    for (location,) in rows:
        path = _path_of(str(location or ""))
        marker = f"/{STORE}"
        if marker not in path:
            continue
        old = path[: path.index(marker) + len(marker)]
        if Path(old) != store:
            return old
    return None


def _rewrite(db: sqlite3.Connection, old: str, new: str) -> int:
    changed = 0
    for table, column in COLUMNS:
        for prefix_old, prefix_new in ((f"file://{old}", f"file://{new}"), (old, new)):
            try:
                cursor = db.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE substr({column}, 1, ?) = ?",
                    (prefix_new, len(prefix_old) + 1, len(prefix_old), prefix_old),
                )
            except sqlite3.OperationalError:
                break  # an older schema without this table
            changed += cursor.rowcount
    return changed


def _path_of(location: str) -> str:
    return location.removeprefix("file://")
