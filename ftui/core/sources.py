"""Reading raw labelled data for ``ftui prepare``: CSV, TSV, a JSON array or a stream of JSON documents, JSON Lines
and Parquet (the optional ``parquet`` extra).

Every reader yields ``Row(line, values)``: ``line`` is the physical 1-based line where the row starts (Parquet: the
1-based row number) and ``values`` a dict. A row that cannot be read (bad UTF-8, broken JSON, a ragged CSV row) is
not yielded: it becomes a :class:`ReadIssue` naming the file and line, and reading goes on. Nothing here raises for
bad content; :class:`SourceError` is for a file that cannot be read at all.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import orjson

from ..errors import FtuiError

BOM = b"\xef\xbb\xbf"
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
_EXT = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
        ".parquet": "parquet", ".pq": "parquet"}
MAX_ISSUES = 1000  # kept per file; the count stays exact


class SourceError(FtuiError):
    """The file cannot be read at all (missing, a directory, binary, a reader that is not installed)."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass(frozen=True)
class Row:
    line: int
    values: dict


@dataclass(frozen=True)
class ReadIssue:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass
class Source:
    """One input file being read. Iterate it once for its rows; ``issues`` fills as it goes."""

    path: str
    format: str
    columns: list[str] = field(default_factory=list)  # tabular header (CSV/TSV/Parquet); JSON: keys of the first row
    issues: list[ReadIssue] = field(default_factory=list)
    n_issues: int = 0
    rows_seen: int = 0
    note: str = ""  # e.g. "JSON, not JSON Lines"
    delimiter: str = ""  # CSV: the separator the header's first lines were sniffed to use ("," ";" "|" or a tab)
    # CSV/TSV read in parts (see record_boundary): (first byte, end byte or None, that first byte's line number)
    span: tuple[int, int | None, int] = (0, None, 1)
    ended_clean: bool = False  # a part with an end: its last row ended exactly there (see _read_csv)

    def issue(self, line: int | None, message: str) -> None:
        self.n_issues += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(ReadIssue(self.path, line, message))

    def __iter__(self) -> Iterator[Row]:
        reader = {"csv": _read_csv, "tsv": _read_csv, "json": _read_json, "jsonl": _read_jsonl,
                  "parquet": _read_parquet}[self.format]
        for row in reader(self):
            self.rows_seen += 1
            yield row


def detect_format(path: str | os.PathLike, head: bytes) -> str:
    """By extension; an unknown extension is sniffed (JSON starts with ``[`` or ``{``, else comma vs tab)."""
    ext = Path(path).suffix.lower()
    if ext in _EXT:
        fmt = _EXT[ext]
        if fmt == "jsonl" and _is_json_document(head):
            return "json"
        return fmt
    text = head.lstrip(BOM).lstrip()
    if text[:1] in (b"[", b"{"):
        return "json" if _is_json_document(head) else "jsonl"
    first = text.split(b"\n", 1)[0]
    return "tsv" if first.count(b"\t") > first.count(b",") else "csv"


def _is_json_document(head: bytes) -> bool:
    """A JSON array, or JSON objects spread over several lines (pretty-printed), rather than one object per line."""
    text = head.lstrip(BOM).lstrip()
    if text[:1] == b"[":
        return True
    if text[:1] != b"{":
        return False
    first = text.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return True  # the first line alone is not a JSON object: it continues on the next lines
    return False


