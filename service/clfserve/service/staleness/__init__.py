"""clfserve.service.staleness: scheduled re-evaluation of the served model.

`install` builds the monitor for one app: gauges in the app's registry, the routes, and a
lifespan hook that starts the schedule once the model has loaded. `StalenessSettings` imports
only the standard library (for ``--help``); the rest is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clfserve.service.staleness.settings import StalenessSettings

if TYPE_CHECKING:
    from clfserve.service.staleness.extension import StalenessExtension, install
    from clfserve.service.staleness.monitor import StalenessMonitor

__all__ = ["StalenessExtension", "StalenessMonitor", "StalenessSettings", "install"]

_LAZY = {
    "install": "clfserve.service.staleness.extension",
    "StalenessExtension": "clfserve.service.staleness.extension",
    "StalenessMonitor": "clfserve.service.staleness.monitor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
