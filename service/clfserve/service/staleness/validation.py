"""The validation data of one evaluation, re-read every time, with a checksum of what was read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from clfserve.runtime.data import (
    DEFAULT_DATASET,
    Dataset,
    DatasetError,
    load_dataset,
    load_split,
    rotten_tomatoes_path,
)


@dataclass(frozen=True)
class DataSource:
    """Where an evaluation's texts came from: the spec, a sha256 of its bytes, its size."""

    spec: str
    checksum: str
    n_rows: int


def load_validation(spec: str) -> tuple[Dataset, DataSource]:
    """``rotten_tomatoes`` -> its fixed validation split; a path -> the whole file.

    Raises `DatasetError` (missing, unreadable or malformed data) with the reason.
    """
    if spec == DEFAULT_DATASET:
        checksum = _sha256(rotten_tomatoes_path()) + ":validation"
        dataset = load_split(DEFAULT_DATASET, "validation")
        return dataset, DataSource(f"{DEFAULT_DATASET}:validation", checksum, len(dataset))
    path = Path(spec)
    try:
        checksum = _sha256(path)
    except FileNotFoundError:
        raise DatasetError(f"{spec}: no such file") from None
    except OSError as exc:
        raise DatasetError(f"{spec}: unreadable ({exc.strerror or exc})") from exc
    dataset = load_dataset(spec)
    return dataset, DataSource(spec, checksum, len(dataset))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
