"""Production feedback as retrain data: usable rows, and a deterministic held-out slice.

Rows whose label the model does not have are dropped, and a text labelled more than once
counts once, with its newest label. A row is held out when a hash of its text falls below
``holdout``: the same texts are held out in every run (however many rows arrive later), and a
text never sits on both sides.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clfserve.evaluation.datasets import Dataset
from clfserve.evaluation.feedback import Feedback, FeedbackStore
from clfserve.export.errors import NotEnoughFeedback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackSplit:
    """The usable feedback, split for training and scoring, and what was left out."""

    train: Dataset
    holdout: Dataset
    dropped: Mapping[str, int]
    """Rows left out, by reason: ``foreign_label`` (a label the model does not have),
    ``duplicate`` (a newer row labels the same text)."""

    @property
    def usable(self) -> int:
        return len(self.train) + len(self.holdout)

    @property
    def stored(self) -> int:
        return self.usable + sum(self.dropped.values())

    def describe(self) -> str:
        return (
            f"{self.stored} stored, {self.usable} usable ({len(self.train)} to train on, "
            f"{len(self.holdout)} held out; dropped: {self.dropped['foreign_label']} with labels "
            f"the model does not have, {self.dropped['duplicate']} older labels of a text "
            "labelled again)"
        )


def held_out(text: str, share: float) -> bool:
    """Whether ``text`` belongs to the held-out ``share`` (0..1) of all texts."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def split_feedback(rows: Sequence[Feedback], labels: Sequence[str], share: float) -> FeedbackSplit:
    """Usable rows of ``rows`` (oldest first) for a model with ``labels``, split by text hash."""
    known = set(labels)
    newest: dict[str, str] = {}
    foreign = 0
    for row in rows:
        if row.label not in known:
            foreign += 1
            continue
        newest.pop(row.text, None)  # re-insert: order follows each text's newest label
        newest[row.text] = row.label
    duplicates = len(rows) - foreign - len(newest)
    train: list[tuple[str, str]] = []
    holdout: list[tuple[str, str]] = []
    for text, label in newest.items():
        (holdout if held_out(text, share) else train).append((text, label))
    return FeedbackSplit(
        _dataset(train, "feedback:train"),
        _dataset(holdout, "feedback:holdout"),
        {"foreign_label": foreign, "duplicate": duplicates},
    )


def read_feedback(url: str, labels: Sequence[str], share: float) -> FeedbackSplit:
    """Every row of the store at ``url``, split (`split_feedback`)."""
    store = FeedbackStore(url)
    try:
        rows = store.all()
    finally:
        store.close()
    split = split_feedback(rows, labels, share)
    log.info("feedback in %s: %s", store_name(url), split.describe())
    return split


def require_enough(split: FeedbackSplit, minimum: int, url: str) -> None:
    """`NotEnoughFeedback` unless there are ``minimum`` usable rows and both sides have some."""
    if split.usable >= minimum and len(split.train) and len(split.holdout):
        return
    need = (
        f"at least {minimum} usable rows (--min-feedback)"
        if split.usable < minimum
        else "rows on both sides of the held-out split (more feedback, or another --holdout)"
    )
    raise NotEnoughFeedback(
        f"not enough feedback to retrain on: {split.describe()} in {store_name(url)}; "
        f"need {need}. Post labels to POST /feedback, or lower --min-feedback"
    )


def store_name(url: str) -> str:
    """The URL without its password, for logs and MLflow."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: FeedbackStore will say why
        return "<unparsable URL>"


def repeated(data: Dataset, times: int) -> Dataset:
    """``data`` repeated ``times`` times (oversampling a small set of rows)."""
    return Dataset(data.texts * times, data.labels * times, data.name)


def _dataset(pairs: list[tuple[str, str]], name: str) -> Dataset:
    return Dataset(tuple(t for t, _ in pairs), tuple(label for _, label in pairs), name)
