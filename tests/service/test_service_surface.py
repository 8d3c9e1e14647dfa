"""The service's public names are pinned, resolve, and importing them stays cheap."""

from __future__ import annotations

import clfserve.service as service
from fresh_imports import heavy_modules_after

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
    return heavy_modules_after(
        "from clfserve.service import Settings\nSettings.from_env({})", heavy
    )


def test_importing_the_package_does_not_import_litestar_or_mlflow() -> None:
    heavy = {"litestar", "mlflow", "uvicorn", "apscheduler", "prometheus_client", "httpx"}
    assert imported_after_settings(heavy) == []


def test_importing_the_package_does_not_import_the_runtime() -> None:
    assert imported_after_settings({"onnxruntime", "tokenizers"}) == []
