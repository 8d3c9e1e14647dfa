"""`InferenceGateway`: the one path from the service to its model.

Every caller goes through it: ``/predict`` (through the micro-batcher), ``/batch_predict``, the
staleness evaluation and the warm-up. It owns

- the inference threads, and how many model calls run at once (``CLFSERVE_INFERENCE_WORKERS``;
  the ONNX Runtime threads per call are the usable CPUs split between them, so concurrent calls
  never oversubscribe the cores);
- the row budget: no `session.run` holds more than the model's ``batch_size`` rows, and no model
  call more texts than `CHUNKS_PER_CALL` such chunks. Texts are deduplicated, then sorted by
  token length and cut into chunks once, by the runtime's `plan` (where one more run costs
  less than the padding it saves, ``CLFSERVE_RUN_COST``);
- the order of waiting calls: interactive work (requests) goes before background work
  (evaluations), so an evaluation under traffic delays a request by at most one chunk, and
  after each chunk an evaluation leaves the model to waiting requests for a while (it gets at
  most a fifth of the model's time under load, all of it when the server is idle).

The model is read once per call sequence, so a request is answered wholly by one model.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from clfserve.runtime import Encoded, ModelInfo, ModelLoadError, Prediction
from clfserve.runtime.inputs import Rows
from clfserve.service.errors import ModelUnavailable
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.microbatch import MicroBatcher
from clfserve.service.model_state import Model, ModelState

T = TypeVar("T")
CHUNKS_PER_CALL = 4
"""Up to this many chunks' worth of texts (rows of the row budget) go to the model as one call (a
micro-batch, a small ``/batch_predict``): the runtime sorts them by length before cutting them
into chunks, so each `session.run` pads less than chunks of texts in arrival order would; beyond
it, each chunk is its own call."""
BACKGROUND_YIELD = 4.0
"""Background calls (evaluations) pause this many times their own duration while requests wait."""
MAX_YIELD_S = 0.25
WARMUP_TEXTS = ("warm-up", "a second, slightly longer warm-up text")


class Priority(enum.IntEnum):
    """Which waiting model call goes first: lower first."""

    INTERACTIVE = 0
    BACKGROUND = 1


class CallSlots:
    """At most ``size`` model calls at once; waiting calls are let in by priority, then age."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: Priority) -> None:
        if self.in_use < self.size and not self._waiting:
            self.in_use += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        try:
            await turn  # `release` hands its slot over by resolving this
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed over just as we gave up: pass it on
            raise

    def waiting(self, priority: Priority) -> int:
        """Calls of ``priority`` waiting for a slot."""
        return sum(1 for p, _, turn in self._waiting if p == priority and not turn.done())

    def release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)  # the slot moves to the waiter; in_use is unchanged
                return
        self.in_use -= 1


