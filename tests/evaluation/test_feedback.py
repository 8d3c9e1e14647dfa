"""The feedback store on real SQLite files: durable, ordered, shared between handles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clfserve.evaluation.feedback import (
    FeedbackStore,
    FeedbackStoreError,
    as_dataset,
    default_url,
)


def test_rows_survive_reopening_and_keep_their_order(tmp_path: Path) -> None:
    url = default_url(tmp_path / "home")
    store = FeedbackStore(url)
    first = store.add("great film", "positive")
    store.add("dull", "negative", prediction_id="p1", model_version="3", predicted="positive")
    store.close()

    reopened = FeedbackStore(url)
    rows = reopened.all()
    assert [(r.text, r.label) for r in rows] == [("great film", "positive"), ("dull", "negative")]
    assert rows[0].id == first.id
    assert (rows[1].prediction_id, rows[1].model_version, rows[1].predicted) == (
        "p1",
        "3",
        "positive",
    )
    assert rows[0].received_at.tzinfo is not None
    assert reopened.count() == 2


def test_latest_and_since_select_the_newest_rows(tmp_path: Path) -> None:
    store = FeedbackStore(default_url(tmp_path))
    for i in range(5):
        store.add(f"text {i}", "positive" if i % 2 else "negative")
    assert [r.text for r in store.latest(2)] == ["text 3", "text 4"]
    assert len(store.since(datetime.now(UTC) - timedelta(minutes=1))) == 5
    assert store.since(datetime.now(UTC) + timedelta(minutes=1)) == []
    data = as_dataset(store.latest(3))
    assert data.texts == ("text 2", "text 3", "text 4")
    assert data.labels == ("negative", "positive", "negative")


def test_two_handles_see_each_others_writes(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    writer, reader = FeedbackStore(url), FeedbackStore(url)
    writer.add("shared", "positive")
    assert [r.text for r in reader.all()] == ["shared"]


def test_an_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FeedbackStoreError, match="feedback database"):
        FeedbackStore(f"sqlite:///{blocker}/sub/feedback.db")
    with pytest.raises(FeedbackStoreError, match="feedback database"):
        FeedbackStore("nosuchdialect://x")
