"""Settings: declared once each, defaults, parsing every kind of value, clear errors for bad ones,
and the help and README text derived from the declarations."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from clfserve.registry import DEFAULT_MODEL_URI
from clfserve.service import envsettings
from clfserve.service.envsettings import declared, describe, load, markdown_table
from clfserve.service.settings import (
    RateLimit,
    Schedule,
    Settings,
    SettingsError,
    StalenessSettings,
    describe_env,
    parse_rate_limit,
    parse_run_cost,
)

EVERY = [*declared(Settings), *declared(StalenessSettings)]


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.model_uri == DEFAULT_MODEL_URI
    assert settings.rate_limit == RateLimit(600, "minute")
    assert settings.trusted_proxies == ()
    assert (settings.max_text_chars, settings.max_batch_items) == (10_000, 256)
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 5000, 1)
    assert (settings.variant, settings.threads, settings.batch_size) == (None, None, None)
    assert settings.run_cost == "auto"
    assert (settings.microbatch, settings.microbatch_max_wait_ms) == (True, 1.0)
    assert settings.thread_spinning is False  # idle ONNX Runtime threads sleep
    assert settings.staleness == StalenessSettings()
    assert settings.staleness.enabled is True
    assert settings.staleness.validation_data is None  # the model's own validation data


def test_every_field_is_declared_once() -> None:
    fields = {item.field for item in declared(Settings)}
    assert fields | {"staleness"} == {f.name for f in dataclasses.fields(Settings)}
    staleness_fields = {item.field for item in declared(StalenessSettings)}
    assert staleness_fields == {f.name for f in dataclasses.fields(StalenessSettings)}
    names = [item.var.env for item in EVERY]
    assert len(set(names)) == len(names)
    assert all(name.startswith("CLFSERVE_") for name in names)
    assert all(item.var.help for item in EVERY)


def test_the_removed_micro_batch_size_is_gone() -> None:
    assert "CLFSERVE_MICROBATCH_MAX_SIZE" not in {item.var.env for item in EVERY}
    assert not hasattr(Settings(), "microbatch_max_size")
    assert Settings.from_env({"CLFSERVE_MICROBATCH_MAX_SIZE": "64"}) == Settings()  # ignored


def test_parses_values_of_every_kind() -> None:
    settings = Settings.from_env(
        {
            "CLFSERVE_MODEL_URI": "/models/x",
            "CLFSERVE_DEVICE": "CPU",
            "CLFSERVE_VARIANT": "fp32",
            "CLFSERVE_THREADS": "2",
            "CLFSERVE_BATCH_SIZE": "16",
            "CLFSERVE_RUN_COST": "off",
            "CLFSERVE_THREAD_SPINNING": "yes",
            "CLFSERVE_MICROBATCH": "no",
            "CLFSERVE_MICROBATCH_MAX_WAIT_MS": "2.5",
            "CLFSERVE_CACHE": "off",
            "CLFSERVE_CACHE_TTL": "1m",
            "CLFSERVE_RATE_LIMIT": "10/second",
            "CLFSERVE_TRUSTED_PROXIES": "10.0.0.1, 172.16.0.0/12",
            "CLFSERVE_MAX_BODY_BYTES": "1_000",
            "CLFSERVE_LOG_LEVEL": "DEBUG",
            "CLFSERVE_STALENESS_THRESHOLD": "0.7",
            "CLFSERVE_VALIDATION_DATA": "/data/v.csv",
            "CLFSERVE_UNRELATED": "ignored",
            "CLFSERVE_PORT": "  ",  # blank means unset
        }
    )
    assert settings.model_uri == "/models/x"
    assert settings.device == "cpu"
    assert settings.variant == "fp32"
    assert settings.threads == 2
    assert settings.batch_size == 16
    assert settings.run_cost is None
    assert settings.thread_spinning is True
    assert settings.microbatch is False
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
    assert settings.staleness.threshold == 0.7
    assert settings.staleness.validation_data == "/data/v.csv"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("auto", None), ("none", None), ("AUTO", None), ("int8", "int8"), ("FP32", "fp32")],
)
def test_variant_is_auto_int8_or_fp32(raw: str, expected: str | None) -> None:
    assert Settings.from_env({"CLFSERVE_VARIANT": raw}).variant == expected


@pytest.mark.parametrize(("raw", "expected"), [("model", None), ("MODEL", None),
                                               ("rotten_tomatoes", "rotten_tomatoes")])  # fmt: skip
def test_validation_data_model_means_the_models_own(raw: str, expected: str | None) -> None:
    assert Settings.from_env({"CLFSERVE_VALIDATION_DATA": raw}).staleness.validation_data == (
        expected
    )


def test_overrides_win_over_the_environment() -> None:
    env = {"CLFSERVE_PORT": "6000", "CLFSERVE_HOST": "::1", "CLFSERVE_STALENESS_METRIC": "f1"}
    overrides = {"CLFSERVE_PORT": "7000", "CLFSERVE_STALENESS_METRIC": "accuracy"}
    settings = Settings.from_env(env, overrides)
    assert (settings.port, settings.host, settings.staleness.metric) == (7000, "::1", "accuracy")


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
    ("raw", "seconds"),
    [("90", 90.0), ("1.5", 1.5), ("30s", 30.0), ("15m", 900.0), ("6h", 21_600.0),
     ("1d", 86_400.0), ("2 min", 120.0)],
)  # fmt: skip
def test_durations(raw: str, seconds: float) -> None:
    assert envsettings.parse_duration(raw) == seconds


@pytest.mark.parametrize(
    ("parse", "raw", "expected"),
    [(envsettings.parse_int, "1_000", 1000), (envsettings.parse_bool, "Yes", True),
     (envsettings.parse_bool, "0", False), (envsettings.parse_float, "2.5", 2.5),
     (envsettings.parse_str, "x y", "x y"), (parse_run_cost, "AUTO", "auto"),
     (parse_run_cost, "Off", None), (parse_run_cost, "12.5", 12.5)],
)  # fmt: skip
def test_parsers(parse: object, raw: str, expected: object) -> None:
    assert parse(raw) == expected  # type: ignore[operator]


@pytest.mark.parametrize(
    ("parse", "raw", "message"),
    [(envsettings.parse_int, "1.5", "whole number"), (envsettings.parse_float, "nan", "finite"),
     (envsettings.parse_bool, "perhaps", "true or false"),
     (envsettings.parse_duration, "soon", "expected seconds")],
)  # fmt: skip
def test_parsers_refuse_with_a_reason(parse: object, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(raw)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("CLFSERVE_RATE_LIMIT", "100 per minute", "COUNT/UNIT"),
        ("CLFSERVE_RATE_LIMIT", "10/week", "COUNT/UNIT"),
        ("CLFSERVE_PORT", "http", "whole number"),
        ("CLFSERVE_PORT", "70000", "not a TCP port"),
        ("CLFSERVE_DEVICE", "tpu", "auto, cpu or cuda"),
        ("CLFSERVE_VARIANT", "bf16", "int8, fp32 or fp16"),
        ("CLFSERVE_VARIANT", "model.int8.onnx", "int8, fp32 or fp16"),
        ("CLFSERVE_CACHE", "maybe", "true or false"),
        ("CLFSERVE_MICROBATCH", "maybe", "true or false"),
        ("CLFSERVE_THREAD_SPINNING", "sometimes", "true or false"),
        ("CLFSERVE_CACHE_TTL", "soon", "expected seconds"),
        ("CLFSERVE_CACHE_TTL", "0", "must be > 0"),
        ("CLFSERVE_TRUSTED_PROXIES", "10.0.0.1,proxy.local", "'proxy.local'"),
        ("CLFSERVE_MAX_BATCH_ITEMS", "0", "must be >= 1"),
        ("CLFSERVE_THREADS", "-1", "must be >= 1"),
        ("CLFSERVE_BATCH_SIZE", "0", "must be >= 1"),
        ("CLFSERVE_RUN_COST", "-1", "auto, off or a number of tokens >= 0"),
        ("CLFSERVE_RUN_COST", "cheap", "expected a number"),
        ("CLFSERVE_MICROBATCH_MAX_WAIT_MS", "-1", "must be >= 0"),
        ("CLFSERVE_LOG_LEVEL", "loud", "critical, error, warning, info or debug"),
        ("CLFSERVE_MODEL_URI", "models:/", "models:/"),
        ("CLFSERVE_STALENESS_THRESHOLD", "1.5", "must be from 0 to 1"),
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
    with pytest.raises(AttributeError):
        settings.staleness.threshold = 0.1  # type: ignore[misc]


def test_replace_validates() -> None:
    assert Settings().replace(port=8080).port == 8080
    with pytest.raises(SettingsError, match="CLFSERVE_WORKERS"):
        Settings().replace(workers=0)
    with pytest.raises(SettingsError, match="CLFSERVE_BATCH_SIZE"):
        Settings().replace(batch_size=0)
    staleness = StalenessSettings().replace(threshold=0.5, interval=Schedule(seconds=60))
    assert Settings().replace(staleness=staleness).staleness.threshold == 0.5
    with pytest.raises(SettingsError, match="CLFSERVE_STALENESS_THRESHOLD"):
        StalenessSettings().replace(threshold=1.5)
    unchecked = dataclasses.replace(StalenessSettings(), threshold=1.5)
    with pytest.raises(SettingsError, match="CLFSERVE_STALENESS_THRESHOLD"):
        Settings().replace(staleness=unchecked)  # the nested group is checked too


@pytest.mark.parametrize("changes", [{"log_level": "loud"}, {"model_uri": ""}])
def test_replace_refuses_what_the_environment_would(changes: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings().replace(**changes)


def test_describe_env_lists_every_variable_with_its_default() -> None:
    text = describe_env()
    for item in EVERY:
        line = next(line for line in text.splitlines() if f" {item.var.env} " in line)
        assert f"[default: {item.shown_default}]" in line
    assert "[default: models:/clfserve-sentiment@champion]" in text
    assert "[default: 600/minute]" in text
    shown = {item.var.env: item.shown_default for item in EVERY}
    assert shown["CLFSERVE_VARIANT"] == "auto"
    assert shown["CLFSERVE_VALIDATION_DATA"] == "model"
    assert shown["CLFSERVE_STALENESS_INTERVAL"] == "daily"
    assert shown["CLFSERVE_MICROBATCH"] == "true"
    assert shown["CLFSERVE_TRUSTED_PROXIES"] == "(none)"


def test_describe_and_markdown_table_have_one_row_per_variable() -> None:
    for cls in (Settings, StalenessSettings):
        items = list(declared(cls))
        table = markdown_table(cls).splitlines()
        assert table[:2] == ["| variable | default | meaning |", "|---|---|---|"]
        assert table[2:] == [
            f"| `{item.var.env}` | {item.shown_default} | {item.var.help} |" for item in items
        ]
        lines = describe(cls, "heading:").splitlines()
        assert lines[0] == "heading:"
        assert len(lines) == len(items) + 1


def test_load_reads_one_settings_class() -> None:
    staleness = load(StalenessSettings, {"CLFSERVE_STALENESS_METRIC": "accuracy"})
    assert staleness == StalenessSettings().replace(metric="accuracy")


def test_options_are_the_cli_flags_of_settings_and_groups() -> None:
    flags = {item.var.option: item.var.env for item in envsettings.options(Settings)}
    assert flags["--port"] == "CLFSERVE_PORT"
    assert flags["--model-uri"] == "CLFSERVE_MODEL_URI"
    assert all(flag.startswith("--") for flag in flags)


@pytest.mark.parametrize(
    ("changes", "cpus", "expected"),
    [
        ({"device": "cpu"}, 8, 4),  # auto: 2 model calls at once on CPU
        ({"device": "cpu"}, 2, 1),  # 2 calls of 1 thread and a spare call, 1 thread too
        ({"device": "cpu"}, 1, 1),
        ({"device": "cpu", "inference_workers": 1}, 8, 8),
        ({"device": "cpu", "workers": 2}, 8, 2),
        ({"device": "cpu", "workers": 4}, 4, 1),  # one CPU per process: one call each
        ({"device": "cuda"}, 8, 8),  # one call on a GPU (2 slowed /predict's event loop)
        ({"workers": 2, "inference_workers": 2}, 8, 2),
        ({"workers": 16}, 8, 1),
        ({"workers": 4, "threads": 3}, 8, 3),
    ],
)
def test_intra_op_threads_split_the_cpus(changes: dict[str, int], cpus: int, expected: int) -> None:
    from clfserve.service.loading import intra_op_threads

    assert intra_op_threads(Settings().replace(**changes), cpus) == expected


@pytest.mark.parametrize(
    ("changes", "cpus", "expected"),
    [
        ({"device": "cpu"}, 1, 1),
        ({"device": "cpu"}, 2, 3),  # 2 calls of 1 thread, and a spare one
        ({"device": "cpu"}, 3, 3),
        ({"device": "cpu"}, 4, 2),  # 2 threads a call: no spare (it would oversubscribe)
        ({"device": "cpu"}, 16, 2),
        ({"device": "cpu", "workers": 2}, 4, 3),  # each process has 2 CPUs
        ({"device": "cpu", "workers": 2}, 2, 1),
        ({"device": "cpu", "inference_workers": 2}, 2, 2),
        ({"device": "cuda"}, 2, 1),
        ({"device": "cuda"}, 16, 1),
    ],
)
def test_inference_workers_follow_the_cpu_layout(
    changes: dict[str, int], cpus: int, expected: int
) -> None:
    from clfserve.service.loading import inference_workers

    assert inference_workers(Settings().replace(**changes), cpus) == expected
