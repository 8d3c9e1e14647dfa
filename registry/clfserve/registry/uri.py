"""Model URIs: ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` (the one parser of them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clfserve.registry.errors import RegistryError

PREFIX = "models:/"
DEFAULT_NAME = "clfserve-sentiment"
"""Registered name of the default model (all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes)."""
DEFAULT_ALIAS = "champion"
"""The alias a release moves to its new version, and the one servers follow."""
DEFAULT_MODEL_URI = f"{PREFIX}{DEFAULT_NAME}@{DEFAULT_ALIAS}"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelUri:
    """A registered model named by alias or by version number (exactly one is set)."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        tail = f"@{self.alias}" if self.alias else f"/{self.version}"
        return f"{PREFIX}{self.name}{tail}"


def is_registry_uri(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_model_uri(text: str) -> ModelUri:
    """Parse a ``models:/`` URI; `RegistryError` says what a well-formed one looks like."""
    match = _MODELS_URI.match(text.strip())
    if match is None:
        raise RegistryError(
            f"{text}: malformed model URI (use models:/NAME@ALIAS or models:/NAME/VERSION)"
        )
    return ModelUri(match["name"], match["alias"], match["version"])
