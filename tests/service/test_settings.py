"""Settings: defaults, parsing every kind of value, and clear errors for bad ones."""

from __future__ import annotations

import ipaddress

import pytest

from clfserve.service.settings import (
    DEFAULT_MODEL_URI,
    ENV_VARS,
    RateLimit,
    Settings,
    SettingsError,
    describe_env,
    parse_rate_limit,
)


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.model_uri == DEFAULT_MODEL_URI
    assert settings.rate_limit == RateLimit(600, "minute")
    assert settings.trusted_proxies == ()
    assert (settings.max_text_chars, settings.max_batch_items) == (10_000, 256)
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 5000, 1)


def test_every_field_has_one_variable() -> None:
    fields = {var.field for var in ENV_VARS}
    assert fields == set(Settings.__dataclass_fields__)
    assert len({var.name for var in ENV_VARS}) == len(ENV_VARS)
    assert all(var.name.startswith("CLFSERVE_") for var in ENV_VARS)


def test_parses_values_of_every_kind() -> None:
    settings = Settings.from_env(
        {
            "CLFSERVE_MODEL_URI": "/models/x",
            "CLFSERVE_DEVICE": "CPU",
            "CLFSERVE_VARIANT": "fp32",
            "CLFSERVE_THREADS": "2",
            "CLFSERVE_MICROBATCH_MAX_WAIT_MS": "2.5",
            "CLFSERVE_CACHE": "off",
            "CLFSERVE_CACHE_TTL": "60",
            "CLFSERVE_RATE_LIMIT": "10/second",
            "CLFSERVE_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12",
            "CLFSERVE_MAX_BODY_BYTES": "1_000",
            "CLFSERVE_LOG_LEVEL": "DEBUG",
            "CLFSERVE_UNRELATED": "ignored",
            "CLFSERVE_PORT": "  ",  # blank means unset
        }
    )
    assert settings.model_uri == "/models/x"
    assert settings.device == "cpu"
    assert settings.variant == "fp32"
    assert settings.threads == 2
    assert settings.microbatch_max_wait_ms == 2.5
    assert settings.cache_enabled is False
    assert settings.cache_ttl_s == 60.0
    assert settings.rate_limit == RateLimit(10, "second")
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.1"),
        ipaddress.ip_network("172.16.0.0/12"),
    )
    assert settings.max_body_bytes == 1000
    assert settings.log_level == "debug"
    assert settings.port == 5000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("100/minute", RateLimit(100, "minute")),
        ("100 / minutes", RateLimit(100, "minute")),
        ("5/s", RateLimit(5, "second")),
        ("7/HOUR", RateLimit(7, "hour")),
        ("1/d", RateLimit(1, "day")),
        ("off", None),
        ("0", None),
    ],
)
def test_rate_limit_forms(raw: str, expected: RateLimit | None) -> None:
    assert parse_rate_limit(raw) == expected


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("CLFSERVE_RATE_LIMIT", "100 per minute", "COUNT/UNIT"),
        ("CLFSERVE_RATE_LIMIT", "10/week", "COUNT/UNIT"),
        ("CLFSERVE_PORT", "http", "whole number"),
        ("CLFSERVE_PORT", "70000", "not a TCP port"),
        ("CLFSERVE_DEVICE", "tpu", "auto, cpu or cuda"),
        ("CLFSERVE_CACHE", "maybe", "true or false"),
        ("CLFSERVE_CACHE_TTL", "soon", "a number"),
        ("CLFSERVE_CACHE_TTL", "0", "must be > 0"),
        ("CLFSERVE_TRUSTED_PROXIES", "10.0.0.1,proxy.local", "'proxy.local'"),
        ("CLFSERVE_MAX_BATCH_ITEMS", "0", "must be >= 1"),
        ("CLFSERVE_THREADS", "-1", "must be >= 1"),
        ("CLFSERVE_MICROBATCH_MAX_WAIT_MS", "-1", "must be >= 0"),
        ("CLFSERVE_LOG_LEVEL", "loud", "one of"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: raw})
    assert name in str(caught.value)
    assert message in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_replace_validates() -> None:
    assert Settings().replace(port=8080).port == 8080
    with pytest.raises(SettingsError):
        Settings().replace(workers=0)


def test_describe_env_lists_every_variable_with_its_default() -> None:
    text = describe_env()
    for var in ENV_VARS:
        line = next(line for line in text.splitlines() if var.name in line)
        assert f"[default: {var.default}]" in line
    assert "[default: models:/clfserve-sentiment@champion]" in text
    assert "[default: 600/minute]" in text


@pytest.mark.parametrize(
    ("changes", "cpus", "expected"),
    [
        ({}, 8, 8),
        ({"workers": 2}, 8, 4),
        ({"workers": 2, "inference_workers": 2}, 8, 2),
        ({"workers": 16}, 8, 1),
        ({"workers": 4, "threads": 3}, 8, 3),
    ],
)
def test_intra_op_threads_split_the_cpus(changes: dict[str, int], cpus: int, expected: int) -> None:
    from clfserve.service.predictor import intra_op_threads

    assert intra_op_threads(Settings().replace(**changes), cpus) == expected
