"""Text to token ids with the `tokenizers` fast tokenizer, truncation reported per text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
