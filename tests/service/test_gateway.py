"""`InferenceGateway`: the one path to the model; call slots let requests before evaluations,
the row budget is the model's batch size, and one request is answered wholly by one model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from service_fakes import FakePredictor, fake_info, fake_prediction

from clfserve.runtime import InvalidInput
from clfserve.service.errors import ModelUnavailable
from clfserve.service.gateway import (
    CHUNKS_PER_CALL,
    WARMUP_TEXTS,
    CallSlots,
    InferenceGateway,
    Priority,
)
from clfserve.service.metrics import ServiceMetrics
from clfserve.service.model_state import ModelState, ModelStatus

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def settle() -> None:
    """Let every ready task run up to its next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


# -- CallSlots ------------------------------------------------------------------------------


async def one_slot_taken(priority: Priority = Priority.INTERACTIVE) -> CallSlots:
    slots = CallSlots(1)
    await slots.acquire(priority)
    return slots


async def waiting(
    slots: CallSlots, priority: Priority = Priority.INTERACTIVE
) -> asyncio.Task[None]:
    """A task that has asked ``slots`` for a slot and is waiting for it."""
    task = asyncio.create_task(slots.acquire(priority))
    await settle()
    return task


async def test_a_background_waiter_queued_first_gets_the_slot_after_an_interactive_one() -> None:
    slots = await one_slot_taken()
    order: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await slots.acquire(priority)
        order.append(name)

    background = asyncio.create_task(wait("background", Priority.BACKGROUND))
    await settle()
    interactive = asyncio.create_task(wait("interactive", Priority.INTERACTIVE))
    await settle()
    assert order == []
    slots.release()
    await settle()
    assert order == ["interactive"]
    assert slots.in_use == 1
    slots.release()
    await asyncio.wait_for(asyncio.gather(background, interactive), timeout=10)
    assert order == ["interactive", "background"]
    slots.release()
    assert slots.in_use == 0


async def test_waiters_of_one_priority_go_in_arrival_order() -> None:
    slots = await one_slot_taken(Priority.BACKGROUND)
    order: list[int] = []

    async def wait(n: int) -> None:
        await slots.acquire(Priority.BACKGROUND)
        order.append(n)
        slots.release()

    tasks = []
    for n in range(4):
        tasks.append(asyncio.create_task(wait(n)))
        await settle()
    slots.release()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert order == [0, 1, 2, 3]
    assert slots.in_use == 0


async def test_size_slots_are_taken_without_waiting_and_the_next_waits() -> None:
    slots = CallSlots(2)
    await asyncio.wait_for(slots.acquire(Priority.BACKGROUND), timeout=1)
    await asyncio.wait_for(slots.acquire(Priority.BACKGROUND), timeout=1)
    assert slots.in_use == 2
    third = await waiting(slots)
    assert not third.done()
    slots.release()
    await asyncio.wait_for(third, timeout=10)
    assert slots.in_use == 2


async def test_a_cancelled_waiter_does_not_take_a_slot_with_it() -> None:
    slots = await one_slot_taken()
    gone = await waiting(slots)
    gone.cancel()
    await settle()
    slots.release()
    assert slots.in_use == 0
    await asyncio.wait_for(slots.acquire(Priority.BACKGROUND), timeout=1)
    assert slots.in_use == 1


async def test_a_waiter_cancelled_just_as_it_was_handed_the_slot_passes_it_on() -> None:
    slots = await one_slot_taken()
    first = await waiting(slots)
    second = await waiting(slots)
    slots.release()  # hands the slot to `first`, which has not resumed yet
    first.cancel()
    await settle()
    assert first.cancelled()
    await asyncio.wait_for(second, timeout=10)  # the slot moved on instead of leaking
    slots.release()
    assert slots.in_use == 0


# -- the gateway ----------------------------------------------------------------------------


@pytest.fixture
async def gateways() -> AsyncIterator[list[InferenceGateway]]:
    made: list[InferenceGateway] = []
    yield made
    for gateway in made:
        await gateway.stop()


