"""Production labels: a durable store of ``(text, label)`` feedback that clients post.

The store is any SQLAlchemy database URL (``sqlite:///...`` by default, PostgreSQL for replicas
that share one). Each row also keeps what the service answered when the client named that answer
(a `NamedAnswer`: its ``prediction_id``, the model version and the predicted label), so feedback
can be scored per version. Rows are only ever appended; nothing accepted is rewritten or dropped.

    ClfserveError
    └── FeedbackStoreError    the database cannot be opened, read or written
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from clfserve.evaluation.datasets import Dataset
from clfserve.evaluation.sources import DataSource
from clfserve.runtime.errors import ClfserveError

FEEDBACK_FILE = "feedback.db"

_metadata = sa.MetaData()
_table = sa.Table(
    "feedback",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("prediction_id", sa.String(200), nullable=True),
    sa.Column("model_version", sa.String(200), nullable=True),
    sa.Column("predicted", sa.String(200), nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


class FeedbackStoreError(ClfserveError):
    """The feedback database cannot be used; the message names it (without a password)."""


@dataclass(frozen=True)
class NamedAnswer:
    """An answer of the service that a label corrects or confirms, as its id names it."""

    prediction_id: str
    """The answer's id, as the service returned it."""
    model_version: str
    """The registered version that gave that answer."""
    predicted: str
    """The label that answer gave."""


@dataclass(frozen=True)
class Feedback:
    """One stored label."""

    id: int
    """Increasing in the order rows were stored (their order everywhere)."""
    text: str
    label: str
    """The label the client says is right."""
    received_at: datetime
    """When it was stored, in UTC."""
    answer: NamedAnswer | None = None
    """The answer it corrects or confirms; None when it named none."""


def default_url(home: Path) -> str:
    """SQLite under the clfserve home: ``sqlite:///<home>/feedback.db``."""
    return f"sqlite:///{home / FEEDBACK_FILE}"


def as_dataset(items: Sequence[Feedback], name: str = "feedback") -> Dataset:
    """The feedback as a labelled dataset, in the order given."""
    return Dataset(tuple(f.text for f in items), tuple(f.label for f in items), name=name)


@dataclass(frozen=True)
class FeedbackWindow:
    """Which stored labels an evaluation uses: the newest ``last`` rows, of those received in
    the last ``days`` days (None: no such bound; both None: every row)."""

    last: int | None = 500
    days: float | None = None

    def describe(self) -> str:
        parts = [f"latest {self.last}" if self.last is not None else "all"]
        if self.days is not None:
            parts.append(f"of the last {self.days:g} days")
        return " ".join(parts)

    def rows(self, store: FeedbackStore, now: datetime | None = None) -> list[Feedback]:
        if self.days is None:
            return store.all() if self.last is None else store.latest(self.last)
        rows = store.since((now or datetime.now(UTC)) - timedelta(days=self.days))
        return rows if self.last is None else rows[-self.last :]


def feedback_data(
    store: FeedbackStore, window: FeedbackWindow, now: datetime | None = None
) -> tuple[Dataset, DataSource]:
    """The labels ``window`` selects as a dataset, and where they came from: source
    ``feedback``, a sha256 of the rows (ids, texts, labels), the row count and the window with
    the ids and times it spans."""
    items = window.rows(store, now)
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.id}\x1f{item.text}\x1f{item.label}\x1e".encode())
    span = window.describe()
    if items:
        first, final = items[0], items[-1]
        span += (
            f": ids {first.id}-{final.id}, {first.received_at.isoformat(timespec='seconds')} "
            f"to {final.received_at.isoformat(timespec='seconds')}"
        )
    dataset = as_dataset(items)
    return dataset, DataSource("feedback", digest.hexdigest(), len(items), span)


class FeedbackStore:
    """Append and read feedback rows; safe to share between threads and processes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._shown = sa.make_url(url).render_as_string(hide_password=True)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        try:
            self._engine = sa.create_engine(url, **options)
            if url.startswith("sqlite"):
                sa.event.listen(self._engine, "connect", _sqlite_pragmas)
                _make_parent(url)
            with self._failing("create the feedback table in"):
                _metadata.create_all(self._engine)
        except (SQLAlchemyError, ValueError, ImportError, OSError) as exc:
            raise FeedbackStoreError(f"feedback database {self._shown}: {exc}") from exc

    def add(self, text: str, label: str, answer: NamedAnswer | None = None) -> Feedback:
        """Store one label durably (committed before this returns) and give the stored row."""
        now = datetime.now(UTC)
        values = {"text": text, "label": label, "received_at": now}
        if answer is not None:
            values |= asdict(answer)
        with self._failing("write to"), self._engine.begin() as conn:
            key = conn.execute(_table.insert().values(**values)).inserted_primary_key
        assert key is not None
        return Feedback(int(key[0]), text, label, now, answer)

    def latest(self, limit: int) -> list[Feedback]:
        """The newest ``limit`` rows, oldest first."""
        query = _table.select().order_by(_table.c.id.desc()).limit(limit)
        return list(reversed(self._rows(query)))

    def since(self, when: datetime) -> list[Feedback]:
        """Every row received at or after ``when``, oldest first."""
        query = _table.select().where(_table.c.received_at >= when).order_by(_table.c.id)
        return self._rows(query)

    def all(self) -> list[Feedback]:
        """Every row, oldest first."""
        return self._rows(_table.select().order_by(_table.c.id))

    def count(self) -> int:
        with self._failing("read"), self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_table)).scalar_one())

    def close(self) -> None:
        self._engine.dispose()

    def _rows(self, query: sa.Select[Any]) -> list[Feedback]:
        with self._failing("read"), self._engine.connect() as conn:
            return [_feedback(row._mapping) for row in conn.execute(query)]

    @contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise FeedbackStoreError(
                f"cannot {action} the feedback database {self._shown}: {reason}"
            ) from exc


def _feedback(row: Any) -> Feedback:
    received = row["received_at"]
    if received.tzinfo is None:  # SQLite keeps no zone; every row is written in UTC
        received = received.replace(tzinfo=UTC)
    answer = None
    if row["prediction_id"] is not None:  # the three columns are written together
        answer = NamedAnswer(row["prediction_id"], row["model_version"], row["predicted"])
    return Feedback(row["id"], row["text"], row["label"], received, answer)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the monitor, retrain) run while a worker writes; waits ride the timeout.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _make_parent(url: str) -> None:
    database = sa.make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
