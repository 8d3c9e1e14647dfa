"""Prometheus instruments of the staleness monitor, in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class StalenessGauges:
    """Last accuracy, F1, stale flag and evaluation time; evaluation and error counts."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.accuracy = Gauge(
            "clfserve_staleness_accuracy", "Accuracy of the last evaluation", registry=r
        )
        self.f1 = Gauge("clfserve_staleness_f1", "Macro-F1 of the last evaluation", registry=r)
        self.stale = Gauge(
            "clfserve_staleness_stale",
            "1 when the last evaluation found the model stale, 0 when healthy, -1 unknown",
            registry=r,
        )
        self.stale.set(-1)
        self.threshold = Gauge(
            "clfserve_staleness_threshold", "Threshold the staleness metric is compared with",
            registry=r,
        )  # fmt: skip
        self.last_timestamp = Gauge(
            "clfserve_staleness_last_evaluation_timestamp_seconds",
            "Unix time the last evaluation finished (errors included)",
            registry=r,
        )
        self.evaluations = Counter(
            "clfserve_staleness_evaluations", "Evaluations run, by outcome", ["status"],
            registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "clfserve_staleness_evaluation_errors",
            "Evaluations that ended in error (data, model or MLflow)",
            registry=r,
        )


class DriftGauges:
    """Population stability index per drift signal, the verdict, its threshold, the count."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, meaning: str, *labels: str) -> Gauge:
            return Gauge(f"clfserve_drift_{name}", meaning, labels, registry=registry)

        self.psi = gauge("psi", "Population stability index of live answers against the "
                         "model's reference, by signal", "signal")  # fmt: skip
        self.drifted = gauge("drifted", "1 when a drift signal is above the threshold, 0 when "
                             "none is, -1 no verdict")  # fmt: skip
        self.drifted.set(-1)
        self.threshold = gauge("threshold", "Threshold the drift signals are compared with")
        self.answers = gauge("window_answers", "Answers in the drift window at the last check "
                             "(all replicas sharing Redis)")  # fmt: skip
