"""`clfserve serve`: a parser that imports nothing heavy, overrides on top of the environment."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from clfserve.service import cli
from clfserve.service.settings import ENV_VARS, RateLimit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clfserve")
    cli.add_commands(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_building_the_parser_imports_nothing_heavy() -> None:
    script = (
        "import argparse, json, sys\n"
        "from clfserve.service import cli\n"
        "cli.add_commands(argparse.ArgumentParser().add_subparsers())\n"
        "heavy = {'litestar', 'mlflow', 'onnxruntime', 'uvicorn', 'torch', 'prometheus_client'}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_help_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for var in ENV_VARS:
        assert var.name in out
    assert "--workers" in out


def test_options_override_the_environment() -> None:
    env = {"CLFSERVE_PORT": "6000", "CLFSERVE_RATE_LIMIT": "5/second", "CLFSERVE_HOST": "::1"}
    args = parse("--port", "7000", "--workers", "2", "--model-uri", "/tmp/m", "--rate-limit", "off")
    settings = cli.settings_from(args, env)
    assert settings.port == 7000
    assert settings.workers == 2
    assert settings.model_uri == "/tmp/m"
    assert settings.rate_limit is None
    assert settings.host == "::1"  # untouched by options
    assert env["CLFSERVE_PORT"] == "7000"  # workers inherit the override


def test_environment_applies_without_options() -> None:
    settings = cli.settings_from(parse(), {"CLFSERVE_RATE_LIMIT": "9/hour"})
    assert settings.rate_limit == RateLimit(9, "hour")


def test_invalid_setting_exits_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLFSERVE_RATE_LIMIT", "lots")
    args = parse()
    with pytest.raises(SystemExit) as caught:
        args.handler(args)
    assert "CLFSERVE_RATE_LIMIT" in str(caught.value)
    assert "invalid setting" in str(caught.value)
