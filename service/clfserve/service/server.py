"""Run the app under uvicorn (uvloop + httptools when installed), one or several processes."""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
from typing import Any

from clfserve.service.settings import Settings

log = logging.getLogger(__name__)

APP_FACTORY = "clfserve.service.app:create_app_from_env"
"""With several processes, each worker builds its app from the settings handed over to it."""


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config plus the ``clfserve`` loggers (applied in every worker)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["clfserve"] = {
        "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        "datefmt": "%H:%M:%S",
    }
    config["handlers"]["clfserve"] = {
        "formatter": "clfserve",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["clfserve"] = {
        "handlers": ["clfserve"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _shared_state(settings: Settings) -> str:
    if settings.redis_url is None:
        return "off (each process keeps its own)"
    from clfserve.service.redislink import redacted

    return f"in Redis {redacted(settings.redis_url)} (prefix {settings.redis_prefix})"


def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``graceful_timeout_s`` to finish.

    One process serves the app built here; several workers (separate processes, which uvicorn
    starts from an import string) get ``settings`` through `SETTINGS_HANDOFF`, not by parsing
    the environment again.
    """
    import uvicorn

    from clfserve.service.app import SETTINGS_HANDOFF, create_app, handoff

    loop = "uvloop" if _available("uvloop") else "asyncio"
    http = "httptools" if _available("httptools") else "h11"
    log.info(
        "starting clfserve on http://%s:%d: model %s, %d worker process(es), %s/%s, "
        "rate limit %s, shared state %s",
        settings.host, settings.port, settings.model_uri, settings.workers, loop, http,
        settings.rate_limit or "off", _shared_state(settings),
    )  # fmt: skip
    if settings.workers > 1:
        os.environ[SETTINGS_HANDOFF] = handoff(settings)
        app: Any = APP_FACTORY
    else:
        app = create_app(settings)
    uvicorn.run(
        app,
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop=loop,
        http=http,
        lifespan="on",
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For for
        # 127.0.0.1 peers; the service decides whom to trust (CLFSERVE_TRUSTED_PROXIES).
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=round(settings.graceful_timeout_s),
        log_config=log_config(settings.log_level),
        log_level=settings.log_level,
        access_log=settings.access_log,
    )
    return 0
