"""Schemathesis against the app in process (fake model): every check, positive and negative data.

The run is the one `schemathesis run --checks all` makes (examples, coverage and fuzzing
phases), through the ASGI app with the admin token set, so every operation is reached. It must
generate at least 1,000 cases and find nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi
from service_fakes import FakePredictor, loader_for, quiet

from clfserve.service import StalenessSettings, create_app

pytestmark = pytest.mark.timeout(300)

TOKEN = "fuzz-token"
MIN_CASES = 1000
FUZZ_EXAMPLES = 450
"""Fuzzing-phase examples per operation; only the two prediction routes and /feedback take a
body."""
FEEDBACK_EXAMPLES = 150


def test_schemathesis_finds_no_failure_in_at_least_1000_cases(tmp_path: Path) -> None:
    settings = quiet(
        model_uri=str(tmp_path),  # a folder: /admin/reload answers without a registry
        admin_token=TOKEN,
        feedback_db=f"sqlite:///{tmp_path / 'feedback.db'}",
        max_text_chars=300,
        max_batch_items=16,
        staleness=StalenessSettings().replace(initial_delay_s=None, tracking="off"),
    )
    app = create_app(settings, loader=loader_for(FakePredictor()))
    config = SchemathesisConfig.from_dict(
        {
            "seed": 14,
            "checks": {"enabled": True},
            "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES},
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "workers": 1,
            "continue-on-failure": True,
            "operations": [
                {
                    # Its label must be one of the served model's and its prediction_id one this
                    # service signed: no schema, written before the model loads, can say either,
                    # so schema-valid bodies may be refused with the documented 422.
                    "include-path": "/feedback",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "401", "422", "429", "5xx"]
                        }
                    },
                    "generation": {"max-examples": FEEDBACK_EXAMPLES},
                }
            ],
        }
    )
    with asgi.get_client(app) as client:  # the lifespan schemathesis shares with its calls
        for _ in range(500):
            if client.get("/health/ready").status_code == 200:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the app never became ready")
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    body = schema.raw_schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["text"]["maxLength"] == 300

    cases: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    failures: list[str] = []
    errors: list[str] = []
    finished = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            cases[recorder.label] += len(recorder.cases)
            for node in recorder.cases.values():
                meta = node.value.meta
                modes["negative" if meta and meta.generation.mode.is_negative else "positive"] += 1
            for results in recorder.checks.values():
                for check in results:
                    checks[check.name] += 1
                    if check.failure_info is not None:
                        failures.append(f"{recorder.label} {check.name}: {check.failure_info}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(str(getattr(event, "value", getattr(event, "exception", event))))
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None
    assert not errors, errors
    assert not failures, "\n".join(failures[:20])
    total = sum(cases.values())
    assert total >= MIN_CASES, cases
    assert modes["negative"] >= 100, modes
    assert modes["positive"] >= 100, modes
    ran = set(checks)
    for name in ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                 "response_headers_conformance", "response_schema_conformance",
                 "positive_data_acceptance", "negative_data_rejection",
                 "ignored_auth"):  # fmt: skip
        assert name in ran, (name, sorted(ran))
    operations = {label for label in cases if cases[label]}
    # Every operation, plus the stateful phase: schemathesis links a prediction's
    # `prediction_id` to `POST /feedback` and chains the two.
    assert len(operations - {"Stateful tests"}) == 10, "; ".join(sorted(operations))
    print(f"\nschemathesis: {total} cases ({dict(modes)}), {sum(checks.values())} checks, 0 failed")
