"""The PyTorch eager baseline: the fine-tuned checkpoint, run the way a user would run it.

Texts go in chunks of 32 in the caller's order (no sorting), each chunk tokenized by the Hugging
Face fast tokenizer, padded to its longest text and truncated at the artefact's ``max_length``
(so both sides see the same tokens), then one forward pass under `torch.inference_mode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHUNK = 32


class EagerClassifier:
    """``predict(texts) -> probabilities`` with transformers + torch on the CPU."""

    def __init__(self, checkpoint: Path, max_length: int, threads: int) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint, use_fast=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
        self.max_length = max_length
        self.threads = threads

    def predict(self, texts: Sequence[str]) -> list[Any]:
        out = []
        with self._torch.inference_mode():
            for start in range(0, len(texts), CHUNK):
                batch = self.tokenizer(
                    list(texts[start : start + CHUNK]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits
                out.extend(self._torch.softmax(logits, dim=-1).numpy())
        return out


def torch_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
