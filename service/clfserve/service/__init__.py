"""clfserve.service: the HTTP service (Litestar) around `clfserve.runtime`.

`Settings` is importable without Litestar (the CLI builds its parser from it); the app pieces
are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clfserve.service.settings import RateLimit, Settings, SettingsError
from clfserve.service.staleness.settings import StalenessSettings

if TYPE_CHECKING:
    from clfserve.service.app import create_app, create_app_from_env
    from clfserve.service.context import ServiceContext
    from clfserve.service.model_state import Model

__all__ = [
    "Model",
    "RateLimit",
    "ServiceContext",
    "Settings",
    "SettingsError",
    "StalenessSettings",
    "create_app",
    "create_app_from_env",
]

_LAZY = {
    "create_app": "clfserve.service.app",
    "create_app_from_env": "clfserve.service.app",
    "ServiceContext": "clfserve.service.context",
    "Model": "clfserve.service.model_state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
