"""The prediction cache: bounded, expiring, keyed by model identity, safe across threads."""

from __future__ import annotations

import threading

from service_fakes import fake_info, fake_prediction

from clfserve.service.cache import PredictionCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hit_after_put_and_miss_for_other_text() -> None:
    cache = PredictionCache(10, 60)
    info = fake_info()
    cache.put(info, "a", fake_prediction("a"))
    assert cache.get(info, "a") == fake_prediction("a")
    assert cache.get(info, "b") is None


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    cache = PredictionCache(10, 5.0, timer=clock)
    info = fake_info()
    cache.put(info, "a", fake_prediction("a"))
    clock.now = 4.9
    assert cache.get(info, "a") is not None
    clock.now = 5.1
    assert cache.get(info, "a") is None


def test_size_is_bounded() -> None:
    cache = PredictionCache(3, 60)
    info = fake_info()
    for i in range(10):
        cache.put(info, str(i), fake_prediction(str(i)))
    assert len(cache) == 3


def test_other_model_or_variant_misses() -> None:
    cache = PredictionCache(10, 60)
    v1 = fake_info("v1", checksum="aaa")
    cache.put(v1, "a", fake_prediction("a"))
    assert cache.get(fake_info("v2", checksum="bbb"), "a") is None
    other_variant = fake_info("v1", checksum="aaa")
    object.__setattr__(other_variant, "variant", "fp32")
    assert cache.get(other_variant, "a") is None
    # Same weights and variant under a new registry version: same answers, so a hit.
    assert cache.get(fake_info("v1-copy", checksum="aaa"), "a") is not None


def test_disabled_cache_stores_nothing() -> None:
    cache = PredictionCache(10, 60, enabled=False)
    info = fake_info()
    cache.put(info, "a", fake_prediction("a"))
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
                cache.put(info, text, fake_prediction(text))
                hit = cache.get(info, text)
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
