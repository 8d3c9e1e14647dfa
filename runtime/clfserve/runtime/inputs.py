"""Texts to model inputs: tokenized (truncation reported per text), length-sorted into chunks,
each chunk padded only to its own longest text.

Results are put back in the caller's order by index, so sorting never shows to callers.
"""

from __future__ import annotations

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
    lengths: Sequence[int], batch_size: int, token_budget: int | None = None
) -> Iterator[Rows]:
    """Caller positions grouped into length-sorted chunks of at most ``batch_size`` rows.

    With a ``token_budget`` a chunk also holds no more rows than fit ``rows x padded length <=
    token_budget`` (at least one): short texts go in big chunks, long ones in small.
    """
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    start = 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        if token_budget is not None:
            # Sorted ascending, so rows start..end-1 pad to the length of row end-1.
            while end - start > 1 and (end - start) * sizes[order[end - 1]] > token_budget:
                end -= 1
        yield order[start:end]
        start = end


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
