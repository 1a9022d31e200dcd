"""/v1/files: upload (multipart), list, retrieve, content, delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..api import PURPOSES, APIError, ctx, file_obj, not_found

router = APIRouter()


@router.post("/v1/files")

async def upload(request: Request):
    store = ctx(request).store
    form = await request.form()
    upload = form.get("file")
    purpose = form.get("purpose")
    if upload is None or not hasattr(upload, "read"):
        raise APIError(400, "Missing required parameter: 'file'.", param="file")
    if purpose not in PURPOSES:
        raise APIError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
    data = await upload.read()
    name = Path(upload.filename or "upload.jsonl").name[:255] or "upload.jsonl"
    if purpose == "fine-tune":
        if not name.endswith(".jsonl"):
            raise APIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="file")
        for i, line in enumerate(data.splitlines(), start=1):
            line = line.strip()
            if i == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line:
                continue
            try:
                ok = isinstance(orjson.loads(line), dict)
            except orjson.JSONDecodeError:
                ok = False
            if not ok:
                hint = line[:4].decode("utf-8", "replace")
                raise APIError(400, "Expected file to have JSONL format, where every line is a JSON "
                               f"dictionary. Line {i} is not a dictionary (HINT: line starts with: "
                               f"\"{hint}...\").", param="file")
    f = await asyncio.to_thread(store.add_file, name, purpose, data)
    return file_obj(f)


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
    get_file(request, file_id)
    data = await asyncio.to_thread(ctx(request).store.file_path(file_id).read_bytes)
    return Response(data, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")

async def delete_file(request: Request, file_id: str):
    get_file(request, file_id)
    ctx(request).store.delete_file(file_id)
    return {"id": file_id, "object": "file", "deleted": True}
