"""One funnel for what nobody foresaw (harlequin's pattern): every worker of every screen, and the message handlers
that render backend data, report an unexpected exception here. The person gets a readable notification naming what
was being done; the full traceback goes to the log file ``$XDG_STATE_HOME/ftui/ftui.log`` (rotated, 0600), which F1
and the command palette name. Pure Python (logging only): the CLI may use it too."""

from __future__ import annotations

import functools
import logging
import logging.handlers
import os
import traceback
from pathlib import Path

_logger: logging.Logger | None = None
_logger_path: Path | None = None


def log_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ftui" / "ftui.log"


def logger() -> logging.Logger:
    """The app's logger, writing to the rotated log file (set up on first use: nothing is opened at start-up)."""
    global _logger, _logger_path
    path = log_path()
    if _logger is None or path != _logger_path:  # set up once, again only if $XDG_STATE_HOME moved (tests)
        log = logging.getLogger("ftui.app")
        log.propagate = False
        log.setLevel(logging.INFO)
        for old in list(log.handlers):
            log.removeHandler(old)
            old.close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600))  # created 0600, never wider
            handler: logging.Handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000,
                                                                            backupCount=3, encoding="utf-8")
        except OSError:
            handler = logging.NullHandler()  # an unwritable state dir must not take the app down
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        _logger, _logger_path = log, path
    return _logger


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
