"""``ftui [PATH]``: the full-screen app on a dataset file or a folder."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .common import EXIT_OK, EXIT_UNREADABLE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftui", description="Open the full-screen app.")
    p.add_argument("path", nargs="?", default=None, metavar="PATH",
                   help="a dataset file to open, or a directory to browse (default: the current directory)")
    p.add_argument("--model", "-m", default=None, help="model for limits and cost (default: the config's)")
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    path = args.path
    if path is not None and not os.path.exists(path):
        print(f"ftui: {path}: no such file or directory", file=sys.stderr)
        return EXIT_UNREADABLE
    # a hang-up before the app has mounted (it installs its own handler then) ends it at once, with the same code:
    # nothing has started yet that needs stopping (the backend starts after the first paint)
    signal.signal(signal.SIGHUP, lambda sig, _frame: os._exit(128 + sig))
    from ..tui.app import FtuiApp

    app = FtuiApp(path)
    if args.model:
        app.model_id = args.model
    try:
        app.run()
    except OSError:  # the terminal went away under the driver (EIO)
        if not app.hung_up_by:
            raise
    if app.hung_up_by:
        # a dropped terminal ends the app with 128 + the signal, whatever else went on meanwhile; nothing more is
        # written to a terminal that is gone (a flush of stdout/stderr there fails with EIO: exit code 1 or 120)
        import logging

        logging.shutdown()
        os._exit(128 + app.hung_up_by)
    return app.return_code or EXIT_OK