async def start(
    made: list[InferenceGateway],
    model: FakePredictor | None,
    metrics: ServiceMetrics | None = None,
    **options: object,
) -> InferenceGateway:
    metrics = metrics or ServiceMetrics()
    gateway = InferenceGateway(ModelState(uri="fake"), metrics, **options)  # type: ignore[arg-type]
    await gateway.start()
    made.append(gateway)
    if model is not None:
        gateway.state.ready(model)
    return gateway


async def test_no_model_or_no_pool_is_unavailable(gateways: list[InferenceGateway]) -> None:
    gateway = await start(gateways, None)
    assert gateway.row_budget() == 1
    with pytest.raises(ModelUnavailable, match="loading"):
        gateway.current()
    with pytest.raises(ModelUnavailable, match="loading"):
        await gateway.predict_texts(["x"])
    stopped = InferenceGateway(ModelState(uri="fake"), ServiceMetrics(), microbatch=False)
    stopped.state.ready(FakePredictor())
    assert stopped.running is False
    with pytest.raises(ModelUnavailable, match="not running"):
        await stopped.predict_texts(["x"])
    with pytest.raises(ModelUnavailable, match="not running"):
        await stopped.predict("x")


async def test_serve_warms_the_model_up_before_anyone_gets_it(
    gateways: list[InferenceGateway],
) -> None:
    gate = threading.Event()
    model = FakePredictor(batch_size=4)
    original = model.predict

    def slow_warmup(texts: list[str]) -> list[object]:
        gate.wait(timeout=10)
        return original(texts)  # type: ignore[return-value]

    model.predict = slow_warmup  # type: ignore[assignment,method-assign]
    gateway = await start(gateways, None)
    serving = asyncio.create_task(gateway.serve(model))
    await asyncio.sleep(0.05)
    assert gateway.state.status is ModelStatus.LOADING
    assert not gateway.state.settled.is_set()
    with pytest.raises(ModelUnavailable):
        gateway.current()
    gate.set()
    await asyncio.wait_for(gateway.state.settled.wait(), timeout=10)
    await asyncio.wait_for(serving, timeout=10)
    assert gateway.state.status is ModelStatus.READY
    assert gateway.current() == model.info
    assert gateway.row_budget() == 4
    assert model.warmups == [list(WARMUP_TEXTS)]


async def test_a_failing_warm_up_leaves_the_model_unserved(
    gateways: list[InferenceGateway],
) -> None:
    model = FakePredictor()

    def broken(texts: list[str]) -> list[object]:
        raise RuntimeError("warm-up crashed")

    model.predict = broken  # type: ignore[assignment,method-assign]
    gateway = await start(gateways, None)
    with pytest.raises(RuntimeError, match="warm-up crashed"):
        await gateway.serve(model)
    assert gateway.state.model is None
    assert gateway.busy() is False  # the slot came back


async def test_up_to_the_call_budget_a_micro_batch_is_one_model_call(
    gateways: list[InferenceGateway],
) -> None:
    """A micro-batch of up to `CHUNKS_PER_CALL` chunks is one call: the runtime sorts all of
    its texts by length, then runs chunks of the row budget."""
    model = FakePredictor(batch_size=2)
    gateway = await start(gateways, model)
    assert gateway.call_budget() == 2 * CHUNKS_PER_CALL
    texts = ["ccc", "a", "bb", "a", "dddd", "eeeee", "ffffff"]
    info, predictions = await gateway.predict_microbatch(texts)
    assert info == model.info
    assert predictions == [fake_prediction(t) for t in texts]
    assert model.encodes == []  # `predict` did it all, in one call
    assert model.calls == [["a", "bb"], ["ccc", "dddd"], ["eeeee", "ffffff"]]


