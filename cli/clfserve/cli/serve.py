"""``clfserve serve``: run the HTTP service. Its options and ``--help`` derive from the settings'
declarations (`clfserve.service.settings`); building the parser imports nothing heavy."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from clfserve.cli.options import command
from clfserve.service.envsettings import options
from clfserve.service.settings import Settings, SettingsError, describe_env

log = logging.getLogger(__name__)
ENV_PREFIX = "CLFSERVE_"


def add_command(commands: Any) -> None:
    parser = command(
        commands,
        "serve",
        run,
        epilog=describe_env(),
        formatter=argparse.RawDescriptionHelpFormatter,
    )
    for item in options(Settings):
        assert item.var.option is not None
        parser.add_argument(
            item.var.option,
            dest=item.field,
            metavar=item.field.upper(),
            help=f"{item.var.help} [{item.var.env}, default {item.shown_default}]",
        )


def settings_from(args: argparse.Namespace, env: dict[str, str]) -> Settings:
    """Parse ``env`` once, with the CLI options applied on top (they win)."""
    overrides = {
        item.var.env: str(value)
        for item in options(Settings)
        if (value := getattr(args, item.field, None)) is not None
    }
    return Settings.from_env(env, overrides)


def unknown_variables(env: dict[str, str]) -> list[str]:
    """``CLFSERVE_*`` variables no setting declares (usually a typo or a removed setting)."""
    from clfserve.service.envsettings import declared, groups

    known = {item.var.env for item in declared(Settings)}
    for _, nested in groups(Settings):
        known |= {item.var.env for item in declared(nested)}
    known |= {"CLFSERVE_HOME", "CLFSERVE_SETTINGS_HANDOFF", "CLFSERVE_RUN_SLOW"}
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


def run(args: argparse.Namespace) -> int:
    """serve a model over HTTP (Litestar under uvicorn)

    Serve a model over HTTP: POST /predict, POST /batch_predict, GET /health/live,
    GET /health/ready, GET /model, GET /metrics, GET /staleness, POST /admin/evaluate, OpenAPI
    at /schema. Settings come from CLFSERVE_* environment variables; the options below override
    them.
    """
    environment = dict(os.environ)
    try:
        settings = settings_from(args, environment)
    except SettingsError as exc:
        raise SystemExit(f"clfserve serve: invalid setting: {exc}") from None
    for name in unknown_variables(environment):
        log.warning("%s is not a clfserve setting; ignored (`clfserve serve --help` lists them)",
                    name)  # fmt: skip

    from clfserve.service.server import serve

    return serve(settings)
