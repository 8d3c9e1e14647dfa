"""``GET /staleness`` and ``POST /admin/evaluate`` (bearer token; absent token -> 404)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK

from clfserve.evaluation.sources import MODEL_DATA
from clfserve.service.admin import check_admin
from clfserve.service.staleness.monitor import StalenessMonitor
from clfserve.service.staleness.scheduler import StalenessScheduler


def build_routes(
    monitor: StalenessMonitor, scheduler: StalenessScheduler, admin_token: str | None
) -> list[HTTPRouteHandler]:
    settings = monitor.settings

    @get("/staleness", tags=["model"], summary="Latest staleness evaluation and recent history")
    async def staleness() -> dict[str, Any]:
        return {
            "metric": settings.metric,
            "threshold": settings.threshold,
            "validation_data": settings.validation_data or MODEL_DATA,
            "schedule": {
                "interval": str(settings.interval),
                "runs_here": scheduler.running,
                "next_run_at": scheduler.next_run_at(),
                "detail": scheduler.detail,
            },
            "evaluating": monitor.running,
            "latest": latest.to_json() if (latest := monitor.latest) is not None else None,
            "history": [evaluation.to_json() for evaluation in monitor.history],
        }

    @post(
        "/admin/evaluate",
        status_code=HTTP_200_OK,
        tags=["admin"],
        summary="Evaluate the served model now (Authorization: Bearer <CLFSERVE_ADMIN_TOKEN>)",
    )
    async def admin_evaluate(request: Request[Any, Any, Any]) -> dict[str, Any]:
        check_admin(request, admin_token)
        return (await monitor.run("admin")).to_json()

    return [staleness, admin_evaluate]