async def test_over_the_row_budget_is_encoded_once_and_planned_into_chunks(
    gateways: list[InferenceGateway],
) -> None:
    model, metrics = FakePredictor(batch_size=3), ServiceMetrics()
    gateway = await start(gateways, model, metrics)
    texts = ["dddd", "a", "ccc", "bb", "a", "eeeee"]
    info, predictions = await gateway.predict_texts(texts, Priority.BACKGROUND, "evaluation")
    assert info == model.info
    assert predictions == [fake_prediction(t) for t in texts]
    assert model.encodes == [["dddd", "a", "ccc", "bb", "eeeee"]]
    assert model.calls == [["a", "bb", "ccc"], ["dddd", "eeeee"]]
    lines = set(metrics.render().decode().splitlines())
    assert 'clfserve_inference_seconds_count{kind="encode"} 1.0' in lines
    assert 'clfserve_inference_seconds_count{kind="evaluation"} 2.0' in lines


@pytest.mark.parametrize(
    ("priority", "in_flight"), [(Priority.INTERACTIVE, 2), (Priority.BACKGROUND, 1)]
)
async def test_a_large_request_uses_every_idle_call_and_an_evaluation_one(
    gateways: list[InferenceGateway], priority: Priority, in_flight: int
) -> None:
    """Over one chunk, a request's chunks run in as many lanes as calls may run at once; an
    evaluation keeps to one, leaving the other call to requests."""
    gate = threading.Event()
    model = FakePredictor(gate=gate, batch_size=1)
    gateway = await start(gateways, model, workers=2, microbatch=False)
    texts = ["t0", "t11"]
    call = asyncio.create_task(gateway.predict_texts(texts, priority, "chunks"))
    for _ in range(500):  # encoded, then the first chunk calls start and block on the gate
        if gateway.busy_calls() == in_flight:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # time enough for an evaluation to take a second call
    assert gateway.busy_calls() == in_flight
    gate.set()
    _, predictions = await asyncio.wait_for(call, timeout=10)
    assert predictions == [fake_prediction(t) for t in texts]
    assert sorted(text for chunk in model.calls for text in chunk) == sorted(texts)


async def test_a_failing_chunk_stops_the_other_lanes(gateways: list[InferenceGateway]) -> None:
    """The other lane finishes the chunk it holds and takes no more."""
    gate = threading.Event()
    model = FakePredictor(batch_size=1, fail_on="a", gate=gate)
    gateway = await start(gateways, model, workers=2, microbatch=False)
    texts = ["a", *(f"t{i}" * (i + 2) for i in range(CHUNKS_PER_CALL + 4))]  # "a" runs first
    with pytest.raises(InvalidInput, match="cannot classify 'a'"):
        await asyncio.wait_for(gateway.predict_texts(texts), timeout=10)
    gate.set()  # the other lane, held on its first chunk until the request had failed
    for _ in range(500):  # its chunk done and its slot given back
        if len(model.calls) == 2 and gateway.busy_calls() == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # time enough for a lane that did not stop to take more chunks
    assert sorted(model.calls) == [["a"], ["t0t0"]]
    assert gateway.busy_calls() == 0


async def test_busy_while_a_model_call_runs(gateways: list[InferenceGateway]) -> None:
    gate = threading.Event()
    gateway = await start(gateways, FakePredictor(gate=gate), microbatch=False)
    assert gateway.busy() is False
    call = asyncio.create_task(gateway.predict("x"))
    await asyncio.sleep(0.05)
    assert gateway.busy() is True
    gate.set()
    await asyncio.wait_for(call, timeout=10)
    await settle()
    assert gateway.busy() is False


async def test_requests_go_before_a_waiting_evaluation(gateways: list[InferenceGateway]) -> None:
    """An evaluation queued first still lets a later request in ahead of it."""
    gate = threading.Event()
    model = FakePredictor(gate=gate, batch_size=2)
    gateway = await start(gateways, model, microbatch=False)
    blocker = asyncio.create_task(gateway.predict_texts(["blocker"]))
    await asyncio.sleep(0.05)  # holds the only slot, blocked on the gate
    evaluation = asyncio.create_task(
        gateway.predict_texts(["e1", "e22"], Priority.BACKGROUND, kind="evaluation")
    )
    await asyncio.sleep(0.05)  # waiting for the slot, queued first
    request = asyncio.create_task(gateway.predict_texts(["request"]))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(asyncio.gather(blocker, evaluation, request), timeout=10)
    assert model.calls == [["blocker"], ["request"], ["e1", "e22"]]


