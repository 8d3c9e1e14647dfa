"""Micro-batching: coalescing under load, no waiting when idle, the right answer to each caller.

Most tests drive the micro-batcher as the service does, through `InferenceGateway.predict`
(batches of at most the model's batch size, deduplicated, run in the gateway's threads); the
rest drive a bare `MicroBatcher` with a dispatch function of their own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from service_fakes import FakePredictor, fake_info, fake_prediction

from clfserve.runtime import InvalidInput, ModelInfo, Prediction
from clfserve.service.errors import ModelUnavailable, Overloaded
from clfserve.service.gateway import InferenceGateway
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.microbatch import MicroBatcher
from clfserve.service.model_state import ModelState

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
async def started() -> AsyncIterator[list[InferenceGateway | MicroBatcher]]:
    """Collects gateways and batchers made by a test and stops them afterwards."""
    running: list[InferenceGateway | MicroBatcher] = []
    yield running
    for item in running:
        await item.stop()


async def make(
    started: list[InferenceGateway | MicroBatcher],
    model: FakePredictor,
    *,
    workers: int = 1,
    max_wait_s: float = 0.001,
    max_queue: int = 1024,
) -> InferenceGateway:
    """A started gateway, micro-batching on, serving ``model`` (not warmed: calls stay clean)."""
    gateway = InferenceGateway(
        ModelState(uri="fake"),
        ServiceMetrics(),
        workers=workers,
        microbatch=True,
        max_wait_s=max_wait_s,
        max_queue=max_queue,
    )
    await gateway.start()
    gateway.state.ready(model)
    started.append(gateway)
    return gateway


async def predict(gateway: InferenceGateway, text: str) -> Prediction:
    info, prediction = await gateway.predict(text)
    assert info == gateway.current()
    return prediction


@dataclass
class Held:
    """A gateway whose model is busy with one text until ``gate`` is set: what is sent now
    queues behind it."""

    gate: threading.Event
    model: FakePredictor
    gateway: InferenceGateway
    running: asyncio.Task[Prediction]


async def held(
    started: list[InferenceGateway | MicroBatcher],
    first: str,
    *,
    batch_size: int,
    fail_on: str | None = None,
    max_queue: int = 1024,
) -> Held:
    """A gateway (no max wait) whose model has taken ``first`` and waits for the gate."""
    gate = threading.Event()
    fake = FakePredictor(gate=gate, batch_size=batch_size, fail_on=fail_on)
    gateway = await make(started, fake, max_wait_s=0.0, max_queue=max_queue)
    running = asyncio.create_task(predict(gateway, first))
    await asyncio.sleep(0.05)
    return Held(gate, fake, gateway, running)


async def test_lone_request_is_dispatched_at_once(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    """A huge max_wait must not matter when the queue is idle: no other work means no wait."""
    fake = FakePredictor()
    gateway = await make(started, fake, max_wait_s=30.0)
    for text in ("one", "two", "three"):
        prediction = await asyncio.wait_for(predict(gateway, text), timeout=10)
        assert prediction == fake_prediction(text)
    assert fake.calls == [["one"], ["two"], ["three"]]


async def test_concurrent_requests_coalesce_while_a_batch_runs(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    h = await held(started, "first", batch_size=8)  # "first" is now running (blocked)
    rest = [asyncio.create_task(predict(h.gateway, f"text {i}")) for i in range(20)]
    await asyncio.sleep(0.05)
    h.gate.set()
    results = await asyncio.wait_for(asyncio.gather(h.running, *rest), timeout=10)
    assert results == [fake_prediction("first")] + [fake_prediction(f"text {i}") for i in range(20)]
    assert h.model.calls[0] == ["first"]
    assert [len(call) for call in h.model.calls[1:]] == [8, 8, 4]


@dataclass
class GatedDispatch:
    """A micro-batcher's ``dispatch`` that records each batch and answers once ``gate`` is set."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    batches: list[list[str]] = field(default_factory=list)

    async def __call__(self, texts: Sequence[str]) -> tuple[ModelInfo, list[Prediction]]:
        self.batches.append(list(texts))
        await self.gate.wait()
        return fake_info(), [fake_prediction(t) for t in texts]


