"""Training: labels from the data become the checkpoint's id2label; a training record is saved."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from clfserve.evaluation.datasets import DatasetError
from clfserve.export.checkpoint import TRAINING_FILE, labels_of, load_model
from clfserve.export.config import TrainConfig
from clfserve.export.errors import CheckpointError
from clfserve.export.train import native_bf16, train, use_bf16


@pytest.fixture
def three_class_csv(tmp_path: Path) -> Path:
    words = {"sport": "match goal team", "tech": "chip code laptop", "food": "bread soup salt"}
    lines = ["text,label"]
    for i in range(60):
        label = ("sport", "tech", "food")[i % 3]
        lines.append(f"{words[label]} {i},{label}")
    path = tmp_path / "topics.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_trains_on_a_csv_and_records_labels(
    tiny_base: Path, three_class_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "ckpt"
    config = TrainConfig(
        output=output,
        dataset=str(three_class_csv),
        base_model=tiny_base,
        max_length=16,
        epochs=1,
        batch_size=32,
        threads=1,
        precision="fp32",
        progress=False,
    )
    result = train(config)
    assert result.steps == 2  # 48 training texts, batch 32, one epoch
    assert result.n_train == 48
    assert labels_of(load_model(output)) == ("food", "sport", "tech")
    record = json.loads((output / TRAINING_FILE).read_text())
    assert record["recipe"]["dataset"] == str(three_class_csv)
    assert record["validation"]["n_samples"] == 6
    assert record["precision"] == "fp32"
    assert (output / "tokenizer.json").is_file()


def test_bad_dataset_fails_before_loading_the_model(tiny_base: Path, tmp_path: Path) -> None:
    missing = tmp_path / "reviews.csv"
    missing.write_text("review,stars\ngood,5\n")
    config = TrainConfig(output=tmp_path / "out", dataset=str(missing), base_model=tiny_base)
    with pytest.raises(DatasetError, match="missing column"):
        train(config)
    assert not (tmp_path / "out").exists()


def test_missing_base_model_is_a_checkpoint_error(tmp_path: Path) -> None:
    config = TrainConfig(output=tmp_path / "out", base_model=tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        train(config)


def test_balanced_weights_equalise_classes() -> None:
    from clfserve.export.train import _class_weights

    weights = _class_weights([0, 0, 0, 1], 2).tolist()
    assert weights == pytest.approx([4 / 6, 2.0])
    assert 3 * weights[0] == pytest.approx(1 * weights[1])


def test_dataset_too_small_to_split_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    data = tmp_path / "two.csv"
    data.write_text('text,label\n"great fun",positive\n"awful",negative\n')
    config = TrainConfig(dataset=str(data), base_model=tiny_base, output=tmp_path / "out")
    with pytest.raises(DatasetError, match="too small to split"):
        train(config)
    assert not (tmp_path / "out").exists()


def test_bf16_training_learns_and_says_so(
    tiny_base: Path, three_class_csv: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        output=tmp_path / "ckpt",
        dataset=str(three_class_csv),
        base_model=tiny_base,
        max_length=16,
        epochs=8,
        batch_size=8,
        learning_rate=1e-3,
        threads=1,
        precision="bf16",
        progress=False,
    )
    result = train(config)
    assert result.precision == "bf16"
    assert json.loads((config.output / TRAINING_FILE).read_text())["precision"] == "bf16"
    # The saved weights stay fp32 and the words of each topic are easy to tell apart.
    bf16_model = load_model(config.output)
    assert bf16_model.dtype == torch.float32
    assert result.metrics["accuracy"] > 0.5
    # The same seeded run in fp32 ends elsewhere: the forward passes really ran in bf16.
    fp32 = replace(config, output=tmp_path / "fp32", precision="fp32")
    train(fp32)
    fp32_model = load_model(fp32.output)
    assert not torch.equal(bf16_model.classifier.weight, fp32_model.classifier.weight)


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("fpu sse avx2 amx_bf16 amx_tile", True),
        ("fpu sse avx2 avx512f avx512bw", False),
    ],
)
def test_native_bf16_reads_the_cpu_flags(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert native_bf16(cpuinfo) is native
    assert native_bf16(tmp_path / "absent") is False


def test_precision_choice() -> None:
    assert use_bf16("fp32") is False
    assert use_bf16("bf16") is True
    assert use_bf16("auto") is native_bf16()
    with pytest.raises(ValueError, match="precision"):
        use_bf16("fp16")
