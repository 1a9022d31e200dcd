"""``python -m ftui.cli``: the ``ftui`` command (the app starts its local backend this way)."""

from . import entry

entry()
