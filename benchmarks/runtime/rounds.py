"""Alternated rounds: several ways of doing the same work, timed turn about in one process.

On a shared machine the load drifts within seconds, so a comparison of runs made one after the
other measures the neighbours. Here every unit of work is done by every arm back to back (in an
order that reverses each time), each round sums what each arm took, and the verdict is the
per-round ratio to the baseline arm: both saw the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.workload import RESULTS

Work = Callable[[int], object]
"""One unit of work: called with the unit's number (which texts to use)."""


@dataclass(frozen=True)
class Spread:
    """Median, min and max of per-round values."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def text(self, fmt: str = "{:.0f}") -> str:
        return f"{fmt.format(self.median)} ({fmt.format(self.low)}-{fmt.format(self.high)})"


@dataclass(frozen=True)
class Round:
    """What one arm took over one round: wall seconds and process CPU seconds."""

    wall_s: float
    cpu_s: float


def alternate(arms: Mapping[str, Work], rounds: int, units: int) -> dict[str, list[Round]]:
    """Each round runs units ``0..units-1`` through every arm, the arms turn about per unit."""
    names = list(arms)
    took: dict[str, list[Round]] = {name: [] for name in names}
    for round_ in range(rounds):
        wall = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        for unit in range(units):
            order = names if (round_ + unit) % 2 == 0 else names[::-1]
            for name in order:
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                arms[name](unit)
                wall[name] += time.perf_counter() - wall_start
                cpu[name] += time.process_time() - cpu_start
        for name in names:
            took[name].append(Round(wall[name], cpu[name]))
    return took


def rates(took: Sequence[Round], items: int) -> Spread:
    """Items per wall second, per round."""
    return Spread.of([items / r.wall_s for r in took])


def ratios(took: Sequence[Round], baseline: Sequence[Round]) -> Spread:
    """Speed relative to ``baseline`` in the same round (above 1: faster)."""
    return Spread.of([b.wall_s / r.wall_s for r, b in zip(took, baseline, strict=True)])


def cpu_per_item_ms(took: Sequence[Round], items: int) -> Spread:
    """Process CPU milliseconds (every thread) per item, per round."""
    return Spread.of([1000 * r.cpu_s / items for r in took])


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


# -- what both comparison scripts share ------------------------------------------------------


def options(doc: str, rounds: int, result: str) -> argparse.ArgumentParser:
    """``--home``, ``--model``, ``--rounds`` and ``--out`` (under benchmarks/results/)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="CLFSERVE_HOME holding the registry")
    parser.add_argument("--model", help="artefact folder or models:/ URI (default: champion)")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--out", type=Path, default=RESULTS / result)
    return parser


def model_folder(args: argparse.Namespace) -> Path:
    """The artefact folder ``--model`` names, looked up under ``--home``."""
    if args.home is not None:
        os.environ["CLFSERVE_HOME"] = str(args.home)
    from benchmarks.workload import resolve_artefact

    return resolve_artefact(args.model)


def validation_texts() -> list[str]:
    """The validation reviews of the seed-0 Rotten Tomatoes split (what the model never saw)."""
    from clfserve.evaluation.datasets import load_dataset, split

    return list(split(load_dataset("rotten_tomatoes"), seed=0).validation.texts)


def heading(title: str, script: str, argv: Sequence[str] | None, setup: str) -> list[str]:
    """Title and one paragraph: when, the command, the machine and ``setup``."""
    from benchmarks.workload import machine

    command = " ".join([script, *(argv or [])])
    return [
        f"# {title}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`; {machine()['cpu']}, "
        f"{os.cpu_count()} CPUs shared with other jobs; {setup} Cells: median (min-max) over "
        "rounds.",
        "",
    ]


def write(out: Path, lines: list[str]) -> None:
    lines = [*lines, "", f"Load average at the end: {load_average()}."]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")
