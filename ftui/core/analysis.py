"""Streaming, parallel dataset analysis.

``analyze(path)`` reads a JSONL file line by line (physical 1-based line numbers, CRLF, a UTF-8 BOM, blank lines,
invalid UTF-8 or JSON on one line, multi-MB lines), validates every example and counts its tokens. Large files are
split at line boundaries into pieces of a few MB that the caller's process and worker processes take in turn, each
the next one free when it finishes one (a process that starts late or runs on a slower core takes fewer); the merge
puts them back in file order and is exactly what a serial run gives (a test holds it to that). Memory holds a few
numbers per example, never the examples themselves.

Progress goes to ``progress(done_bytes, total_bytes)``; ``cancel`` is anything with ``is_set()`` and stops the run
with :class:`Cancelled`.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import sys
import threading
import time
import traceback
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import wait as _wait
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import orjson
from xxhash import xxh3_64_intdigest

from . import catalog as _catalog
from .findings import Finding, file_first as _order
from .rules import (
    AMBIGUOUS,
    CHAT,
    COMPLETION,
    FORMAT_NAMES,
    HAS_SYSTEM,
    HAS_USER,
    NONE,
    PREFERENCE,
    REINFORCEMENT,
    ExampleChecker,
)
from .tokens import counter, counter_backend, counter_for

if TYPE_CHECKING:
    import numpy as np
# numpy is imported where the columns are merged, not here: a worker process of the parallel analysis never needs
# it, and `ftui check` forks its worker before numpy is loaded (~80 ms), so the worker starts on the lines first

BOM = b"\xef\xbb\xbf"
MIN_EXAMPLES = 10
PARALLEL_MIN_BYTES = 8 << 20  # below this a second process costs more than it saves
# the pieces processes take in turn: small enough that no process waits long for the last one to end (~60 ms of
# work at 4 MB); at most 16 per process (a 1 GB file: 32 pieces of ~31 MB; 64 per process measured 4 MB more
# memory there and no faster)
PIECE_BYTES = 4 << 20
MAX_PIECES_PER_PROCESS = 16
DEDUP_BLOCK = 1 << 16  # examples looked up at a time among the repeated digests (a few temporary MB at most)
MAX_FINDINGS_PER_CODE = 200_000  # stored; counts stay exact beyond it
_REPORT_EVERY = 1024  # lines between progress reports / cancel checks

Progress = Callable[[int, int], None]


class DatasetError(Exception):
    """The file cannot be analysed at all (missing, unreadable, a directory, binary). Exit code 2."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


class Cancelled(Exception):
    """The analysis was cancelled through its ``cancel`` event."""


@dataclass
class _Chunk:
    """What one contiguous byte range of the file produced (line numbers local to the chunk)."""

    lines: int = 0
    bytes: int = 0
    findings: list = field(default_factory=list)
    dropped: dict = field(default_factory=dict)  # code -> findings not stored (over the cap)
    line: array = field(default_factory=lambda: array("q"))
    offset: array = field(default_factory=lambda: array("q"))
    kind: array = field(default_factory=lambda: array("b"))
    tokens: array = field(default_factory=lambda: array("i"))
    trainable: array = field(default_factory=lambda: array("i"))
    messages: array = field(default_factory=lambda: array("i"))
    flags: array = field(default_factory=lambda: array("b"))
    hash: array = field(default_factory=lambda: array("Q"))
    json_objects: int | None = None  # set when the file was read as a JSON document


_COLUMNS = ("line", "offset", "kind", "tokens", "trainable", "messages", "flags", "hash")  # per example, in a _Chunk
NARROW = 2**31  # line numbers and byte offsets of a file smaller than this are stored in 32 bits (else 64)


