"""Label-free drift: what a model's answers look like, binned, and how far two such pictures are.

Export measures a **reference** on the validation split it scores (``drift_reference.json`` in
the artefact, checksummed in the manifest); the service bins its live answers the same way and
compares. Both use this module, so the bins and the divergence are defined once.

Four signals, each a histogram with fixed bins (`Binning.of` derives them from the model's
labels and ``max_length`` alone, so export and every replica bin identically):

- ``label``: the predicted label mix, one bin per label;
- ``confidence``: the top score, `CONFIDENCE_BINS` equal bins on [1/n_labels, 1] (a single-label
  top score is never below 1/n_labels; a lower multi-label score counts in the first bin);
- ``tokens``: tokens per text (special tokens included), `TOKEN_BINS` equal bins on
  [0, max_length] (a truncated text is in the last bin);
- ``truncated``: two bins, not truncated / truncated (the truncation rate).

The divergence is the **population stability index** of live proportions ``a`` against
reference proportions ``e`` over the bins of one signal::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i),   each proportion floored at EPSILON (1e-4)

It is 0 for identical mixes and grows with the shift; an empty bin on either side counts as
1e-4 instead of making the index infinite. Usual reading: below 0.1 no shift, 0.1 to 0.2 a
moderate one, above 0.2 a significant one (the service's default threshold). With ``k`` bins,
sampling noise alone gives about ``(k - 1) * (1/n_live + 1/n_reference)``, hence a minimum
count before any verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clfserve.runtime.errors import ClfserveError
from clfserve.runtime.manifest import Manifest, verify_file
from clfserve.runtime.prediction import Prediction

REFERENCE_FILE = "drift_reference.json"
FORMAT_VERSION = 1
SIGNALS = ("label", "confidence", "tokens", "truncated")
CONFIDENCE_BINS = 10
TOKEN_BINS = 10
EPSILON = 1e-4
"""Floor of a bin's proportion in `psi`, so an empty bin does not make the index infinite."""
DIVERGENCE = "psi"


class DriftReferenceError(ClfserveError):
    """The artefact's drift reference cannot be used (unreadable, or binned differently)."""


@dataclass(frozen=True)
class Binning:
    """The fixed bins of every signal for one model (see the module docstring)."""

    labels: tuple[str, ...]
    max_length: int

    @classmethod
    def of(cls, labels: Sequence[str], max_length: int) -> Binning:
        return cls(tuple(labels), max(1, int(max_length)))

    @property
    def confidence_low(self) -> float:
        return 1.0 / len(self.labels) if self.labels else 0.0

    @property
    def sizes(self) -> dict[str, int]:
        """Bins per signal."""
        return {"label": len(self.labels), "confidence": CONFIDENCE_BINS,
                "tokens": TOKEN_BINS, "truncated": 2}  # fmt: skip

    def edges(self) -> dict[str, list[float]]:
        """Bin edges of the numeric signals (what the reference file records)."""
        low = self.confidence_low
        width = (1.0 - low) / CONFIDENCE_BINS
        step = self.max_length / TOKEN_BINS
        return {
            "confidence": [round(low + i * width, 6) for i in range(CONFIDENCE_BINS + 1)],
            "tokens": [round(i * step, 6) for i in range(TOKEN_BINS + 1)],
        }

    def indexer(self) -> Indexer:
        return Indexer(self)

    def to_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "max_length": self.max_length, **self.edges()}


class Indexer:
    """Bin positions of one answer, for `Binning` (plain arithmetic: it runs per prediction)."""

    __slots__ = ("_labels", "_low", "_per_score", "_per_token")

    def __init__(self, binning: Binning) -> None:
        self._labels = {label: i for i, label in enumerate(binning.labels)}
        self._low = binning.confidence_low
        self._per_score = CONFIDENCE_BINS / (1.0 - self._low) if self._low < 1.0 else 0.0
        self._per_token = TOKEN_BINS / binning.max_length

    def __call__(
        self, label: str, score: float, n_tokens: int, truncated: bool
    ) -> tuple[int, int, int, int] | None:
        """(label, confidence, tokens, truncated) bins; None for a label the model lacks."""
        at = self._labels.get(label)
        if at is None:
            return None
        confidence = int((score - self._low) * self._per_score)
        confidence = 0 if confidence < 0 else min(confidence, CONFIDENCE_BINS - 1)
        tokens = min(int(n_tokens * self._per_token), TOKEN_BINS - 1)
        return at, confidence, max(tokens, 0), 1 if truncated else 0


