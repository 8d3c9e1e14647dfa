"""clfserve.service: the HTTP service (Litestar) around `clfserve.runtime`.

`Settings` is importable without Litestar (the CLI builds its parser from it); the app pieces
are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clfserve.runtime.lazy import lazy_members
from clfserve.service.settings import RateLimit, Settings, SettingsError, StalenessSettings

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

__getattr__ = lazy_members(
    __name__,
    {
        "create_app": ".app",
        "create_app_from_env": ".app",
        "ServiceContext": ".context",
        "Model": ".model_state",
    },
)
