"""The artefact carries its drift reference: how each variant answered the validation split,
binned as the service bins live answers; listed and checksummed in the manifest; optional for
artefacts exported before it existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clfserve.evaluation.datasets import load_dataset
from clfserve.evaluation.drift import REFERENCE_FILE, Binning, profile, read_reference
from clfserve.runtime import ModelLoadError
from clfserve.runtime.classifier import Classifier
from clfserve.runtime.manifest import MANIFEST_FILE, Manifest, sha256_file


def test_the_manifest_lists_the_reference_with_its_checksum(tiny_artefact: Path) -> None:
    manifest = Manifest.read(tiny_artefact)
    entry = manifest.drift_reference
    assert entry is not None
    assert entry.file == REFERENCE_FILE
    assert entry.sha256 == sha256_file(tiny_artefact / REFERENCE_FILE)
    assert entry in manifest.files


def test_the_reference_is_how_each_variant_answered_the_validation_split(
    tiny_artefact: Path,
) -> None:
    reference = read_reference(tiny_artefact)
    assert reference is not None
    assert set(reference.profiles) == {"fp32", "int8", "fp16"}
    assert {p.n for p in reference.profiles.values()} == {256}
    manifest = Manifest.read(tiny_artefact)
    assert reference.binning == Binning.of(manifest.labels, manifest.max_length)
    texts = load_dataset(str(tiny_artefact / "validation.jsonl")).texts
    fp32 = Classifier.load(tiny_artefact, device="cpu", variant="fp32", warmup=False)
    assert reference.profiles["fp32"] == profile(fp32.predict(texts), reference.binning)
    # Token lengths and truncation do not depend on the variant.
    int8 = reference.profiles["int8"]
    for signal in ("tokens", "truncated"):
        assert int8.counts[signal] == reference.profiles["fp32"].counts[signal]


def test_an_older_artefact_without_a_reference_still_loads(
    tiny_artefact: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(tiny_artefact, old)
    raw = json.loads((old / MANIFEST_FILE).read_text())
    del raw["drift_reference"]
    (old / MANIFEST_FILE).write_text(json.dumps(raw))
    (old / REFERENCE_FILE).unlink()
    assert Manifest.read(old).drift_reference is None
    assert read_reference(old) is None
    assert Classifier.load(old, device="cpu", warmup=False).predict(["fine"])[0].label


def test_a_tampered_reference_does_not_load(tiny_artefact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_artefact, copy)
    path = copy / REFERENCE_FILE
    path.write_text(path.read_text().replace('"n": 256', '"n": 255', 1))
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        Classifier.load(copy, device="cpu", warmup=False)
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        read_reference(copy)
