"""ftui's one error family. What a person did wrong or what the data cannot give (a bad option, an unreadable file,
an unknown model) is an ``FtuiError``: its message names the file and line or the option, and the CLI prints it in
one place, without a traceback. Anything else is a bug and goes to the worker-error funnel (``ftui.log``).

Pure Python: every layer may import it (harlequin's ``exception.py`` is the model)."""

from __future__ import annotations


class FtuiError(Exception):
    """An error the person can act on; ``str(exc)`` is the whole message."""

    title = "ftui"  # what the CLI prefixes and the app's notification shows as its title


class Cancelled(Exception):
    """The person stopped a long task (an analysis, a prepare run): not an error, nothing is reported."""
