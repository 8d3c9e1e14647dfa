"""The feedback store on real SQLite files: durable, ordered, shared between handles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clfserve.evaluation.feedback import (
    FeedbackStore,
    FeedbackStoreError,
    FeedbackWindow,
    NamedAnswer,
    as_dataset,
    default_url,
    feedback_data,
)


def test_rows_survive_reopening_and_keep_their_order(tmp_path: Path) -> None:
    url = default_url(tmp_path / "home")
    store = FeedbackStore(url)
    first = store.add("great film", "positive")
    store.add("dull", "negative", NamedAnswer("p1", "3", "positive"))
    store.close()

    reopened = FeedbackStore(url)
    rows = reopened.all()
    assert [(r.text, r.label) for r in rows] == [("great film", "positive"), ("dull", "negative")]
    assert rows[0].id == first.id
    assert rows[0].answer is None
    assert rows[1].answer == NamedAnswer("p1", "3", "positive")
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


def test_a_window_selects_by_count_and_age_and_names_what_it_took(tmp_path: Path) -> None:
    store = FeedbackStore(default_url(tmp_path))
    for i in range(6):
        store.add(f"text {i}", "positive" if i % 2 else "negative")
    now = datetime.now(UTC)
    dataset, source = feedback_data(store, FeedbackWindow(last=4), now)
    assert dataset.texts == ("text 2", "text 3", "text 4", "text 5")
    assert (source.source, source.rows) == ("feedback", 4)
    assert str(source.window).startswith("latest 4: ids 3-6, ")
    everything, all_source = feedback_data(store, FeedbackWindow(last=None), now)
    assert len(everything) == 6
    assert str(all_source.window).startswith("all: ids 1-6")
    recent, _ = feedback_data(store, FeedbackWindow(last=2, days=1), now)
    assert recent.texts == ("text 4", "text 5")
    later = now + timedelta(days=2)  # every row is now older than a day
    old, old_source = feedback_data(store, FeedbackWindow(last=None, days=1), later)
    assert (len(old), old_source.rows, old_source.window) == (0, 0, "all of the last 1 days")
    store.add("text 6", "negative")
    _, moved = feedback_data(store, FeedbackWindow(last=4), now)
    assert moved.checksum != source.checksum
