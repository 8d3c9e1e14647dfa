"""Loading: providers, variant choice, threads, and clear errors for broken artefacts."""

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from clfserve.runtime import Classifier, Manifest, ModelLoadError, ProviderError
from clfserve.runtime.classifier import CPU_BATCH_SIZE, variant_for_cpu, variant_for_cuda
from clfserve.runtime.manifest import file_entry
from clfserve.runtime.resources import call_threads, cpu_calls, usable_cpus

CUDA_WORKS = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture
def artefact_copy(tiny_artefact: Path, tmp_path: Path) -> Path:
    target = tmp_path / "artefact"
    shutil.copytree(tiny_artefact, target)
    return target


@pytest.mark.skipif(CUDA_WORKS, reason="this machine has a CUDA build of onnxruntime")
def test_auto_on_cpu_machine_runs_int8_on_cpu_and_says_so(
    tiny_artefact: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="clfserve.runtime"):
        clf = Classifier.load(tiny_artefact, device="auto")
    assert clf.info.providers == ("CPUExecutionProvider",)
    assert clf.info.device == "cpu"
    assert clf.info.variant == "int8"
    assert "CPUExecutionProvider" in caplog.text


@pytest.mark.skipif(CUDA_WORKS, reason="this machine has a CUDA build of onnxruntime")
def test_cuda_demanded_without_cuda_is_a_clear_error(tiny_artefact: Path) -> None:
    with pytest.raises(ProviderError, match="device='cuda' requested but not obtained"):
        Classifier.load(tiny_artefact, device="cuda")


def test_named_variant_wins(tiny_artefact: Path) -> None:
    clf = Classifier.load(tiny_artefact, device="cpu", variant="fp32")
    assert clf.info.variant == "fp32"


def test_each_device_gets_its_fastest_exported_variant(tiny_artefact: Path) -> None:
    manifest = Manifest.read(tiny_artefact)

    def having(*names: str) -> Manifest:
        return dataclasses.replace(manifest, variants={n: manifest.variants[n] for n in names})

    assert variant_for_cpu(manifest) == "int8"
    assert variant_for_cuda(manifest) == "fp16"  # CUDA runs no dynamic int8
    assert variant_for_cpu(having("fp32", "fp16")) == "fp32"
    assert variant_for_cuda(having("fp32", "int8")) == "fp32"
    assert variant_for_cuda(having("int8")) == "int8"


def test_identity_comes_from_the_manifest(tiny_artefact: Path) -> None:
    manifest = Manifest.read(tiny_artefact)
    clf = Classifier.load(tiny_artefact, device="cpu")
    assert (clf.info.name, clf.info.version) == (manifest.name, manifest.version)
    assert clf.info.checksum == manifest.variants["fp32"].sha256
    assert clf.info.labels == manifest.labels
    assert clf.info.load_seconds > 0


def test_threads_default_to_usable_cpus(tiny_artefact: Path) -> None:
    assert Classifier.load(tiny_artefact, device="cpu").info.threads == usable_cpus()
    assert Classifier.load(tiny_artefact, device="cpu", threads=1).info.threads == 1


def test_batch_size_defaults_to_the_cpu_serving_size(tiny_artefact: Path) -> None:
    assert Classifier.load(tiny_artefact, device="cpu").batch_size == CPU_BATCH_SIZE == 8
    assert Classifier.load(tiny_artefact, device="cpu", batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match="batch_size"):
        Classifier.load(tiny_artefact, device="cpu", batch_size=0)


SPINNING = "session.intra_op.allow_spinning"


def spinning_entry(clf: Classifier) -> str | None:
    try:
        return str(clf.session.get_session_options().get_session_config_entry(SPINNING))
    except Exception:  # ORT raises when the entry was never set (its default: spinning on)
        return None


def test_idle_threads_spin_unless_told_to_sleep(tiny_artefact: Path) -> None:
    assert spinning_entry(Classifier.load(tiny_artefact, device="cpu")) is None
    still = Classifier.load(tiny_artefact, device="cpu", spinning=False)
    assert spinning_entry(still) == "0"


def test_usable_cpus_respects_affinity_and_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    import clfserve.runtime.resources as resources

    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(resources, "_cgroup_cpu_quota", lambda: None)
    assert resources.usable_cpus() == 4
    monkeypatch.setattr(resources, "_cgroup_cpu_quota", lambda: 1.5)
    assert resources.usable_cpus() == 2
    monkeypatch.setattr(resources, "_cgroup_cpu_quota", lambda: 0.2)
    assert resources.usable_cpus() == 1


def test_unknown_variant_names_the_choices(tiny_artefact: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no variant 'bf16'; the manifest has \['fp16', "):
        Classifier.load(tiny_artefact, variant="bf16")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a directory"):
        Classifier.load(tmp_path / "nowhere")


def test_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"manifest\.json: missing"):
        Classifier.load(tmp_path)


def test_malformed_manifest(artefact_copy: Path) -> None:
    (artefact_copy / "manifest.json").write_text('{"name": "x"}')
    with pytest.raises(ModelLoadError, match="malformed manifest"):
        Classifier.load(artefact_copy)


def test_missing_model_file_is_named(artefact_copy: Path) -> None:
    (artefact_copy / "model.int8.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.int8\.onnx: missing"):
        Classifier.load(artefact_copy, device="cpu")


def test_corrupt_model_fails_its_checksum(artefact_copy: Path) -> None:
    path = artefact_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model\.onnx: checksum mismatch"):
        Classifier.load(artefact_copy, variant="fp32")


def test_garbage_model_with_matching_checksum_is_named(artefact_copy: Path) -> None:
    (artefact_copy / "model.onnx").write_bytes(b"not an onnx graph")
    raw = json.loads((artefact_copy / "manifest.json").read_text())
    raw["variants"]["fp32"] = file_entry(artefact_copy, "model.onnx").__dict__
    (artefact_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"model\.onnx: ONNX Runtime cannot load it"):
        Classifier.load(artefact_copy, variant="fp32")


def test_tampered_validation_data_fails_its_checksum(artefact_copy: Path) -> None:
    path = artefact_copy / "validation.jsonl"
    path.write_text(path.read_text().replace('"negative"', '"positive"', 1))
    with pytest.raises(ModelLoadError, match=r"validation\.jsonl: checksum mismatch"):
        Classifier.load(artefact_copy, device="cpu")


def test_garbage_tokenizer_is_named(artefact_copy: Path) -> None:
    (artefact_copy / "tokenizer.json").write_text("{}")
    raw = json.loads((artefact_copy / "manifest.json").read_text())
    raw["tokenizer"] = file_entry(artefact_copy, "tokenizer.json").__dict__
    (artefact_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json: not a valid tokenizer"):
        Classifier.load(artefact_copy)


@pytest.mark.parametrize(("cpus", "calls", "threads"), [(1, 1, 1), (2, 2, 1), (3, 2, 1), (8, 2, 4)])
def test_cpus_are_split_between_the_default_model_calls(
    cpus: int, calls: int, threads: int
) -> None:
    assert (cpu_calls(cpus), call_threads(cpus)) == (calls, threads)
