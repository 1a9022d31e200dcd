"""What a server process is doing, when it seems stuck."""

from __future__ import annotations

import signal


def stacks_on_sigusr1() -> None:
    """``kill -USR1`` makes this process (and a trainer it forks, which inherits the handler) write every thread's
    Python stack to its stderr — the server's log when a test or the app started it: what a job that seems stuck
    is doing, without a debugger. The tests send it to a server whose job did not move in time."""
    import faulthandler

    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, ValueError, OSError):  # no SIGUSR1 (Windows) or no usable stderr
        pass
