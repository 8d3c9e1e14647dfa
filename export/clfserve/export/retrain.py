"""Retrain: fine-tune the champion on its training data plus production feedback, and move the
alias only when the result is better.

1. The champion is ``NAME@ALIAS``; its manifest records the checkpoint it was exported from
   (``source.checkpoint``, checked by its sha256), the dataset and the split seed.
2. The feedback store is read and split (`feedback_data`): a held-out slice for scoring, the
   rest added to the champion's train split.
3. The challenger is fine-tuned from the champion's checkpoint, then exported and validated by
   the same code as ``clfserve export``.
4. Both models are scored by the same code as ``clfserve evaluate`` (ONNX Runtime, the CPU
   serving variant) on the held-out feedback and on the champion's validation split.
5. **Better** means: held-out feedback macro-F1 more than ``min_gain`` above the champion's, and
   validation macro-F1 at most ``max_regression`` below it. The challenger is registered either
   way (so ``clfserve promote`` can still take it); only a better one goes through the promotion
   gate (`promotion.promote`), which moves the alias.
6. One MLflow run in ``clfserve-retrain`` records the counts, the four scores, the decision and
   the reason, also when a run is refused or fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from clfserve.evaluation import EvaluationResult, evaluate, evaluation_data
from clfserve.export.artefact import export_artefact
from clfserve.export.config import ExportConfig, RetrainConfig, TrainConfig
from clfserve.export.errors import CheckpointError
from clfserve.export.feedback_data import FeedbackSplit, read_feedback, repeated, require_enough
from clfserve.export.feedback_data import store_name as feedback_name
from clfserve.export.promotion import PromotionRefused, promote
from clfserve.export.release import check_registry, register
from clfserve.export.train import train
from clfserve.registry import RegistryError, default_home, log_run, resolve_model, tag_run
from clfserve.runtime.errors import ClfserveError
from clfserve.runtime.manifest import Manifest, sha256_file

log = logging.getLogger(__name__)
Decision = Literal["promoted", "not promoted", "refused", "failed"]
_RECIPE_KEYS = ("batch_size", "weight_decay", "warmup_ratio", "grad_clip", "balanced",
                "group_by_length", "precision")  # fmt: skip
"""What the challenger keeps of the champion's training recipe."""


@dataclass(frozen=True)
class Champion:
    uri: str
    version: str
    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class RetrainResult:
    decision: Literal["promoted", "not promoted"]
    reason: str
    champion_version: str
    challenger_version: str
    feedback: FeedbackSplit
    scores: dict[str, EvaluationResult]
    """``{champion,challenger}_{feedback,validation}``."""
    run_id: str

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"


def retrain(config: RetrainConfig) -> RetrainResult:
    """Run steps 1-6 of the module docstring; raise `NotEnoughFeedback` (after recording the
    refusal) when the store holds too little, other `ClfserveError`s when a stage fails."""
    release = config.release
    check_registry(release)
    champion = find_champion(config)
    log.info("champion %s = version %s", champion.uri, champion.version)
    feedback = read_feedback(config.feedback_url, champion.manifest.labels, config.holdout)
    recorder = _Recorder(config, champion, feedback)
    try:
        require_enough(feedback, config.min_feedback, config.feedback_url)
    except ClfserveError as exc:
        recorder.record("refused", str(exc))
        raise
    try:
        return _challenge(config, champion, feedback, recorder)
    except ClfserveError as exc:
        recorder.record("failed", str(exc), quiet=True)
        raise


def find_champion(config: RetrainConfig) -> Champion:
    release = config.release
    uri = f"models:/{release.name}@{release.alias}"
    resolved = resolve_model(uri, release.tracking_uri)
    return Champion(uri, str(resolved.version), resolved.path, Manifest.read(resolved.path))


