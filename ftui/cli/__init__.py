"""ftui's command line: ``ftui [PATH]`` (the full-screen app), ``ftui check``, ``ftui prepare``, ``ftui eval``,
``ftui grade``, ``ftui export`` and ``ftui serve`` — one module per command, each with ``add_parser(sub)`` and
``run(args)``.

Errors a person can act on (:class:`ftui.errors.FtuiError`) are printed here, in one place, as ``ftui COMMAND:
message`` with exit code 2. Only the standard library (and the stdlib-only recipe) is imported at start-up; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..errors import FtuiError
from . import check, eval as eval_, export, grade, prepare, serve, tui
from .common import EXIT_ERRORS, EXIT_OK, EXIT_UNREADABLE

__all__ = ["EXIT_ERRORS", "EXIT_OK", "EXIT_UNREADABLE", "build_parser", "entry", "main"]

MODULES = {"check": check, "prepare": prepare, "eval": eval_, "grade": grade, "export": export, "serve": serve}
COMMANDS = tuple(MODULES)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftui", usage="ftui [PATH] | ftui COMMAND ...",
        description="A terminal workbench for fine-tuning language models in the OpenAI format. "
        "`ftui [PATH]` opens the full-screen app on a dataset file or a directory (default: the current one).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        return tui.run(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    module = MODULES[args.command]
    if module.FILTER and hasattr(signal, "SIGPIPE"):  # `ftui check … | head`: end quietly when the reader goes
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return args.func(args)
    except FtuiError as exc:
        print(f"ftui {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        print(f"\nftui {args.command}: {module.INTERRUPTED}", file=sys.stderr)
        return 130


def entry() -> None:
    """The `ftui` command and `python -m ftui.cli`: :func:`main`, then the exit."""
    code = main()
    if sys.argv[1:2] == ["check"]:
        # `ftui check` ends with large structures alive (quicktok's tables, the columns, the findings), and the
        # interpreter's teardown freed them one by one: ~90 ms of a 0.9 s check of 100 MB. main has flushed the report
        # and the worker processes were joined before it, so the process leaves at once, as mypy does
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # the report that could not be written: main said so
            pass
        os._exit(code)
    sys.exit(code)
