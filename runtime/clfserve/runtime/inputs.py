"""Texts to model inputs: tokenized (truncation reported per text), length-sorted into chunks,
each chunk padded only to its own longest text.

Results are put back in the caller's order by index, so sorting never shows to callers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from clfserve.runtime.errors import InvalidInput, ModelLoadError


@dataclass(frozen=True)
class Encoded:
    """Token ids of a list of texts, unpadded, in the caller's order."""

    ids: list[list[int]]
    type_ids: list[list[int]]
    truncated: list[bool]

    @property
    def lengths(self) -> list[int]:
        return [len(row) for row in self.ids]


class TextEncoder:
    """Batch-encodes texts, truncating at ``max_length`` tokens (special tokens included)."""

    def __init__(self, path: Path, max_length: int) -> None:
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"{path}: not a valid tokenizer.json ({exc})") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer = tokenizer
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> Encoded:
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"item {position} is {type(text).__name__}, expected a string")
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return Encoded(
            ids=[e.ids for e in encodings],
            type_ids=[e.type_ids for e in encodings],
            truncated=[bool(e.overflowing) for e in encodings],
        )


Rows = npt.NDArray[np.intp]
"""Caller positions of the texts that go into one model call."""


@dataclass(frozen=True)
class Chunk:
    """Rows of one model call: which caller positions they hold and the padded arrays."""

    indices: Rows
    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]
    token_type_ids: npt.NDArray[np.int64]


def plan_chunks(
    lengths: Sequence[int],
    batch_size: int,
    token_budget: int | None = None,
    run_cost: float | None = None,
) -> Iterator[Rows]:
    """Caller positions grouped into length-sorted chunks of at most ``batch_size`` rows.

    With a ``token_budget`` a chunk also holds no more rows than fit ``rows x padded length <=
    token_budget`` (at least one): short texts go in big chunks, long ones in small.

    Without a ``run_cost`` the sorted texts are cut every ``batch_size`` rows (or where the
    budget ends a chunk). With one, the cuts are placed where the model has the least work:
    each chunk counts its padded tokens (``rows x`` its longest text) plus ``run_cost`` tokens
    for the `session.run` itself, and the cheapest split of the sorted texts is found exactly
    (dynamic programming, ``len(lengths) x batch_size`` steps). A long text then no longer
    pads short ones up to it when one more run costs less than that padding.
    """
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    ordered = sizes[order].tolist()
    if run_cost is None:
        bounds = _row_bounds(ordered, batch_size, token_budget)
    else:
        bounds = _cheapest_bounds(ordered, batch_size, token_budget, run_cost)
    for start, end in itertools.pairwise(bounds):
        yield order[start:end]


def _row_bounds(ordered: list[int], batch_size: int, token_budget: int | None) -> list[int]:
    bounds = [0]
    while bounds[-1] < len(ordered):
        start = bounds[-1]
        end = min(start + batch_size, len(ordered))
        if token_budget is not None:
            # Sorted ascending, so rows start..end-1 pad to the length of row end-1.
            while end - start > 1 and (end - start) * ordered[end - 1] > token_budget:
                end -= 1
        bounds.append(end)
    return bounds


def _cheapest_bounds(
    ordered: list[int], batch_size: int, token_budget: int | None, run_cost: float
) -> list[int]:
    """Chunk bounds of ``ordered`` (ascending) with the least padded tokens + runs x cost.

    ``cost[end]`` is the cheapest way to run the first ``end`` texts; its last chunk starts at
    ``first[end]``. Larger last chunks are tried first and kept on ties.
    """
    cost = [0.0] * (len(ordered) + 1)
    first = [0] * (len(ordered) + 1)
    for end in range(1, len(ordered) + 1):
        width = ordered[end - 1]
        best, best_start = math.inf, end - 1
        for start in range(max(0, end - batch_size), end):
            rows = end - start
            if token_budget is not None and rows > 1 and rows * width > token_budget:
                continue
            total = cost[start] + rows * width
            if total < best:
                best, best_start = total, start
        cost[end], first[end] = best + run_cost, best_start
    bounds = [len(ordered)]
    while bounds[-1] > 0:
        bounds.append(first[bounds[-1]])
    return bounds[::-1]


def pad_chunk(
    indices: Rows,
    ids: Sequence[Sequence[int]],
    type_ids: Sequence[Sequence[int]],
    pad_id: int,
) -> Chunk:
    """Pad the rows ``indices`` of ``ids``/``type_ids`` to the longest of them."""
    width = max(len(ids[i]) for i in indices)
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    types = np.zeros((len(indices), width), dtype=np.int64)
    for row, i in enumerate(indices):
        n = len(ids[i])
        input_ids[row, :n] = ids[i]
        mask[row, :n] = 1
        types[row, :n] = type_ids[i]
    return Chunk(indices=indices, input_ids=input_ids, attention_mask=mask, token_type_ids=types)
