"""Datasets: the default corpus, CSV/JSONL files and their errors, the fixed split."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from clfserve.evaluation.datasets import (
    Dataset,
    DatasetError,
    load_dataset,
    load_split,
    split,
)


def _write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    lines = [header] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(n: int) -> list[tuple[str, str]]:
    return [(f"text number {i}", ("a", "b", "c")[i % 3]) for i in range(n)]


@pytest.fixture(scope="module")
def rotten() -> Dataset:
    return load_dataset("rotten_tomatoes")


def test_rotten_tomatoes_keeps_reviews_only_and_drops_duplicates(rotten: Dataset) -> None:
    assert set(rotten.labels) == {"negative", "positive"}
    assert len(set(rotten.texts)) == len(rotten.texts)
    # 12,752 unique fresh/rotten snippets; 'plot' synopses are gone.
    assert len(rotten) == 12752
    assert Counter(rotten.labels)["positive"] == 7368


def test_split_is_deterministic_stratified_and_disjoint(rotten: Dataset) -> None:
    first, again = split(rotten, seed=0), split(rotten, seed=0)
    assert first == again
    parts = (first.train, first.validation, first.test)
    assert [len(p) for p in parts] == [10201, 1275, 1276]
    texts = [set(p.texts) for p in parts]
    assert len(texts[0] | texts[1] | texts[2]) == len(rotten)
    assert sum(len(t) for t in texts) == len(rotten)
    share = Counter(rotten.labels)["positive"] / len(rotten)
    for part in parts:
        assert Counter(part.labels)["positive"] / len(part) == pytest.approx(share, abs=0.005)


def test_split_depends_on_seed(rotten: Dataset) -> None:
    assert split(rotten, seed=0).validation.texts != split(rotten, seed=1).validation.texts


def test_load_split_matches_split(rotten: Dataset) -> None:
    assert load_split("rotten_tomatoes", "test").texts == split(rotten).test.texts
    with pytest.raises(DatasetError, match="unknown split"):
        load_split("rotten_tomatoes", "dev")


def test_csv_and_jsonl_give_the_same_dataset(tmp_path: Path) -> None:
    rows = _rows(30)
    csv_set = load_dataset(str(_write_csv(tmp_path / "d.csv", rows)))
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": y, "id": 1}) for t, y in rows))
    jsonl_set = load_dataset(str(jsonl))
    assert csv_set.texts == jsonl_set.texts
    assert csv_set.labels == jsonl_set.labels
    assert csv_set.classes == ("a", "b", "c")


def test_numeric_jsonl_labels_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(10)))
    assert load_dataset(str(path)).classes == ("0", "1")


def test_split_of_a_small_dataset_keeps_every_row(tmp_path: Path) -> None:
    data = load_dataset(str(_write_csv(tmp_path / "d.csv", _rows(31))))
    parts = split(data)
    assert len(parts.train) + len(parts.validation) + len(parts.test) == 31
    assert set(parts.train.labels) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cols.csv", "review,sentiment\ngood,pos\nbad,neg\n", "missing column.*text, label"),
        ("nolabel.csv", "text,stars\ngood,5\nbad,1\n", "missing column.*label"),
        ("empty.csv", "", "missing column"),
        ("header.csv", "text,label\n", "no rows with text"),
        ("one.csv", "text,label\ngood,pos\nfine,pos\n", "only one class"),
        ("blank.csv", "text,label\ngood,\nbad,neg\n", "empty or invalid 'label'"),
        ("cols.jsonl", '{"text": "good"}\n', "missing column.*label"),
        ("bad.jsonl", '{"text": "good", "label": "a"}\n{oops\n', r"bad\.jsonl:2: invalid JSON"),
        ("list.jsonl", '["good", "a"]\n', "expected a JSON object"),
        ("empty.jsonl", "\n\n", "no rows with text"),
        ("data.tsv", "text\tlabel\n", "unsupported file type"),
    ],
)
def test_malformed_files_raise_one_clear_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(path))


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me,a\nok,b\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(str(path))


def test_missing_file_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no such file.*rotten_tomatoes"):
        load_dataset(str(tmp_path / "nope.csv"))
