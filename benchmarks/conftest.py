"""Fixtures of the runtime suite: the default model (or a skip saying how to build it), the
texts, one `Classifier` per variant and the PyTorch eager baseline; plus the summary table."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.workload import (
    RESULTS,
    MissingModel,
    Texts,
    bench_threads,
    build_texts,
    machine,
    model_spec,
    resolve_artefact,
    resolve_checkpoint,
)

_LOAD_START = pytest.StashKey[list[float]]()
_SUMMARY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def threads() -> int:
    return bench_threads()


@pytest.fixture(scope="session")
def artefact() -> Path:
    try:
        return resolve_artefact()
    except MissingModel as exc:
        pytest.skip(f"no model to benchmark: {exc}")


@pytest.fixture(scope="session")
def texts(artefact: Path) -> Texts:
    return build_texts(artefact)


@pytest.fixture(scope="session")
def classifier(artefact: Path, threads: int) -> Callable[[str], Any]:
    """``classifier(variant)``: a CPU `Classifier` of that variant, loaded once per session."""
    from clfserve.runtime import Classifier, Manifest

    variants = Manifest.read(artefact).variants
    loaded: dict[str, Any] = {}

    def get(variant: str) -> Any:
        if variant not in variants:
            pytest.skip(f"the artefact has no {variant} variant (it has {sorted(variants)})")
        if variant not in loaded:
            # Chunks of 32, as the quoted baselines were measured (the CPU default is 8).
            loaded[variant] = Classifier.load(
                artefact, device="cpu", variant=variant, threads=threads, batch_size=32
            )
        return loaded[variant]

    return get


@pytest.fixture(scope="session")
def int8_macs(artefact: Path) -> Any:
    """`Int8Macs` of the artefact's int8 graph (skips when it has none)."""
    from benchmarks.int8 import Int8Macs
    from clfserve.runtime import Manifest

    entry = Manifest.read(artefact).variants.get("int8")
    if entry is None:
        pytest.skip("the artefact has no int8 variant")
    return Int8Macs(artefact / entry.file)


@pytest.fixture(scope="session")
def eager(artefact: Path, threads: int) -> Any:
    """The PyTorch eager baseline of the same fine-tuned checkpoint (skips without torch)."""
    from benchmarks.runtime.eager import EagerClassifier, torch_available
    from clfserve.runtime import Manifest

    if not torch_available():
        pytest.skip("torch/transformers not installed: no PyTorch eager baseline")
    try:
        checkpoint = resolve_checkpoint(artefact)
    except MissingModel as exc:
        pytest.skip(str(exc))
    return EagerClassifier(checkpoint, Manifest.read(artefact).max_length, threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run each (batch, length, variant) cell's rows back to back, so the rows compared with
    each other (predict vs session.run vs torch) see the same machine load."""

    def key(pair: tuple[int, pytest.Item]) -> tuple[int, str, str, int]:
        index, item = pair
        params = getattr(getattr(item, "callspec", None), "params", {})
        return (params.get("batch", 10_000), params.get("length", ""),
                params.get("variant", ""), index)  # fmt: skip

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


# -- reporting ---------------------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_LOAD_START] = [round(x, 2) for x in os.getloadavg()]


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    info = machine()
    info.pop("load_avg")  # varies run to run; kept in the summary instead of the comparison key
    info["model"] = model_spec()
    machine_info["clfserve"] = info


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    from benchmarks.runtime.summary import summarize, write_compact

    rows = output_json.get("benchmarks", [])
    load = {
        "start": config.stash.get(_LOAD_START, []),
        "end": [round(x, 2) for x in os.getloadavg()],
    }
    markdown, targets = summarize(rows, load, output_json.get("machine_info", {}))
    output_json["clfserve_targets"] = targets
    output_json["clfserve_load_avg"] = load
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "runtime-latest.md").write_text(markdown, encoding="utf-8")
    write_compact(output_json, targets, load)
    config.stash[_SUMMARY] = markdown


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    markdown = config.stash.get(_SUMMARY, None)
    if markdown:
        terminalreporter.write_sep(
            "=", "clfserve runtime summary (benchmarks/results/runtime-latest.md)"
        )
        terminalreporter.write_line(markdown)
