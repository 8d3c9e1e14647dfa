"""`CLFSERVE_RETRAIN_ON_STALE`: a stale verdict launches a separate process (here a tiny
stand-in for `clfserve retrain`), never two at once, and logs how it ended."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
from service_fakes import fake_scored

from clfserve.service import Settings
from clfserve.service.staleness.record import Evaluation, Verdict
from clfserve.service.staleness.retrain import RetrainTrigger, retrain_trigger
from clfserve.service.staleness.scheduler import ScheduleLock

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def evaluation(verdict: Verdict | None) -> Evaluation:
    found = Evaluation(1, "scheduled", "f1", 0.8, "2026-11-27T00:00:00+00:00")
    found.scored = None if verdict is None else fake_scored(verdict)
    return found


def stand_in(tmp_path: Path, exit_code: int) -> tuple[str, ...]:
    """A child that records its pid, waits for a go file, and exits with ``exit_code``."""
    script = (
        "import os, pathlib, sys, time\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "(d / f'started-{os.getpid()}').touch()\n"
        "deadline = time.monotonic() + 30\n"
        "while not (d / 'go').exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        f"sys.exit({exit_code})\n"
    )
    return (sys.executable, "-c", script)


async def wait_for(condition: object, seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_stale_verdict_launches_one_separate_process_at_a_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "clfserve.service.staleness.retrain")
    lock = tmp_path / "retrain.lock"
    trigger = RetrainTrigger(stand_in(tmp_path, exit_code=3), lock)
    other_worker = RetrainTrigger(stand_in(tmp_path, exit_code=0), lock)

    await trigger.on_evaluation(evaluation("healthy"))
    await trigger.on_evaluation(evaluation(None))  # an error is never a reason to retrain
    assert not list(tmp_path.glob("started-*"))

    pid = await trigger.launch("stale")
    assert pid is not None
    assert pid != os.getpid()  # a separate process
    await wait_for(lambda: (tmp_path / f"started-{pid}").exists())
    # While it runs, neither this process nor another worker starts a second one.
    assert await trigger.launch("stale again") is None
    assert await other_worker.launch("stale elsewhere") is None
    assert not ScheduleLock(lock).acquire()
    assert [p.name for p in tmp_path.glob("started-*")] == [f"started-{pid}"]

    (tmp_path / "go").touch()
    await wait_for(lambda: "exited 3: not promoted" in caplog.text)
    await wait_for(lambda: ScheduleLock(lock).acquire())  # the child's exit freed the lock
    assert "a retrain is already running" in caplog.text

    # Free again: the next stale verdict launches the next retrain.
    await other_worker.on_evaluation(evaluation("stale"))
    await wait_for(lambda: "exited 0: promoted" in caplog.text)


def test_the_trigger_retrains_the_served_alias_with_the_extra_arguments() -> None:
    settings = Settings.from_env(
        {
            "CLFSERVE_MODEL_URI": "models:/news@prod",
            "CLFSERVE_RETRAIN_ON_STALE": "true",
            "CLFSERVE_RETRAIN_ARGS": "--max-train-samples 2000 --feedback-db 'sqlite:///a b.db'",
        }
    )
    assert settings.staleness.retrain_on_stale
    trigger = retrain_trigger(settings.model_uri, settings.staleness.retrain_args)
    assert trigger is not None
    assert trigger.command[1:] == ("-m", "clfserve.cli", "retrain", "--name", "news",
                                   "--alias", "prod", "--no-progress", "--max-train-samples",
                                   "2000", "--feedback-db", "sqlite:///a b.db")  # fmt: skip
    assert Settings.from_env({}).staleness.retrain_on_stale is False


def test_a_server_of_a_folder_or_a_version_number_has_no_alias_to_retrain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert retrain_trigger("/models/news", ()) is None
    assert retrain_trigger("models:/news/3", ()) is None
    assert "names none (use models:/NAME@ALIAS)" in caplog.text
