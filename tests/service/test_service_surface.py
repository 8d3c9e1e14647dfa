"""The service's public names are the documented ones, resolve, and importing them stays cheap."""

from __future__ import annotations

from pathlib import Path

import clfserve.service as service
from fresh_imports import heavy_modules_after

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_names() -> set[str]:
    """The names in the first column of the README's "Embedding the app" table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Embedding the app") :]
    start = section.index("| name | what |")
    table = section[start : section.index("\n\n", start)]
    return {row.split("`")[1] for row in table.splitlines()[2:]}


def test_the_public_names_are_the_documented_ones_and_every_one_resolves() -> None:
    """Changing the public surface takes a deliberate edit of the README's table."""
    assert set(service.__all__) == documented_names()
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
