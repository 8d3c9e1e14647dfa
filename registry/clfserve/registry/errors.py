"""Errors of the registry room (they print as one line through the CLI and the service log).

ClfserveError             (clfserve.runtime.errors)
└── RegistryError         tracking server unreachable, unknown model or alias, bad URI
"""

from __future__ import annotations

from clfserve.runtime.errors import ClfserveError


class RegistryError(ClfserveError):
    """The MLflow registry cannot be reached or does not hold what was asked for."""
