"""Argument types and the help formatter every subcommand shares."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except None ones (their help says in [brackets] what None means)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


Handler = Callable[[argparse.Namespace], int]


def command(
    subparsers: Any,
    name: str,
    handler: Handler,
    *,
    epilog: str | None = None,
    formatter: type[argparse.HelpFormatter] = HelpFormatter,
) -> argparse.ArgumentParser:
    """Add subcommand ``name``, run by ``handler(args)`` (its return value is the exit code).

    The handler's docstring is the command's help: its first line the one-liner `clfserve
    --help` lists, the rest the description `clfserve NAME --help` opens with.
    """
    summary, _, rest = (inspect.getdoc(handler) or "").partition("\n")
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=" ".join(rest.split()) or summary,
        epilog=epilog,
        formatter_class=formatter,
    )
    parser.set_defaults(handler=handler)
    return parser
