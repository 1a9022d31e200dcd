"""Reading one large CSV or TSV in two halves at once: this process maps the first, a forked child the second.

The per-row work (CSV parsing, the mapping, the checks, the token counts) is Python that holds the GIL, so threads
would not share it; a forked process starts at once with the checker and the tokenizer's tables already built. The
result is exactly the serial one: the split is at a line where a record starts if the quoting is RFC 4180's (an
even number of quotes before it), and the first half must end there clean — its reader, given one line more, reads
that line as a row of its own. When it does not (a stray quote inside an unquoted field), or the child fails, the
halves are dropped and the file is read in one piece. Only where forking is safe: a process without other threads
(the command line; the app prepares in a thread and reads serially) on a machine with two cores or more.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from typing import TYPE_CHECKING, Any

from ..forking import can_fork
from ..sources import Source, record_boundary
from .mapping import Template, _Mapper
from .result import MAX_LISTED

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ..recipe import Recipe
    from ..rules import ExampleChecker
    from .steps import Tick, _Part

MIN_BYTES = 8 << 20  # below this, forking and sending half of the examples back costs about what it saves


def _mapped(recipe: Recipe, src: Source, templates: tuple[Template, Template], checker: ExampleChecker, tick: Tick,
            before: int) -> _Part:
    from .steps import _map_part

    mapper = _Mapper(recipe)
    mapper.user, mapper.assistant = templates
    part = _map_part(recipe, src, mapper.map_source(src), checker, tick, before)
    part.n_dropped, part.dropped, part.kinds = mapper.n_dropped, mapper.dropped, mapper.kinds
    part.ended_clean = src.span[1] is None or src.ended_clean
    return part


def _child(conn: Connection, recipe: Recipe, src: Source, templates: tuple[Template, Template],
           checker: ExampleChecker) -> None:
    """The second half, in the forked process: its part, or the error's text (the parent then reads serially)."""
    try:
        result: Any = _mapped(recipe, src, templates, checker, lambda step, done: None, 0)
    except BaseException as exc:  # noqa: BLE001 — anything: the parent falls back to reading in one piece
        result = f"{type(exc).__name__}: {exc}"
    conn.send(result)
    conn.close()


def map_in_halves(recipe: Recipe, src: Source, mapper: _Mapper, checker: ExampleChecker, tick: Tick,
                  before: int, min_bytes: int | None = None) -> list[_Part] | None:
    """The two halves' parts in file order (the counts and notes of ``mapper`` updated as reading it whole would),
    or None where the source is read in one piece: not a CSV or TSV mapped from its columns (given, or guessed from
    their names), smaller than ``min_bytes``, no place to split, forking unsafe, or a half that did not end clean
    or failed."""
    if src.format not in ("csv", "tsv") or not can_fork():
        return None
    guessing = _Mapper(recipe)  # what map_source notes when it guesses the columns
    if mapper.user is not None and mapper.assistant is not None:
        templates = (mapper.user, mapper.assistant)
    elif src.columns and _Mapper.maps_columns(src.columns):
        guessed = guessing.guess(src, src.columns)
        if guessed is None:
            return None  # read whole, map_source says what to do
        templates = guessed
    else:
        return None
    size = os.path.getsize(src.path)
    if size < (MIN_BYTES if min_bytes is None else min_bytes):
        return None
    at = record_boundary(src.path, size // 2)
    if at is None:
        return None
    offset, line = at
    first = dataclasses.replace(src, span=(0, offset, 1), issues=[], n_issues=0, rows_seen=0)
    second = dataclasses.replace(src, span=(offset, None, line), issues=[], n_issues=0, rows_seen=0)
    ctx: Any = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, recipe, second, templates, checker), daemon=True)
    proc.start()
    send.close()
    try:
        head = _mapped(recipe, first, templates, checker, tick, before)
        tail = recv.recv()
    except EOFError:  # the child died without a word
        return None
    except BaseException:
        proc.kill()  # this side stopped (cancelled, an error): the child's half is not wanted
        raise
    finally:
        recv.close()
        proc.join()
    if isinstance(tail, str) or not head.ended_clean:
        return None
    mapper.notes.extend(guessing.notes)
    for part in (head, tail):
        mapper.n_dropped += part.n_dropped
        mapper.dropped.extend(part.dropped[: MAX_LISTED - len(mapper.dropped)])
        for kind, n in part.kinds.items():
            mapper.kinds[kind] = mapper.kinds.get(kind, 0) + n
    return [head, tail]
