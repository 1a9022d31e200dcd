"""The parallel analysis: a large file is cut at line boundaries into pieces of a few MB that this process and
worker processes take in turn (each takes the next free one when it finishes one); their chunks come back in file
order."""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from multiprocessing.connection import Connection, wait as _wait
from typing import Any, Callable, cast

from ...errors import Cancelled
from ..forking import fork_safe
from .reader import _COLUMNS, DatasetError, _Chunk, process_range


def _split(path: str | os.PathLike, size: int, parts: int) -> list[tuple[int, int]]:
    """Byte ranges that start at line boundaries."""
    bounds = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            f.seek(size * i // parts)
            f.readline()
            b = f.tell()
            if bounds[-1] < b < size:
                bounds.append(b)
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def _take_pieces(path, pieces, encoding, slot, counters, next_piece, should_stop,
                 on_progress: Callable[[], None] | None = None) -> list[tuple[int, _Chunk]]:
    """Process the next free piece until none is left: -> [(piece index, chunk)]. ``counters[slot]`` holds the
    bytes this process has done; ``on_progress`` is called after each update."""
    done: list[tuple[int, _Chunk]] = []
    per_code: dict[str, int] = {}
    before = 0

    def progress(n: int) -> None:
        counters[slot] = before + n
        if on_progress is not None:
            on_progress()

    while True:
        if should_stop():
            raise Cancelled()
        with next_piece.get_lock():
            i = next_piece.value
            if i >= len(pieces):
                return done
            next_piece.value = i + 1
        start, end = pieces[i]
        chunk = process_range(path, start, end, encoding, progress, should_stop, per_code=per_code)
        before += chunk.bytes
        done.append((i, chunk))


def _worker(path, pieces, encoding, slot, counters, next_piece, stop, conn) -> None:  # runs in a child process
    try:
        done = _take_pieces(path, pieces, encoding, slot, counters, next_piece, stop.is_set)
        conn.send(("ok", len(done)))
        while done:
            # the columns go one at a time as raw bytes: pickling whole chunks would hold them twice in each
            # process (the pickle and the arrays), about 24 MB at the peak for half of a 1 GB file. The chunk goes
            # with each column's typecode in its place
            i, result = done.pop(0)
            columns = {name: getattr(result, name) for name in _COLUMNS}
            for name in _COLUMNS:
                setattr(result, name, columns[name].typecode)
            conn.send((i, result))
            for name in _COLUMNS:
                conn.send_bytes(columns.pop(name))
    except Cancelled:
        conn.send(("cancelled", None))
    except BaseException:  # report, never hang the parent
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _start_method() -> str:
    # fork is fastest, but forking a process that runs other threads (the TUI) can deadlock the child
    return "fork" if fork_safe() else "spawn"


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with a real stderr.

    The tracker hands ``sys.stderr.fileno()`` to its process; full-screen apps (Textual) replace ``sys.stderr`` with
    an object whose fileno is -1, and the spawn then fails with "bad value(s) in fds_to_keep". Started once here
    with the process's original stderr (or /dev/null), later spawns reuse it.
    """
    from multiprocessing import resource_tracker

    try:
        ok = sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        ok = False
    if ok:
        return
    saved = sys.stderr
    real = sys.__stderr__
    try:
        usable = real is not None and real.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    stand_in = real if usable and real is not None else open(os.devnull, "w")  # noqa: SIM115
    sys.stderr = stand_in
    try:
        resource_tracker.ensure_running()
    finally:
        if stand_in is not real:
            stand_in.close()
        sys.stderr = saved


def _run_parallel(path, size, pieces, workers, encoding, progress, cancel) -> list[_Chunk]:
    method = _start_method()
    if method != "fork":
        _ensure_resource_tracker()
    # typeshed gives get_context() the BaseContext type, which has no Process; every real context has one
    ctx: Any = multiprocessing.get_context(method)
    counters = ctx.Array("q", workers, lock=False)
    next_piece = ctx.Value("q", 0)
    stop = ctx.Event()
    procs: list[multiprocessing.Process] = []
    conns: list[Connection] = []
    for slot in range(1, workers):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(str(path), pieces, encoding, slot, counters, next_piece, stop, send),
                        daemon=True)
        p.start()
        send.close()
        procs.append(p)
        conns.append(recv)
    import numpy  # noqa: F401  (for the merge; loaded while the worker runs: see the note at the imports)

    def report() -> None:
        if progress is not None:
            progress(min(size, sum(counters)), size)

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    try:
        by_piece = dict(_take_pieces(path, pieces, encoding, 0, counters, next_piece, stopped, report))
        results: dict = {}
        while len(results) < len(conns):
            if stopped():
                raise Cancelled()
            ready = cast("list[Connection]", _wait([c for c in conns if c not in results], timeout=0.05))
            for c in ready:  # wait() gives back the objects it was given: these Connections
                try:
                    results[c] = c.recv()
                    if results[c][0] == "ok":
                        for _ in range(results[c][1]):
                            i, piece = c.recv()
                            for name in _COLUMNS:  # the bytes received, typed in place (not copied)
                                setattr(piece, name, memoryview(c.recv_bytes()).cast(getattr(piece, name)))
                            by_piece[i] = piece
                except EOFError:  # killed (out of memory, a signal) before it could answer
                    p = procs[conns.index(c)]
                    p.join(timeout=1)
                    results[c] = ("died", p.exitcode)
            report()
        for c in conns:
            status, value = results[c]
            if status == "cancelled":
                raise Cancelled()
            if status == "died":
                how = f"signal {-value}" if isinstance(value, int) and value < 0 else f"exit code {value}"
                oom = " — out of memory?" if value in (-9, 137) else ""
                raise DatasetError(path, f"a process of the parallel analysis died ({how}{oom}); nothing is wrong "
                                   "with the file as far as is known: analyse it again")
            if status != "ok":
                raise DatasetError(path, f"the analysis failed in a worker process: {value.strip().splitlines()[-1]}")
        return [by_piece[i] for i in range(len(pieces))]
    except BaseException:
        stop.set()
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=5)
        for c in conns:
            c.close()