@pytest.mark.parametrize(("waiting", "calls"), [(16, [8, 8]), (20, [16, 4]), (5, [5])])
async def test_waiting_texts_are_shared_among_the_calls_that_may_run(
    started: list[InferenceGateway | MicroBatcher], waiting: int, calls: list[int]
) -> None:
    """With 2 calls at once, 16 waiting texts make two calls of 8 (one chunk each), not one
    call of 16 that leaves the second call's core idle; 20 make 16 + 4, not 20 + 0."""
    dispatch = GatedDispatch()
    batcher = MicroBatcher(
        dispatch, lambda: 32, lambda: 8, lambda: True, ServiceMetrics(), workers=2, max_wait_s=0
    )
    batcher.start()
    started.append(batcher)
    await asyncio.sleep(0.01)  # both workers wait for texts
    texts = [f"t{i}" for i in range(waiting)]
    tasks = [asyncio.create_task(batcher.submit(t)) for t in texts]
    await asyncio.sleep(0.05)
    dispatch.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert [prediction for _, prediction in results] == [fake_prediction(t) for t in texts]
    assert sorted(len(batch) for batch in dispatch.batches) == sorted(calls)
    assert sorted(t for batch in dispatch.batches for t in batch) == sorted(texts)


@pytest.mark.parametrize(
    ("max_wait_s", "late", "calls"),
    [
        (5.0, 2, [["t0", "t1", "t2", "t3"]]),  # two more arrive: full, it goes at once
        (0.02, 0, [["t0", "t1"]]),  # none arrive: it goes when the wait ends
    ],
)
async def test_under_load_a_forming_batch_waits_to_fill(
    started: list[InferenceGateway | MicroBatcher],
    max_wait_s: float,
    late: int,
    calls: list[list[str]],
) -> None:
    fake = FakePredictor(batch_size=4)
    gateway = await make(started, fake, max_wait_s=max_wait_s)
    # Two texts queued together signal load: the worker waits for a full batch of 4.
    tasks = [asyncio.create_task(predict(gateway, f"t{i}")) for i in range(2)]
    await asyncio.sleep(0.05)
    tasks += [asyncio.create_task(predict(gateway, f"t{i}")) for i in range(2, 2 + late)]
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert results == [fake_prediction(f"t{i}") for i in range(2 + late)]
    assert fake.calls == calls


