"""clfserve.registry: the MLflow model registry, used by both the release pipeline and the service.

Resolve ``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``, or a local folder) to an artefact
folder, register a validated artefact as a new version and move an alias, and know where the
clfserve home keeps its registry. Importing this package loads no mlflow; functions do.
"""

from clfserve.registry.errors import RegistryError
from clfserve.registry.home import default_home, tracking_uri
from clfserve.registry.local_copies import keep_local_copy, newest_local_copy
from clfserve.registry.runs import log_run
from clfserve.registry.store import (
    Registered,
    ResolvedModel,
    experiment_id_for,
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
from clfserve.registry.versions import (
    VersionRef,
    alias_version,
    get_version,
    has_alias,
    run_metrics,
    set_alias,
    tag_run,
    tag_version,
)

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_MODEL_URI",
    "DEFAULT_NAME",
    "ModelUri",
    "Registered",
    "RegistryError",
    "ResolvedModel",
    "VersionRef",
    "alias_version",
    "default_home",
    "experiment_id_for",
    "get_version",
    "has_alias",
    "is_registry_uri",
    "keep_local_copy",
    "log_run",
    "newest_local_copy",
    "open_client",
    "parse_model_uri",
    "register_artefact",
    "resolve_model",
    "run_metrics",
    "set_alias",
    "tag_run",
    "tag_version",
    "tracking_uri",
]
