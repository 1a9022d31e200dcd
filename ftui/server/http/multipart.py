"""Multipart uploads received as they arrive, straight into the data dir, counted byte by byte.

Starlette's ``request.form()`` spools every file part into the system temp dir and only then lets a route look at
its size: a chunked 400 MB upload to a server limited to 20 MB filled /tmp before the 413. Here the parts go through
python-multipart's streaming parser (the library Starlette uses underneath, through its public callback API); a file
part is written into a temp file in the folder the caller gives, and each chunk is counted and handed to ``check``
(the Files API's JSONL check) before it is kept. Past ``limit`` bytes, or at the first bad line, reading stops.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ftui.server.http.api import APIError

FIELD_LIMIT = 64 * 2**10  # a form field (purpose, expires_after[...]) is a few bytes
FLUSH = 2**20  # file bytes gathered before they are written (in a thread, off the event loop)


@dataclass
class FilePart:
    name: str
    filename: str
    path: Path
    size: int = 0


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FilePart] = field(default_factory=dict)

    def discard(self) -> None:
        for f in self.files.values():
            f.path.unlink(missing_ok=True)


class _Stop(Exception):
    """Raised inside the parser's callbacks: (status, message, param, code)."""


async def receive(request, folder: Path, *, limit: int, too_large: tuple[str, str], max_fields: int = 8,
                  check: Callable[[bytes], tuple | None] | None = None,
                  on_field: Callable[[str, str], None] | None = None) -> Form:
    """The request's multipart form: fields as text, the one file part as a temp file in ``folder`` (the caller
    renames it, or ``Form.discard()``s it; on any error here it is removed). ``too_large``: (message, code) of the
    413 past ``limit`` file bytes. ``check(chunk)`` sees the file's bytes in order, as they are kept, and returns
    (status, message, code) of the first problem, which stops the reading. ``on_field`` hears each field as it
    arrives."""
    ctype = request.headers.get("content-type", "")
    kind, params = parse_options_header(ctype)
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise APIError(400, "The request must be multipart/form-data with a boundary.")
    form = Form()
    state: dict = {"headers": [], "hname": b"", "hvalue": b"", "part": None, "data": bytearray(), "file": None,
                   "pending": []}

    def fail(status: int, message: str, param: str | None = None, code: str | None = None):
        raise _Stop(status, message, param, code)

    def on_header_field(data, start, end_):
        state["hname"] += data[start:end_]

    def on_header_value(data, start, end_):
        state["hvalue"] += data[start:end_]

    def on_header_end():
        state["headers"].append((state["hname"].lower(), state["hvalue"]))
        state["hname"] = state["hvalue"] = b""

    def on_headers_finished():
        disposition = next((v for k, v in state["headers"] if k == b"content-disposition"), b"")
        _, opts = parse_options_header(disposition)
        state["headers"] = []
        if b"name" not in opts:
            fail(400, "A multipart part has no name.")
        name = opts[b"name"].decode("utf-8", "replace")
        state["data"] = bytearray()
        if b"filename" in opts:
            if form.files:
                fail(400, "Only one file can be sent.", param=name)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
            state["file"] = os.fdopen(fd, "wb")
            raw = opts[b"filename"]
            part = FilePart(name, raw.decode("utf-8", "surrogateescape"), Path(tmp))
            form.files[name] = part
            state["part"] = part
        else:
            if len(form.fields) >= max_fields:
                fail(400, f"At most {max_fields} form fields are taken.")
            state["part"] = name

    def on_part_data(data, start, end_):
        part = state["part"]
        if isinstance(part, FilePart):
            part.size += end_ - start
            if part.size > limit:
                fail(413, too_large[0], part.name, too_large[1])
            state["pending"].append(data[start:end_])
        else:
            state["data"] += data[start:end_]
            if len(state["data"]) > FIELD_LIMIT:
                fail(400, f"The form field '{part}' is longer than {FIELD_LIMIT:,} bytes.", part)

    def on_part_end():
        part = state["part"]
        if not isinstance(part, FilePart) and part is not None:
            form.fields[part] = state["data"].decode("utf-8", "replace")
            if on_field is not None:
                on_field(part, form.fields[part])
        state["part"] = None

    parser = MultipartParser(params[b"boundary"], {
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end})

    def flush() -> tuple | None:
        chunk = b"".join(state["pending"])
        state["pending"].clear()
        state["file"].write(chunk)
        return check(chunk) if check is not None else None

    def finish() -> tuple | None:
        problem = flush()
        state["file"].close()
        state["file"] = None
        return problem

    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if state["file"] is not None and sum(map(len, state["pending"])) >= FLUSH:
                if (problem := await asyncio.to_thread(flush)) is not None:
                    fail(problem[0], problem[1], "file", problem[2])
        parser.finalize()
        if state["file"] is not None and (problem := await asyncio.to_thread(finish)) is not None:
            fail(problem[0], problem[1], "file", problem[2])
    except _Stop as stop:
        _close(state)
        form.discard()
        status, message, param, code = stop.args
        raise APIError(status, message, param=param, code=code) from None
    except FormParserError:
        _close(state)
        form.discard()
        raise APIError(400, "The multipart body could not be parsed.") from None
    except BaseException:  # the client left mid-upload (or anything else): nothing is left behind
        _close(state)
        form.discard()
        raise
    return form


def _close(state: dict) -> None:
    if state["file"] is not None:
        state["file"].close()
        state["file"] = None
