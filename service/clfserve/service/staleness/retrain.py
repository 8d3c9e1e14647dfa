"""Retrain on a stale verdict (``CLFSERVE_RETRAIN_ON_STALE``, off by default).

When an evaluation finds the served model stale, `RetrainTrigger` launches ``clfserve retrain``
for the served ``models:/NAME@ALIAS`` as a separate process, never inside a serving process:
training needs torch and every core, which the service must not. It is told of evaluations by
the process that ran them (the one owning the schedule), and it launches at most one retrain at
a time per host: it takes an exclusive ``flock`` on a lock file and hands the locked descriptor
to the child, so the lock lasts exactly as long as the child, whichever worker started it, and
even when that worker stops first. The child runs in its own session (a server's Ctrl-C or
SIGTERM does not cut a retrain short); its output goes to the server's output, and its exit
code is logged when it ends. A promoted challenger reaches the servers the usual way: they
follow the alias.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clfserve.registry import is_registry_uri, parse_model_uri
from clfserve.service.staleness.record import Evaluation
from clfserve.service.staleness.scheduler import ScheduleLock

log = logging.getLogger(__name__)

OUTCOMES = {
    0: "promoted: servers following the alias swap to the new version",
    1: "failed (see its output above)",
    2: "usage error: check CLFSERVE_RETRAIN_ARGS",
    3: "not promoted: the challenger was not better; the alias is unchanged",
    4: "not retrained: too little feedback",
}
"""``clfserve retrain``'s exit codes."""


def default_lock_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"clfserve-retrain-{name}.lock"


@dataclass(eq=False)
class RetrainTrigger:
    """Launches ``command`` on stale verdicts, one at a time per ``lock_path``."""

    command: tuple[str, ...]
    lock_path: Path
    _waiting: set[asyncio.Task[None]] = field(init=False, default_factory=set, repr=False)

    async def on_evaluation(self, evaluation: Evaluation) -> None:
        """A monitor listener: launch on a stale verdict; never raises."""
        if not evaluation.stale_on:
            return
        stale_on = " and ".join(evaluation.stale_on)
        try:
            await self.launch(f"model stale on {stale_on} ({evaluation.metric})")
        except Exception:  # a listener must not break the monitor
            log.exception("launching clfserve retrain failed")

    async def launch(self, reason: str) -> int | None:
        """Start the retrain process unless one is running; its pid, or None."""
        lock = ScheduleLock(self.lock_path)
        if not lock.acquire():
            log.info("%s; a retrain is already running (lock %s), not starting another",
                     reason, self.lock_path)  # fmt: skip
            return None
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(lock.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            lock.release()
            log.error("%s; cannot start %s: %s", reason, self.command[0], exc)
            return None
        lock.close()  # this process's descriptor only: the child holds the lock until it exits
        log.warning("%s; launched clfserve retrain (pid %d): %s", reason, process.pid,
                    " ".join(self.command))  # fmt: skip
        task = asyncio.create_task(self._report(process), name="clfserve-retrain-wait")
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)
        return process.pid

    async def _report(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        outcome = OUTCOMES.get(code, "ended by a signal" if code < 0 else "failed")
        level = logging.ERROR if code in (1, 2) or code not in OUTCOMES else logging.INFO
        log.log(level, "clfserve retrain (pid %d) exited %d: %s", process.pid, code, outcome)


def retrain_trigger(model_uri: str, extra: Sequence[str]) -> RetrainTrigger | None:
    """The trigger for a server of ``model_uri``; None (with a WARNING) when it names no alias
    to retrain and promote."""
    parsed = parse_model_uri(model_uri) if is_registry_uri(model_uri) else None
    if parsed is None or not parsed.alias:
        log.warning(
            "CLFSERVE_RETRAIN_ON_STALE ignored: retrain promotes through a registry alias, and "
            "CLFSERVE_MODEL_URI=%s names none (use models:/NAME@ALIAS)", model_uri,
        )  # fmt: skip
        return None
    command = (sys.executable, "-m", "clfserve.cli", "retrain", "--name", parsed.name,
               "--alias", parsed.alias, "--no-progress", *extra)  # fmt: skip
    return RetrainTrigger(command, default_lock_path(parsed.name))
