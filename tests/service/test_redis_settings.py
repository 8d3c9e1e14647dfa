"""The shared-state settings: parsed and checked at the edge, the password never logged."""

from __future__ import annotations

import pytest

from clfserve.service.redislink import redacted
from clfserve.service.settings import Settings, SettingsError


def test_off_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.redis_url is None
    assert (settings.rate_limit_fallback, settings.redis_prefix) == ("local", "clfserve")


@pytest.mark.parametrize(
    "url", ["redis://cache:6379/0", "rediss://:pw@cache:6380/1", "unix:///run/redis.sock"]
)
def test_redis_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"CLFSERVE_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379", "redis://"])
def test_other_urls_name_the_variable(url: str) -> None:
    with pytest.raises(SettingsError, match="CLFSERVE_REDIS_URL"):
        Settings.from_env({"CLFSERVE_REDIS_URL": url})


def test_fallback_is_one_of_three() -> None:
    assert Settings.from_env({"CLFSERVE_RATE_LIMIT_FALLBACK": "Closed"}).rate_limit_fallback == (
        "closed"
    )
    with pytest.raises(SettingsError, match="CLFSERVE_RATE_LIMIT_FALLBACK"):
        Settings.from_env({"CLFSERVE_RATE_LIMIT_FALLBACK": "maybe"})


def test_the_password_never_reaches_a_log() -> None:
    assert redacted("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted("redis://user:s3cret@cache/0") == "redis://user:***@cache/0"
    assert redacted("redis://cache:6379/0") == "redis://cache:6379/0"