def open_source(path: str | os.PathLike, fmt: str | None = None, delimiter: str | None = None) -> Source:
    """``delimiter``: a CSV's separator (one of ``DELIMITER_NAMES``); by default sniffed from its first lines."""
    p = Path(path)
    try:
        if p.is_dir():
            raise SourceError(path, "is a directory, not a data file")
        with open(p, "rb") as f:
            head = f.read(65536)
    except FileNotFoundError:
        raise SourceError(path, "no such file") from None
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    fmt = fmt or detect_format(p, head)
    if fmt not in FORMATS:
        raise SourceError(path, f"unknown input format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt == "parquet":
        if not head.startswith(b"PAR1"):
            raise SourceError(path, "not a Parquet file (no PAR1 magic)")
        _pyarrow(path)
    elif b"\x00" in head:
        raise SourceError(path, "looks like a binary file (NUL bytes), not text")
    src = Source(str(path), fmt)
    if delimiter and delimiter not in DELIMITER_NAMES:
        raise SourceError(path, f"separator {delimiter!r}: one of {', '.join(map(repr, DELIMITER_NAMES))}")
    if fmt == "csv":
        src.delimiter = delimiter or sniff_delimiter(head)
        if src.delimiter != ",":
            src.note = f"{DELIMITER_NAMES[src.delimiter]}-separated"
    if fmt in ("csv", "tsv"):
        src.columns = _csv_header(src)
    elif fmt == "parquet":
        src.columns = list(_pyarrow(path).ParquetFile(str(path)).schema_arrow.names)
    if fmt == "json" and Path(path).suffix.lower() in (".jsonl", ".ndjson"):
        src.note = "JSON, not JSON Lines: read as JSON"
    return src


def _pyarrow(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SourceError(path, "reading Parquet needs the optional 'parquet' extra: pip install 'ftui[parquet]'") \
            from None
    return pq


# -- CSV / TSV -------------------------------------------------------------------------------------------------------
_END = "\x00ftui: end of the part\x00"  # a line after a part's last one: read as a row of its own when it ends clean


def _decoded_lines(src: Source, bad: set[int]) -> Iterator[str]:
    """The file's physical lines as text (those of ``src.span``); a line that is not UTF-8 is decoded with
    replacements and its number put in ``bad`` (the row holding it is reported and skipped)."""
    start, end, first = src.span
    pos = start
    with open(src.path, "rb") as f:
        f.seek(start)
        for n, raw in enumerate(f, first):
            if end is not None and pos >= end:
                break
            pos += len(raw)
            if n == 1 and raw.startswith(BOM):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.add(n)
                src.issue(n, f"invalid UTF-8 at byte {exc.start + 1} of the line")
                yield raw.decode("utf-8", "replace")
    if end is not None:
        yield _END + "\n"


def record_boundary(path: str | os.PathLike, at: int, limit: int = 1 << 24) -> tuple[int, int] | None:
    """``(offset, line)``: the first line start at or after byte ``at`` with an even number of double quotes
    before it, and its 1-based line number — where a CSV record starts if the quoting is RFC 4180's (a quote
    inside an unquoted field breaks that; the part before it then does not end clean, see ``Source.ended_clean``).
    None when there is none within ``limit`` bytes after ``at``."""
    quotes = newlines = pos = 0
    with open(path, "rb") as f:
        while pos < at:
            block = f.read(min(1 << 20, at - pos))
            if not block:
                return None
            quotes += block.count(b'"')
            newlines += block.count(b"\n")
            pos += len(block)
        for raw in f:  # the first is the rest of the line `at` falls in
            quotes += raw.count(b'"')
            newlines += raw.count(b"\n")
            pos += len(raw)
            if not raw.endswith(b"\n") or pos - at > limit:
                return None
            if quotes % 2 == 0:
                return pos, newlines + 1
    return None


DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def sniff_delimiter(head: bytes) -> str:
    """The separator of a CSV file from its first lines (the csv module's Sniffer, limited to the usual four):
    spreadsheets in many locales write ``;`` (the decimal comma takes ``,``). A comma when nothing is clear."""
    text = head.decode("utf-8", "replace")
    lines = text.splitlines()[:20]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # a line cut by the 64 KB probe
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters="".join(DELIMITER_NAMES)).delimiter
    except csv.Error:
        return ","


def _reader(lines, src: Source):
    """csv.reader over ``lines`` in the source's dialect: TSV, or CSV with its (sniffed or named) separator."""
    if src.format == "tsv":
        return csv.reader(lines, "excel-tab")
    return csv.reader(lines, "excel", delimiter=src.delimiter or ",")


def _csv_header(src: Source) -> list[str]:
    bad: set[int] = set()
    probe = Source(src.path, src.format, delimiter=src.delimiter)
    try:
        header = next(_reader(_decoded_lines(probe, bad), src), None)
    except csv.Error as exc:
        raise SourceError(src.path, f"line 1: the header cannot be read: {exc}") from None
    if not header:
        raise SourceError(src.path, "the file is empty (no header row)")
    names = [h.strip() for h in header]
    seen = set()
    for i, name in enumerate(names):
        if not name:
            raise SourceError(src.path, f"line 1: column {i + 1} of the header has no name")
        if name in seen:
            raise SourceError(src.path, f"line 1: the header names the column {name!r} twice")
        seen.add(name)
    return names


def _read_csv(src: Source) -> Iterator[Row]:
    bad: set[int] = set()
    lines = _decoded_lines(src, bad)
    # csv.field_size_limit stays at its default (128 KiB a field): a runaway quote ends as an error, not memory
    reader = _reader(lines, src)
    width = len(src.columns)
    first_byte, end_byte, first_line = src.span
    shift = first_line - 1  # reader.line_num counts the lines this reader was given
    if first_byte == 0:
        try:
            next(reader)  # the header
        except (StopIteration, csv.Error):
            return
    while True:
        start = reader.line_num + 1 + shift
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            src.issue(start, f"CSV: {exc}")
            continue
        if end_byte is not None and cells == [_END]:  # the part's last row ended where the part does
            src.ended_clean = True
            return
        end = reader.line_num + shift
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line
        if any(n in bad for n in range(start, end + 1)):
            continue  # reported as invalid UTF-8
        if len(cells) != width:
            src.issue(start, f"{len(cells)} fields, the header has {width}")
            continue
        yield Row(start, dict(zip(src.columns, cells)))


# -- JSON Lines ----------------------------------------------------------------------------------------------------
def _read_jsonl(src: Source) -> Iterator[Row]:
    loads = orjson.loads
    with open(src.path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if n == 1 and line.startswith(BOM):
                line = line[3:]
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as uexc:
                    src.issue(n, f"invalid UTF-8 at byte {uexc.start + 1} of the line")
                else:
                    src.issue(n, f"invalid JSON: {exc}")
                continue
            if not isinstance(obj, dict):
                src.issue(n, f"expected a JSON object, got {_kind(obj)}")
                continue
            if not src.columns:
                src.columns = list(obj)
            yield Row(n, obj)


def _kind(obj) -> str:
    return "null" if obj is None else {list: "an array", str: "a string", bool: "a boolean"}.get(
        type(obj), "a number")


# -- JSON document(s) ------------------------------------------------------------------------------------------------
class BrokenValue:
    """A value of a JSON document that does not parse (``iter_json_values(..., tolerant=True)``): its reader goes on
    at the next value that starts at the same indentation."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _resync(text: str, start: int) -> int | None:
    """Where the next value begins after a broken one that began at ``start``: the next line that opens an object
    or array at the broken value's own indentation (pretty-printers write every value of a level alike)."""
    if start >= len(text) or text[start] not in "[{":
        return None  # nothing there to skip, or not a value a pretty-printer lays out on lines of its own
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start]
    if indent.strip():
        return None  # the value did not begin its line: no layout to follow
    at = start
    while True:
        at = text.find("\n" + indent + text[start], at + 1)
        if at < 0:
            return None
        nxt = at + 1 + len(indent)
        if nxt + 1 >= len(text) or text[nxt + 1] not in " \t":  # not a deeper line that happens to share the prefix
            return nxt


def _past_broken(text: str, i: int, exc: json.JSONDecodeError, tolerant: bool) -> tuple[int, BrokenValue]:
    """(where reading goes on, the broken value) for a value at ``i`` that does not parse: the next value of its
    level, or the end when it was the last (a cut file). ``ValueError`` when not ``tolerant`` or lost."""
    nxt = _resync(text, i) if tolerant else None
    if nxt is None and tolerant and i < len(text) and text[i] in "[{" and exc.pos > i:
        nxt = len(text)
    if nxt is None:
        raise ValueError(f"line {exc.lineno}: invalid JSON: {exc.msg}") from None
    return nxt, BrokenValue(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")


def iter_json_values(text: str, tolerant: bool = False) -> Iterator[tuple[int, int, object]]:
    """(line, character offset, value) for each value of a JSON array, or each of several JSON documents written
    one after another (pretty-printed objects). Raises ``ValueError`` with the line of the first broken value; with
    ``tolerant``, a broken value is yielded as a :class:`BrokenValue` at the line it starts on, once, and reading
    goes on at the next value of its level (a ``ValueError`` only when no such value can be found)."""
    dec = json.JSONDecoder()
    n = len(text)
    pos = 0
    line = 1

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def advance(to: int) -> None:
        nonlocal pos, line
        line += text.count("\n", pos, to)
        pos = to

    start = skip(0)
    advance(start)
    if start < n and text[start] == "[":
        i = skip(start + 1)
        advance(i)
        if i < n and text[i] == "]":
            return
        while True:
            try:
                value, end = dec.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                nxt, broken = _past_broken(text, i, exc, tolerant)
                yield line, i, broken
                if nxt >= n:  # the last item was broken (a cut file): the array ends with it
                    return
                advance(nxt)
                i = nxt
                continue
            yield line, i, value
            j = skip(end)
            if j < n and text[j] == ",":
                i = skip(j + 1)
                advance(i)
                continue
            if j < n and text[j] == "]":
                if skip(j + 1) < n:
                    advance(skip(j + 1))
                    raise ValueError(f"line {line}: text after the end of the JSON array")
                return
            advance(min(j, n))
            raise ValueError(f"line {line}: expected ',' or ']' after an array item")
    i = start
    while i < n:
        try:
            value, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            nxt, broken = _past_broken(text, i, exc, tolerant)
            yield line, i, broken
            advance(nxt)
            i = nxt
            continue
        yield line, i, value
        i = skip(end)
        advance(i)


MAX_JSON_BYTES = 1 << 30  # a JSON document is read whole; beyond this, convert it to JSON Lines first


def _read_json(src: Source) -> Iterator[Row]:
    size = os.path.getsize(src.path)
    if size > MAX_JSON_BYTES:
        src.issue(None, f"a {size >> 20} MB JSON document is too large to read whole; write it as JSON Lines")
        return
    raw = Path(src.path).read_bytes()
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        src.issue(line, "invalid UTF-8")
        return
    try:
        for line, _, value in iter_json_values(text):
            if not isinstance(value, dict):
                src.issue(line, f"expected a JSON object, got {_kind(value)}")
                continue
            if not src.columns:
                src.columns = list(value)
            yield Row(line, value)
    except ValueError as exc:
        src.issue(None, f"{exc} (reading stopped there)")


# -- Parquet ---------------------------------------------------------------------------------------------------------
def _read_parquet(src: Source) -> Iterator[Row]:
    pq = _pyarrow(src.path)
    n = 0
    try:
        pf = pq.ParquetFile(src.path)
        for batch in pf.iter_batches(batch_size=8192):
            for values in batch.to_pylist():
                n += 1
                yield Row(n, values)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        src.issue(n + 1 if n else None, f"Parquet: {exc}")
