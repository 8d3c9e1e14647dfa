"""The artefact folder contract between `clfserve.export` (writer) and the runtime (reader).

An artefact folder holds::

    manifest.json        this file's schema, below
    tokenizer.json       a `tokenizers` fast tokenizer (no truncation/padding baked in)
    model.onnx           fp32 graph, dynamic batch and sequence axes, output "logits"
    model.int8.onnx      optional int8 variant, the CPU's (which graph: ``int8_graph``)
    model.fp16.onnx      optional fp16 variant, the GPU's
    validation.jsonl     the labelled validation split export scored (``text``, ``label``);
                         monitors evaluate the model on it by default
    drift_reference.json what the model's answers on that split look like, binned (label mix,
                         confidence, tokens, truncation): the service's drift reference

Everything the runtime needs is in the manifest; nothing is re-derived from transformers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from clfserve.runtime.errors import ModelLoadError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1

ProblemType = Literal["single_label", "multi_label"]


@dataclass(frozen=True)
class FileEntry:
    """One file of the artefact, with the checksum the runtime verifies at load."""

    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Reference:
    """A text and the fp32 probability of each label that export measured for it.

    A server reproduces these before it lets a newly loaded model answer (a smoke check). They
    are keyed by label name, so a model whose labels were mixed up does not pass.
    """

    text: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Manifest:
    """What an artefact folder promises about itself."""

    name: str
    """Model name, e.g. ``clfserve-sentiment``."""
    version: str
    """Artefact version; export uses a short content hash, the registry adds its own number."""
    labels: tuple[str, ...]
    """Label names in logit order (index i is id2label[i])."""
    max_length: int
    """Tokens per text, special tokens included; longer texts are truncated."""
    inputs: tuple[str, ...]
    """Model input names, as the ONNX graph declares them."""
    variants: dict[str, FileEntry]
    """ONNX graphs by variant name (``fp32``, ``int8``, ``fp16``)."""
    tokenizer: FileEntry
    validation_data: FileEntry | None = None
    """The validation split export scored, as JSONL; None in artefacts made before it existed."""
    drift_reference: FileEntry | None = None
    """Binned answers on that split (`clfserve.evaluation.drift`); None in older artefacts."""
    pad_token_id: int = 0
    problem_type: ProblemType = "single_label"
    output: str = "logits"
    references: tuple[Reference, ...] = ()
    """Smoke-check texts with their fp32 probabilities; empty in artefacts made before them."""
    validation: dict[str, Any] = field(default_factory=dict)
    """Export-time validation results (parity, per-variant metrics, agreement)."""
    source: dict[str, Any] = field(default_factory=dict)
    """Provenance: base model, dataset, training recipe, checkpoint checksum, how int8 was made."""
    int8_graph: dict[str, Any] = field(default_factory=dict)
    """Which int8 graph export kept and why: ``chosen``, ``reason`` and, when it measured them,
    each candidate's texts/s (batch 1 and the serving batch), agreement with fp32, accuracy and
    macro-F1; empty in artefacts made before it existed or without int8."""
    created_at: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def files(self) -> tuple[FileEntry, ...]:
        """Every file the manifest vouches for (graphs, tokenizer, validation data, drift
        reference)."""
        return (*self.variants.values(), self.tokenizer, *self.extras)

    @property
    def extras(self) -> tuple[FileEntry, ...]:
        """The optional files beside the graphs and the tokenizer."""
        return tuple(e for e in (self.validation_data, self.drift_reference) if e is not None)

    @property
    def checksum(self) -> str:
        """Identity of the fp32 weights (stable across registry copies of the same artefact)."""
        entry = self.variants.get("fp32") or next(iter(self.variants.values()))
        return entry.sha256

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: missing; is this an artefact folder?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path}: unreadable manifest ({exc})") from exc
        try:
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                labels=tuple(str(label) for label in raw["labels"]),
                max_length=int(raw["max_length"]),
                inputs=tuple(str(name) for name in raw["inputs"]),
                variants={k: FileEntry(**v) for k, v in raw["variants"].items()},
                tokenizer=FileEntry(**raw["tokenizer"]),
                validation_data=(
                    FileEntry(**raw["validation_data"]) if raw.get("validation_data") else None
                ),
                drift_reference=(
                    FileEntry(**raw["drift_reference"]) if raw.get("drift_reference") else None
                ),
                pad_token_id=int(raw.get("pad_token_id", 0)),
                problem_type=raw.get("problem_type", "single_label"),
                output=str(raw.get("output", "logits")),
                references=tuple(
                    Reference(str(r["text"]), {str(k): float(v) for k, v in r["scores"].items()})
                    for r in raw.get("references", ())
                ),
                validation=dict(raw.get("validation", {})),
                source=dict(raw.get("source", {})),
                int8_graph=dict(raw.get("int8_graph", {})),
                created_at=str(raw.get("created_at", "")),
                format_version=int(raw.get("format_version", FORMAT_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{path}: malformed manifest ({exc!r})") from exc


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entry(folder: Path, name: str) -> FileEntry:
    """Describe ``folder/name`` for the manifest (used by the writer)."""
    path = folder / name
    return FileEntry(file=name, sha256=sha256_file(path), bytes=path.stat().st_size)


def verify_file(folder: Path, entry: FileEntry) -> Path:
    """Return the path of ``entry`` after checking it exists and matches its checksum."""
    path = folder / entry.file
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing from the artefact folder")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise ModelLoadError(
            f"{path}: checksum mismatch (manifest {entry.sha256[:12]}…, file {actual[:12]}…); "
            "the file is corrupt or was replaced"
        )
    return path
