"""Reading: one byte range of a JSONL file, line by line, into a ``_Chunk`` of findings and per-example columns;
and a JSON document (an array, pretty-printed objects) object by object."""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson
from xxhash import xxh3_64_intdigest

from ...errors import Cancelled, FtuiError
from ..findings import Finding
from ..rules import NONE, ExampleChecker
from ..sources import BOM
from ..tokens import counter
from . import limits


class DatasetError(FtuiError):
    """The file cannot be analysed at all (missing, unreadable, a directory, binary). Exit code 2."""

    title = "ftui check"

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


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
limits.NARROW = 2**31  # line numbers and byte offsets of a file smaller than this are stored in 32 bits (else 64)


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
    passes the same dict to each, so that it stores at most ``limits.MAX_FINDINGS_PER_CODE`` of a code in all."""
    checker = ExampleChecker(count or counter(encoding), encoding)
    check = checker.check
    out = _Chunk()
    if end < limits.NARROW:  # 8 bytes less per example: 5 MB for a 1 GB file
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
        if n < limits.MAX_FINDINGS_PER_CODE:
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
            if lineno % limits.REPORT_EVERY == 0:
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


def _json_document(path, encoding: str, count: Callable[[str], int] | None = None) -> _Chunk | None:
    """When the file is a JSON array or pretty-printed objects: a chunk with one entry per object (at the line it
    starts on), checked like a JSON line. None when it is not (then the line-by-line findings stand)."""
    from ..sources import BrokenValue, _is_json_document, iter_json_values

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
