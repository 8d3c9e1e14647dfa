"""The prediction cache: bounded, expiring, keyed by model identity, safe across threads."""

from __future__ import annotations

import dataclasses
import threading

from service_fakes import fake_info, fake_prediction

from clfserve.runtime import ModelInfo, Prediction
from clfserve.service.answers import PredictionCache, model_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def put(cache: PredictionCache, info: ModelInfo, text: str) -> None:
    cache.put_many(info, [text], [fake_prediction(text)])


def get(cache: PredictionCache, info: ModelInfo, text: str) -> Prediction | None:
    (hit,) = cache.get_many(info, [text])
    return hit


def test_hit_after_put_and_miss_for_other_text() -> None:
    cache = PredictionCache(10, 60)
    info = fake_info()
    put(cache, info, "a")
    assert get(cache, info, "a") == fake_prediction("a")
    assert get(cache, info, "b") is None


def test_get_and_put_many_keep_the_callers_order() -> None:
    cache = PredictionCache(10, 60)
    info = fake_info()
    cache.put_many(info, ["x", "y"], [fake_prediction("x"), fake_prediction("y")])
    assert cache.get_many(info, ["y", "nope", "x", "y"]) == [
        fake_prediction("y"), None, fake_prediction("x"), fake_prediction("y"),
    ]  # fmt: skip


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = PredictionCache(10, 5.0, timer=clock)
    info = fake_info()
    put(cache, info, "a")
    clock.now = 4.9
    assert get(cache, info, "a") is not None
    clock.now = 5.1
    assert get(cache, info, "a") is None


def test_size_is_bounded() -> None:
    cache = PredictionCache(3, 60)
    info = fake_info()
    for i in range(10):
        put(cache, info, str(i))
    assert len(cache) == 3


def test_clear_empties_it() -> None:
    cache = PredictionCache(10, 60)
    put(cache, fake_info(), "a")
    cache.clear()
    assert len(cache) == 0
    assert get(cache, fake_info(), "a") is None


def test_other_model_or_variant_misses() -> None:
    cache = PredictionCache(10, 60)
    v1 = fake_info("v1", checksum="aaa")
    put(cache, v1, "a")
    assert get(cache, fake_info("v2", checksum="bbb"), "a") is None
    other_variant = dataclasses.replace(fake_info("v1", checksum="aaa"), variant="fp32")
    assert model_key(other_variant) != model_key(v1)
    assert get(cache, other_variant, "a") is None
    # Same weights and variant under a new registry version: a new model, so a miss (its
    # answers must say which version gave them).
    assert get(cache, fake_info("v2", checksum="aaa"), "a") is None
    assert get(cache, fake_info("v1", checksum="aaa"), "a") is not None


def test_disabled_cache_stores_nothing() -> None:
    cache = PredictionCache(10, 60, enabled=False)
    info = fake_info()
    put(cache, info, "a")
    assert cache.get_many(info, ["a", "b"]) == [None, None]
    assert len(cache) == 0


def test_concurrent_use_from_threads_keeps_it_consistent() -> None:
    cache = PredictionCache(50, 60)
    info = fake_info()
    errors: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for i in range(2000):
                text = str((i + offset) % 120)
                put(cache, info, text)
                hit = get(cache, info, text)
                assert hit is None or hit == fake_prediction(text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n * 7,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(cache) <= 50
