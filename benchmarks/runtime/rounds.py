"""Alternated rounds: several ways of doing the same work, timed turn about in one process.

On a shared machine the load drifts within seconds, so a comparison of runs made one after the
other measures the neighbours. Here every unit of work is done by every arm back to back (in an
order that reverses each time), each round sums what each arm took, and the verdict is the
per-round ratio to the baseline arm: both saw the same load.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

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
