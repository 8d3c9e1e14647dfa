"""``GET /staleness`` (with the label-free ``drift`` check) and ``POST /admin/evaluate`` (bearer
token; absent token -> 404)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK

from clfserve.evaluation.sources import MODEL_DATA
from clfserve.service import contract
from clfserve.service.admin import check_admin
from clfserve.service.openapi import documented
from clfserve.service.staleness.cluster import ClusterSchedule
from clfserve.service.staleness.driftmonitor import DriftMonitor
from clfserve.service.staleness.monitor import StalenessMonitor
from clfserve.service.staleness.scheduler import StalenessScheduler


def _feedback_data(monitor: StalenessMonitor) -> dict[str, Any] | None:
    """Which production labels each run scores (None: none)."""
    window = monitor.window
    if window is None:
        return None
    return {"window": window.describe(), "min_rows": monitor.settings.feedback_min}


def build_routes(
    monitor: StalenessMonitor,
    scheduler: StalenessScheduler,
    admin_token: str | None,
    cluster: ClusterSchedule | None = None,
    drift: DriftMonitor | None = None,
) -> list[HTTPRouteHandler]:
    settings = monitor.settings

    @get(
        "/staleness",
        tags=["model"],
        summary="Latest staleness evaluation and recent history",
        description="`drift`: the label-free check of live answers against the model's "
        "reference (label mix, confidence, tokens, truncation; population stability index), "
        "null when `CLFSERVE_DRIFT_WINDOW` is off. `feedback_data`: which production labels "
        "(`POST /feedback`) each evaluation also scores, null when off; each evaluation holds "
        "that score under `feedback`, and `stale_on` names the data that found it stale.",
        **documented(contract.READ),
    )
    async def staleness() -> dict[str, Any]:
        history = [evaluation.to_json() for evaluation in monitor.history]
        shared = await cluster.sync(monitor) if cluster is not None else None
        if shared is not None:  # every replica's results, newest first
            history = shared
        return {
            "metric": settings.metric,
            "threshold": settings.threshold,
            "validation_data": settings.validation_data or MODEL_DATA,
            "feedback_data": _feedback_data(monitor),
            "schedule": {
                "interval": str(settings.interval),
                "runs_here": scheduler.running,
                "next_run_at": scheduler.next_run_at(),
                "detail": scheduler.detail,
            },
            "evaluating": monitor.running,
            "shared": shared is not None,
            "latest": history[0] if history else None,
            "history": history,
            "drift": await drift.check() if drift is not None else None,
        }

    @post(
        "/admin/evaluate",
        status_code=HTTP_200_OK,
        tags=["admin"],
        summary="Evaluate the served model now (Authorization: Bearer <CLFSERVE_ADMIN_TOKEN>)",
        **documented(contract.ADMIN, admin=True),
    )
    async def admin_evaluate(request: Request[Any, Any, Any]) -> dict[str, Any]:
        check_admin(request, admin_token)
        return (await monitor.run("admin")).to_json()

    return [staleness, admin_evaluate]
