"""Turn a pytest-benchmark JSON into the tables people read: latency and seqs/s per batch size,
overhead over `session.run`, the speed-up ratios against the issue's targets, and each int8
row's multiply-accumulate rate against this machine's measured int8 peak.

Run by the suite after each saved run; also ``python -m benchmarks.runtime.summary FILE.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks.int8 import gops
from benchmarks.workload import RESULTS

Key = tuple[str, ...]


def _index(rows: Iterable[dict[str, Any]]) -> dict[Key, float]:
    """Median seconds by (kind, batch/texts, length or engine, variant)."""
    out: dict[Key, float] = {}
    for row in rows:
        info = row.get("extra_info", {})
        key = (
            str(info.get("kind")),
            str(info.get("texts")),
            str(info.get("length", info.get("engine", ""))),
            str(info.get("variant", "")),
        )
        out[key] = float(row["stats"]["median"])
    return out


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.2f}"


def _rate(texts: int, seconds: float | None) -> str:
    return "–" if seconds is None else f"{texts / seconds:,.0f}"


def _ratio(slow: float | None, fast: float | None) -> float | None:
    return None if slow is None or fast is None else slow / fast


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def summarize(
    rows: list[dict[str, Any]], load: dict[str, list[float]], machine_info: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    med = _index(rows)

    def get(kind: str, texts: int, length: str, variant: str = "") -> float | None:
        return med.get((kind, str(texts), length, variant))

    info = machine_info.get("clfserve", {})
    lines = [
        "# Runtime benchmark (latest run)",
        "",
        f"Machine: {info.get('cpu', '?')}, {info.get('cpus', '?')} CPUs, "
        f"{info.get('threads', '?')} threads for ONNX Runtime and torch; onnxruntime "
        f"{info.get('onnxruntime', '?')}; model `{info.get('model', '?')}`. "
        f"Load average (1/5/15 min) at start {load.get('start')}, at end {load.get('end')}.",
        "",
        "Median ms per call (texts/s in brackets). `overhead` = (tokenize + pad + post-process) "
        "/ int8 session.run, each timed alone (the issue's definition; robust to load drift); "
        "`predict − run` = (int8 predict − int8 session.run) / session.run, from two rows timed "
        "at different moments; `vs torch` = torch median / int8 predict median.",
        "",
        _row("batch", "length", "tokenize", "pad", "post-process", "fp32 session.run",
             "fp32 predict", "int8 session.run", "int8 predict", "int8 overhead",
             "predict − run", "torch eager", "int8 vs torch"),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    overheads: dict[str, float | None] = {}
    for batch in sorted({int(k[1]) for k in med if k[0] == "predict"}):
        for length in ("short", "long"):
            if (
                get("predict", batch, length, "int8") is None
                and get("predict", batch, length, "fp32") is None
            ):
                continue
            run8 = get("session.run", batch, length, "int8")
            pred8 = get("predict", batch, length, "int8")
            pieces = [get(k, batch, length) for k in ("tokenize", "pad", "postprocess")]
            cost = None if None in pieces else sum(p or 0.0 for p in pieces)
            over = _ratio(cost, run8)
            diff = None if run8 is None or pred8 is None else (pred8 - run8) / run8
            if batch == 32:
                overheads[f"int8 {length}"] = over
                overheads[f"fp32 {length}"] = _ratio(
                    cost, get("session.run", batch, length, "fp32")
                )
            torch_s = get("torch", batch, length)
            pred32 = get("predict", batch, length, "fp32")
            cells = [
                str(batch), length,
                _ms(get("tokenize", batch, length)), _ms(get("pad", batch, length)),
                _ms(get("postprocess", batch, length)),
                _ms(get("session.run", batch, length, "fp32")),
                f"{_ms(pred32)} ({_rate(batch, pred32)})",
                _ms(run8), f"{_ms(pred8)} ({_rate(batch, pred8)})",
                "–" if over is None else f"{over:.1%}",
                "–" if diff is None else f"{diff:+.1%}",
                f"{_ms(torch_s)} ({_rate(batch, torch_s)})", _x(_ratio(torch_s, pred8)),
            ]  # fmt: skip
            lines.append(_row(*cells))

    b1 = {e: get("target_batch1", 64, e) for e in ("int8", "fp32", "torch")}
    big = {e: get("target_1024", 1024, e) for e in ("int8", "fp32", "torch")}
    r1, rbig = _ratio(b1["torch"], b1["int8"]), _ratio(big["torch"], big["int8"])
    worst_over = max((v for v in overheads.values() if v is not None), default=None)
    targets: dict[str, Any] = {
        "batch1_int8_vs_torch": r1,
        "batch1_texts_per_s": {e: (None if s is None else 64 / s) for e, s in b1.items()},
        "1024_int8_vs_torch": rbig,
        "1024_texts_per_s": {e: (None if s is None else 1024 / s) for e, s in big.items()},
        "overhead_batch32": overheads,
    }

    def verdict(value: float | None, goal: float, above: bool = True) -> str:
        if value is None:
            return "not measured"
        return "met" if (value >= goal if above else value < goal) else "MISSED"

    lines += [
        "",
        "## Targets, real Rotten Tomatoes reviews, same run",
        "",
        "| target | measured | goal | verdict |",
        "|---|---:|---:|---|",
        _row("int8 vs PyTorch eager, batch 1 (64 reviews, one call each)",
             f"{_x(r1)} ({_rate(64, b1['int8'])} vs {_rate(64, b1['torch'])} texts/s)",
             "≥ 3x", verdict(r1, 3.0)),
        _row("int8 vs PyTorch eager, one 1,024-review call (torch: chunks of 32, unsorted)",
             f"{_x(rbig)} ({_rate(1024, big['int8'])} vs {_rate(1024, big['torch'])} texts/s)",
             "≥ 2x", verdict(rbig, 2.0)),
        _row("runtime overhead (tokenize + pad + post-process) / session.run, batch 32",
             ", ".join(f"{k} {'–' if v is None else f'{v:.1%}'}" for k, v in overheads.items()),
             "< 10%", verdict(worst_over, 0.10, above=False)),
        _row("fp32 texts/s: batch 1 / one 1,024 call",
             f"{_rate(64, b1['fp32'])} / {_rate(1024, big['fp32'])}", "–", "–"),
        "",
    ]  # fmt: skip
    rate_lines, targets["int8_rate"] = int8_rates(rows)
    lines += rate_lines
    return "\n".join(lines), targets


def int8_rates(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Achieved int8 GOP/s per row that recorded ``int8_macs``, against the int8 peak row."""
    peak_row = next((r for r in rows if r.get("extra_info", {}).get("kind") == "int8_peak"), None)
    worked = [
        r for r in rows
        if r.get("extra_info", {}).get("int8_macs") and r is not peak_row
    ]  # fmt: skip
    if not worked:
        return [], {}
    peak: dict[str, Any] = {}
    if peak_row is not None:
        macs, info = peak_row["extra_info"]["int8_macs"], peak_row["extra_info"]
        peak = {
            "op": f"MatMulInteger {info['size']}³ uint8 x int8, {info['threads']} threads",
            "best_gops": round(gops(macs, peak_row["stats"]["min"]), 1),
            "median_gops": round(gops(macs, peak_row["stats"]["median"]), 1),
            "runs": peak_row["stats"]["rounds"],
        }
    best = peak.get("best_gops")
    lines = [
        "## int8 multiply-accumulate rate",
        "",
        "Counted from the graph: every integer matrix product (`MatMulInteger`, and the fused "
        "int8 ops when present) contributes rows(A) × K × N multiply-accumulates, A's shape "
        "probed by running the int8 graph at each padded width the call runs (length-sorted "
        "chunks; one text per call in the batch-1 row), summed over the chunks. Float products "
        "(attention QK^T, softmax × V), embeddings and norms are not counted, so the rate is "
        "the int8 work the call did divided by its whole median time. 1 MAC = 2 ops.",
        "",
    ]
    if peak:
        lines += [
            f"Measured int8 peak: one {peak['op']} through ONNX Runtime, {peak['runs']} runs: "
            f"best **{peak['best_gops']:,.0f} GOP/s**, median {peak['median_gops']:,.0f} GOP/s. "
            "`% of peak` is against the best.",
            "",
        ]
    lines += [
        _row("row", "int8 GMAC per call", "median ms", "int8 GOP/s", "% of peak"),
        "|---|---:|---:|---:|---:|",
    ]
    table = []
    for r in worked:
        macs, median = r["extra_info"]["int8_macs"], r["stats"]["median"]
        rate = gops(macs, median)
        share = None if not best else rate / best
        table.append({"name": r["name"], "int8_macs": macs, "median_s": median,
                      "gops": round(rate, 1), "of_peak": share})  # fmt: skip
        lines.append(
            _row(f"`{r['name']}`", f"{macs / 1e9:.2f}", _ms(median), f"{rate:,.0f}",
                 "–" if share is None else f"{share:.0%}")
        )  # fmt: skip
    lines.append("")
    return lines, {"peak": peak, "rows": table}


def write_compact(
    output_json: dict[str, Any], targets: dict[str, Any], load: dict[str, Any]
) -> None:
    """``runtime-latest.json``: medians and extra_info only (the full JSON is in .benchmarks/)."""
    rows = [
        {
            "group": r.get("group"),
            "name": r.get("name"),
            "median_s": r["stats"]["median"],
            "iqr_s": r["stats"]["iqr"],
            "rounds": r["stats"]["rounds"],
            "extra_info": r.get("extra_info", {}),
        }
        for r in output_json.get("benchmarks", [])
    ]
    payload = {
        "datetime": output_json.get("datetime"),
        "machine": output_json.get("machine_info", {}).get("clfserve", {}),
        "load_avg": load,
        "targets": targets,
        "benchmarks": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "runtime-latest.json").write_text(
        json.dumps(payload, indent=2) + "\n", encoding="utf-8"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.runtime.summary .benchmarks/<machine>/NNNN_*.json")
        return 2
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    markdown, _ = summarize(
        data.get("benchmarks", []), data.get("clfserve_load_avg", {}), data.get("machine_info", {})
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
