"""ftui's log file, ``$XDG_STATE_HOME/ftui/ftui.log`` (rotated, 0600), opened on first use. Pure Python: the app's
worker-error funnel (``ftui.tui.errors``) writes tracebacks to it; the CLI may too."""

from __future__ import annotations

import logging
import logging.handlers
import os
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
