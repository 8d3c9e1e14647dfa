"""The promotion gate: a new version takes the alias only if it is not worse than the champion.

The new version's validation macro-F1 is compared with the one the alias's current version logged
at its own release, on the variant both served on CPU (int8 where both have it, else fp32). The
alias moves when the new score is at most ``max_regression`` below, when the champion logged no
comparable score, or with ``force``; either way the decision and both scores are tagged on the
new version's MLflow run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from clfserve.export.config import ReleaseConfig
from clfserve.registry import Registered, alias_version, run_metrics, set_alias, tag_run
from clfserve.runtime.errors import ClfserveError

log = logging.getLogger(__name__)
VARIANTS = ("int8", "fp32")
"""Compared in this order: the one the CPU serves first."""


class PromotionRefused(ClfserveError):
    """The new version was registered but scores too far below the champion to take the alias."""


@dataclass(frozen=True)
class Promotion:
    decision: Literal["promoted", "first", "forced", "refused"]
    alias: str
    candidate_macro_f1: float | None
    champion_version: str | None
    champion_macro_f1: float | None
    variant: str | None

    def describe(self, registered: Registered) -> str:
        where = f"models:/{registered.name}@{self.alias}"
        if self.decision == "first":
            return f"{where} -> version {registered.version} (the first)"
        scores = (
            f"{self.variant} validation macro-F1 {self.candidate_macro_f1:.4f} vs champion "
            f"v{self.champion_version}'s {self.champion_macro_f1:.4f}"
            if self.candidate_macro_f1 is not None and self.champion_macro_f1 is not None
            else "no comparable scores"
        )
        if self.decision == "refused":
            return f"{where} stays on version {self.champion_version}: {scores}"
        return f"{where} -> version {registered.version} ({self.decision}: {scores})"


def promote(
    registered: Registered, candidate: dict[str, float], release: ReleaseConfig
) -> Promotion:
    """Move ``release.alias`` to ``registered`` if it passes the gate; raise `PromotionRefused`
    (after tagging the decision) if it does not. ``candidate`` holds the new run's metrics."""
    uri = release.tracking_uri
    current = alias_version(release.name, release.alias, uri)
    if current is None:
        promotion = Promotion("first", release.alias, None, None, None, None)
    else:
        champion = run_metrics(current.run_id, uri) if current.run_id else {}
        variant = next(
            (v for v in VARIANTS if f"val_{v}_macro_f1" in candidate
             and f"val_{v}_macro_f1" in champion),
            None,
        )  # fmt: skip
        new = candidate.get(f"val_{variant}_macro_f1") if variant else None
        old = champion.get(f"val_{variant}_macro_f1") if variant else None
        # A champion registered without validation scores cannot be compared: it does not block.
        passes = old is None or (new is not None and new >= old - release.max_regression)
        decision: Literal["promoted", "forced", "refused"] = (
            "promoted" if passes else "forced" if release.force else "refused"
        )
        promotion = Promotion(decision, release.alias, new, current.version, old, variant)
    tags = {
        "promotion.decision": promotion.decision,
        "promotion.alias": release.alias,
        "promotion.max_regression": f"{release.max_regression:g}",
        "promotion.champion_version": str(promotion.champion_version),
        "promotion.champion_macro_f1": str(promotion.champion_macro_f1),
        "promotion.candidate_macro_f1": str(promotion.candidate_macro_f1),
    }
    tag_run(registered.run_id, tags, uri)
    message = promotion.describe(registered)
    if promotion.decision == "refused":
        raise PromotionRefused(
            f"registered {registered.uri}, but {message}: more than {release.max_regression:g} "
            "below; fix the model, or pass --force (or raise --max-regression) to promote anyway"
        )
    set_alias(registered.name, release.alias, registered.version, uri)
    log.info("%s", message)
    return promotion
