"""The real `clfserve` executable: exit codes, one-line errors, JSON output, release skip."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from clfserve.runtime.manifest import Manifest

pytestmark = pytest.mark.e2e

CLFSERVE = str(Path(sys.executable).with_name("clfserve"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [CLFSERVE, *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("clfserve: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0]


def test_help_lists_the_pipeline_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("train", "export", "evaluate", "release"):
        assert command in result.stdout
    assert "(default: 0.0001)" in run("export", "--help").stdout


def test_train_with_a_dataset_missing_columns(tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    data.write_text("review,stars\ngood,5\nbad,1\n")
    result = run("train", "--dataset", str(data), "--output", str(tmp_path / "out"))
    assert_one_line_error(result, "reviews.csv", "missing column(s) text, label")


def test_export_of_a_missing_checkpoint(tmp_path: Path) -> None:
    result = run("export", "--model", str(tmp_path / "nope"), "--no-register")
    assert_one_line_error(result, "no such checkpoint folder")


def test_evaluate_an_artefact_folder_as_json(tiny_artefact: Path) -> None:
    result = run("evaluate", "--model", str(tiny_artefact), "--split", "test", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_samples"] == 1276
    assert report["variant"] == "int8"
    assert report["labels"] == ["negative", "positive"]
    assert sum(map(sum, report["confusion"])) == 1276
    assert 0.5 < report["accuracy"] <= 1.0


def test_evaluate_batch_size_option(tiny_artefact: Path) -> None:
    common = ("evaluate", "--model", str(tiny_artefact), "--variant", "fp32", "--json")
    default, batch_3 = run(*common), run(*common, "--batch-size", "3")
    assert default.returncode == batch_3.returncode == 0, batch_3.stderr
    default_report, batch_3_report = json.loads(default.stdout), json.loads(batch_3.stdout)
    assert (default_report["batch_size"], batch_3_report["batch_size"]) == (8, 3)
    # fp32 answers do not depend on what a text is batched with.
    assert default_report["accuracy"] == batch_3_report["accuracy"]
    refused = run(*common, "--batch-size", "0")
    assert refused.returncode == 2
    assert "'0' is not a positive integer" in refused.stderr


def test_export_refuses_a_smoothing_strength_out_of_range(tmp_path: Path) -> None:
    result = run("export", "--model", str(tmp_path), "--smooth-alpha", "1.5", "--no-register")
    assert result.returncode == 2
    assert "'1.5' is not a number from 0 to 1" in result.stderr


def test_evaluate_with_an_unreachable_tracking_server() -> None:
    result = run(
        "evaluate",
        "--model",
        "models:/clfserve-sentiment@champion",
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    assert_one_line_error(result, "unreachable", "MLFLOW_TRACKING_URI")


def test_broken_model_exits_non_zero_and_registers_nothing(
    tiny_checkpoint: Path, tmp_path: Path, mlflow_tracking: str
) -> None:
    import torch

    from clfserve.export.checkpoint import load_model
    from clfserve.registry import has_alias

    broken = tmp_path / "broken"
    model = load_model(tiny_checkpoint)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    model.save_pretrained(broken)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "training.json"):
        (broken / name).write_bytes((tiny_checkpoint / name).read_bytes())

    result = run("export", "--model", str(broken), "--output", str(tmp_path / "artefact"))
    assert_one_line_error(result, "validation failed, nothing registered", "logit diff")
    assert not (tmp_path / "artefact").exists()
    assert not has_alias("clfserve-sentiment", "champion")


def test_export_registers_and_release_if_missing_then_skips(
    tiny_checkpoint: Path, tmp_path: Path, mlflow_tracking: str
) -> None:
    output = tmp_path / "artefact"
    exported = run("export", "--model", str(tiny_checkpoint), "--output", str(output))
    assert exported.returncode == 0, exported.stderr
    assert "registered models:/clfserve-sentiment/1" in exported.stdout
    assert "@champion -> version 1 (the first)" in exported.stdout
    assert re.search(r"^ fp16: accuracy 0\.\d{4}", exported.stdout, re.MULTILINE)
    assert "fp16/fp32 label agreement: " in exported.stdout
    client = MlflowClient(mlflow_tracking)
    run_data = client.get_run(client.get_model_version("clfserve-sentiment", "1").run_id).data
    assert run_data.params["fp16_graph"].startswith("Attention=2,")
    fused = Manifest.read(output).int8_graph["chosen"] == "fused"  # no reshapes left to fix
    expected = f"first_token_only,static_reshapes={0 if fused else 8}"
    assert run_data.params["int8_trim"] == expected
    units = run_data.params["int8_units"]  # what fused's rewrites did, or why not
    if fused:
        assert units.startswith("pass_through")
        assert ",spikes" in units
    else:
        assert units == "none"
    assert run_data.metrics["fp16_bytes"] < run_data.metrics["fp32_bytes"]
    assert 0.0 <= run_data.metrics["agreement_fp16_fp32"] <= 1.0
    assert "val_fp16_macro_f1" in run_data.metrics

    skipped = run("release", "--if-missing")
    assert skipped.returncode == 0, skipped.stderr
    assert "exists; nothing to do" in skipped.stdout

    evaluated = run("evaluate", "--json")  # default: models:/clfserve-sentiment@champion
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["registry_version"] == "1"


def test_building_the_parser_imports_nothing_heavy() -> None:
    code = (
        "import sys; from clfserve.cli import build_parser; build_parser();"
        "heavy = {'torch', 'transformers', 'mlflow', 'optimum'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
