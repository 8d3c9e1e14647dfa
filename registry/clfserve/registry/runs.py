"""One finished MLflow run of plain numbers and strings (e.g. a retrain's decision), in an
experiment created under the clfserve home like every experiment the project makes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from clfserve.registry.store import error_for, experiment_id_for, open_client


def log_run(
    experiment: str,
    *,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    note: str = "",
    uri: str | None = None,
) -> str:
    """Create, fill and finish one run; its id. `RegistryError` when MLflow refuses."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    now_ms = int(time.time() * 1000)
    with open_client(uri) as client:
        try:
            run = client.create_run(
                experiment_id_for(client, experiment), start_time=now_ms, run_name=run_name
            )
            run_id = str(run.info.run_id)
            all_tags = {**tags, **({"mlflow.note.content": note} if note else {})}
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)[:500]) for k, v in params.items()],
                tags=[RunTag(k, str(v)[:5000]) for k, v in all_tags.items()],
            )
            client.set_terminated(run_id)
        except mlflow.exceptions.MlflowException as exc:
            raise error_for(exc, client, f"logging a run in experiment {experiment!r}") from exc
    return run_id
