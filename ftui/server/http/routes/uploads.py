"""/v1/uploads: OpenAI's Uploads API for files larger than the Files API takes (create, add parts, complete with the
ordered part ids and an optional md5, cancel; an Upload expires an hour after it was created).

Parts are streamed to disk (``<data>/uploads/<upload id>/<part id>``), never held in memory; completing concatenates
them in the order given, checking the byte count and the md5 as it goes and every JSONL line like a Files API
upload, into a regular file (``/v1/files``). An Upload's state is one small JSON file written atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ftui.core.files import atomic_write
from ftui.server.http.api import PURPOSES, APIError, Context, CtxDep, file_obj, json_body
from ftui.server.http.routes.files import checked_filename, copy_checked
from ftui.server.store import new_id

router = APIRouter(prefix="/v1/uploads")

MAX_UPLOAD_BYTES = 8 * 2**30  # the Uploads API's limit
MAX_PART = int(os.environ.get("FTUI_SERVE_MAX_PART", str(64 * 2**20)))  # OpenAI: 64 MB per part
EXPIRES_S = 3600
# what clients send for a .jsonl file (OpenAI's example: text/jsonl); anything else is not a fine-tuning file
JSONL_TYPES = {"text/jsonl", "application/jsonl", "application/x-jsonl", "application/jsonlines",
               "application/x-jsonlines", "application/x-ndjson", "application/ndjson", "application/json",
               "text/plain", "application/octet-stream"}
_ID = re.compile(r"^(upload|part)-[0-9a-f]{24}$")
_locks: dict[str, asyncio.Lock] = {}


class CreateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    filename: str = Field(min_length=1, max_length=4096)  # checked_filename says why a long one is refused
    purpose: str
    bytes: int = Field(ge=1, le=MAX_UPLOAD_BYTES)
    mime_type: str = Field(min_length=1, max_length=255)
    expires_after: dict | None = None


class CompleteUpload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    part_ids: list[str] = Field(min_length=1, max_length=10_000)
    md5: str | None = Field(None, pattern=r"^[0-9a-fA-F]{32}$")


def _dir(c: Context, upload_id: str | None = None) -> Path:
    root = c.data_dir / "uploads"
    return root / upload_id if upload_id else root


def _save(folder: Path, up: dict) -> None:
    atomic_write(folder / "upload.json", orjson.dumps(up))


def _load(c: Context, upload_id: str) -> tuple[Path, dict]:
    if not _ID.match(upload_id) or not upload_id.startswith("upload-"):
        raise APIError(404, f"No such upload: {upload_id}", param="upload_id", code="upload_not_found")
    folder = _dir(c, upload_id)
    try:
        up = orjson.loads((folder / "upload.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        raise APIError(404, f"No such upload: {upload_id}", param="upload_id", code="upload_not_found") from None
    if up["status"] == "pending" and time.time() > up["expires_at"]:
        up["status"] = "expired"
        _save(folder, up)
        _drop_parts(folder)
    return folder, up


def _drop_parts(folder: Path) -> None:
    for p in folder.glob("part-*"):
        p.unlink(missing_ok=True)


def _pending(up: dict) -> None:
    if up["status"] != "pending":
        raise APIError(400, f"Upload {up['id']} is {up['status']}; only a pending upload takes parts or completes.",
                       param="upload_id", code=f"upload_{up['status']}")


def upload_obj(up: dict, file: dict | None = None) -> dict:
    return {"id": up["id"], "object": "upload", "bytes": up["bytes"], "created_at": up["created_at"],
            "filename": up["filename"], "purpose": up["purpose"], "status": up["status"],
            "expires_at": up["expires_at"], "file": file_obj(file) if file else None}


def _lock(upload_id: str) -> asyncio.Lock:
    return _locks.setdefault(upload_id, asyncio.Lock())


@router.post("")
async def create_upload(c: CtxDep, r: Annotated[CreateUpload, Depends(json_body(CreateUpload))]):
    if r.purpose not in PURPOSES:
        raise APIError(400, f"Invalid value for 'purpose': {r.purpose!r}.", param="purpose")
    if r.expires_after is not None:
        raise APIError(400, "expires_after is not supported by the local backend: an upload expires after an hour.",
                       param="expires_after")
    name = checked_filename(r.filename, "filename")
    if r.purpose == "fine-tune" and not name.endswith(".jsonl"):
        raise APIError(400, "Invalid file format for Fine-Tuning API. Must be .jsonl", param="filename")
    if r.purpose == "fine-tune" and r.mime_type.split(";")[0].strip().lower() not in JSONL_TYPES:
        raise APIError(400, f"mime_type {r.mime_type!r} is not JSONL; a fine-tuning file is sent as "
                       "text/jsonl (or application/jsonl).", param="mime_type", code="invalid_mime_type")
    created = int(time.time())
    up = {"id": new_id("upload"), "bytes": r.bytes, "created_at": created, "expires_at": created + EXPIRES_S,
          "filename": name, "purpose": r.purpose, "mime_type": r.mime_type, "status": "pending", "file_id": None}
    folder = _dir(c, up["id"])
    folder.mkdir(parents=True, exist_ok=True)
    _save(folder, up)
    return upload_obj(up)


@router.post("/{upload_id}/parts")
async def add_part(request: Request, c: CtxDep, upload_id: str):
    """One part, streamed into the Upload's folder as it arrives and counted: reading stops past 64 MB, or past the
    bytes the Upload still lacks of what it was created for (413), with or without a Content-Length."""
    from ftui.server.http.multipart import receive

    folder, up = _load(c, upload_id)
    _pending(up)
    room = up["bytes"] - _kept(folder)
    limit = min(MAX_PART, room)
    too_large = ((f"A part holds at most {MAX_PART:,} bytes." if limit == MAX_PART else
                  f"This part would take the upload past the {up['bytes']:,} bytes it was created for "
                  f"({max(room, 0):,} left)."), "part_too_large" if limit == MAX_PART else "upload_bytes_exceeded")
    length = request.headers.get("content-length", "")
    if limit <= 0 or (length.isdigit() and int(length) > limit + 2**16):
        raise APIError(413, too_large[0], param="data", code=too_large[1])
    form = await receive(request, folder, limit=limit, too_large=too_large, max_fields=2)
    try:
        data = form.files.get("data")
        if data is None:
            raise APIError(400, "Missing required parameter: 'data'.", param="data")
        unknown = sorted(set(form.fields) | (set(form.files) - {"data"}))
        if unknown:
            raise APIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        pid = new_id("part")
        async with _lock(upload_id):
            _, up = _load(c, upload_id)  # cancelled or expired while the part came in
            _pending(up)
            if _kept(folder) + data.size > up["bytes"]:  # parts sent side by side: the later one is refused
                raise APIError(413, f"This part would take the upload past the {up['bytes']:,} bytes it was "
                               "created for.", param="data", code="upload_bytes_exceeded")
            os.replace(data.path, folder / pid)
    finally:
        form.discard()
    return {"id": pid, "object": "upload.part", "created_at": int(time.time()), "upload_id": upload_id}


def _kept(folder: Path) -> int:
    """The bytes of the parts an Upload holds."""
    return sum(p.stat().st_size for p in folder.glob("part-*"))


@router.post("/{upload_id}/complete")
async def complete_upload(c: CtxDep, upload_id: str,
                          r: Annotated[CompleteUpload, Depends(json_body(CompleteUpload))]):
    async with _lock(upload_id):
        folder, up = _load(c, upload_id)
        if up["status"] == "completed":  # a retried complete gets the same answer
            return upload_obj(up, c.store.get_file(up["file_id"]))
        _pending(up)
        parts = []
        for i, pid in enumerate(r.part_ids):
            p = folder / pid
            if not _ID.match(pid) or not pid.startswith("part-") or not p.is_file():
                raise APIError(400, f"No such part in upload {upload_id}: {pid}", param=f"part_ids[{i}]")
            parts.append(p)
        if len(set(r.part_ids)) != len(r.part_ids):
            raise APIError(400, "part_ids names a part twice.", param="part_ids")
        total = sum(p.stat().st_size for p in parts)
        if total != up["bytes"]:
            raise APIError(400, f"The parts hold {total:,} bytes but the upload was created for {up['bytes']:,} "
                           "bytes.", param="part_ids", code="upload_bytes_mismatch")
        store = c.store
        tmp = store.incoming()
        try:
            problem, digest = await asyncio.to_thread(_assemble, parts, tmp, up["purpose"] == "fine-tune")
            if problem is not None:
                raise APIError(problem[0], problem[1], param="part_ids", code=problem[2])
            if r.md5 is not None and digest != r.md5.lower():
                raise APIError(400, f"The md5 of the uploaded bytes is {digest}, not the {r.md5} given.",
                               param="md5", code="upload_md5_mismatch")
            f = await asyncio.to_thread(store.adopt_file, tmp, up["filename"], up["purpose"])
        finally:
            tmp.unlink(missing_ok=True)
        up["status"], up["file_id"] = "completed", f["id"]
        _save(folder, up)
        _drop_parts(folder)
        return upload_obj(up, f)


def _assemble(parts: list[Path], dst: Path, jsonl: bool):
    """Concatenate the parts through the Files API's own line check, hashing as it goes."""
    md5 = hashlib.md5(usedforsecurity=False)

    class Chain:
        def __init__(self) -> None:
            self.files = iter(parts)
            self.cur = None

        def read(self, n: int) -> bytes:
            while True:
                if self.cur is None:
                    nxt = next(self.files, None)
                    if nxt is None:
                        return b""
                    self.cur = open(nxt, "rb")
                chunk = self.cur.read(n)
                if chunk:
                    md5.update(chunk)
                    return chunk
                self.cur.close()
                self.cur = None

    problem = copy_checked(Chain(), dst, jsonl, limit=MAX_UPLOAD_BYTES)
    return problem, md5.hexdigest()


@router.post("/{upload_id}/cancel")
async def cancel_upload(c: CtxDep, upload_id: str):
    async with _lock(upload_id):
        folder, up = _load(c, upload_id)
        if up["status"] == "cancelled":
            return upload_obj(up)
        _pending(up)
        up["status"] = "cancelled"
        _save(folder, up)
        _drop_parts(folder)
        return upload_obj(up)


def ended_uploads(data_dir: Path) -> list[Path]:
    """The folders of Uploads that ended (completed, cancelled, expired): ``ftui serve --gc`` frees them."""
    root = Path(data_dir) / "uploads"
    out = []
    for folder in sorted(root.glob("upload-*")) if root.is_dir() else []:
        try:
            up = orjson.loads((folder / "upload.json").read_bytes())
            done = up["status"] != "pending" or time.time() > up["expires_at"]
        except (OSError, orjson.JSONDecodeError, KeyError):
            done = True  # a folder without a readable state is an interrupted create
        if done:
            out.append(folder)
    return out
