"""The service's public names are pinned, resolve, and importing them stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import clfserve.service as service

PUBLIC = {
    "Predictor",
    "RateLimit",
    "ServiceContext",
    "Settings",
    "SettingsError",
    "create_app",
    "create_app_from_env",
}


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert set(service.__all__) == PUBLIC
    for name in service.__all__:
        assert getattr(service, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(service, "no_such_name")


def test_importing_the_package_does_not_import_litestar_or_the_runtime() -> None:
    script = (
        "import json, sys\n"
        "from clfserve.service import Settings\n"
        "Settings.from_env({})\n"
        "heavy = {'litestar', 'onnxruntime', 'mlflow', 'uvicorn', 'tokenizers'}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
