"""Which labelled data a model is evaluated on, read afresh each time, with a checksum of it.

``spec`` is one of:

- None or ``model``: the model's own validation split, which export writes into the artefact
  (``validation.jsonl``, checksummed in the manifest). Artefacts exported before that file
  existed fall back to the dataset their manifest records, split as training split it, and
  fail with a clear reason when that dataset cannot be read here: never a silent default.
- ``rotten_tomatoes``: the built-in dataset's split (seed 0).
- a path to a CSV/JSONL file with ``text`` and ``label``: the whole file, so operators can keep
  it filled with freshly labelled production samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clfserve.evaluation.datasets import (
    DEFAULT_DATASET,
    Dataset,
    DatasetError,
    load_dataset,
    load_split,
    rotten_tomatoes_path,
)
from clfserve.runtime.errors import ModelLoadError
from clfserve.runtime.manifest import Manifest, sha256_file, verify_file

MODEL_DATA = "model"
"""The spec naming the model's own validation data (also what an unset spec means)."""


@dataclass(frozen=True)
class DataSource:
    """Where an evaluation's texts came from: a readable name, a sha256 of them, the row count,
    and for data that grows (production labels) which part of it was used."""

    source: str
    checksum: str
    rows: int
    window: str | None = None


def evaluation_data(
    spec: str | None, artefact: Path, split: str = "validation"
) -> tuple[Dataset, DataSource]:
    """The data ``spec`` names for the model in folder ``artefact`` (see the module docstring).

    Raises `DatasetError` with the reason: missing, unreadable or malformed data.
    """
    if spec is None or spec == MODEL_DATA:
        return _model_data(artefact, split)
    if spec == DEFAULT_DATASET:
        return _builtin(split, seed=0)
    path = Path(spec)
    checksum = _sha256_of(path)
    dataset = load_dataset(spec)
    return dataset, DataSource(spec, checksum, len(dataset))


def _model_data(artefact: Path, split: str) -> tuple[Dataset, DataSource]:
    try:
        manifest = Manifest.read(artefact)
    except ModelLoadError as exc:
        raise DatasetError(f"cannot read the model's own validation data: {exc}") from exc
    entry = manifest.validation_data
    if entry is not None and split == "validation":
        try:
            path = verify_file(artefact, entry)
        except ModelLoadError as exc:
            raise DatasetError(str(exc)) from exc
        dataset = load_dataset(str(path))
        named = Dataset(dataset.texts, dataset.labels, name=f"{MODEL_DATA}:{entry.file}")
        return named, DataSource(named.name, entry.sha256, len(named))
    recorded = str(manifest.source.get("dataset") or "")
    seed = int(manifest.source.get("split_seed", 0))
    if not recorded:
        raise DatasetError(
            f"{artefact}: the model carries no {split} data and its manifest records no dataset; "
            "name labelled data for it (a CSV/JSONL with text,label)"
        )
    if recorded == DEFAULT_DATASET:
        return _builtin(split, seed)
    try:
        checksum = _sha256_of(Path(recorded))
        dataset = load_split(recorded, split, seed=seed)
    except DatasetError as exc:
        reason = (
            "the model carries no validation data of its own (exported before artefacts held "
            "validation.jsonl)"
            if entry is None
            else f"the model's own data covers the validation split, not {split!r}"
        )
        raise DatasetError(
            f"{reason}, and the dataset its manifest records cannot be read here ({exc}); "
            "name labelled data for this model (a CSV/JSONL with text,label)"
        ) from exc
    return dataset, DataSource(f"{recorded}:{split}", f"{checksum}:{split}:{seed}", len(dataset))


def _builtin(split: str, seed: int) -> tuple[Dataset, DataSource]:
    checksum = f"{_sha256_of(rotten_tomatoes_path())}:{split}:{seed}"
    dataset = load_split(DEFAULT_DATASET, split, seed=seed)
    return dataset, DataSource(f"{DEFAULT_DATASET}:{split}", checksum, len(dataset))


def _sha256_of(path: Path) -> str:
    try:
        return sha256_file(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: unreadable ({exc.strerror or exc})") from exc
