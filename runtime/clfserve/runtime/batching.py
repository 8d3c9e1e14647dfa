"""Group texts into padded chunks that waste little compute.

Texts are sorted by token length and cut into chunks of at most ``batch_size``; each chunk is
padded only to its own longest text. Results are put back in the caller's order by index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Chunk:
    """Rows of one model call: which caller positions they hold and the padded arrays."""

    indices: npt.NDArray[np.intp]
    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]
    token_type_ids: npt.NDArray[np.int64]


def plan_chunks(lengths: Sequence[int], batch_size: int) -> Iterator[npt.NDArray[np.intp]]:
    """Caller positions grouped into length-sorted chunks of at most ``batch_size``."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_chunk(
    indices: npt.NDArray[np.intp],
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