@dataclass(frozen=True)
class Profile:
    """Counts per bin of every signal over ``n`` answers."""

    n: int
    counts: Mapping[str, tuple[int, ...]]

    @classmethod
    def empty(cls, binning: Binning) -> Profile:
        return cls(0, {name: (0,) * size for name, size in binning.sizes.items()})

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "counts": {name: list(c) for name, c in self.counts.items()}}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], binning: Binning) -> Profile:
        """Parse counts, checking each signal has ``binning``'s bins (ValueError otherwise)."""
        counts = {}
        for name, size in binning.sizes.items():
            values = tuple(int(v) for v in raw["counts"][name])
            if len(values) != size or min(values, default=0) < 0:
                raise ValueError(f"{name}: {len(values)} bins, expected {size}")
            counts[name] = values
        return cls(int(raw["n"]), counts)


def profile(predictions: Iterable[Prediction], binning: Binning) -> Profile:
    """Bin ``predictions``; answers with a label outside the binning are left out."""
    index = binning.indexer()
    found = [index(p.label, p.score, p.n_tokens, p.truncated) for p in predictions]
    rows = np.array([bins for bins in found if bins is not None], dtype=np.int64)
    rows = rows.reshape(-1, len(SIGNALS))
    counts = {
        name: tuple(int(c) for c in np.bincount(rows[:, j], minlength=size))
        for j, (name, size) in enumerate(binning.sizes.items())
    }
    return Profile(len(rows), counts)


def merge(profiles: Iterable[Profile], binning: Binning) -> Profile:
    """Bin-wise sum (e.g. the windows of several replicas)."""
    counts = {name: [0] * size for name, size in binning.sizes.items()}
    n = 0
    for p in profiles:
        n += p.n
        for name, values in p.counts.items():
            for i, value in enumerate(values):
                counts[name][i] += value
    return Profile(n, {name: tuple(c) for name, c in counts.items()})


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Population stability index of ``actual`` counts against ``expected`` counts (same bins;
    formula in the module docstring). 0.0 when either side has no counts at all."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} bins against {len(actual)}")
    total_e, total_a = sum(expected), sum(actual)
    if total_e <= 0 or total_a <= 0:
        return 0.0
    index = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e = max(e_count / total_e, EPSILON)
        a = max(a_count / total_a, EPSILON)
        index += (a - e) * math.log(a / e)
    return index


def divergences(reference: Profile, live: Profile) -> dict[str, float]:
    """`psi` of every signal, live against reference."""
    return {name: psi(reference.counts[name], live.counts[name]) for name in SIGNALS}


# -- the reference file -------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReference:
    """What export measured on its validation split: one `Profile` per variant it scored."""

    binning: Binning
    profiles: Mapping[str, Profile]
    data: str
    """What was profiled, e.g. ``validation.jsonl``."""

    def for_variant(self, variant: str) -> tuple[str, Profile]:
        """The profile of ``variant``, else the first one recorded (variants answer alike)."""
        if variant in self.profiles:
            return variant, self.profiles[variant]
        name = next(iter(self.profiles))
        return name, self.profiles[name]

    def to_json(self) -> str:
        body = {
            "format_version": FORMAT_VERSION,
            "divergence": DIVERGENCE,
            "data": self.data,
            "binning": self.binning.to_json(),
            "variants": {name: p.to_json() for name, p in self.profiles.items()},
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / REFERENCE_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def parse(cls, text: str, binning: Binning) -> DriftReference:
        """Parse a reference file; `DriftReferenceError` unless it is binned as ``binning``."""
        try:
            raw = json.loads(text)
            recorded = raw["binning"]
            if (tuple(recorded["labels"]), int(recorded["max_length"])) != (
                binning.labels, binning.max_length,
            ) or any(recorded[k] != v for k, v in binning.edges().items()):  # fmt: skip
                raise DriftReferenceError(
                    f"{REFERENCE_FILE}: binned for labels {recorded['labels']} and max_length "
                    f"{recorded['max_length']}, not this model's"
                )
            profiles = {str(k): Profile.from_json(v, binning) for k, v in raw["variants"].items()}
            if not profiles:
                raise ValueError("no variant profiled")
            return cls(binning, profiles, str(raw.get("data", "")))
        except DriftReferenceError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DriftReferenceError(f"{REFERENCE_FILE}: malformed ({exc!r})") from exc


def read_reference(folder: Path) -> DriftReference | None:
    """The drift reference of the artefact at ``folder`` (checksum verified), None when its
    manifest lists none (artefacts exported before it existed). `DriftReferenceError` (or the
    runtime's `ModelLoadError`) when it cannot be used."""
    manifest = Manifest.read(folder)
    if manifest.drift_reference is None:
        return None
    path = verify_file(folder, manifest.drift_reference)
    binning = Binning.of(manifest.labels, manifest.max_length)
    return DriftReference.parse(path.read_text(encoding="utf-8"), binning)
