"""/v1/files: upload (multipart), list, retrieve, content, delete."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from ftui.server.http.api import PURPOSES, APIError, CtxDep, file_obj, not_found

router = APIRouter(prefix="/v1/files")


MAX_UPLOAD = int(os.environ.get("FTUI_SERVE_MAX_UPLOAD", str(512 * 2**20)))  # the Files API's limit
MAX_LINE = 16 * 2**20  # no training example is near this: a longer line is refused, never held in memory
CHUNK = 2**20


@router.post("")
async def upload(request: Request, c: CtxDep):
    """The file is streamed into the data dir as it arrives, counted and checked line by line as it goes (like
    OpenAI's upload check): memory never grows with its size, and reading stops at the limit (413) or the first
    bad line (400), with or without a Content-Length."""
    from ftui.server.http.multipart import receive

    store = c.store
    length = request.headers.get("content-length", "")
    too_large = (f"The file is larger than the Files API's {MAX_UPLOAD:,} bytes.", "file_too_large")
    if length.isdigit() and int(length) > MAX_UPLOAD + 2**16:
        raise APIError(413, too_large[0], param="file", code=too_large[1])
    fields: dict[str, str] = {}
    checker, live = JsonlCheck(), [True]  # live: every chunk so far went through the check

    def check(chunk: bytes):
        if fields.get("purpose") != "fine-tune" or not live[0]:  # the SDK sends the purpose first; if not,
            live[0] = False  # the file is checked from disk once the purpose is known
            return None
        return checker.feed(chunk)

    form = await receive(request, store.dir / "files", limit=MAX_UPLOAD, too_large=too_large, check=check,
                         on_field=fields.__setitem__)
    try:
        upload = form.files.get("file")
        purpose = form.fields.get("purpose")
        if upload is None:
            raise APIError(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in PURPOSES:
            raise APIError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        expiry = {k: v for k, v in form.fields.items() if k == "expires_after" or k.startswith("expires_after[")}
        unknown = sorted((set(form.fields) - {"purpose"} - set(expiry)) | (set(form.files) - {"file"}))
        if unknown:
            raise APIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        if expiry:  # checked like OpenAI, then refused by name: files here live until deleted
            _check_expiry(expiry)
        name = checked_filename(upload.filename, "file")
        if purpose == "fine-tune":
            if not name.endswith(".jsonl"):
                raise APIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
            if upload.size == 0:
                raise APIError(400, "The file is empty: a fine-tuning file holds one JSON example per line.",
                               param="file", code="empty_file")
            problem = checker.end() if live[0] else await asyncio.to_thread(check_file, upload.path)
            if problem is not None:
                raise APIError(problem[0], problem[1], param="file", code=problem[2])
        f = await asyncio.to_thread(store.adopt_file, upload.path, name, purpose)
    finally:
        form.discard()
    return file_obj(f)


def checked_filename(raw: str | None, param: str) -> str:
    """The name a file is kept under: its last path component; control characters and names over 255 characters
    are refused with the reason, never cut or passed on."""
    name = Path(raw or "upload.jsonl").name or "upload.jsonl"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw or ""):
        raise APIError(400, "The filename contains control characters.", param=param, code="invalid_filename")
    if len(name) > 255 or len(name.encode("utf-8", "surrogateescape")) > 255:
        raise APIError(400, f"The filename is {len(name)} characters long; at most 255 are taken.", param=param,
                       code="invalid_filename")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, "The filename is not valid UTF-8.", param=param, code="invalid_filename") from None
    return name


def _check_expiry(fields: dict) -> None:
    spec = None
    if set(fields) == {"expires_after"}:
        try:
            spec = orjson.loads(fields["expires_after"])
        except orjson.JSONDecodeError:
            spec = None
    elif set(fields) == {"expires_after[anchor]", "expires_after[seconds]"}:  # the SDK's multipart shape
        seconds = fields["expires_after[seconds]"]
        spec = {"anchor": fields["expires_after[anchor]"], "seconds": int(seconds) if seconds.isdigit() else seconds}
    ok = (isinstance(spec, dict) and set(spec) == {"anchor", "seconds"} and spec["anchor"] == "created_at"
          and isinstance(spec["seconds"], int) and not isinstance(spec["seconds"], bool)
          and 3600 <= spec["seconds"] <= 2592000)
    if not ok:
        raise APIError(400, "expires_after must be {\"anchor\": \"created_at\", \"seconds\": 3600 to 2592000}.",
                       param="expires_after")
    raise APIError(400, "expires_after is not supported by the local backend: its files are kept until deleted.",
                   param="expires_after")


class JsonlCheck:
    """The Files API's JSONL check, fed chunk by chunk: every line a JSON object, none longer than MAX_LINE.
    ``feed``/``end`` return (status, message, code) of the first problem, or None. Holds at most one line."""

    def __init__(self) -> None:
        self.number, self.pending = 0, b""

    def feed(self, chunk: bytes):
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        for line in lines:
            self.number += 1
            if (bad := _bad_line(line, self.number)) is not None:
                return bad
        if len(self.pending) > MAX_LINE:
            return 400, (f"Line {self.number + 1} is longer than {MAX_LINE // 2**20} MB: no training example is "
                         "that long."), "line_too_long"
        return None

    def end(self):
        return _bad_line(self.pending, self.number + 1) if self.pending else None


def check_file(path: Path):
    check = JsonlCheck()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if (problem := check.feed(chunk)) is not None:
                return problem
    return check.end()


def copy_checked(src, dst: Path, jsonl: bool, limit: int | None = None) -> tuple[int, str, str | None] | None:
    """Copy ``src`` to ``dst`` in chunks; for JSONL check every line is a JSON object. (status, message, code) of
    the first problem, or None. Holds at most one chunk and one line in memory."""
    total = 0
    limit = MAX_UPLOAD if limit is None else limit
    check = JsonlCheck()
    with open(dst, "wb") as out:
        while chunk := src.read(CHUNK):
            total += len(chunk)
            if total > limit:
                return 413, f"The file is larger than the {limit:,} bytes this API takes.", "file_too_large"
            out.write(chunk)
            if jsonl and (problem := check.feed(chunk)) is not None:
                return problem
    return check.end() if jsonl else None


def _bad_line(line: bytes, number: int) -> tuple[int, str, None] | None:
    line = line.strip()
    if number == 1:
        line = line.removeprefix(b"\xef\xbb\xbf")
    if not line:
        return None
    try:
        ok = isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        ok = False
    if ok:
        return None
    hint = line[:4].decode("utf-8", "replace")
    return 400, ("Expected file to have JSONL format, where every line is a JSON dictionary. Line "
                 f"{number} is not a dictionary (HINT: line starts with: \"{hint}...\")."), None


@router.get("")
async def list_files(c: CtxDep, purpose: str | None = None, limit: int = Query(10000, ge=1, le=10000),
                     order: Literal["asc", "desc"] = "desc", after: str | None = None):
    if after and c.store.get_file(after) is None:  # a cursor naming nothing: never the first page again
        raise APIError(400, f"Invalid 'after': no file {after}.", param="after", code="invalid_cursor")
    rows = c.store.list_files(purpose, limit + 1, order, after)
    data = [file_obj(f) for f in rows[:limit]]
    # the spec makes first_id/last_id required strings: an empty page has "" (no id), never null
    return {"object": "list", "data": data, "has_more": len(rows) > limit,
            "first_id": data[0]["id"] if data else "", "last_id": data[-1]["id"] if data else ""}


def file_of(c: CtxDep, file_id: str) -> dict:
    f = c.store.get_file(file_id)
    if f is None:
        raise not_found("file", file_id)
    return f


FileDep = Annotated[dict, Depends(file_of)]  # the file the path names, or OpenAI's 404


@router.get("/{file_id}")
async def retrieve_file(f: FileDep):
    return file_obj(f)


@router.get("/{file_id}/content")
async def file_content(c: CtxDep, f: FileDep):
    # streamed from disk: a file of gigabytes (an Upload's) never sits in memory
    return FileResponse(c.store.file_path(f["id"]), media_type="application/octet-stream")


@router.delete("/{file_id}")
async def delete_file(c: CtxDep, f: FileDep):
    c.store.delete_file(f["id"])
    return {"id": f["id"], "object": "file", "deleted": True}
