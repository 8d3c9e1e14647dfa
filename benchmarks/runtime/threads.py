"""ONNX Runtime thread settings in alternated rounds: intra-op spinning on vs off (with the
event loop idle, and with a busy Python thread standing in for it), and how two cores are best
spent: 1 or 2 intra-op threads, one caller or two concurrent ones.

    python benchmarks/runtime/threads.py --home /work/home [--rounds 5]

Works on real validation reviews (seed-0 split of Rotten Tomatoes) at batch 1 and at the
serving batch (a micro-batch of 32), with today's plan (length-sorted chunks of 8). Writes
``benchmarks/results/threads-latest.md``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.runtime import rounds
from benchmarks.runtime.rounds import Round, Spread, Work
from clfserve.runtime import Classifier

SIZES = {"batch 1": (1, 16), "micro-batch of 32": (32, 4)}
"""Name: (texts per call, calls per unit of work)."""


class BusyLoop:
    """A Python thread that, while switched on, spins through small pure-Python steps, as an
    event loop parsing requests does; ``steps`` counts its progress."""

    def __init__(self) -> None:
        self.steps = 0
        self.on = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self.on.wait(0.1)
            while self.on.is_set():
                sum(range(200))  # ~2 us of bytecode, then the GIL may switch
                self.steps += 1

    def close(self) -> None:
        self.on.clear()
        self._stop = True
        self._thread.join()


def table(
    title: str,
    took: Mapping[str, list[Round]],
    items: int,
    loop_steps: Mapping[str, list[float]] | None = None,
) -> list[str]:
    baseline = next(iter(took))
    head = "| arm | texts/s | vs first | CPU ms/text |"
    rule = "|---|---:|---:|---:|"
    if loop_steps is not None:
        head, rule = head + " busy-loop steps/ms |", rule + "---:|"
    lines = [f"**{title}**", "", head, rule]
    for name, taken in took.items():
        row = (
            f"| {name} | {rounds.rates(taken, items).text()} "
            f"| {rounds.ratios(taken, took[baseline]).text('{:.2f}')} "
            f"| {rounds.cpu_per_item_ms(taken, items).text('{:.1f}')} |"
        )
        if loop_steps is not None:
            steps = loop_steps[name]
            per_ms = [s / (1000 * r.wall_s) for s, r in zip(steps, taken, strict=True)]
            row += f" {Spread.of(per_ms).text('{:.0f}') if max(per_ms) >= 1 else '-'} |"
        lines.append(row)
    return [*lines, ""]


def spinning_rounds(
    spin_on: Work, spin_off: Work, units: int, count: int
) -> tuple[dict[str, list[Round]], dict[str, list[float]]]:
    """Spinning on/off x event loop idle/busy, every arm turn about; busy-loop steps per round."""
    loop = BusyLoop()
    steps: dict[str, list[float]] = {}
    arms: dict[str, Work] = {}
    for busy in (False, True):
        for spin, run in (("on", spin_on), ("off", spin_off)):
            name = f"spinning {spin}, {'busy Python thread' if busy else 'idle'}"
            steps[name] = [0.0] * count
            arms[name] = _watched(loop, busy, run, units, steps[name])
    try:
        took = rounds.alternate(arms, count, units)
    finally:
        loop.close()
    return took, steps


def _watched(loop: BusyLoop, busy: bool, run: Work, units: int, steps: list[float]) -> Work:
    """``run`` with the busy loop on (if ``busy``), its steps added to the round's count."""
    done = [0]

    def work(unit: int) -> None:
        if busy:
            loop.on.set()
        before = loop.steps
        run(unit)
        loop.on.clear()
        steps[done[0] // units] += loop.steps - before
        done[0] += 1

    return work


def main(argv: list[str] | None = None) -> int:
    args = rounds.options(__doc__ or "", 5, "threads-latest.md").parse_args(argv)
    artefact = rounds.model_folder(args)

    def load(threads: int, spinning: bool = True) -> Classifier:
        return Classifier.load(artefact, device="cpu", threads=threads, spinning=spinning)

    two_spin, two_still = load(2), load(2, spinning=False)
    one_a, one_b = load(1), load(1)
    texts = rounds.validation_texts()
    pool = ThreadPoolExecutor(2, thread_name_prefix="caller")
    info = two_spin.info
    lines = rounds.heading(
        "ONNX Runtime threads: spinning, intra-op threads, concurrent callers",
        "threads.py",
        argv,
        f"model `{info.name}` v{info.version} ({info.variant}), chunks of "
        f"{two_spin.batch_size}, {len(texts)} validation reviews; {args.rounds} rounds, arms "
        "alternated unit by unit. CPU ms/text counts every thread of the process (the busy "
        "Python thread too, where it runs).",
    )
    for size_name, (size, per_unit) in SIZES.items():
        units = 4
        calls = [texts[i * size : (i + 1) * size] for i in range(units * per_unit)]
        unit_calls = [calls[u * per_unit : (u + 1) * per_unit] for u in range(units)]
        items = units * per_unit * size

        def serial(clf: Classifier) -> Callable[[list[list[str]]], object]:
            return lambda batch: [clf.predict(c) for c in batch]

        def concurrent(a: Classifier, b: Classifier) -> Callable[[list[list[str]]], object]:
            def both(batch: list[list[str]]) -> object:
                half = len(batch) // 2
                first = pool.submit(lambda: [a.predict(c) for c in batch[:half]])
                second = [b.predict(c) for c in batch[half:]]
                return [*first.result(), *second]

            return both

        spin_took, spin_steps = spinning_rounds(
            _unit(serial(two_spin), unit_calls),
            _unit(serial(two_still), unit_calls),
            units,
            args.rounds,
        )
        lines += table(f"Spinning, 2 intra-op threads, {size_name}", spin_took, items, spin_steps)
        thread_arms: dict[str, Work] = {
            "1 session x 2 threads, spinning on, 1 caller": _unit(serial(two_spin), unit_calls),
            "1 session x 2 threads, spinning off, 1 caller": _unit(serial(two_still), unit_calls),
            "1 session x 1 thread, 1 caller": _unit(serial(one_a), unit_calls),
            "1 session x 1 thread, 2 concurrent callers": _unit(
                concurrent(one_a, one_a), unit_calls
            ),
            "2 sessions x 1 thread, 2 concurrent callers": _unit(
                concurrent(one_a, one_b), unit_calls
            ),
        }
        took = rounds.alternate(thread_arms, args.rounds, units)
        lines += table(f"Threads, {size_name}", took, items)
        print(*lines, sep="\n", flush=True)
    pool.shutdown()
    rounds.write(args.out, lines)
    return 0


def _unit(run: Callable[[list[list[str]]], object], unit_calls: list[list[list[str]]]) -> Work:
    return lambda unit: run(unit_calls[unit])


if __name__ == "__main__":
    raise SystemExit(main())
