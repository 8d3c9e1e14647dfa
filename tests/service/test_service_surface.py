"""The service's public names are pinned, resolve, and importing them stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import clfserve.service as service

PUBLIC = {
    "Model",
    "RateLimit",
    "ServiceContext",
    "Settings",
    "SettingsError",
    "StalenessSettings",
    "create_app",
    "create_app_from_env",
}


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert set(service.__all__) == PUBLIC
    for name in service.__all__:
        assert getattr(service, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(service, "no_such_name")
    assert not hasattr(service, "Predictor")  # renamed Model


def imported_after_settings(heavy: set[str]) -> list[str]:
    script = (
        "import json, sys\n"
        "from clfserve.service import Settings\n"
        "Settings.from_env({})\n"
        f"heavy = {sorted(heavy)!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_package_does_not_import_litestar_or_mlflow() -> None:
    heavy = {"litestar", "mlflow", "uvicorn", "apscheduler", "prometheus_client", "httpx"}
    assert imported_after_settings(heavy) == []


def test_importing_the_package_does_not_import_the_runtime() -> None:
    assert imported_after_settings({"onnxruntime", "tokenizers"}) == []
