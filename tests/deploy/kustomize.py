"""Render ``deploy/k8s`` in Python: the subset of kustomize the project's kustomization uses.

``resources`` (files, several documents each), ``namespace`` and ``images`` (``newName``,
``newTag``) — nothing else. A kustomization using any other field is refused, so this cannot
silently render something kustomize would not; where ``kubectl`` is installed, a test also
compares the two renders object by object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "PriorityClass"}  # fmt: skip


def render(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"kustomization fields this renderer does not support: {unknown}")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if not path.is_file():
            raise ValueError(f"resource {resource} is not a file (bases are not supported)")
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    namespace = kustomization.get("namespace")
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for obj in objects:
        if namespace and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        for container in _containers(obj):
            container["image"] = _image(container["image"], images)
    return objects


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _image(image: str, images: dict[str, dict[str, str]]) -> str:
    name, _, tag = image.partition(":")
    rule = images.get(name)
    if rule is None:
        return image
    name = rule.get("newName", name)
    tag = rule.get("newTag", tag)
    return f"{name}:{tag}" if tag else name
