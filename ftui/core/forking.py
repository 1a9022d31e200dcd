"""When a step may fork a process to use a second core: the command line's work (``ftui prepare``, ``ftui check``)
is Python that holds the GIL, and a forked child starts at once with what the parent built (tokenizer tables,
texts). Forking a process that runs other threads can deadlock the child (a lock held by another thread at the
fork stays held), so the app, which works in threads, never does."""

from __future__ import annotations

import multiprocessing
import os
import threading


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fork_safe() -> bool:
    """Forking is safe here: no other thread, and the platform has fork."""
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def can_fork() -> bool:
    """A second process would run beside this one, and forking is safe."""
    return fork_safe() and cores() >= 2
