"""`DriftMonitor`: label-free drift of the serving model's live answers against its reference.

Between labelled evaluations, the service compares what the model answers now (the last
``CLFSERVE_DRIFT_WINDOW`` answers, `driftwindow`) with what it answered on its validation split
at export (``drift_reference.json`` in its artefact): predicted label mix, confidence, tokens per
text and truncation rate, each by its population stability index (`clfserve.evaluation.drift`).
The verdict is ``drifted`` when any signal is above ``CLFSERVE_DRIFT_THRESHOLD`` once the window
holds ``CLFSERVE_DRIFT_MIN_SAMPLES`` answers.

`DriftMonitor.check` runs every ``CLFSERVE_DRIFT_INTERVAL`` and on ``GET /staleness`` (never per
request): it follows the serving model (a swap restarts the window and reads the new model's
reference), merges the windows of every replica when Redis is shared (`driftshare`), sets the
gauges, and alerts (WARNING + the staleness webhook) when the verdict turns to drifted. It never
raises: an artefact without a reference (exported before it existed) reports ``no reference``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clfserve.evaluation.drift import (
    DIVERGENCE,
    REFERENCE_FILE,
    DriftReference,
    divergences,
    merge,
    read_reference,
)
from clfserve.runtime import ClfserveError, ModelInfo
from clfserve.service.staleness.alert import Alerter
from clfserve.service.staleness.driftshare import SharedDriftWindows
from clfserve.service.staleness.driftwindow import DriftWindow
from clfserve.service.staleness.gauges import DriftGauges
from clfserve.service.staleness.record import iso

log = logging.getLogger(__name__)

Status = Literal["no model", "no reference", "collecting", "stable", "drifted"]


@dataclass(eq=False)
class DriftMonitor:
    """Checks the window against the reference (see the module docstring)."""

    window: DriftWindow
    serving: Callable[[], ModelInfo | None]
    gauges: DriftGauges
    alerter: Alerter
    threshold: float
    min_samples: int
    shared: SharedDriftWindows | None = None
    clock: Callable[[], float] = time.time
    _reference_of: ModelInfo | None = field(init=False, default=None)
    _reference: DriftReference | None = field(init=False, default=None)
    _why_none: str | None = field(init=False, default=None)
    _drifted: bool | None = field(init=False, default=None)
    _reading: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.gauges.threshold.set(self.threshold)

    async def check(self) -> dict[str, Any]:
        """Compare now; the ``drift`` section of ``GET /staleness`` (also the alert's body)."""
        info = self.serving()
        if info is not None and self.window.model is not info:
            self.window.reset(info)  # a swap: the old model's answers say nothing of the new one
        if info is not None and self._reference_of is not info:
            async with self._reading:  # one read per model, however many checks wait
                if self._reference_of is not info:
                    await self._read_reference(info)
        own = await self.window.snapshot()
        report = self._frame(info)
        if info is None or own is None or self.window.binning is None:
            return self._publish(report, "no model", None, "no model is serving")
        windows = {"here": own}
        if self.shared is not None:
            shared = await self.shared.exchange(info, own, self.window.binning)
            if shared is not None:
                windows = shared.windows
                report["shared"] = True
        live = merge(windows.values(), self.window.binning)
        report["count"], report["replicas"] = live.n, len(windows)
        if self._reference is None:
            return self._publish(report, "no reference", None, self._why_none)
        variant, expected = self._reference.for_variant(info.variant)
        report["reference"] = {
            "source": f"model:{REFERENCE_FILE}",
            "data": self._reference.data,
            "variant": variant,
            "count": expected.n,
        }
        if live.n < self.min_samples:
            why = f"{live.n} answers in the window, a verdict needs {self.min_samples}"
            return self._publish(report, "collecting", None, why)
        values = divergences(expected, live)
        report["signals"] = {
            name: {"value": round(value, 6), "threshold": self.threshold,
                   "drifted": value > self.threshold}
            for name, value in values.items()
        }  # fmt: skip
        drifted = any(value > self.threshold for value in values.values())
        report = self._publish(report, "drifted" if drifted else "stable", values, None)
        await self._transition(info, drifted, report)
        return report

    def _frame(self, info: ModelInfo | None) -> dict[str, Any]:
        return {
            "status": "no model",
            "drifted": None,
            "divergence": DIVERGENCE,
            "threshold": self.threshold,
            "window": self.window.size,
            "min_samples": self.min_samples,
            "count": 0,
            "replicas": 1,
            "shared": False,
            "model": None if info is None else {"name": info.name, "version": info.version},
            "reference": None,
            "signals": {},
            "detail": None,
            "checked_at": iso(self.clock()),
        }

    def _publish(
        self,
        report: dict[str, Any],
        status: Status,
        values: dict[str, float] | None,
        detail: str | None,
    ) -> dict[str, Any]:
        report["status"], report["detail"] = status, detail
        report["drifted"] = None if values is None else status == "drifted"
        g = self.gauges
        g.answers.set(report["count"])
        g.drifted.set(-1 if values is None else int(status == "drifted"))
        for name, value in (values or {}).items():
            g.psi.labels(name).set(value)
        if values is None:
            g.psi.clear()
        return report

    async def _read_reference(self, info: ModelInfo) -> None:
        reference, why = None, None
        try:
            reference = await asyncio.to_thread(read_reference, Path(info.path))
        except ClfserveError as exc:  # unreadable or foreign: say so, serving goes on
            log.warning("drift reference of %s v%s unusable: %s", info.name, info.version, exc)
            why = str(exc)
        if reference is None and why is None:
            why = (
                f"the artefact of {info.name} v{info.version} has no {REFERENCE_FILE} "
                "(exported before drift references existed): re-export it for drift checks"
            )
        self._reference_of, self._reference, self._why_none = info, reference, why
        self._drifted = None

    async def _transition(self, info: ModelInfo, drifted: bool, report: dict[str, Any]) -> None:
        """Alert once per turn to drifted: once for the cluster when Redis is shared."""
        turned = None
        if self.shared is not None:
            turned = await self.shared.turned_drifted(info, drifted)
        if turned is None:
            turned = drifted and self._drifted is not True
        self._drifted = drifted
        if not turned:
            return
        above = {k: v["value"] for k, v in report["signals"].items() if v["drifted"]}
        log.warning(
            "model %s v%s DRIFTED: population stability index above %g for %s over %d answers",
            info.name, info.version, self.threshold, above, report["count"],
        )  # fmt: skip
        payload = {"event": "model_drift", **report}
        report["alert"] = {"webhook": await asyncio.to_thread(self.alerter.post, payload, "drift")}

    async def run_forever(self, interval_s: float) -> None:
        """`check` every ``interval_s`` (the gauges and the alert follow without reads)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.check()
            except Exception:  # a bug must not stop the checks, nor serving
                log.exception("drift check failed")
