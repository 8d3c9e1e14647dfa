"""The Kubernetes manifests, rendered and validated offline against the Kubernetes schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kustomize import render

from clfserve.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.30.0"
"""Oldest version validated against: everything used here is GA there."""
PRE_STOP_S = 10


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(K8S)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("version", [KUBERNETES, kubernetes_validate.latest_version()])
def test_every_object_is_valid_kubernetes(objects: list[dict[str, Any]], version: str) -> None:
    extras = [doc for path in sorted((K8S / "extras").glob("*.yaml"))
              for doc in yaml.safe_load_all(path.read_text()) if doc]  # fmt: skip
    assert len(objects) == 8
    for obj in [*objects, *extras]:
        kubernetes_validate.validate(obj, version, strict=True)  # raises naming the field


def test_the_kustomization_renders_what_kubectl_renders(objects: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the Python render is validated above)")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    theirs = [doc for doc in yaml.safe_load_all(out) if doc]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(theirs, key=key) == sorted(objects, key=key)


def test_the_server_deployment(objects: list[dict[str, Any]]) -> None:
    pod = find(objects, "Deployment", "clfserve")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRE_STOP_S)]
    config = find(objects, "ConfigMap", "clfserve-config")["data"]
    graceful = Settings.from_env(config).graceful_timeout_s  # the config parses as settings
    assert pod["terminationGracePeriodSeconds"] >= PRE_STOP_S + graceful
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Threads match the CPUs the container gets (requests == limits: a guaranteed 2 cores).
    cpu = container["resources"]["limits"]["cpu"]
    assert container["resources"]["requests"]["cpu"] == cpu
    assert int(config["CLFSERVE_THREADS"]) * int(config["CLFSERVE_WORKERS"]) == int(cpu)
    assert config["CLFSERVE_REDIS_URL"].startswith("redis://clfserve-redis:")
    assert "MLFLOW_TRACKING_URI" in config
    (token,) = [e for e in container["env"] if e["name"] == "CLFSERVE_ADMIN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "clfserve-admin"  # never a literal
    assert container["image"] == "clfserve:0.1.0-cpu"


def test_service_pdb_and_autoscaler_select_the_server(objects: list[dict[str, Any]]) -> None:
    labels = find(objects, "Deployment", "clfserve")["spec"]["template"]["metadata"]["labels"]
    service = find(objects, "Service", "clfserve")["spec"]["selector"]
    pdb = find(objects, "PodDisruptionBudget", "clfserve")["spec"]["selector"]["matchLabels"]
    assert service.items() <= labels.items()
    assert pdb.items() <= labels.items()
    hpa = find(objects, "HorizontalPodAutoscaler", "clfserve")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "clfserve"
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["minReplicas"] >= 2  # the PDB's minAvailable 1 never blocks a node drain
    redis = find(objects, "Service", "clfserve-redis")["spec"]["selector"]
    redis_pod = find(objects, "Deployment", "clfserve-redis")["spec"]["template"]
    assert redis.items() <= redis_pod["metadata"]["labels"].items()
    assert all(o["metadata"].get("namespace") == "clfserve"
               for o in objects if o["kind"] != "Namespace")  # fmt: skip


def test_broken_manifests_are_caught() -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES, strict=True)
