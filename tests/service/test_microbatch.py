"""Micro-batching: coalescing under load, no waiting when idle, the right answer to each caller."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import pytest
from service_fakes import FakePredictor, fake_prediction

from clfserve.runtime import InvalidInput, Prediction
from clfserve.service.batcher import MicroBatcher
from clfserve.service.errors import ModelUnavailable, Overloaded
from clfserve.service.metrics import Metrics

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
async def started() -> AsyncIterator[list[MicroBatcher]]:
    """Collects batchers made by a test and stops them afterwards."""
    batchers: list[MicroBatcher] = []
    yield batchers
    for batcher in batchers:
        await batcher.stop()


async def make(
    started: list[MicroBatcher], predictor: FakePredictor, **options: float
) -> MicroBatcher:
    batcher = MicroBatcher(predictor.predict, Metrics(), **options)  # type: ignore[arg-type]
    await batcher.start()
    started.append(batcher)
    return batcher


async def test_lone_request_is_dispatched_at_once(started: list[MicroBatcher]) -> None:
    """A huge max_wait must not matter when the queue is idle: no other work means no wait."""
    fake = FakePredictor()
    batcher = await make(started, fake, max_wait=30.0)
    for text in ("one", "two", "three"):
        prediction = await asyncio.wait_for(batcher.submit(text), timeout=10)
        assert prediction == fake_prediction(text)
    assert fake.calls == [["one"], ["two"], ["three"]]


async def test_concurrent_requests_coalesce_while_a_batch_runs(
    started: list[MicroBatcher],
) -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    batcher = await make(started, fake, max_size=8, max_wait=0.0)
    first = asyncio.create_task(batcher.submit("first"))
    await asyncio.sleep(0.05)  # "first" is now running (blocked on the gate)
    rest = [asyncio.create_task(batcher.submit(f"text {i}")) for i in range(20)]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *rest), timeout=10)
    assert results == [fake_prediction("first")] + [fake_prediction(f"text {i}") for i in range(20)]
    assert fake.calls[0] == ["first"]
    assert [len(call) for call in fake.calls[1:]] == [8, 8, 4]


async def test_under_load_max_wait_fills_the_batch(started: list[MicroBatcher]) -> None:
    fake = FakePredictor()
    batcher = await make(started, fake, max_size=4, max_wait=5.0)
    # Two texts queued together signal load: the worker waits (up to 5 s) for a full batch.
    tasks = [asyncio.create_task(batcher.submit(f"t{i}")) for i in range(2)]
    await asyncio.sleep(0.05)
    tasks += [asyncio.create_task(batcher.submit(f"t{i}")) for i in range(2, 4)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert fake.calls == [["t0", "t1", "t2", "t3"]]


async def test_many_distinct_concurrent_texts_each_get_their_own_answer(
    started: list[MicroBatcher],
) -> None:
    fake = FakePredictor()
    batcher = await make(started, fake, max_size=16, max_wait=0.001, workers=2)
    texts = [f"review number {i} " + "good " * (i % 3) for i in range(200)]
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(t) for t in texts)), timeout=20
    )
    assert results == [fake_prediction(t) for t in texts]
    assert sum(len(call) for call in fake.calls) == len(texts)
    assert max(len(call) for call in fake.calls) <= 16


async def test_same_text_in_one_batch_runs_once(started: list[MicroBatcher]) -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    batcher = await make(started, fake, max_size=8, max_wait=0.0)
    blocker = asyncio.create_task(batcher.submit("blocker"))
    await asyncio.sleep(0.05)
    dupes = [asyncio.create_task(batcher.submit("same")) for _ in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(asyncio.gather(blocker, *dupes), timeout=10)
    assert fake.calls == [["blocker"], ["same"]]


async def test_one_bad_text_does_not_fail_its_batch_mates(started: list[MicroBatcher]) -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate, fail_on="bad")
    batcher = await make(started, fake, max_size=8, max_wait=0.0)
    blocker = asyncio.create_task(batcher.submit("blocker"))
    await asyncio.sleep(0.05)
    tasks = [asyncio.create_task(batcher.submit(t)) for t in ("ok 1", "bad", "ok 2")]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.wait_for(
        asyncio.gather(blocker, *tasks, return_exceptions=True), timeout=10
    )
    assert results[1] == fake_prediction("ok 1")
    assert isinstance(results[2], InvalidInput)
    assert results[3] == fake_prediction("ok 2")


async def test_unexpected_errors_reach_the_callers_and_the_worker_survives(
    started: list[MicroBatcher],
) -> None:
    calls = 0

    def flaky(texts: Sequence[str]) -> list[Prediction]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return [fake_prediction(t) for t in texts]

    batcher = MicroBatcher(flaky, Metrics())
    await batcher.start()
    started.append(batcher)
    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(batcher.submit("a"), timeout=10)
    assert await asyncio.wait_for(batcher.submit("b"), timeout=10) == fake_prediction("b")


async def test_cancelled_callers_are_skipped(started: list[MicroBatcher]) -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    batcher = await make(started, fake, max_size=8, max_wait=0.0)
    blocker = asyncio.create_task(batcher.submit("blocker"))
    await asyncio.sleep(0.05)
    gone = asyncio.create_task(batcher.submit("gone"))
    kept = asyncio.create_task(batcher.submit("kept"))
    await asyncio.sleep(0.05)
    gone.cancel()
    gate.set()
    assert await asyncio.wait_for(kept, timeout=10) == fake_prediction("kept")
    await blocker
    assert ["gone"] not in fake.calls
    assert all("gone" not in call for call in fake.calls)


async def test_full_queue_is_overloaded(started: list[MicroBatcher]) -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    batcher = await make(started, fake, max_size=1, max_wait=0.0, max_queue=2)
    running = asyncio.create_task(batcher.submit("running"))
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(batcher.submit(f"q{i}")) for i in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):
        await batcher.submit("one too many")
    gate.set()
    await asyncio.wait_for(asyncio.gather(running, *queued), timeout=10)


async def test_stop_answers_running_and_queued_texts_with_503() -> None:
    gate = threading.Event()
    fake = FakePredictor(gate=gate)
    batcher = MicroBatcher(fake.predict, Metrics(), max_size=1, max_wait=0.0)
    await batcher.start()
    running = asyncio.create_task(batcher.submit("running"))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(batcher.submit("queued"))
    await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(batcher.stop(), timeout=10)  # must not wait for the model
    finally:
        gate.set()
    for task in (running, queued):
        with pytest.raises(ModelUnavailable):
            await asyncio.wait_for(task, timeout=10)
    with pytest.raises(ModelUnavailable):
        await batcher.submit("after stop")
