"""`clfserve retrain`: argument parsing and exit codes; the work lives in
`clfserve.export.retrain`. Building the parser imports nothing heavy."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clfserve.cli.options import HelpFormatter, command, positive_int
from clfserve.cli.release import (
    _export_config,
    _from_args,
    _gate_options,
    _home,
    _registry_options,
    _release_config,
)
from clfserve.export.config import RetrainConfig

log = logging.getLogger(__name__)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1")
    return value


_R = RetrainConfig(feedback_url="")
_TUNING: tuple[tuple[str, Callable[[str], Any], Any, str], ...] = (
    ("--holdout", _share, _R.holdout, "feedback share held out"),
    ("--min-feedback", positive_int, _R.min_feedback, "usable rows needed"),
    ("--feedback-repeats", positive_int, _R.feedback_repeats,
     "times each feedback train row is seen per epoch"),
    ("--min-gain", float, _R.min_gain,
     "held-out feedback macro-F1 must beat the champion's by more than this"),
    ("--epochs", float, _R.epochs, "passes over the train data"),
    ("--learning-rate", float, _R.learning_rate, "AdamW lr"),
    ("--max-train-samples", positive_int, None,
     "fine-tune on the first N texts of the original train split only (bounds the time) [all]"),
    ("--threads", int, None, "torch threads [usable CPUs]"),
)  # fmt: skip
"""Options that set the `RetrainConfig` field of the same name."""
FEEDBACK_DB_ENV = "CLFSERVE_FEEDBACK_DB"
PROMOTED, ERROR, USAGE, NOT_PROMOTED, NOT_ENOUGH_FEEDBACK = 0, 1, 2, 3, 4

EPILOG = "\n".join(
    [
        "A challenger is better when its macro-F1 on the held-out feedback is more than "
        "--min-gain above the champion's AND its validation macro-F1 is at most "
        "--max-regression below the champion's (both scored with ONNX Runtime like `clfserve "
        "evaluate`). Only then does it go through the promotion gate, which moves the alias; "
        "servers following the alias pick it up. A challenger that is not better is "
        "registered without the alias (`clfserve promote --version N` can still take it). "
        "Each run is logged to MLflow (experiment clfserve-retrain).",
        "",
        "exit codes:",
        f"  {PROMOTED}  promoted: the alias names the challenger",
        f"  {NOT_PROMOTED}  not promoted: the challenger is not better; the alias is unchanged",
        f"  {NOT_ENOUGH_FEEDBACK}  not retrained: too little feedback",
        f"  {ERROR}  error",
        f"  {USAGE}  usage error",
    ]
)


def add_command(subparsers: Any) -> None:
    p = command(subparsers, "retrain", run, epilog=EPILOG, formatter=_Formatter)
    p.add_argument(
        "--feedback-db",
        default=None,
        help=f"SQLAlchemy URL of the feedback store [${FEEDBACK_DB_ENV}, else "
        "sqlite:///<home>/feedback.db]",
    )
    for flag, kind, default, text in _TUNING:
        p.add_argument(flag, type=kind, default=default, help=text)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--every",
        type=_duration,
        default=None,
        help="run again every DURATION (30m, 24h, 1d) until interrupted, whatever each run "
        "decides [run once]",
    )
    _gate_options(p, min_score=0.0)
    _registry_options(p, force=False)


def run(args: argparse.Namespace) -> int:
    """fine-tune the champion on production feedback; promote it only if better

    Fine-tune NAME@ALIAS from its own checkpoint on its training data plus the labels in the
    feedback store (a hash-picked share held out for scoring), export and validate the
    challenger like `clfserve export`, compare it with the champion and move the alias only
    when it is better.
    """
    config = config_from(args)
    if args.every is None:
        return _once(config)
    while True:  # a scheduler loop: every outcome is logged, none stops it
        code = _once(config)
        log.info("retrain exited %d; next run in %gs", code, args.every)
        time.sleep(args.every)


def _once(config: RetrainConfig) -> int:
    from clfserve.export.errors import NotEnoughFeedback
    from clfserve.export.retrain import retrain
    from clfserve.runtime.errors import ClfserveError

    try:
        result = retrain(config)
    except NotEnoughFeedback as exc:
        print(f"clfserve: not retrained: {exc}", file=sys.stderr)
        return NOT_ENOUGH_FEEDBACK
    except ClfserveError as exc:
        print(f"clfserve: error: {exc}", file=sys.stderr)
        return ERROR
    for key, score in result.scores.items():
        who, data = key.split("_", 1)
        print(f"{who:>10} on {data:<10} ({score.n_samples:5d} texts): "
              f"accuracy {score.accuracy:.4f}, macro-F1 {score.macro_f1:.4f}")  # fmt: skip
    name, alias = config.release.name, config.release.alias
    if result.promoted:
        print(f"promoted: models:/{name}@{alias} -> version {result.challenger_version} "
              f"(was {result.champion_version}); {result.reason}")  # fmt: skip
        return PROMOTED
    print(f"not promoted: models:/{name}@{alias} stays on version {result.champion_version}; "
          f"challenger registered as version {result.challenger_version}; "
          f"{result.reason}")  # fmt: skip
    return NOT_PROMOTED


def config_from(args: argparse.Namespace) -> RetrainConfig:
    """The `RetrainConfig` the parsed ``args`` describe (the feedback store resolved)."""
    from clfserve.service.feedback import feedback_url

    home = _home()
    configured = args.feedback_db or os.environ.get(FEEDBACK_DB_ENV)
    url = feedback_url(None if configured in (None, "", "default") else configured)
    return _from_args(
        RetrainConfig, args, feedback_url=url, release=_release_config(args),
        export=_export_config(args, Path(), Path(), None, None), home=home,
        progress=not args.no_progress,
    )  # fmt: skip


class _Formatter(HelpFormatter):
    """Defaults in the option help; description and epilog wrapped line by line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(
            super(_Formatter, self)._fill_text(line, width, indent) if line.strip() else ""
            for line in text.splitlines()
        )


def _duration(text: str) -> float:
    from clfserve.service.envsettings import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return seconds
