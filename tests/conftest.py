"""Shared fixtures: a tiny BERT trained on real data, its exported artefact, a temp MLflow.

`tiny_checkpoint` and `tiny_artefact` are session-scoped and built offline in seconds:
vocab = the real MiniLM tokenizer's, hidden 32, 2 layers, trained briefly on a slice of
Rotten Tomatoes through `clfserve.export.train`, exported through `clfserve.export.artefact`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_process import RedisProcess, running_redis

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_MAX_LENGTH = 64
"""Max tokens of the tiny artefact: short enough that truncation is easy to trigger."""
TINY_LABELS = ("negative", "positive")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def _tiny_base(folder: Path) -> Path:
    """An untrained tiny BERT with the real MiniLM tokenizer files."""
    import torch
    from transformers import BertConfig, BertModel

    from clfserve.export.paths import default_base_model

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    real = default_base_model()
    for name in _TOKENIZER_FILES:
        shutil.copy(real / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny BERT (no classification head) with MiniLM's tokenizer."""
    return _tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BertForSequenceClassification (negative/positive) briefly trained on real data."""
    from clfserve.export.config import TrainConfig
    from clfserve.export.train import train

    output = tmp_path_factory.mktemp("tiny-checkpoint")
    config = TrainConfig(
        output=output,
        base_model=tiny_base,
        max_train_samples=8192,
        max_eval_samples=256,
        learning_rate=2e-3,
        epochs=1,
        batch_size=32,
        balanced=False,
        max_length=TINY_MAX_LENGTH,
        threads=1,  # a tiny model gains nothing from more, and suffers most on a busy machine
        progress=False,
    )
    train(config)
    return output


@pytest.fixture(scope="session")
def tiny_artefact(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_checkpoint` exported: model.onnx, model.int8.onnx, model.fp16.onnx, tokenizer.json,
    manifest.json.

    max_length 64; validated on 256 validation texts (the parity check runs on 64).
    """
    from clfserve.export.artefact import export_artefact
    from clfserve.export.config import ExportConfig

    output = tmp_path_factory.mktemp("tiny-artefact") / "artefact"
    config = ExportConfig(
        checkpoint=tiny_checkpoint,
        output=output,
        max_length=TINY_MAX_LENGTH,
        max_eval_samples=256,
        min_agreement=0.0,
    )
    export_artefact(config)
    return output


@pytest.fixture(autouse=True)
def clfserve_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test has a clfserve home of its own, so nothing (a default feedback database, a
    model cache) lands in the working directory; fixtures and tests may point it elsewhere."""
    monkeypatch.setenv("CLFSERVE_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def mlflow_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow tracking URI (and CLFSERVE_HOME) under ``tmp_path``, set in env."""
    home = tmp_path / "clfserve-home"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow.db'}"
    monkeypatch.setenv("CLFSERVE_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A real redis-server on a free 127.0.0.1 port, stopped after the test."""
    with running_redis(tmp_path) as server:
        yield server