async def test_many_distinct_concurrent_texts_each_get_their_own_answer(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    fake = FakePredictor(batch_size=16)
    gateway = await make(started, fake, max_wait_s=0.001, workers=2)
    texts = [f"review number {i} " + "good " * (i % 3) for i in range(200)]
    results = await asyncio.wait_for(
        asyncio.gather(*(predict(gateway, t) for t in texts)), timeout=20
    )
    assert results == [fake_prediction(t) for t in texts]
    assert sum(len(call) for call in fake.calls) == len(texts)
    assert max(len(call) for call in fake.calls) <= 16


async def test_same_text_in_one_batch_runs_once(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    h = await held(started, "blocker", batch_size=8)
    dupes = [asyncio.create_task(predict(h.gateway, "same")) for _ in range(5)]
    await asyncio.sleep(0.05)
    h.gate.set()
    results = await asyncio.wait_for(asyncio.gather(h.running, *dupes), timeout=10)
    assert results[1:] == [fake_prediction("same")] * 5
    assert h.model.calls == [["blocker"], ["same"]]


async def test_one_bad_text_does_not_fail_its_batch_mates(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    h = await held(started, "blocker", fail_on="bad", batch_size=8)
    tasks = [asyncio.create_task(predict(h.gateway, t)) for t in ("ok 1", "bad", "ok 2")]
    await asyncio.sleep(0.05)
    h.gate.set()
    results = await asyncio.wait_for(
        asyncio.gather(h.running, *tasks, return_exceptions=True), timeout=10
    )
    assert results[1] == fake_prediction("ok 1")
    assert isinstance(results[2], InvalidInput)
    assert results[3] == fake_prediction("ok 2")
    # The batch of three failed as a whole, then each text was retried on its own.
    assert sorted(h.model.calls[1]) == ["bad", "ok 1", "ok 2"]
    assert sorted(h.model.calls[2:]) == [["bad"], ["ok 1"], ["ok 2"]]


async def test_unexpected_errors_reach_the_callers_and_the_worker_survives(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    calls = 0
    info = fake_info()

    async def flaky(texts: Sequence[str]) -> tuple[ModelInfo, list[Prediction]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return info, [fake_prediction(t) for t in texts]

    batcher = MicroBatcher(flaky, lambda: 8, lambda: 8, lambda: False, ServiceMetrics())
    batcher.start()
    started.append(batcher)
    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(batcher.submit("a"), timeout=10)
    assert await asyncio.wait_for(batcher.submit("b"), timeout=10) == (info, fake_prediction("b"))


async def test_batches_follow_the_current_row_budget(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    """``max_size`` is asked for each batch (it follows the serving model's batch size)."""
    budget = 2
    dispatch = GatedDispatch()
    batcher = MicroBatcher(
        dispatch, lambda: budget, lambda: 1, lambda: False, ServiceMetrics(), max_wait_s=0
    )
    batcher.start()
    started.append(batcher)
    first = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(batcher.submit(f"q{i}")) for i in range(5)]
    await asyncio.sleep(0.05)
    budget = 3
    dispatch.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *queued), timeout=10)
    assert [len(texts) for texts in dispatch.batches] == [1, 3, 2]


async def test_cancelled_callers_are_skipped(
    started: list[InferenceGateway | MicroBatcher],
) -> None:
    h = await held(started, "blocker", batch_size=8)
    gone = asyncio.create_task(predict(h.gateway, "gone"))
    kept = asyncio.create_task(predict(h.gateway, "kept"))
    await asyncio.sleep(0.05)
    gone.cancel()
    h.gate.set()
    assert await asyncio.wait_for(kept, timeout=10) == fake_prediction("kept")
    await h.running
    assert h.model.calls == [["blocker"], ["kept"]]


async def test_full_queue_is_overloaded(started: list[InferenceGateway | MicroBatcher]) -> None:
    h = await held(started, "running", max_queue=2, batch_size=1)
    queued = [asyncio.create_task(predict(h.gateway, f"q{i}")) for i in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded) as caught:
        await h.gateway.predict("one too many")
    assert caught.value.retry_after_s == 1
    h.gate.set()
    await asyncio.wait_for(asyncio.gather(h.running, *queued), timeout=10)


async def test_submit_before_start_is_unavailable() -> None:
    async def never(texts: Sequence[str]) -> tuple[ModelInfo, list[Prediction]]:
        raise AssertionError("dispatched without running")

    batcher = MicroBatcher(never, lambda: 8, lambda: 8, lambda: False, ServiceMetrics())
    assert batcher.running is False
    with pytest.raises(ModelUnavailable) as caught:
        await batcher.submit("x")
    assert caught.value.retry_after_s == 5


async def test_stop_answers_running_and_queued_texts_with_503() -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate, batch_size=1)
    gateway = InferenceGateway(ModelState(uri="fake"), ServiceMetrics(), max_wait_s=0.0)
    await gateway.start()
    gateway.state.ready(fake)
    running = asyncio.create_task(gateway.predict("running"))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(gateway.predict("queued"))
    await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(gateway.stop(), timeout=10)  # must not wait for the model
    finally:
        gate.set()
    for task in (running, queued):
        with pytest.raises(ModelUnavailable):
            await asyncio.wait_for(task, timeout=10)
    with pytest.raises(ModelUnavailable):
        await gateway.predict("after stop")
    assert fake.calls in ([], [["running"]])  # the running call may finish in its thread
