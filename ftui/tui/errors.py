"""One funnel for what nobody foresaw (harlequin's pattern): every worker of every screen, and the message handlers
that render backend data, report an unexpected exception here. The person gets a readable notification naming what
was being done; the full traceback goes to the log file (``ftui.log``), which F1 and the command palette name."""

from __future__ import annotations

import functools
import traceback

from ..log import log_path, logger

__all__ = ["guarded", "log_path", "logger", "report"]


def report(what: str, error: BaseException) -> str:
    """Log ``error`` with its traceback under ``what``; returns the one-line text to show a person."""
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    logger().error("%s failed: %s", what, tb.rstrip())
    text = " ".join(f"{type(error).__name__}: {error}".split())
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{text}  (details in {log_path()})"


def guarded(what: str):
    """For message handlers that render what a backend sent: an exception there is reported (notification + log),
    never a crash of the whole app. The handler's node must have ``.app``."""

    def wrap(method):
        @functools.wraps(method)
        def run(self, *args, **kw):
            try:
                return method(self, *args, **kw)
            except Exception as e:  # noqa: BLE001 — the funnel: shown and logged, the app goes on
                self.app.notify(report(what, e), title=f"{what} failed", severity="error", timeout=12)
                return None

        return run

    return wrap
