"""The rooms and the one direction of imports between them, checked on the source.

    runtime  <-  evaluation  <-  export  <-  cli
        ^            ^            |           |
        +-- registry <------------+           |
        ^            ^                        |
        +-------- service  <------------------+

runtime and client (the HTTP client, httpx only) import no other room; evaluation only
runtime; registry only runtime (its errors);
export never imports service, service never imports export, and neither imports the CLI,
which joins them all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("cli", "client", "evaluation", "export", "registry", "runtime", "service")
ALLOWED: dict[str, set[str]] = {
    "runtime": set(),
    "client": set(),
    "evaluation": {"runtime"},
    "registry": {"runtime"},
    "export": {"runtime", "evaluation", "registry"},
    "service": {"runtime", "evaluation", "registry"},
    "cli": {"runtime", "evaluation", "registry", "export", "service"},
}


def _room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "clfserve" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ROOMS else None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            found.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return found


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_downstream(room: str) -> None:
    sources = sorted((ROOT / room / "clfserve" / room).rglob("*.py"))
    if room == "cli":
        sources = sorted((ROOT / "cli" / "clfserve" / "cli").rglob("*.py"))
    assert sources, f"no sources in {room}/"
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources
        for module in _imports(path)
        if (other := _room_of(module)) not in (None, room) and other not in ALLOWED[room]
    }
    assert not wrong, sorted(wrong)


def test_each_room_is_a_top_level_folder_with_one_namespace() -> None:
    for room in ROOMS:
        assert (ROOT / room / "clfserve" / room / "__init__.py").is_file(), room
        assert not (ROOT / room / "clfserve" / "__init__.py").exists(), "clfserve is PEP 420"


def test_public_surfaces() -> None:
    import clfserve.evaluation
    import clfserve.export
    import clfserve.registry
    import clfserve.runtime

    assert sorted(clfserve.runtime.__all__) == [
        "Classifier", "ClfserveError", "Encoded", "FileEntry", "InvalidInput", "Manifest",
        "ModelInfo", "ModelLoadError", "Prediction", "ProviderError",
    ]  # fmt: skip
    assert sorted(clfserve.export.__all__) == [
        "CheckpointError", "ExportConfig", "ExportError", "NotEnoughFeedback", "ReleaseConfig",
        "RetrainConfig", "TrainConfig", "ValidationFailed",
    ]  # fmt: skip
    assert {"evaluate", "evaluation_data", "check_labels", "Dataset"} <= set(
        clfserve.evaluation.__all__
    )
    assert {"resolve_model", "register_artefact", "parse_model_uri"} <= set(
        clfserve.registry.__all__
    )
    for module in (clfserve.runtime, clfserve.export, clfserve.evaluation, clfserve.registry):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_light_rooms_stay_light() -> None:
    """The service imports these: no torch, transformers, optimum, onnx or mlflow on import."""
    code = (
        "import sys\n"
        "import clfserve.export, clfserve.export.config, clfserve.registry, clfserve.evaluation\n"
        "import clfserve.cli, clfserve.service.settings\n"
        "heavy = {'torch', 'transformers', 'mlflow', 'optimum', 'onnx', 'litestar'}\n"
        "loaded = heavy & {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_client_needs_only_httpx() -> None:
    """`clfserve.client` talks HTTP: none of the runtime's or the service's packages load."""
    code = (
        "import sys\n"
        "import clfserve.client\n"
        "other = {'numpy', 'tokenizers', 'onnxruntime', 'litestar', 'msgspec', 'mlflow'}\n"
        "loaded = other & {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded, loaded\n"
        "assert 'httpx' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
