"""The `clfserve` command, which joins the rooms: `release` (train, export, release),
`evaluate` and `serve`, one module each.

Subcommand modules build their parsers without importing anything heavy (torch, mlflow,
litestar); the work happens inside the handler each one registers with `options.command`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from clfserve.cli.options import Handler
from clfserve.runtime.errors import ClfserveError


def build_parser() -> argparse.ArgumentParser:
    from clfserve.cli import evaluate, release, serve

    parser = argparse.ArgumentParser(
        prog="clfserve",
        description="Train, export, evaluate and serve transformer text classifiers with ONNX.",
        epilog="Run `clfserve COMMAND --help` for the options of each command.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at DEBUG level (default INFO)"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    release.add_commands(commands)
    evaluate.add_command(commands)
    serve.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except ClfserveError as exc:  # expected failures: one clear line, no traceback
        print(f"clfserve: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("clfserve: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
