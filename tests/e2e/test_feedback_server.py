"""Production labels in a real `clfserve serve` process: stored, kept across a restart, scored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from server_process import running_server

from clfserve.evaluation.feedback import FeedbackStore, NamedAnswer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "e2e-token"


def test_feedback_is_kept_across_a_restart_and_scored(tiny_artefact: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'labels' / 'feedback.db'}"
    env = {
        "CLFSERVE_MODEL_URI": str(tiny_artefact),
        "CLFSERVE_THREADS": "1",
        "CLFSERVE_FEEDBACK_DB": url,
        "CLFSERVE_ADMIN_TOKEN": TOKEN,
        "CLFSERVE_STALENESS_ENABLED": "true",
        "CLFSERVE_STALENESS_INITIAL_DELAY": "off",
        "CLFSERVE_STALENESS_TRACKING": "off",
        "CLFSERVE_STALENESS_FEEDBACK_MIN": "2",
    }
    text = "a gorgeous, witty, seductive movie"
    with (
        running_server(tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        answer = http.post("/predict", json={"text": text}).json()
        wrong = "negative" if answer["label"] == "positive" else "positive"
        first = http.post(
            "/feedback",
            json={"text": text, "label": wrong, "prediction_id": answer["prediction_id"]},
        )
        assert first.status_code == 201, first.text
        refused = http.post("/feedback", json={"text": text, "label": "meh"})
        assert refused.status_code == 422
        assert "negative, positive" in refused.json()["detail"]
        before = http.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert before["feedback"]["status"] == "skipped"  # one label; two needed
    # The server is stopped (SIGTERM); a new process opens the same database.

    with (
        running_server(tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=30.0) as http,
    ):
        second = http.post("/feedback", json={"text": "dull and lifeless", "label": "negative"})
        assert second.status_code == 201
        assert second.json()["id"] == first.json()["id"] + 1
        after = http.post("/admin/evaluate", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    feedback = after["feedback"]
    assert feedback["status"] in ("healthy", "stale"), feedback
    assert (feedback["n_samples"], feedback["data"]["rows"]) == (2, 2)
    assert feedback["data"]["window"].startswith("latest 500: ids 1-2")

    store = FeedbackStore(url)
    try:
        rows = store.all()
    finally:
        store.close()
    assert [(r.text, r.label) for r in rows] == [(text, wrong), ("dull and lifeless", "negative")]
    assert rows[0].answer == NamedAnswer(
        answer["prediction_id"], answer["model"]["version"], answer["label"]
    )
