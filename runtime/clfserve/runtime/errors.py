"""Errors raised by the runtime.

    ClfserveError
    ├── ModelLoadError      artefact folder missing, unreadable, corrupt or checksum mismatch
    ├── ProviderError       a requested execution provider (e.g. CUDA) could not be obtained
    └── InvalidInput        texts that cannot be classified (not a string, ...)

The service maps these to HTTP status codes in one place; the runtime knows nothing of HTTP.
"""

from __future__ import annotations


class ClfserveError(Exception):
    """Base class of every error clfserve raises on purpose."""


class ModelLoadError(ClfserveError):
    """The model could not be loaded; the message names the file and what is wrong."""


class ProviderError(ClfserveError):
    """A requested execution provider is not available on this machine."""


class InvalidInput(ClfserveError, ValueError):
    """The input cannot be classified; the message says which item and why."""