def check_readable(path: str | os.PathLike) -> int:
    """The file's size, or :class:`DatasetError` saying plainly why it cannot be analysed."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except OSError as exc:
        raise DatasetError(path, exc.strerror or str(exc)) from None
    if p.is_dir():
        raise DatasetError(path, "is a directory, not a JSONL file")
    try:
        with open(p, "rb") as f:
            head = f.read(8192)
    except OSError as exc:
        raise DatasetError(path, f"cannot read: {exc.strerror or exc}") from None
    if b"\x00" in head:
        raise DatasetError(path, "looks like a binary file (NUL bytes), not JSONL text")
    return st.st_size


# The 64-bit digest of each example, for finding exact duplicates (within a file, and across the files of one
# `ftui check`); never written anywhere, so the function may change. xxh3 is a non-cryptographic hash that runs at
# memory speed: 3.5 against 27 ms for sha256[:8] over 30 MB of lines (sha256 on the CPU's SHA instructions), a tenth
# of the per-line work. Two different examples share a digest with probability ~n²/2⁶⁵ (1e-8 for 600k examples).
_line_hash = xxh3_64_intdigest


def process_range(path: str | os.PathLike, start: int, end: int, encoding: str,
                  on_progress: Callable[[int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, count: Callable[[str], int] | None = None,
                  per_code: dict[str, int] | None = None) -> _Chunk:
    """Validate and count the lines that begin in ``[start, end)``; line numbers are 1-based within the range.

    ``per_code`` counts the findings stored so far by code, for the cap; a process that takes several ranges
    passes the same dict to each, so that it stores at most ``MAX_FINDINGS_PER_CODE`` of a code in all."""
    checker = ExampleChecker(count or counter(encoding), encoding)
    check = checker.check
    out = _Chunk()
    if end < NARROW:  # 8 bytes less per example: 5 MB for a 1 GB file
        out.line, out.offset = array("i"), array("i")
    findings = out.findings
    dropped = out.dropped
    per_code = {} if per_code is None else per_code
    loads = orjson.loads
    JSONDecodeError = orjson.JSONDecodeError
    lineno = 0

    def emit(code: str, message: str, path: str = "") -> None:
        n = per_code.get(code, 0)
        per_code[code] = n + 1
        if n < MAX_FINDINGS_PER_CODE:
            findings.append(Finding(lineno, code, message, path))
        else:
            dropped[code] = dropped.get(code, 0) + 1

    ex_line, ex_offset, ex_kind = out.line.append, out.offset.append, out.kind.append
    ex_tokens, ex_trainable, ex_messages = out.tokens.append, out.trainable.append, out.messages.append
    ex_flags, ex_hash = out.flags.append, out.hash.append
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        readline = f.readline
        while pos < end:
            raw = readline()
            if not raw:
                break
            lineno += 1
            offset = pos
            pos += len(raw)
            line = raw.rstrip(b"\r\n")
            if offset == 0 and line.startswith(BOM):
                line = line[3:]
                emit("utf8_bom", "the file starts with a UTF-8 byte-order mark; some tools reject it")
            if lineno % _REPORT_EVERY == 0:
                if should_stop is not None and should_stop():
                    raise Cancelled()
                if on_progress is not None:
                    on_progress(pos - start)
            if not line or line.isspace():
                emit("blank_line", "empty line (skipped)")
                continue
            ex_line(lineno)
            ex_offset(offset)
            try:
                obj = loads(line)
            except JSONDecodeError as exc:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as uexc:
                    emit("invalid_utf8", f"invalid UTF-8 at byte {uexc.start + 1} of the line")
                else:
                    emit("invalid_json", f"invalid JSON: {exc}")
                kind, tokens, trainable, n_messages, flags, digest = NONE, 0, 0, 0, 0, 0
            else:
                kind, tokens, trainable, n_messages, flags = check(obj, emit)
                digest = _line_hash(line.strip())
            ex_kind(kind)
            ex_tokens(tokens)
            ex_trainable(trainable)
            ex_messages(n_messages)
            ex_flags(flags)
            ex_hash(digest)
    out.lines = lineno
    out.bytes = pos - start
    if on_progress is not None:
        on_progress(pos - start)
    return out


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
        chunk = process_range(path, *pieces[i], encoding, progress, should_stop, per_code=per_code)
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
    if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork"


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
    sys.stderr = real if usable else open(os.devnull, "w")  # noqa: SIM115
    try:
        resource_tracker.ensure_running()
    finally:
        if sys.stderr is not real:
            sys.stderr.close()
        sys.stderr = saved


def _run_parallel(path, size, pieces, workers, encoding, progress, cancel) -> list[_Chunk]:
    method = _start_method()
    if method != "fork":
        _ensure_resource_tracker()
    ctx = multiprocessing.get_context(method)
    counters = ctx.Array("q", workers, lock=False)
    next_piece = ctx.Value("q", 0)
    stop = ctx.Event()
    procs, conns = [], []
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
            for c in _wait([c for c in conns if c not in results], timeout=0.05):
                try:
                    results[c] = c.recv()
                    if results[c][0] == "ok":
                        for _ in range(results[c][1]):
                            i, chunk = c.recv()
                            for name in _COLUMNS:  # the bytes received, typed in place (not copied)
                                setattr(chunk, name, memoryview(c.recv_bytes()).cast(getattr(chunk, name)))
                            by_piece[i] = chunk
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


@dataclass
class Analysis:
    """Everything that depends on the file and the encoding, not on the model (switching models is instant)."""

    path: str
    size: int
    mtime: float
    encoding: str
    tokenizer: str
    lines: int
    format: str | None
    format_counts: dict
    findings: list  # sorted by line; model-independent
    dropped: dict
    line: np.ndarray  # per non-blank line: physical line number
    offset: np.ndarray  # byte offset of that line
    kind: np.ndarray
    tokens: np.ndarray
    trainable: np.ndarray
    messages: np.ndarray
    flags: np.ndarray
    seconds: float = 0.0
    hash: np.ndarray | None = None  # 64-bit digest of each example's JSON (0 where it did not parse)
    json_document: bool = False  # JSON (an array or pretty-printed objects), analysed object by object

    @property
    def examples(self) -> int:
        return int(self.line.size)

    @property
    def valid_mask(self) -> np.ndarray:
        """Examples that parsed into a known format (the ones with token counts)."""
        return self.kind != NONE

    def report(self, model: str | None = None, n_epochs: int | str = "auto", role: str | None = None):
        """This analysis seen through one model (:class:`ftui.core.report.Report`); ``role`` training or
        validation (default: by the file's name)."""
        from .report import Report

        return Report(self, _catalog.resolve(model), n_epochs, role)

    def line_offset(self, line: int) -> int | None:
        import numpy as np

        i = int(np.searchsorted(self.line, line))
        return int(self.offset[i]) if i < self.line.size and self.line[i] == line else None


def _give_back_freed_memory() -> None:
    """Return the free pages in the middle of the C heap to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A chunk's columns are a few hundred KB each, so once glibc has raised its mmap threshold they live in the heap,
    and freeing them after the merge copied them did not lower the process's memory: a 1 GB file held its columns
    twice at the merge (19 MB more). Called once per column joined (microseconds each)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _merge(path: str, size: int, mtime: float, encoding: str, chunks: list[_Chunk], seconds: float,
           tokenizer: str | None = None) -> Analysis:
    import numpy as np

    base = 0
    shifted: list[Iterable[Finding]] = []
    dropped: dict[str, int] = {}
    bases = []
    for ch in chunks:
        bases.append(base)
        shifted.append([f.shifted(base) for f in ch.findings] if base else ch.findings)
        for k, v in ch.dropped.items():
            dropped[k] = dropped.get(k, 0) + v
        base += ch.lines

    # Memory stays flat in the file's size: about 30 bytes per example live here (a 1 GB file holds ~630k), so a
    # single chunk's arrays are used in place (no copy) and several are joined one column at a time, each chunk's
    # column freed as soon as it is joined — never all the chunks and all the joined columns at once.
    def cat(name: str, dtype, shift: bool = False) -> np.ndarray:
        if not chunks:
            return np.zeros(0, dtype=dtype)
        if len(chunks) == 1:
            return np.asarray(getattr(chunks[0], name)).astype(dtype, copy=False)
        out = np.empty(sum(len(getattr(ch, name)) for ch in chunks), dtype=dtype)
        at = 0
        for ch, b in zip(chunks, bases):
            part = np.asarray(getattr(ch, name))  # an array.array, or a memoryview of the bytes a worker sent
            n = part.size
            out[at:at + n] = part
            if shift and b:
                out[at:at + n] += b
            at += n
            del part
            setattr(ch, name, None)
        _give_back_freed_memory()
        return out

    narrow = np.int32 if size < NARROW else np.int64
    line = cat("line", narrow, shift=True)
    kind = cat("kind", np.int8)
    flags = cat("flags", np.int8)
    hashes = cat("hash", np.uint64)
    offset, tokens = cat("offset", narrow), cat("tokens", np.int32)
    trainable, messages = cat("trainable", np.int32), cat("messages", np.int32)
    lines_total = base
    extra: list[Finding] = []

    # the file's format: the most common definite kind; other kinds are mixed-format errors
    definite = {k: int((kind == k).sum()) for k in (CHAT, PREFERENCE, REINFORCEMENT, COMPLETION)}
    ambiguous = int((kind == AMBIGUOUS).sum())
    if any(definite.values()):
        first_line = {k: int(line[kind == k][0]) for k, v in definite.items() if v}
        fmt = max(first_line, key=lambda k: (definite[k], -first_line[k]))
    elif ambiguous:
        fmt = CHAT  # messages but never an answer and no grader fields: a chat file missing its answers
    else:
        fmt = None
    fmt_name = FORMAT_NAMES.get(fmt) if fmt is not None else None
    for k in (CHAT, PREFERENCE, REINFORCEMENT, COMPLETION, AMBIGUOUS):
        if k == fmt or (k == AMBIGUOUS and fmt == REINFORCEMENT):
            continue
        rows = line[kind == k]
        if not rows.size:
            continue
        if fmt == CHAT and k in (AMBIGUOUS, REINFORCEMENT):
            for ln in rows.tolist():
                extra.append(Finding(ln, "example_missing_assistant_message",
                                     "no assistant message: a chat example needs an answer to train on",
                                     "messages"))
            continue
        name = FORMAT_NAMES.get(k, "reinforcement or chat without an answer")
        for ln in rows.tolist():
            extra.append(Finding(ln, "mixed_format",
                                 f"this line is in {name} format but the file is {fmt_name} "
                                 f"(first {fmt_name} example on line {first_line[fmt]})", ""))

    # system / user presence, for the formats built on messages
    if fmt in (CHAT, REINFORCEMENT, PREFERENCE):
        msg_rows = (kind == fmt) | ((kind == AMBIGUOUS) & (fmt != PREFERENCE))
        if fmt == CHAT:
            for ln in line[msg_rows & ((flags & HAS_SYSTEM) == 0)].tolist():
                extra.append(Finding(ln, "missing_system_message", "no system message", "messages"))
        for ln in line[msg_rows & ((flags & HAS_USER) == 0)].tolist():
            extra.append(Finding(ln, "missing_user_message", "no user message", "messages"))

    # exact duplicates: sort the 64-bit line digests, name the first line in every later copy's finding
    parsed = kind != NONE
    if parsed.any():
        every = bool(parsed.all())  # the usual case: no copies of the columns
        h = hashes if every else hashes[parsed]
        ln = line if every else line[parsed]
        del parsed
        # the digests that occur more than once: a sorted copy (8 bytes per example; an argsort of every digest
        # and the sorted copy were 16 at the peak), then the few examples that have them, found block by block
        hs = np.sort(h)
        repeated = np.unique(hs[1:][hs[1:] == hs[:-1]])
        del hs
        if repeated.size:
            rows = []
            for i in range(0, h.size, DEDUP_BLOCK):
                block = h[i:i + DEDUP_BLOCK]
                j = np.searchsorted(repeated, block)
                j[j == repeated.size] = 0
                rows.append(np.flatnonzero(repeated[j] == block) + i)
            rows = np.concatenate(rows)  # in file order
            hr = h[rows]
            order = np.argsort(hr, kind="stable")  # by digest, each copy in file order
            hs = hr[order]
            same = np.flatnonzero(hs[1:] == hs[:-1]) + 1
            starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
            group_first = starts[np.searchsorted(starts, same, side="right") - 1]
            lr = ln[rows]
            for dup, orig in zip(lr[order[same]].tolist(), lr[order[group_first]].tolist()):
                extra.append(Finding(dup, "duplicate_example", f"same example as line {orig}", ""))

    n_examples = int(line.size)
    if n_examples == 0:
        extra.append(Finding(None, "empty_file", "the file holds no examples" if lines_total else
                             "the file is empty"))
    elif n_examples < MIN_EXAMPLES:
        extra.append(Finding(None, "too_few_examples",
                             f"{n_examples} example(s); the service needs at least {MIN_EXAMPLES}"))

    extra.sort(key=_order)
    findings = list(heapq.merge(*shifted, extra, key=_order))
    counts = {FORMAT_NAMES.get(k, "unknown"): v for k, v in definite.items() if v}
    if ambiguous:
        counts["messages without an answer"] = ambiguous
    return Analysis(
        path=path, size=size, mtime=mtime, encoding=encoding, tokenizer=tokenizer or counter_backend(encoding),
        lines=lines_total, format=fmt_name, format_counts=counts, findings=findings, dropped=dropped, line=line,
        offset=offset, kind=kind, tokens=tokens, trainable=trainable, messages=messages, flags=flags,
        seconds=seconds, hash=hashes,
    )


def analyze(path: str | os.PathLike, model: str | None = None, *, encoding: str | None = None,
            workers: int | None = None, progress: Progress | None = None, cancel=None,
            parallel_min_bytes: int = PARALLEL_MIN_BYTES, piece_bytes: int = PIECE_BYTES) -> Analysis:
    """Analyse one JSONL file. ``encoding`` defaults to the model's (the default model's when no model is given)."""
    t0 = time.perf_counter()
    size = check_readable(path)
    mtime = os.stat(path).st_mtime
    enc = encoding or _catalog.resolve(model).encoding
    # load (and verify) the encoding before any work starts; a small file gets the counter that starts at once
    backend, count = counter_for(enc, size)
    n = workers if workers is not None else (os.cpu_count() or 1)
    # each process gets at least half the threshold; small files stay in this process
    parts = max(1, min(n, size // max(1, parallel_min_bytes // 2))) if size >= parallel_min_bytes else 1
    n_pieces = max(parts, min(-(-size // max(1, piece_bytes)), MAX_PIECES_PER_PROCESS * parts))
    ranges = _split(path, size, n_pieces) if parts > 1 else [(0, size)]
    if len(ranges) > 1:
        chunks = _run_parallel(path, size, ranges, min(parts, len(ranges)), enc, progress, cancel)
    else:
        def report(done: int) -> None:
            if progress is not None:
                progress(done, size)

        chunks = [process_range(path, 0, size, enc, report,
                                (cancel.is_set if cancel is not None else None), count)]
    if size <= MAX_JSON_DOCUMENT and any(f.code in ("invalid_json", "data_type") for ch in chunks[:1]
                                         for f in ch.findings[:50]):
        doc = _json_document(path, enc, count if len(ranges) == 1 else None)
        if doc is not None:
            chunks = [doc]
    result = _merge(str(path), size, mtime, enc, chunks, time.perf_counter() - t0,
                    tokenizer=backend if len(ranges) == 1 else None)
    if len(chunks) == 1 and chunks[0].json_objects is not None:
        result.json_document = True
        n = chunks[0].json_objects
        result.findings.insert(0, Finding(None, "json_not_jsonl",
                                          f"JSON, not JSON Lines: {n:,} object(s) over {chunks[0].lines:,} lines; "
                                          f"each example must be one line. `ftui prepare {Path(path).name} --out DIR` "
                                          "converts it (add --split 100 --no-shuffle for one file in the same order); "
                                          "the examples are analysed as if it were JSON Lines"))
    return result


MAX_JSON_DOCUMENT = 256 << 20  # a JSON document is parsed whole to diagnose it; larger ones keep the line view


def _json_document(path, encoding: str, count: Callable[[str], int] | None = None) -> _Chunk | None:
    """When the file is a JSON array or pretty-printed objects: a chunk with one entry per object (at the line it
    starts on), checked like a JSON line. None when it is not (then the line-by-line findings stand)."""
    from .sources import BrokenValue, _is_json_document, iter_json_values

    with open(path, "rb") as f:
        raw = f.read()
    if not _is_json_document(raw[:65536]):
        return None
    body = raw[3:] if raw.startswith(BOM) else raw
    try:
        text = body.decode("utf-8")
        values = list(iter_json_values(text, tolerant=True))  # a broken object is one finding, where it starts
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not values:
        return None
    checker = ExampleChecker(count or counter(encoding), encoding)
    out = _Chunk()
    out.json_objects = len(values)
    lineno = 0

    def emit(code: str, message: str, jpath: str = "") -> None:
        out.findings.append(Finding(lineno, code, message, jpath))

    shift = len(raw) - len(body)
    byte_pos, char_pos = shift, 0
    for lineno, offset, value in values:
        byte_pos += len(text[char_pos:offset].encode("utf-8"))  # character offset → byte offset, incrementally
        char_pos = offset
        if isinstance(value, BrokenValue):
            emit("invalid_json", f"{value.reason}; this object starts here and is left out")
            kind, tokens, trainable, n_messages, flags = NONE, 0, 0, 0, 0
        else:
            kind, tokens, trainable, n_messages, flags = checker.check(value, emit)
        out.line.append(lineno)
        out.offset.append(byte_pos)
        out.kind.append(kind)
        out.tokens.append(tokens)
        out.trainable.append(trainable)
        out.messages.append(n_messages)
        out.flags.append(flags)
        digest = orjson.dumps(value, option=orjson.OPT_SORT_KEYS) if kind != NONE else b""
        out.hash.append(_line_hash(digest) if digest else 0)
    out.lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    out.bytes = len(raw)
    return out


def mark_cross_file_duplicates(analyses: list[Analysis], max_listed: int = MAX_FINDINGS_PER_CODE) -> None:
    """Add a ``duplicate_across_files`` warning to each example of a later file that is the same (byte for byte,
    after surrounding whitespace) as an example of an earlier file: ``ftui check train.jsonl valid.jsonl`` shows
    validation examples that leak from train."""
    import numpy as np

    seen: dict[int, tuple[str, int]] = {}
    for a in analyses:
        if a.hash is None:
            continue
        extra = []
        h = a.hash
        ok = np.flatnonzero((a.kind != NONE) & (h != 0))
        for i in ok.tolist():
            key = int(h[i])
            hit = seen.get(key)
            if hit is not None and hit[0] != a.path and len(extra) < max_listed:
                extra.append(Finding(int(a.line[i]), "duplicate_across_files",
                                     f"same example as {Path(hit[0]).name} line {hit[1]}"))
        for i in ok.tolist():
            seen.setdefault(int(h[i]), (a.path, int(a.line[i])))
        if extra:
            a.findings = list(heapq.merge(a.findings, extra, key=_order))
