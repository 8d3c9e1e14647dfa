"""``clfserve serve``: the service's subcommand. Building the parser imports nothing heavy."""

from __future__ import annotations

import argparse
import os
from typing import Any

from clfserve.service.settings import Settings, SettingsError, describe_env
from clfserve.service.staleness.config import StalenessSettings
from clfserve.service.staleness.config import describe_env as describe_staleness_env

OVERRIDES = {  # option dest -> the variable it overrides
    "host": "CLFSERVE_HOST",
    "port": "CLFSERVE_PORT",
    "workers": "CLFSERVE_WORKERS",
    "model_uri": "CLFSERVE_MODEL_URI",
    "device": "CLFSERVE_DEVICE",
    "variant": "CLFSERVE_VARIANT",
    "threads": "CLFSERVE_THREADS",
    "rate_limit": "CLFSERVE_RATE_LIMIT",
    "log_level": "CLFSERVE_LOG_LEVEL",
}


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="serve a model over HTTP (Litestar under uvicorn)",
        description=(
            "Serve a model over HTTP: POST /predict, POST /batch_predict, GET /health/live, "
            "GET /health/ready, GET /model, GET /metrics, GET /staleness, POST /admin/evaluate, "
            "OpenAPI at /schema. Settings come "
            "from CLFSERVE_* environment variables; the options below override them."
        ),
        epilog=f"{describe_env()}\n\n{describe_staleness_env()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", help="bind address [CLFSERVE_HOST, default 0.0.0.0]")
    add("--port", help="bind port [CLFSERVE_PORT, default 5000]")
    add("--workers", help="server processes [CLFSERVE_WORKERS, default 1]")
    add("--model-uri", help="models:/NAME@ALIAS or an artefact folder [CLFSERVE_MODEL_URI]")
    add("--device", choices=("auto", "cpu", "cuda"), help="[CLFSERVE_DEVICE, default auto]")
    add("--variant", help="ONNX variant, e.g. int8 or fp32 [CLFSERVE_VARIANT, default auto]")
    add("--threads", help="ONNX Runtime intra-op threads [CLFSERVE_THREADS, default auto]")
    add("--rate-limit", help="e.g. 100/minute, or off [CLFSERVE_RATE_LIMIT]")
    add("--log-level", help="debug, info, warning, error [CLFSERVE_LOG_LEVEL, default info]")
    parser.set_defaults(handler=run_serve)


def settings_from(args: argparse.Namespace, env: dict[str, str]) -> Settings:
    """Parse ``env`` with the CLI options applied on top; updates ``env`` with the options."""
    for dest, variable in OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[variable] = str(value)
    return Settings.from_env(env)


def run_serve(args: argparse.Namespace) -> int:
    environment = dict(os.environ)
    try:
        settings = settings_from(args, environment)
        StalenessSettings.from_env(environment)  # fail here, not in each worker
    except SettingsError as exc:
        raise SystemExit(f"clfserve serve: invalid setting: {exc}") from None
    os.environ.update(environment)  # worker processes parse the same settings from here

    from clfserve.service.server import serve

    return serve(settings)
