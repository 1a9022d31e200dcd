"""/v1/files: upload (multipart), list, retrieve, content, delete."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from ..api import PURPOSES, APIError, ctx, file_obj, not_found

router = APIRouter()


MAX_UPLOAD = int(os.environ.get("FTUI_SERVE_MAX_UPLOAD", str(512 * 2**20)))  # the Files API's limit
MAX_LINE = 16 * 2**20  # no training example is near this: a longer line is refused, never held in memory
CHUNK = 2**20


@router.post("/v1/files")
async def upload(request: Request):
    """The file is streamed to disk in 1 MB chunks (checked line by line as it goes, like OpenAI's upload check):
    memory never grows with its size; one over the limit is refused before it is read (413)."""
    store = ctx(request).store
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD + 2**16:
        raise APIError(413, f"The file is larger than the Files API's {MAX_UPLOAD:,} bytes.", param="file",
                       code="file_too_large")
    form = await request.form(max_files=1, max_fields=8)  # file parts spool to disk past 1 MB
    upload = form.get("file")
    purpose = form.get("purpose")
    if upload is None or not hasattr(upload, "read"):
        raise APIError(400, "Missing required parameter: 'file'.", param="file")
    if purpose not in PURPOSES:
        raise APIError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
    unknown = sorted(set(form.keys()) - {"file", "purpose", "expires_after"})
    if unknown:
        raise APIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    if "expires_after" in form:  # checked like OpenAI, then refused by name: files here live until deleted
        _check_expiry(form.get("expires_after"))
    name = Path(upload.filename or "upload.jsonl").name[:255] or "upload.jsonl"
    jsonl = purpose == "fine-tune"
    if jsonl and not name.endswith(".jsonl"):
        raise APIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
    tmp = store.incoming()
    try:
        problem = await asyncio.to_thread(copy_checked, upload.file, tmp, jsonl)
        if problem is not None:
            raise APIError(problem[0], problem[1], param="file", code=problem[2])
        f = await asyncio.to_thread(store.adopt_file, tmp, name, purpose)
    finally:
        tmp.unlink(missing_ok=True)
    return file_obj(f)


def _check_expiry(value) -> None:
    try:
        spec = orjson.loads(value) if isinstance(value, str) else None
    except orjson.JSONDecodeError:
        spec = None
    ok = (isinstance(spec, dict) and set(spec) == {"anchor", "seconds"} and spec["anchor"] == "created_at"
          and isinstance(spec["seconds"], int) and not isinstance(spec["seconds"], bool)
          and 3600 <= spec["seconds"] <= 2592000)
    if not ok:
        raise APIError(400, "expires_after must be {\"anchor\": \"created_at\", \"seconds\": 3600 to 2592000}.",
                       param="expires_after")
    raise APIError(400, "expires_after is not supported by the local backend: its files are kept until deleted.",
                   param="expires_after")


def copy_checked(src, dst: Path, jsonl: bool, limit: int | None = None) -> tuple[int, str, str | None] | None:
    """Copy ``src`` to ``dst`` in chunks; for JSONL check every line is a JSON object. (status, message, code) of
    the first problem, or None. Holds at most one chunk and one line in memory."""
    total, number, pending = 0, 0, b""
    limit = MAX_UPLOAD if limit is None else limit
    with open(dst, "wb") as out:
        while chunk := src.read(CHUNK):
            total += len(chunk)
            if total > limit:
                return 413, f"The file is larger than the {limit:,} bytes this API takes.", "file_too_large"
            out.write(chunk)
            if not jsonl:
                continue
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                number += 1
                if (bad := _bad_line(line, number)) is not None:
                    return bad
            if len(pending) > MAX_LINE:
                return 400, (f"Line {number + 1} is longer than {MAX_LINE // 2**20} MB: no training example is "
                             "that long."), "line_too_long"
    if jsonl and pending:
        return _bad_line(pending, number + 1)
    return None


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


@router.get("/v1/files")
async def list_files(request: Request, purpose: str | None = None, limit: int = Query(10000, ge=1, le=10000),
                     order: Literal["asc", "desc"] = "desc", after: str | None = None):
    rows = ctx(request).store.list_files(purpose, limit + 1, order, after)
    data = [file_obj(f) for f in rows[:limit]]
    # the spec makes first_id/last_id required strings: an empty page has "" (no id), never null
    return {"object": "list", "data": data, "has_more": len(rows) > limit,
            "first_id": data[0]["id"] if data else "", "last_id": data[-1]["id"] if data else ""}


def get_file(request: Request, file_id: str) -> dict:
    f = ctx(request).store.get_file(file_id)
    if f is None:
        raise not_found("file", file_id)
    return f


@router.get("/v1/files/{file_id}")
async def retrieve_file(request: Request, file_id: str):
    return file_obj(get_file(request, file_id))


@router.get("/v1/files/{file_id}/content")
async def file_content(request: Request, file_id: str):
    get_file(request, file_id)  # streamed from disk: a file of gigabytes (an Upload's) never sits in memory
    return FileResponse(ctx(request).store.file_path(file_id), media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
async def delete_file(request: Request, file_id: str):
    get_file(request, file_id)
    ctx(request).store.delete_file(file_id)
    return {"id": file_id, "object": "file", "deleted": True}
