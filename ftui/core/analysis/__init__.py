"""Streaming, parallel dataset analysis (``ftui check`` and the Data workspace).

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

import os
import time
from pathlib import Path
from typing import Callable

from ...errors import Cancelled
from .. import catalog as _catalog
from ..findings import Finding
from ..tokens import counter_for
from . import limits
from .merge import Analysis, _merge, mark_cross_file_duplicates
from .parallel import _run_parallel, _split
from .reader import DatasetError, _json_document, check_readable, process_range

__all__ = ["Analysis", "Cancelled", "DatasetError", "Progress", "analyze", "check_readable",
           "mark_cross_file_duplicates", "process_range"]

Progress = Callable[[int, int], None]


def analyze(path: str | os.PathLike, model: str | None = None, *, encoding: str | None = None,
            workers: int | None = None, progress: Progress | None = None, cancel=None,
            parallel_min_bytes: int | None = None, piece_bytes: int | None = None) -> Analysis:
    """Analyse one JSONL file. ``encoding`` defaults to the model's (the default model's when no model is given)."""
    t0 = time.perf_counter()
    parallel_min_bytes = limits.PARALLEL_MIN_BYTES if parallel_min_bytes is None else parallel_min_bytes
    piece_bytes = limits.PIECE_BYTES if piece_bytes is None else piece_bytes
    size = check_readable(path)
    mtime = os.stat(path).st_mtime
    enc = encoding or _catalog.resolve(model).encoding
    # load (and verify) the encoding before any work starts; a small file gets the counter that starts at once
    backend, count = counter_for(enc, size)
    n = workers if workers is not None else (os.cpu_count() or 1)
    # each process gets at least half the threshold; small files stay in this process
    parts = max(1, min(n, size // max(1, parallel_min_bytes // 2))) if size >= parallel_min_bytes else 1
    n_pieces = max(parts, min(-(-size // max(1, piece_bytes)), limits.MAX_PIECES_PER_PROCESS * parts))
    ranges = _split(path, size, n_pieces) if parts > 1 else [(0, size)]
    if len(ranges) > 1:
        chunks = _run_parallel(path, size, ranges, min(parts, len(ranges)), enc, progress, cancel)
    else:
        def report(done: int) -> None:
            if progress is not None:
                progress(done, size)

        chunks = [process_range(path, 0, size, enc, report,
                                (cancel.is_set if cancel is not None else None), count)]
    if size <= limits.MAX_JSON_DOCUMENT and any(f.code in ("invalid_json", "data_type") for ch in chunks[:1]
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
