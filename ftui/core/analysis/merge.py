"""Merging: the chunks of one file, in order, into one ``Analysis`` — the columns joined, and the findings only the
whole file can give (its format and mixed formats, missing system or user messages, exact duplicates, too few
examples). The merge is exactly what a serial run gives."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..findings import Finding, file_first as _order
from ..rules import (
    AMBIGUOUS,
    CHAT,
    COMPLETION,
    FORMAT_NAMES,
    HAS_SYSTEM,
    HAS_USER,
    NONE,
    PREFERENCE,
    REINFORCEMENT,
)
from ..tokens import counter_backend
from . import limits
from .reader import _Chunk

if TYPE_CHECKING:
    import numpy as np


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

    narrow = np.int32 if size < limits.NARROW else np.int64
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
        assert fmt is not None  # rows of another kind than the file's mean the file has a kind
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
            for i in range(0, h.size, limits.DEDUP_BLOCK):
                block = h[i:i + limits.DEDUP_BLOCK]
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
    elif n_examples < limits.MIN_EXAMPLES:
        extra.append(Finding(None, "too_few_examples",
                             f"{n_examples} example(s); the service needs at least {limits.MIN_EXAMPLES}"))

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


def mark_cross_file_duplicates(analyses: list[Analysis], max_listed: int = limits.MAX_FINDINGS_PER_CODE) -> None:
    """Add a ``duplicate_across_files`` warning to each example of a later file that is the same (byte for byte,
    after surrounding whitespace) as an example of an earlier file: ``ftui check train.jsonl valid.jsonl`` shows
    validation examples that leak from train."""
    import numpy as np

    seen: dict[int, tuple[str, int]] = {}
    for a in analyses:
        if a.hash is None:
            continue
        extra: list[Finding] = []
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
