"""clfserve.registry: the MLflow model registry, used by both the release pipeline and the service.

Resolve ``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``, or a local folder) to an artefact
folder, register a validated artefact as a new version and move an alias, and know where the
clfserve home keeps its registry. Importing this package loads no mlflow; functions do.
"""

from clfserve.registry.errors import RegistryError
from clfserve.registry.home import default_home, tracking_uri
from clfserve.registry.store import (
    Registered,
    ResolvedModel,
    experiment_id_for,
    has_alias,
    open_client,
    register_artefact,
    resolve_model,
)
from clfserve.registry.uri import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_URI,
    DEFAULT_NAME,
    ModelUri,
    is_registry_uri,
    parse_model_uri,
)

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_MODEL_URI",
    "DEFAULT_NAME",
    "ModelUri",
    "Registered",
    "RegistryError",
    "ResolvedModel",
    "default_home",
    "experiment_id_for",
    "has_alias",
    "is_registry_uri",
    "open_client",
    "parse_model_uri",
    "register_artefact",
    "resolve_model",
    "tracking_uri",
]
