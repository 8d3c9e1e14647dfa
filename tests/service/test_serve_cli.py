"""`clfserve serve`: options derived from the declarations, a parser that imports nothing heavy,
overrides on top of the environment, and settings handed to worker processes as parsed."""

from __future__ import annotations

import argparse
import logging

import pytest

from clfserve.cli import build_parser
from clfserve.cli import serve as cli
from clfserve.service.envsettings import declared, options
from clfserve.service.settings import RateLimit, Settings, StalenessSettings
from fresh_imports import heavy_modules_after

OPTIONS = ("--host", "--port", "--workers", "--model-uri", "--device", "--variant", "--threads",
           "--rate-limit", "--log-level")  # fmt: skip


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


BUILD_SERVE_PARSER = (
    "import argparse\n"
    "from clfserve.cli import serve\n"
    "serve.add_command(argparse.ArgumentParser().add_subparsers())"
)


@pytest.mark.parametrize(
    "code", [BUILD_SERVE_PARSER, "from clfserve.cli import build_parser\nbuild_parser()"]
)
def test_building_the_parser_imports_no_server_framework(code: str) -> None:
    heavy = {"litestar", "mlflow", "uvicorn", "torch", "prometheus_client", "transformers"}
    assert heavy_modules_after(code, heavy) == []


def test_building_the_serve_parser_does_not_load_the_runtime() -> None:
    assert heavy_modules_after(BUILD_SERVE_PARSER, {"onnxruntime", "tokenizers"}) == []


def test_options_derive_from_the_declarations() -> None:
    assert {item.var.option for item in options(Settings)} == set(OPTIONS)


def test_help_lists_every_variable_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for item in [*declared(Settings), *declared(StalenessSettings)]:
        assert item.var.env in out
    for option in OPTIONS:
        assert option in out
    assert "CLFSERVE_MICROBATCH_MAX_SIZE" not in out  # removed: the model's batch size rules


def test_options_override_the_environment() -> None:
    env = {"CLFSERVE_PORT": "6000", "CLFSERVE_RATE_LIMIT": "5/second", "CLFSERVE_HOST": "::1"}
    args = parse(
        "--port", "7000", "--workers", "2", "--model-uri", "/tmp/m", "--rate-limit", "off",
        "--variant", "fp32", "--log-level", "debug",
    )  # fmt: skip
    settings = cli.settings_from(args, env)
    assert settings.port == 7000
    assert settings.workers == 2
    assert settings.model_uri == "/tmp/m"
    assert settings.rate_limit is None
    assert settings.variant == "fp32"
    assert settings.log_level == "debug"
    assert settings.host == "::1"  # untouched by options
    assert env["CLFSERVE_PORT"] == "6000"  # the environment is read, not rewritten


def test_worker_processes_get_the_settings_as_parsed() -> None:
    """With --workers N the parsed settings (options included) reach every worker as they are."""
    import base64
    import pickle

    from clfserve.service.app import handoff

    env = {"CLFSERVE_STALENESS_THRESHOLD": "0.9"}
    settings = cli.settings_from(parse("--workers", "3", "--port", "7001"), env)
    handed = pickle.loads(base64.b64decode(handoff(settings)))
    assert handed == settings
    assert (handed.workers, handed.port, handed.staleness.threshold) == (3, 7001, 0.9)


def test_environment_applies_without_options() -> None:
    settings = cli.settings_from(
        parse(), {"CLFSERVE_RATE_LIMIT": "9/hour", "CLFSERVE_STALENESS_METRIC": "accuracy"}
    )
    assert settings.rate_limit == RateLimit(9, "hour")
    assert settings.staleness.metric == "accuracy"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CLFSERVE_RATE_LIMIT", "lots"), ("CLFSERVE_VARIANT", "bf16"),
     ("CLFSERVE_STALENESS_THRESHOLD", "2")],
)  # fmt: skip
def test_invalid_setting_exits_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    args = parse()
    with pytest.raises(SystemExit) as caught:
        args.handler(args)
    assert variable in str(caught.value)
    assert "invalid setting" in str(caught.value)


def test_invalid_option_exits_naming_its_variable() -> None:
    args = parse("--port", "http")
    with pytest.raises(SystemExit) as caught:
        args.handler(args)
    assert "CLFSERVE_PORT='http'" in str(caught.value)


def test_unknown_variables_are_named() -> None:
    env = {
        "CLFSERVE_PORT": "1",
        "CLFSERVE_STALENESS_METRIC": "f1",
        "CLFSERVE_HOME": "/x",
        "CLFSERVE_MICROBATCH_MAX_SIZE": "32",  # removed setting
        "CLFSERVE_PROT": "1",  # typo
        "PATH": "/bin",
    }
    assert cli.unknown_variables(env) == ["CLFSERVE_MICROBATCH_MAX_SIZE", "CLFSERVE_PROT"]


def test_run_serves_the_parsed_settings_and_warns_about_unknown_variables(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import clfserve.service.server as server

    served: list[Settings] = []
    monkeypatch.setattr(server, "serve", lambda settings: served.append(settings) or 0)
    monkeypatch.setenv("CLFSERVE_MICROBATCH", "off")
    monkeypatch.setenv("CLFSERVE_MICROBATCH_MAX_SIZE", "32")
    args = parse("--port", "7002")
    with caplog.at_level(logging.WARNING, logger="clfserve.cli.serve"):
        assert args.handler(args) == 0
    (settings,) = served
    assert (settings.port, settings.microbatch) == (7002, False)
    assert any("CLFSERVE_MICROBATCH_MAX_SIZE" in r.getMessage() for r in caplog.records)