async def test_a_request_waits_for_at_most_one_chunk_of_an_evaluation(
    gateways: list[InferenceGateway],
) -> None:
    gate = threading.Event()
    model = FakePredictor(gate=gate, batch_size=2)
    gateway = await start(gateways, model, microbatch=False)
    texts = [f"e{i}" * (i + 1) for i in range(6)]
    evaluation = asyncio.create_task(
        gateway.predict_texts(texts, Priority.BACKGROUND, kind="evaluation")
    )
    await asyncio.sleep(0.05)  # its first chunk is running, blocked on the gate
    request = asyncio.create_task(gateway.predict_texts(["request"]))
    await asyncio.sleep(0.05)
    gate.set()
    _, predictions = await asyncio.wait_for(evaluation, timeout=10)
    await asyncio.wait_for(request, timeout=10)
    assert predictions == [fake_prediction(t) for t in texts]
    assert model.calls == [texts[0:2], ["request"], texts[2:4], texts[4:6]]


async def test_one_request_is_answered_by_one_model(gateways: list[InferenceGateway]) -> None:
    """A model swapped in while a long request runs serves the next request, not its rest."""
    gate = threading.Event()
    old = FakePredictor(gate=gate, batch_size=1, info=fake_info("v1", checksum="aaa"))
    new = FakePredictor(batch_size=1, info=fake_info("v2", checksum="bbb"))
    gateway = await start(gateways, old, microbatch=False)
    running = asyncio.create_task(gateway.predict_texts(["a", "bb", "ccc"]))
    await asyncio.sleep(0.05)  # the first chunk is running on `old`
    gateway.state.ready(new)
    gate.set()
    info, predictions = await asyncio.wait_for(running, timeout=10)
    assert info.version == "v1"
    assert predictions == [fake_prediction(t) for t in ("a", "bb", "ccc")]
    assert old.calls == [["a"], ["bb"], ["ccc"]]
    assert new.calls == []
    info, _ = await gateway.predict_texts(["d"])
    assert info.version == "v2"
    assert new.calls == [["d"]]


async def test_under_load_an_evaluation_leaves_the_model_to_requests_between_chunks(
    gateways: list[InferenceGateway],
) -> None:
    """While requests keep waiting, each evaluation chunk is followed by several request calls
    (the evaluation pauses `BACKGROUND_YIELD` times its chunk's duration), not one."""
    import time

    class SlowModel(FakePredictor):
        def predict_rows(self, encoded, rows):  # type: ignore[no-untyped-def]
            time.sleep(0.01)  # a model call that takes a while, in the inference thread
            return super().predict_rows(encoded, rows)

    model = SlowModel(batch_size=2)
    gateway = await start(gateways, model, max_wait_s=0.0)
    evaluation_texts = [f"evaluation text {i:02d}" for i in range(12)]
    stop = asyncio.Event()

    async def client(n: int) -> None:
        for i in range(200):  # bounded; stops once the evaluation is done
            if stop.is_set():
                return
            await gateway.predict(f"request {n}-{i}")

    clients = [asyncio.create_task(client(n)) for n in range(6)]
    await asyncio.sleep(0.05)
    await asyncio.wait_for(
        gateway.predict_texts(evaluation_texts, Priority.BACKGROUND, kind="evaluation"),
        timeout=30,
    )
    stop.set()
    await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
    kinds = ["e" if call[0].startswith("evaluation") else "r" for call in model.calls]
    first, last = kinds.index("e"), len(kinds) - 1 - kinds[::-1].index("e")
    between = "".join(kinds[first : last + 1]).split("e")[1:-1]
    assert len(between) == len(evaluation_texts) // 2 - 1
    assert min(len(run) for run in between) >= 2, kinds
