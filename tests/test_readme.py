"""The README stays true where it is derived from code: its settings tables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clfserve.service import contract
from clfserve.service.envsettings import markdown_table
from clfserve.service.settings import Settings, StalenessSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def rewrite_settings_tables(text: str) -> str:
    """``text`` with each settings table replaced by the one the declarations give."""
    lines = text.split("\n")
    for cls in (Settings, StalenessSettings):
        table = markdown_table(cls).split("\n")
        first = table[2].split(" | ")[0]  # "| `CLFSERVE_...`"
        start = next(i for i, line in enumerate(lines) if line.startswith(first + " |")) - 2
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = table
    return rewrite_error_table("\n".join(lines))


ERROR_TABLE_HEADER = "| when | status | headers |"


def rewrite_error_table(text: str) -> str:
    """``text`` with the error table replaced by the one `contract` declares."""
    start = text.index(ERROR_TABLE_HEADER)
    end = text.index("\n\n", start)
    return text[:start] + contract.markdown_table() + text[end:]


def test_settings_tables_match_the_declarations() -> None:
    """When this fails, `python tests/test_readme.py` rewrites the tables."""
    text = README.read_text(encoding="utf-8")
    for cls in (Settings, StalenessSettings):
        assert markdown_table(cls) in text, f"README table of {cls.__name__} is out of date"


def test_error_table_is_the_contract_the_openapi_document_is_built_from() -> None:
    """When this fails, `python tests/test_readme.py` rewrites the table."""
    assert contract.markdown_table() in README.read_text(encoding="utf-8")


# -- examples that come from real output: run them on the tiny model, compare shapes ------------


def _block_after(marker: str, fence: str) -> list[str]:
    """The lines of the first ``fence`` code block that follows ``marker`` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(fence, text.index(marker)) + len(fence)
    return text[start : text.index("```", start)].strip("\n").splitlines()


def _shape(value: object) -> object:
    """Keys and value types, recursively: what a client parsing the example relies on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, int | float) else type(value).__name__


def test_runtime_example_runs_and_its_comments_hold(tiny_artefact: Path) -> None:
    import re

    lines = _block_after("## Runtime: `clfserve.runtime`", "```python")
    code = "\n".join(lines).replace(".clfserve/artefacts/clfserve-sentiment", str(tiny_artefact))
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the snippet as a user pastes it
    clf = namespace["clf"]
    info_line = next(line for line in lines if line.startswith("clf.info.providers"))
    claimed_info = info_line.split("# ", 1)[1]
    assert repr(eval(info_line.split("#")[0], namespace)) == f"({claimed_info})"
    predict_line = next(line for line in lines if line.startswith("clf.predict("))
    first = eval(predict_line, namespace)[0]
    claimed = next(line for line in lines if line.startswith("# [Prediction("))
    fields = re.findall(r"(\w+)=", claimed)
    assert fields == ["label", "score", "scores", "truncated", "n_tokens"]
    assert [f for f in type(first).__dataclass_fields__] == fields
    # n_tokens and truncated come from the tokenizer, which the tiny model shares.
    assert f"n_tokens={first.n_tokens}" in claimed
    assert f"truncated={first.truncated}" in claimed
    assert clf is not None


def test_predict_example_has_the_shape_the_service_answers() -> None:
    import json

    from litestar.testing import TestClient

    lines = _block_after("make test    # fresh machine", "```bash")
    example = json.loads(" ".join(line.lstrip("# ") for line in lines if line.startswith("#")))
    from clfserve.service import Settings, create_app

    sys.path.insert(0, str(Path(__file__).parent / "service"))
    from service_fakes import FakePredictor, loader_for, ready_client

    settings = Settings().replace(
        rate_limit=None, staleness=StalenessSettings().replace(enabled=False)
    )
    client: TestClient[object] = ready_client(
        create_app(settings, loader=loader_for(FakePredictor()))
    )
    try:
        answer = client.post("/predict", json={"text": "a gorgeous, witty, seductive movie"})
    finally:
        client.__exit__(None, None, None)
    assert answer.status_code == 200
    actual = answer.json()
    actual["scores"] = dict(example["scores"])  # the fake model's labels are the same two
    assert _shape(example) == _shape(actual)


def test_staleness_example_has_the_shape_of_a_real_evaluation(tiny_artefact: Path) -> None:
    import json

    from litestar.testing import TestClient

    from clfserve.service import Settings, create_app

    example = json.loads("\n".join(_block_after("One evaluation of the default model", "```json")))
    settings = Settings().replace(
        model_uri=str(tiny_artefact),
        rate_limit=None,
        threads=1,
        admin_token="t",
        staleness=StalenessSettings().replace(initial_delay_s=None, tracking="off"),
    )
    sys.path.insert(0, str(Path(__file__).parent / "service"))
    from service_fakes import ready_client

    client: TestClient[object] = ready_client(create_app(settings))
    try:
        body = client.post("/admin/evaluate", headers={"Authorization": "Bearer t"}).json()
    finally:
        client.__exit__(None, None, None)
    assert body["status"] in ("healthy", "stale"), body
    shown = {key: body[key] for key in example}  # the README trims some keys
    # MLflow logging is off here; the example shows a logged run's extra fields.
    assert set(shown.pop("tracking")) <= set(example.pop("tracking"))
    assert _shape(example) == _shape(shown)


def test_python_client_example_runs_against_the_service(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's client snippet, as a user pastes it, against the app (fake model)."""
    from clfserve.service import Settings, create_app

    sys.path.insert(0, str(Path(__file__).parent / "service"))
    from service_fakes import FakePredictor, loader_for, ready_client

    lines = _block_after("**Python: `clfserve.client`**", "```python")
    code = "\n".join(lines)
    url = '"http://127.0.0.1:5000"'
    assert url in code
    settings = Settings().replace(
        rate_limit=None, staleness=StalenessSettings().replace(enabled=False)
    )
    http = ready_client(create_app(settings, loader=loader_for(FakePredictor())))
    try:
        namespace: dict[str, object] = {"_http": http}
        exec(compile(code.replace(url, "http=_http"), "README.md", "exec"), namespace)
    finally:
        http.__exit__(None, None, None)
    printed = capsys.readouterr().out.splitlines()
    claimed = [line.split("# ", 1)[1] for line in lines if "print(" in line]
    assert len(printed) == len(claimed) == 4
    # The fake model's scores and labels differ from the real one's; the shapes must not.
    assert printed[0].split()[0] in ("positive", "negative")
    assert len(printed[0].split()) == 3
    assert printed[1].startswith("['")
    assert printed[1].count("'") == 4
    assert printed[2] == "True int8" == claimed[2]
    assert printed[3] == claimed[3]


if __name__ == "__main__":
    README.write_text(rewrite_settings_tables(README.read_text(encoding="utf-8")), encoding="utf-8")
