"""Micro-batching: concurrent single-text requests coalesced into one runtime call, off the loop.

A worker task takes the first waiting text and everything else already queued (up to
``max_size``). If the queue was idle it dispatches at once, so a lone request pays only a task
switch. Under load (other texts were queued too, or another batch is running) it waits up to
``max_wait`` for the batch to fill. Texts queue up naturally while a batch runs, which is where
most coalescing comes from. The runtime sorts each batch by length and pads per chunk.

Runtime calls run in a thread pool of ``workers`` threads; `/batch_predict` uses the same pool
through `run`, so the model never runs more calls at once than configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from clfserve.runtime import InvalidInput, Prediction
from clfserve.service.errors import ModelUnavailable, Overloaded
from clfserve.service.metrics import Metrics

log = logging.getLogger(__name__)

PredictFn = Callable[[Sequence[str]], list[Prediction]]


@dataclass
class _Job:
    text: str
    future: asyncio.Future[Prediction]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Coalesces `submit` calls into runtime calls of at most ``max_size`` texts."""

    def __init__(
        self,
        predict: PredictFn,
        metrics: Metrics,
        *,
        max_size: int = 32,
        max_wait: float = 0.001,
        workers: int = 1,
        max_queue: int = 1024,
    ) -> None:
        self._predict = predict
        self._metrics = metrics
        self.max_size = max_size
        self.max_wait = max_wait
        self.workers = workers
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        if self._tasks:
            return
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="clfserve-infer")
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"clfserve-batcher-{i}")
            for i in range(self.workers)
        ]

    async def stop(self) -> None:
        """Stop the workers; texts queued or running get a 503 (uvicorn drains requests first)."""
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
        if self._executor is not None:
            # Never block the loop: a runtime call still running finishes in its thread.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, text: str) -> Prediction:
        """Predict one text as part of whatever batch forms around it."""
        if not self._tasks:
            raise ModelUnavailable("the micro-batcher is not running")
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded(f"{self._queue.qsize()} texts are waiting for the model; retry soon")
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(text, future))
        return await future

    async def run(self, texts: Sequence[str], kind: str = "batch") -> list[Prediction]:
        """One runtime call for ``texts`` in the inference pool (used by /batch_predict)."""
        if self._executor is None:
            raise ModelUnavailable("the inference pool is not running")
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._in_flight += 1
        try:
            return await loop.run_in_executor(self._executor, self._predict, texts)
        finally:
            self._in_flight -= 1
            self._metrics.inference.labels(kind).observe(time.perf_counter() - started)

    # -- workers ----------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            batch = [await self._queue.get()]
            try:
                self._drain(batch)
                if (
                    len(batch) < self.max_size
                    and self.max_wait > 0
                    and (len(batch) > 1 or self._in_flight > 0)
                ):
                    await self._fill(batch)
                live = [job for job in batch if not job.future.done()]  # drop cancelled callers
                if live:
                    await self._dispatch(live)
            except asyncio.CancelledError:
                _fail(batch, ModelUnavailable("the server is shutting down"))
                raise

    def _drain(self, batch: list[_Job]) -> None:
        while len(batch) < self.max_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _fill(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return
            self._drain(batch)

    async def _dispatch(self, batch: list[_Job]) -> None:
        now = time.perf_counter()
        for job in batch:
            self._metrics.queue_wait.observe(now - job.enqueued)
        self._metrics.batch_size.observe(len(batch))
        unique = list(dict.fromkeys(job.text for job in batch))  # same text twice: run it once
        try:
            predictions = await self.run(unique, kind="microbatch")
        except InvalidInput as exc:
            if len(batch) > 1:  # one bad text must not fail its batch-mates: retry one by one
                for job in batch:
                    await self._dispatch_one(job)
                return
            _fail(batch, exc)
            return
        except Exception as exc:  # the callers report it; the worker keeps going
            _fail(batch, exc)
            return
        by_text = dict(zip(unique, predictions, strict=True))
        for job in batch:
            if not job.future.done():
                job.future.set_result(by_text[job.text])

    async def _dispatch_one(self, job: _Job) -> None:
        try:
            (prediction,) = await self.run([job.text], kind="microbatch")
        except Exception as exc:
            _fail([job], exc)
            return
        if not job.future.done():
            job.future.set_result(prediction)


def _fail(batch: list[_Job], exc: Exception) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(exc)
