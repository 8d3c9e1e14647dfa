"""`DriftWindow`: the last N answers of the serving model, binned only when a check asks.

The answer service calls `DriftWindow.observe` with every fresh model answer (cache hits are
not counted again: within the cache TTL the window sees each distinct text about once, as the
reference saw each validation text once). Observing appends the answers to a bounded deque (the
oldest fall out), so a request pays one C-level ``extend``; `snapshot` copies the window (on
the loop) and bins it (`clfserve.evaluation.drift.profile`) in a thread, when a drift check runs.
Observing and copying run on the event loop, so nothing is locked.

Answers of a model other than the one serving now (calls that were running during a swap) are
left out; answers of a newly serving model restart the window.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from clfserve.evaluation.drift import Binning, Profile, profile
from clfserve.runtime import ModelInfo, Prediction


class DriftWindow:
    """The last ``size`` answers of the model ``serving()`` returns."""

    def __init__(self, size: int, serving: Callable[[], ModelInfo | None]) -> None:
        self.size = size
        self._serving = serving
        self.model: ModelInfo | None = None
        self.binning: Binning | None = None
        self._recent: deque[Prediction] = deque(maxlen=size)

    def observe(self, info: ModelInfo, predictions: Sequence[Prediction]) -> None:
        """Keep ``predictions``, fresh answers of the model ``info``."""
        if info is self.model or self._follow(info):
            self._recent.extend(predictions)

    def reset(self, info: ModelInfo | None) -> None:
        """Start an empty window for the model ``info`` (None: no model)."""
        self.model = info
        self.binning = None if info is None else Binning.of(info.labels, info.max_length)
        self._recent = deque(maxlen=self.size)

    async def snapshot(self) -> Profile | None:
        """The window binned now (None before any model)."""
        if self.binning is None:
            return None
        return await asyncio.to_thread(profile, list(self._recent), self.binning)

    def _follow(self, info: ModelInfo) -> bool:
        """Whether ``info`` is the serving model (then the window restarts for it)."""
        if info is not self._serving():
            return False
        self.reset(info)
        return True

    def __len__(self) -> int:
        return len(self._recent)
