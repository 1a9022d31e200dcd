"""A bench stops what it starts, however it ends: a timeout's SIGTERM or a closed terminal's SIGHUP becomes SystemExit,
so every ``finally`` (``server.stop()``, ``local.stop()``, ``subprocess.run``'s kill of its child) runs. A bench
killed outright (SIGKILL) leaves no server either: tests.backend.Server's servers die with the process that
started them (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import signal


def ends_cleanly() -> None:
    def leave(sig, _frame) -> None:
        signal.signal(sig, signal.SIG_DFL)  # a second one ends it at once
        raise SystemExit(128 + sig)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, leave)
