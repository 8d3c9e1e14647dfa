"""Export: the artefact folder, its parity with PyTorch, and refusal of broken models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clfserve.evaluation.datasets import load_dataset, load_split
from clfserve.export.artefact import export_artefact
from clfserve.export.checkpoint import load_model
from clfserve.export.config import ExportConfig
from clfserve.export.errors import CheckpointError, ValidationFailed
from clfserve.export.validate import parity
from clfserve.runtime.classifier import Classifier
from clfserve.runtime.manifest import Manifest

TEXTS = [
    "a wonderful, moving film with a superb cast",
    "dull, lifeless and far too long",
    "ok",
    "the plot meanders " * 40,
]


def test_artefact_folder_holds_the_contract(tiny_artefact: Path) -> None:
    manifest = Manifest.read(tiny_artefact)
    assert sorted(p.name for p in tiny_artefact.iterdir()) == [
        "drift_reference.json",
        "manifest.json",
        "model.fp16.onnx",
        "model.int8.onnx",
        "model.onnx",
        "tokenizer.json",
        "validation.jsonl",
    ]
    assert manifest.validation_data is not None
    assert manifest.validation_data.file == "validation.jsonl"
    carried = load_dataset(str(tiny_artefact / "validation.jsonl"))
    scored = load_split("rotten_tomatoes", "validation").subset(range(256))
    assert (carried.texts, carried.labels) == (scored.texts, scored.labels)  # what export scored
    assert manifest.validation["variants"]["fp32"]["n_samples"] == 256
    assert manifest.labels == ("negative", "positive")
    assert manifest.max_length == 64
    assert manifest.inputs == ("input_ids", "attention_mask", "token_type_ids")
    assert set(manifest.variants) == {"fp32", "int8", "fp16"}
    assert manifest.variants["int8"].bytes < manifest.variants["fp32"].bytes
    assert len(manifest.version) == 12
    assert manifest.source["dataset"] == "rotten_tomatoes"
    assert manifest.validation["parity_max_abs_diff"] <= 1e-4
    assert manifest.validation["failures"] == []
    assert set(manifest.validation["variants"]) == {"fp32", "int8", "fp16"}
    # Scored as the CPU service runs them: dynamic int8 depends a little on the batch size.
    assert {v["batch_size"] for v in manifest.validation["variants"].values()} == {8}


def test_tokenizer_json_has_no_truncation_or_padding_baked_in(tiny_artefact: Path) -> None:
    raw = json.loads((tiny_artefact / "tokenizer.json").read_text())
    assert raw["truncation"] is None
    assert raw["padding"] is None


def test_fp32_onnx_matches_pytorch(tiny_checkpoint: Path, tiny_artefact: Path) -> None:
    model = load_model(tiny_checkpoint, attn_implementation="eager")
    diff = parity(model, tiny_artefact, Manifest.read(tiny_artefact), TEXTS)
    assert diff <= 1e-4


@pytest.mark.parametrize("variant", ["fp32", "int8", "fp16"])
def test_runtime_loads_every_variant_and_truncates(tiny_artefact: Path, variant: str) -> None:
    classifier = Classifier.load(tiny_artefact, device="cpu", variant=variant)
    predictions = classifier.predict(TEXTS)
    assert [p.truncated for p in predictions] == [False, False, False, True]
    assert predictions[-1].n_tokens == 64
    assert all(p.label in ("negative", "positive") for p in predictions)


def test_tiny_model_learned_something(tiny_artefact: Path) -> None:
    """Guards the fixture itself: a majority-class model would make other tests vacuous."""
    classifier = Classifier.load(tiny_artefact, device="cpu")
    labels = {p.label for p in classifier.predict(list(load_split().texts[:200]))}
    assert labels == {"negative", "positive"}


def _corrupt_weights(source: Path, target: Path) -> Path:
    """A copy of ``source`` whose classifier head outputs NaN."""
    import torch

    shutil.copytree(source, target)
    model = load_model(target)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    model.save_pretrained(target, safe_serialization=True)
    return target


def test_nan_weights_fail_validation_and_leave_nothing(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    broken = _corrupt_weights(tiny_checkpoint, tmp_path / "broken")
    output = tmp_path / "artefact"
    config = ExportConfig(checkpoint=broken, output=output, max_eval_samples=64)
    with pytest.raises(ValidationFailed, match=r"max \|logit diff\| inf > 0\.0001"):
        export_artefact(config)
    assert not output.exists()
    assert list(tmp_path.glob(".*partial")) == []


def test_quality_gate_reports_the_numbers(tiny_checkpoint: Path, tmp_path: Path) -> None:
    config = ExportConfig(
        checkpoint=tiny_checkpoint,
        output=tmp_path / "artefact",
        max_eval_samples=64,
        min_accuracy=0.99,
    )
    with pytest.raises(ValidationFailed, match=r"fp32 accuracy 0\.\d{4} < 0\.99"):
        export_artefact(config)
    assert not (tmp_path / "artefact").exists()


def test_truncated_weights_file_is_a_checkpoint_error(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    broken = Path(shutil.copytree(tiny_checkpoint, tmp_path / "broken"))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot load the model"):
        export_artefact(ExportConfig(checkpoint=broken, output=tmp_path / "out"))


@pytest.mark.parametrize("remove", ["config.json", "model.safetensors", "tokenizer.json"])
def test_incomplete_checkpoint_names_what_is_missing(
    tiny_checkpoint: Path, tmp_path: Path, remove: str
) -> None:
    broken = Path(shutil.copytree(tiny_checkpoint, tmp_path / "broken"))
    (broken / remove).unlink()
    with pytest.raises(CheckpointError, match=r"broken: .*(config\.json|weights|tokenizer)"):
        export_artefact(ExportConfig(checkpoint=broken, output=tmp_path / "out"))


def test_refuses_to_overwrite_a_folder_that_is_not_an_artefact(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    output = tmp_path / "precious"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    config = ExportConfig(checkpoint=tiny_checkpoint, output=output, max_eval_samples=32)
    with pytest.raises(Exception, match="not an artefact folder"):
        export_artefact(config)
    assert (output / "notes.txt").read_text() == "keep me"
