"""Model inputs for texts, tokenized and padded exactly as the runtime does it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from clfserve.runtime.inputs import TextEncoder, pad_chunk, plan_chunks
from clfserve.runtime.manifest import Manifest

Feed = Mapping[str, npt.NDArray[np.int64]]


def text_feeds(
    folder: Path, manifest: Manifest, texts: Sequence[str], batch_size: int
) -> Iterator[Feed]:
    """Length-sorted batches of ``texts`` as ``input_ids``/``attention_mask``/``token_type_ids``
    (a graph may declare fewer; callers keep the ones it asks for)."""
    encoded = TextEncoder(folder / manifest.tokenizer.file, manifest.max_length).encode(texts)
    for rows in plan_chunks(encoded.lengths, batch_size):
        chunk = pad_chunk(rows, encoded.ids, encoded.type_ids, manifest.pad_token_id)
        yield {
            "input_ids": chunk.input_ids,
            "attention_mask": chunk.attention_mask,
            "token_type_ids": chunk.token_type_ids,
        }
