"""The docs page in a real headless browser (Debian's chromium), against a real `clfserve serve`.

The page must render every route from the service's own files alone (every request the browser
makes goes to the server under test), and "Try it out" on ``POST /predict`` must show the
model's answer. `make test` installs chromium where it is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_process import Server, running_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
"""Bound of every wait on the page."""
ROUTES = ["/predict", "/batch_predict", "/health/live", "/health/ready", "/metrics", "/model",
          "/admin/reload", "/feedback"]  # fmt: skip
PREDICT = "#operations-predict-PredictPredict"
TEXT = "a gorgeous, witty, seductive movie"


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (make test does "
                    "this when run as root)")  # fmt: skip
    return found


@pytest.fixture(scope="module")
def server(tiny_artefact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"CLFSERVE_MODEL_URI": str(tiny_artefact), "CLFSERVE_THREADS": "1"}
    with running_server(tmp_path_factory.mktemp("docs-logs"), env) as running:
        yield running


def test_docs_page_renders_offline_and_try_it_out_predicts(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    requested: list[str] = []
    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh, temporary --user-data-dir of its own.
        browser = playwright.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_FLAGS, timeout=WAIT_MS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.url}/schema", wait_until="load")
            page.wait_for_selector(".opblock-summary-path")
            shown = page.eval_on_selector_all(
                ".opblock-summary-path", "els => els.map(e => e.getAttribute('data-path'))"
            )
            page.screenshot(path=str(tmp_path / "docs.png"))

            page.click(f"{PREDICT} .opblock-summary")
            page.click(f"{PREDICT} .try-out__btn")
            page.fill(f"{PREDICT} textarea.body-param__text", json.dumps({"text": TEXT}))
            with page.expect_response(
                lambda r: r.url == f"{server.url}/predict" and r.request.method == "POST"
            ) as sent:
                page.click(f"{PREDICT} .execute")
            status = sent.value.status
            table = page.locator(f"{PREDICT} .live-responses-table")
            table.locator(".response-col_status").first.wait_for()
            shown_answer = table.inner_text()
            page.screenshot(path=str(tmp_path / "try-it-out.png"), full_page=True)
        finally:
            browser.close()

    assert shown == ROUTES
    assert status == 200
    answer = json.loads(shown_answer[shown_answer.index("{") : shown_answer.rindex("}") + 1])
    assert answer["label"] in ("negative", "positive")
    assert set(answer["scores"]) == {"negative", "positive"}
    assert answer["model"]["name"] == "clfserve-sentiment"
    assert answer["prediction_id"].startswith("p1.")
    assert "x-model-version" in shown_answer
    elsewhere = [url for url in requested if not url.startswith(f"{server.url}/")]
    assert not elsewhere, f"the page reached other hosts: {elsewhere}"
    assert f"{server.url}/schema/assets/swagger-ui-bundle.js" in requested