def champion_checkpoint(champion: Champion, home: Path) -> Path:
    """The checkpoint the champion was exported from: ``source.checkpoint`` (or a folder of the
    same name under ``<home>/checkpoints``, for a moved home) whose weights have the sha256 the
    manifest records. `CheckpointError` naming what is missing otherwise."""
    source = champion.manifest.source
    recorded, wanted = source.get("checkpoint"), source.get("checkpoint_sha256")
    what = f"{champion.uri} (version {champion.version})"
    if not recorded:
        raise CheckpointError(
            f"{what} records no checkpoint in its manifest (source.checkpoint): retrain "
            "fine-tunes from the champion's checkpoint; release one with `clfserve release` "
            "or `clfserve train` + `clfserve export`"
        )
    seen: list[str] = []
    for folder in dict.fromkeys((home / "checkpoints" / Path(recorded).name, Path(recorded))):
        weights = folder / "model.safetensors"
        if not weights.is_file():
            seen.append(f"{folder}: no model.safetensors")
        elif wanted and sha256_file(weights) != wanted:
            seen.append(f"{folder}: other weights (a later training overwrote it)")
        else:
            return folder
    raise CheckpointError(
        f"the checkpoint of {what} is not reachable: its manifest records {recorded} with "
        f"model.safetensors sha256 {wanted or '(none)'}; {'; '.join(seen)}. Restore that "
        "folder, or release a new champion with `clfserve release`"
    )


def _challenge(
    config: RetrainConfig, champion: Champion, feedback: FeedbackSplit, recorder: _Recorder
) -> RetrainResult:
    release = config.release
    home = config.home or default_home()
    base = champion_checkpoint(champion, home)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    checkpoint = home / "checkpoints" / f"{release.name}-retrain-{stamp}"
    train_config = challenger_recipe(champion.manifest, base, checkpoint, config)
    log.info(
        "fine-tuning %s on %s train texts + %d feedback rows x %d, %g epoch(s) at lr %g",
        base, config.max_train_samples or "all", len(feedback.train), config.feedback_repeats,
        config.epochs, config.learning_rate,
    )  # fmt: skip
    trained = train(train_config, extra=repeated(feedback.train, config.feedback_repeats))
    recorder.metrics.update(train_rows=float(trained.n_train - trained.n_extra),
                            train_seconds=trained.train_seconds)  # fmt: skip
    log.info("trained in %.1fs (%d steps); exporting and validating", trained.train_seconds,
             trained.steps)  # fmt: skip
    exported = export_artefact(challenger_export(config, champion.manifest, checkpoint, home))

    scores = compare(champion.path, exported.folder, feedback)
    recorder.scores = scores
    better, reason = judge(scores, config)
    registered, metrics = register(exported, release)
    recorder.challenger = registered.version
    log.info("registered the challenger as %s", registered.uri)
    decision: Literal["promoted", "not promoted"] = "not promoted"
    if better:
        try:
            promote(registered, metrics, replace(release, force=False))
            decision = "promoted"
        except PromotionRefused as exc:
            reason = f"{reason}, but the promotion gate refused: {exc}"
    run_id = recorder.record(decision, reason)
    tag_run(registered.run_id, {"retrain.run_id": run_id, "retrain.decision": decision},
            release.tracking_uri)  # fmt: skip
    return RetrainResult(
        decision, reason, champion.version, registered.version, feedback, scores, run_id
    )


def challenger_recipe(
    manifest: Manifest, base: Path, output: Path, config: RetrainConfig
) -> TrainConfig:
    """The champion's recipe (dataset, split seed, max_length, batch size, loss, precision),
    starting from ``base`` with this retrain's epochs, learning rate and sample bound."""
    recipe: dict[str, Any] = manifest.source.get("training", {}).get("recipe", {})
    kept = {key: recipe[key] for key in _RECIPE_KEYS if key in recipe}
    return TrainConfig(
        output=output,
        dataset=str(manifest.source.get("dataset") or recipe.get("dataset", "rotten_tomatoes")),
        base_model=base,
        seed=int(manifest.source.get("split_seed", recipe.get("seed", 0))),
        max_length=manifest.max_length,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        max_train_samples=config.max_train_samples,
        max_eval_samples=0,  # both models are scored with ONNX Runtime below
        threads=config.threads,
        progress=config.progress,
        **kept,
    )


def challenger_export(
    config: RetrainConfig, manifest: Manifest, checkpoint: Path, home: Path
) -> ExportConfig:
    """The export checks of ``config.export``, on the champion's data, split and max_length."""
    template = config.export or ExportConfig(checkpoint=checkpoint, output=Path())
    return replace(
        template,
        checkpoint=checkpoint,
        output=home / "artefacts" / f"{config.release.name}-retrain",
        name=config.release.name,
        dataset=manifest.source.get("dataset") or None,
        seed=int(manifest.source.get("split_seed", 0)),
        max_length=manifest.max_length,
    )


