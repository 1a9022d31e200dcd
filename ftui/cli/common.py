"""What the commands share: exit codes, the config's default model, the terminal's style, progress lines."""

from __future__ import annotations

import os
import sys

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2


def config_model() -> str | None:
    """The config file's default_model (what `--model` defaults to); a broken config is reported, not fatal."""
    from ..config import load

    config, error = load()
    if error:
        print(f"ftui: {error}", file=sys.stderr)
    return config.default_model


def colour() -> bool:
    """Colour on stdout: a terminal, and $NO_COLOR unset."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def clear_line() -> None:
    """Erase the progress line on stderr (a terminal only)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
