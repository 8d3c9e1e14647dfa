"""Micro-batching: concurrent ``/predict`` texts coalesced into one model call.

A worker task takes the first waiting text and more of those already queued, up to the
gateway's call budget. When other workers are idle too it takes only an even share (in whole
chunks of the row budget), so each idle worker starts a call: taking everything left the other
calls idle at moderate load (with 2 calls and 16 connections, the texts went into one call at a
time, on one core, while the other core waited). When the other workers are busy it still takes
everything up to the call budget, as larger calls pad less.

If the queue was idle and no model call is running, a worker dispatches at once, so a lone
request pays only a task switch. Under load it waits up to ``max_wait_s`` for the batch to fill;
texts queue up naturally while a call runs, which is where most coalescing comes from. The
gateway runs each batch (`InferenceGateway.predict_microbatch`) and owns how many calls run at
once; there are as many workers as it allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field

from clfserve.runtime import InvalidInput, ModelInfo, Prediction
from clfserve.service.errors import ModelUnavailable, Overloaded
from clfserve.service.metrics import ServiceMetrics

Answered = tuple[ModelInfo, Prediction]
Dispatch = Callable[[Sequence[str]], Awaitable[tuple[ModelInfo, list[Prediction]]]]


@dataclass
class _Job:
    text: str
    future: asyncio.Future[Answered]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(eq=False)
class MicroBatcher:
    """Coalesces `submit` calls into ``dispatch`` calls of at most ``max_size()`` texts, shared
    out in whole chunks of ``chunk_size()`` texts among the idle ones of its ``workers``."""

    dispatch: Dispatch
    max_size: Callable[[], int]
    chunk_size: Callable[[], int]
    busy: Callable[[], bool]
    metrics: ServiceMetrics
    _: KW_ONLY
    workers: int = 1
    max_wait_s: float = 0.001
    max_queue: int = 1024
    _queue: asyncio.Queue[_Job] = field(init=False, repr=False, default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(init=False, repr=False, default_factory=list)
    _idle: int = field(init=False, repr=False, default=0)
    """Workers waiting for a text."""

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    @property
    def queued(self) -> int:
        """Texts waiting for a batch."""
        return self._queue.qsize()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._worker(), name=f"clfserve-microbatch-{i}")
                for i in range(self.workers)
            ]

    async def stop(self) -> None:
        """Stop the workers; texts still queued or running fail with `ModelUnavailable`."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(ModelUnavailable("the server is shutting down"))

    async def submit(self, text: str) -> Answered:
        """Predict one text as part of whatever batch forms around it."""
        if not self._tasks:
            raise ModelUnavailable("the micro-batcher is not running")
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"{self._queue.qsize()} texts are waiting for the model; retry soon")
        future: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(text, future))
        return await future

    async def _worker(self) -> None:
        while True:
            self._idle += 1
            try:
                batch = [await self._queue.get()]
            finally:
                self._idle -= 1
            try:
                size = self._share(1 + self._queue.qsize())
                self._drain(batch, size)
                if len(batch) < size and self.max_wait_s > 0 and (len(batch) > 1 or self.busy()):
                    await self._fill(batch, size)
                live = [job for job in batch if not job.future.done()]  # drop cancelled callers
                if live:
                    await self._run(live)
            except asyncio.CancelledError:
                _fail(batch, ModelUnavailable("the server is shutting down"))
                raise

    def _share(self, waiting: int) -> int:
        """Most texts the next batch takes when ``waiting`` texts wait: split evenly between
        this worker and the idle ones, rounded up to whole chunks, at most the call budget."""
        budget = max(1, self.max_size())
        chunk = max(1, min(self.chunk_size(), budget))
        share = -(-waiting // (1 + self._idle))
        return min(budget, -(-share // chunk) * chunk)

    def _drain(self, batch: list[_Job], size: int) -> None:
        while len(batch) < size and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _fill(self, batch: list[_Job], size: int) -> None:
        # One timer for the whole wait, not one per text (`wait_for` wraps each get in a task).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_s):
                while len(batch) < size:
                    batch.append(await self._queue.get())
                    self._drain(batch, size)

    async def _run(self, batch: list[_Job]) -> None:
        now = time.perf_counter()
        for job in batch:
            self.metrics.queue_wait.observe(now - job.enqueued)
        self.metrics.batch_size.observe(len(batch))
        try:
            info, predictions = await self.dispatch([job.text for job in batch])
        except InvalidInput as exc:
            if len(batch) > 1:  # one bad text must not fail its batch-mates: retry one by one
                for job in batch:
                    await self._run([job])
                return
            _fail(batch, exc)
            return
        except Exception as exc:  # the callers report it; the worker keeps going
            _fail(batch, exc)
            return
        for job, prediction in zip(batch, predictions, strict=True):
            if not job.future.done():
                job.future.set_result((info, prediction))


def _fail(batch: list[_Job], exc: Exception) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(exc)
