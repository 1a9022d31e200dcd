"""The held-out data a fine-tuned model is measured on: the job's own, found through what the backend and the upload
ledger know of its training file, never whatever was prepared last.

In order:
1. the ``test.jsonl`` prepared with the job's training file: the ledger gives the local file the training file was
   uploaded from; the ``prepare.json`` beside it lists that very content (sha256) as its train split;
2. the same found by name, size and content hash in folders the caller names (the Prepare workspace's last output,
   the Data workspace's folder): a file uploaded by another tool or from another machine;
3. the job's validation file, downloaded and named by its filename;
4. nothing: the caller asks, and says why.
``HeldOut.why`` says which and why, in words the Eval workspace shows."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from ftui.core.files import PREPARE_REPORT, sha256_of

from .errors import ServiceError
from .ledger import Ledger


@dataclass(frozen=True)
class HeldOut:
    path: Path | None
    why: str


def _prepared_test(train: Path, digest: str) -> Path | None:
    """``test.jsonl`` beside ``train`` when the ``prepare.json`` there made ``train`` with this content."""
    try:
        doc = json.loads((train.parent / PREPARE_REPORT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    outputs, hashes = doc.get("outputs") or {}, doc.get("sha256") or {}
    if outputs.get("train") != train.name or hashes.get("train") != digest or not outputs.get("test"):
        return None
    test = train.parent / str(outputs["test"])
    return test if test.is_file() else None


def _find_in(folders: list[Path], filename: str, size: int | None) -> tuple[Path, Path] | None:
    """(train file, its test.jsonl) in one of ``folders`` whose prepare.json made a train split of this name and size,
    and whose file on disk still has the content prepare.json recorded."""
    for folder in folders:
        train = folder / filename
        try:
            if not train.is_file() or (size is not None and train.stat().st_size != size):
                continue
        except OSError:
            continue
        test = _prepared_test(train, sha256_of(train))
        if test is not None:
            return train, test
    return None


async def heldout_for(svc, job: dict, folders: list[Path], download_dir: Path) -> HeldOut:
    train_id = job.get("training_file") or ""
    name = train_id
    known = Ledger().get(svc.identity, train_id) if train_id else None
    if known is not None:
        train = Path(known.path)
        same = train.is_file() and await asyncio.to_thread(sha256_of, train) == known.sha256
        test = _prepared_test(train, known.sha256) if same else None
        if test is not None:
            return HeldOut(test, f"{test}: the test split prepared with the job's training file {train.name} "
                                 f"({train_id}, uploaded from {train})")
        name = train.name
    size = None
    if train_id:
        try:
            f = await svc.file(train_id)
            name, size = f.get("filename") or name, f.get("bytes")
        except ServiceError:
            pass
        found = await asyncio.to_thread(_find_in, [Path(d) for d in folders], Path(name).name, size) if name else None
        if found is not None:
            train, test = found
            return HeldOut(test, f"{test}: the test split prepared with {train.name}, which has the name, size and "
                                 f"content of the job's training file ({train_id})")
    valid_id = job.get("validation_file")
    if valid_id:
        vname = valid_id
        try:
            vname = (await svc.file(valid_id)).get("filename") or valid_id
        except ServiceError:
            pass
        stem = Path(vname).stem or "validation"
        path = await svc.download_file(valid_id, Path(download_dir) / f"{stem}-{valid_id}.jsonl")
        return HeldOut(path, f"{path}: the job's validation file {vname} ({valid_id}) — no test split prepared with "
                             f"its training file {name} was found")
    return HeldOut(None, f"No test split prepared with the job's training file {name} was found and the job has no "
                         "validation file: name the held-out data in Data")