def compare(
    champion: Path, challenger: Path, feedback: FeedbackSplit
) -> dict[str, EvaluationResult]:
    """Both models on the held-out feedback and the champion's validation split, through ONNX
    Runtime with the variant and batch size a CPU server uses (`clfserve evaluate`'s code)."""
    from clfserve.runtime import Classifier

    validation, _ = evaluation_data(None, champion)
    scores: dict[str, EvaluationResult] = {}
    for who, folder in (("champion", champion), ("challenger", challenger)):
        classifier = Classifier.load(folder)
        for data_name, data in (("feedback", feedback.holdout), ("validation", validation)):
            result = evaluate(classifier, data)
            scores[f"{who}_{data_name}"] = result
            log.info("%s on %s (%d texts): accuracy %.4f, macro-F1 %.4f", who, data_name,
                     result.n_samples, result.accuracy, result.macro_f1)  # fmt: skip
    return scores


def judge(scores: Mapping[str, EvaluationResult], config: RetrainConfig) -> tuple[bool, str]:
    """Whether the challenger is better (module docstring, step 5), and why in one line."""
    new_fb, old_fb = scores["challenger_feedback"].macro_f1, scores["champion_feedback"].macro_f1
    new_val = scores["challenger_validation"].macro_f1
    old_val = scores["champion_validation"].macro_f1
    tolerance = config.release.max_regression
    feedback = f"held-out feedback macro-F1 {new_fb:.4f} vs champion {old_fb:.4f}"
    validation = f"validation macro-F1 {new_val:.4f} vs champion {old_val:.4f}"
    if new_fb <= old_fb + config.min_gain:
        gain = f" + min gain {config.min_gain:g}" if config.min_gain else ""
        return False, f"{feedback}: not above the champion's{gain}"
    if new_val < old_val - tolerance:
        return False, f"{feedback}, but {validation}: more than {tolerance:g} below"
    return True, f"better: {feedback}, {validation} (tolerance {tolerance:g})"


@dataclass(eq=False)
class _Recorder:
    """Collects what a retrain run learns and logs it as one MLflow run."""

    config: RetrainConfig
    champion: Champion
    feedback: FeedbackSplit
    scores: dict[str, EvaluationResult] | None = None
    challenger: str | None = None

    def __post_init__(self) -> None:
        f = self.feedback
        self.metrics: dict[str, float] = {
            "feedback_stored": float(f.stored),
            "feedback_usable": float(f.usable),
            "feedback_train": float(len(f.train)),
            "feedback_holdout": float(len(f.holdout)),
            **{f"feedback_dropped_{why}": float(n) for why, n in f.dropped.items()},
        }

    def record(self, decision: Decision, reason: str, quiet: bool = False) -> str:
        """Log the run; its id ("" when ``quiet`` and MLflow refused: the error that ended
        the retrain matters more)."""
        c, r = self.config, self.config.release
        metrics = dict(self.metrics, promoted=1.0 if decision == "promoted" else 0.0)
        for key, result in (self.scores or {}).items():
            metrics[f"{key}_macro_f1"] = result.macro_f1
            metrics[f"{key}_accuracy"] = result.accuracy
        params = {"champion_uri": self.champion.uri, "champion_version": self.champion.version,
                  "feedback_db": feedback_name(c.feedback_url), "holdout": c.holdout,
                  "min_feedback": c.min_feedback, "feedback_repeats": c.feedback_repeats,
                  "min_gain": c.min_gain, "max_regression": r.max_regression,
                  "epochs": c.epochs, "learning_rate": c.learning_rate,
                  "max_train_samples": c.max_train_samples}  # fmt: skip
        tags = {"clfserve.retrain.decision": decision, "clfserve.retrain.reason": reason,
                "clfserve.model_name": r.name, "clfserve.champion_version": self.champion.version,
                "clfserve.challenger_version": str(self.challenger)}  # fmt: skip
        try:
            run_id = log_run(
                c.experiment, run_name=f"retrain-{r.name}-v{self.champion.version}",
                params=params, metrics=metrics, tags=tags, note=f"{decision}: {reason}",
                uri=r.tracking_uri,
            )  # fmt: skip
        except RegistryError as exc:
            if not quiet:
                raise
            log.warning("retrain run not logged to MLflow: %s", exc)
            return ""
        log.info("retrain %s (MLflow run %s in experiment %s): %s", decision, run_id,
                 c.experiment, reason)  # fmt: skip
        return run_id
