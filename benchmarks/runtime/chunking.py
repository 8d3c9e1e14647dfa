"""How texts are cut into chunks, in alternated rounds on one session: every ``--rows`` rows,
where a run costs less than the padding it saves (``run_cost``), or to a token budget.

    python benchmarks/runtime/chunking.py --home /work/home [--rounds 7] [--run-costs 8,16]

Every arm is the same loaded `Classifier` (one ONNX Runtime session) with another plan of the
length-sorted texts: fixed chunks of ``--rows`` rows (the runtime before `CPU_RUN_COST`); chunks
of up to ``--rows`` rows with the least padded tokens + runs x ``run_cost`` (`plan_chunks`); or
chunks that hold as many rows as fit ``rows x padded length <= budget`` (at most ``--cap``).
The work is what the service gives the runtime: one text (batch 1), a micro-batch of 32 texts,
a ``/batch_predict`` of 256, on real validation reviews (seed-0 split of Rotten Tomatoes), with
the intra-op threads of one of the service's model calls. Writes
``benchmarks/results/chunking-latest.md``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.runtime import rounds
from clfserve.runtime import Classifier

WORKLOADS = {"batch 1": (1, 32), "micro-batch of 32": (32, 8), "batch_predict of 256": (256, 2)}
"""Name: (texts per call, calls per round)."""


def arms(
    base: Classifier, rows: int, cap: int, run_costs: Sequence[float], budgets: Sequence[int]
) -> dict[str, Classifier]:
    chosen = {f"rows {rows}": dataclasses.replace(base, batch_size=rows, run_cost=None)}
    for cost in run_costs:
        name = f"run cost {cost:g}, <= {rows} rows"
        chosen[name] = dataclasses.replace(base, batch_size=rows, run_cost=cost)
    for budget in budgets:
        name = f"tokens {budget}, <= {cap} rows"
        chosen[name] = dataclasses.replace(base, batch_size=cap, token_budget=budget, run_cost=None)
    return chosen


def plan_shape(classifier: Classifier, calls: list[list[str]]) -> tuple[float, float]:
    """Runs per text and padded tokens per real token over ``calls`` (no timing)."""
    runs = padded = real = texts = 0
    for batch in calls:
        encoded = classifier.encode(batch)
        for rows_ in classifier.plan(encoded):
            width = max(encoded.lengths[i] for i in rows_)
            runs += 1
            padded += width * len(rows_)
            real += sum(encoded.lengths[i] for i in rows_)
        texts += len(batch)
    return runs / texts, padded / real


def main(argv: list[str] | None = None) -> int:
    parser = rounds.options(__doc__ or "", 7, "chunking-latest.md")
    parser.add_argument("--rows", type=int, default=8, help="today's rows per chunk")
    parser.add_argument("--cap", type=int, default=32, help="most rows of a token-budget chunk")
    parser.add_argument("--run-costs", default="8,16", help="run costs to try (tokens)")
    parser.add_argument("--budgets", default="256", help="token budgets to try ('' for none)")
    args = parser.parse_args(argv)
    artefact = rounds.model_folder(args)

    from benchmarks.workload import bench_threads, serving_layout

    threads = serving_layout(bench_threads())[1]
    base = Classifier.load(
        artefact, device="cpu", threads=threads, batch_size=args.rows, spinning=False,
        run_cost=None,
    )  # fmt: skip
    budgets = [int(b) for b in args.budgets.split(",") if b]
    run_costs = [float(c) for c in args.run_costs.split(",") if c]
    candidates = arms(base, args.rows, args.cap, run_costs, budgets)
    texts = rounds.validation_texts()
    baseline = next(iter(candidates))

    lines = rounds.heading(
        "Chunks of fixed rows vs cut by a run cost vs a token budget",
        "chunking.py",
        argv,
        f"{threads} ORT threads (not spinning, as served), model `{base.info.name}` "
        f"v{base.info.version} ({base.info.variant}), {len(texts)} validation reviews; "
        f"{args.rounds} rounds, arms alternated call by call on one session.",
    )
    lines += [
        "| work | plan | texts/s | vs rows | CPU ms/text | runs/text | padded/real tokens "
        "| labels = rows |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for work, (size, units) in WORKLOADS.items():
        calls = [texts[u * size : (u + 1) * size] for u in range(units)]
        first = candidates[baseline]
        reference = [p.label for batch in calls for p in first.predict(batch)]
        work_of = {name: predicting(c, calls) for name, c in candidates.items()}
        took = rounds.alternate(work_of, args.rounds, units)
        items = size * units
        for name, classifier in candidates.items():
            per_text, padding = plan_shape(classifier, calls)
            labels = [p.label for batch in calls for p in classifier.predict(batch)]
            agree = sum(a == b for a, b in zip(labels, reference, strict=True)) / len(labels)
            lines.append(
                f"| {work} | {name} | {rounds.rates(took[name], items).text()} "
                f"| {rounds.ratios(took[name], took[baseline]).text('{:.2f}')} "
                f"| {rounds.cpu_per_item_ms(took[name], items).text('{:.1f}')} | {per_text:.3f} "
                f"| {padding:.2f} | {agree:.3f} |"
            )
        print(*lines[-len(candidates) :], sep="\n", flush=True)
    rounds.write(args.out, lines)
    return 0


def predicting(classifier: Classifier, calls: list[list[str]]) -> rounds.Work:
    return lambda unit: classifier.predict(calls[unit])


if __name__ == "__main__":
    raise SystemExit(main())