class InferenceGateway:
    """Runs model calls for every caller of the service (see the module docstring)."""

    def __init__(
        self,
        state: ModelState,
        metrics: ServiceMetrics,
        *,
        workers: int = 1,
        microbatch: bool = True,
        max_wait_s: float = 0.001,
        max_queue: int = 1024,
    ) -> None:
        self.state = state
        self.workers = workers
        self._metrics = metrics
        self._slots = CallSlots(workers)
        self._executor: ThreadPoolExecutor | None = None
        self._batcher = (
            MicroBatcher(
                self.predict_microbatch,
                self.call_budget,
                self.row_budget,
                self.busy,
                metrics,
                workers=workers,
                max_wait_s=max_wait_s,
                max_queue=max_queue,
            )
            if microbatch
            else None
        )

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._executor is not None

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="clfserve-infer")
        if self._batcher is not None:
            self._batcher.start()

    async def stop(self) -> None:
        """Stop taking calls; queued texts get `ModelUnavailable` (uvicorn drains first)."""
        if self._batcher is not None:
            await self._batcher.stop()
        if self._executor is not None:
            # Never block the loop: a model call still running finishes in its thread.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def vet(self, model: Model, priority: Priority = Priority.BACKGROUND) -> list[str]:
        """Warm ``model`` up and have it reproduce its reference answers, through the gateway
        (a candidate loads next to the serving model and must not take the cores from it).
        Returns what differs; empty means it may serve."""
        await self._call(priority, "warmup", model.predict, list(WARMUP_TEXTS))
        return await self._call(priority, "warmup", model.check_references)

    def swap(self, model: Model) -> Model | None:
        """Make ``model`` the one every new call gets; returns the one it replaces. Calls
        already running finish on the old model, which is freed when the last one ends."""
        previous = self.state.model
        self.state.ready(model)
        return previous

    async def serve(self, model: Model) -> None:
        """Vet ``model`` (at interactive priority: nothing else is serving yet) and serve it;
        `ModelLoadError` when it does not reproduce its reference answers."""
        problems = await self.vet(model, Priority.INTERACTIVE)
        if problems:
            raise ModelLoadError(
                f"the model does not reproduce its reference answers: {'; '.join(problems)}"
            )
        self.swap(model)

    # -- what callers use ---------------------------------------------------------------------

    def current(self) -> ModelInfo:
        """The serving model's identity, or `ModelUnavailable` saying why there is none."""
        return self.state.require().info

    def busy_calls(self) -> int:
        """Model calls running now."""
        return self._slots.in_use

    def busy(self) -> bool:
        """Whether a model call is running or waiting."""
        return self.busy_calls() > 0

    def row_budget(self) -> int:
        """Most rows of one `session.run`: the serving model's ``batch_size``."""
        model = self.state.model
        return model.batch_size if model is not None else 1

    def call_budget(self) -> int:
        """Most texts of one model call, and of one micro-batch: `CHUNKS_PER_CALL` chunks."""
        return self.row_budget() * CHUNKS_PER_CALL

    async def predict(self, text: str) -> tuple[ModelInfo, Prediction]:
        """One text, coalesced with concurrent ones when micro-batching is on."""
        if self._batcher is not None:
            return await self._batcher.submit(text)
        info, (prediction,) = await self.predict_texts([text], kind="single")
        return info, prediction

    async def predict_microbatch(self, texts: Sequence[str]) -> tuple[ModelInfo, list[Prediction]]:
        """A micro-batch: one model call of up to `CHUNKS_PER_CALL` chunks (the micro-batcher
        already shares waiting texts among the calls that may run)."""
        return await self.predict_texts(texts, kind="microbatch", call_chunks=CHUNKS_PER_CALL)

    async def predict_texts(
        self,
        texts: Sequence[str],
        priority: Priority = Priority.INTERACTIVE,
        kind: str = "batch",
        *,
        call_chunks: int = 1,
    ) -> tuple[ModelInfo, list[Prediction]]:
        """Every text, answered by one model, in the caller's order.

        Duplicates run once. Up to ``call_chunks`` chunks this is one model call, which the
        runtime length-sorts and chunks; more texts are tokenized in one call, planned into
        length-sorted chunks by the runtime, and each chunk is its own call, so other callers'
        calls get the model between chunks. A request's chunks run in as many lanes as calls
        may run at once (each lane queues for its next chunk like any caller, so a request
        uses every idle call without holding them against later ones); an evaluation
        (background) always goes chunk by chunk in one lane, leaving the other calls to
        requests.
        """
        model = self.state.require()
        unique = list(dict.fromkeys(texts))
        if len(unique) <= model.batch_size * call_chunks:
            predictions = await self._call(priority, kind, model.predict, unique)
        else:
            encoded, plan = await self._call(priority, "encode", _encode_and_plan, model, unique)
            found: dict[int, Prediction] = {}
            chunks = iter(plan)

            async def lane() -> None:
                try:
                    for rows in chunks:  # shared: each lane takes the next chunk when free
                        started = time.perf_counter()
                        answered = await self._call(
                            priority, kind, model.predict_rows, encoded, rows
                        )
                        found.update(zip(rows.tolist(), answered, strict=True))
                        if priority is Priority.BACKGROUND:
                            await self._make_way(time.perf_counter() - started)
                except BaseException:
                    for _ in chunks:  # the other lanes stop after their current chunk
                        pass
                    raise

            lanes = self.workers if priority is Priority.INTERACTIVE else 1
            await asyncio.gather(*(lane() for _ in range(min(lanes, len(plan)))))
            predictions = [found[i] for i in range(len(unique))]
        by_text = dict(zip(unique, predictions, strict=True))
        return model.info, [by_text[text] for text in texts]

    async def _make_way(self, took_s: float) -> None:
        """After a background call, leave the model to requests for `BACKGROUND_YIELD` times as
        long when any are waiting: under load an evaluation gets at most a fifth of the model's
        time instead of half, and on an idle server it runs at full speed."""
        if self._interactive_waiting():
            await asyncio.sleep(min(BACKGROUND_YIELD * took_s, MAX_YIELD_S))

    def _interactive_waiting(self) -> bool:
        queued = self._batcher.queued if self._batcher is not None else 0
        return queued > 0 or self._slots.waiting(Priority.INTERACTIVE) > 0

    # -- the one place a model call happens ---------------------------------------------------

    async def _call(self, priority: Priority, kind: str, fn: Callable[..., T], *args: object) -> T:
        executor = self._executor
        if executor is None:
            raise ModelUnavailable("the inference pool is not running")
        await self._slots.acquire(priority)
        started = time.perf_counter()
        try:
            future: Future[T] = executor.submit(fn, *args)
        except RuntimeError:  # shut down between the check and the submit
            self._slots.release()
            raise ModelUnavailable("the server is shutting down") from None

        def finished(_: Future[T]) -> None:  # a cancelled caller's call still holds its slot
            with contextlib.suppress(RuntimeError):  # the loop closed while the call ran
                loop.call_soon_threadsafe(self._finish, kind, started)

        loop = asyncio.get_running_loop()
        future.add_done_callback(finished)
        return await asyncio.wrap_future(future)

    def _finish(self, kind: str, started: float) -> None:
        self._slots.release()
        self._metrics.inference.labels(kind).observe(time.perf_counter() - started)


def _encode_and_plan(model: Model, texts: Sequence[str]) -> tuple[Encoded, list[Rows]]:
    """Tokenize ``texts`` and plan their chunks, off the event loop (planning a large input by
    run cost takes milliseconds)."""
    encoded = model.encode(texts)
    return encoded, model.plan(encoded)
