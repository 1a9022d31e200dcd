"""What a fine-tuned model was trained on, as far as the chat needs it: the job that made it and the system prompt its
training examples share. A model trained with a system prompt answers differently without it (the review model
rated a glowing review 2 without its prompt, 5 with it), so the Chat workspace offers it as the default.

The training data is read from the local file it was uploaded from (the upload ledger, when unchanged), else
downloaded from the backend where the backend allows it (the local backend, compatible ones; OpenAI does not serve a
fine-tune file's content, and then there is simply no default)."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ftui.core.files import sha256_of
from ftui.core.system_prompt import sample_lines, shared_system_prompt

from .errors import ServiceError
from .ledger import Ledger


@dataclass(frozen=True)
class SystemPrompt:
    text: str
    share: float  # of the examples read
    source: str  # the file it was read from, in words


async def job_of(svc, model: str, job_id: str | None = None) -> dict | None:
    """The job that made this fine-tuned model or checkpoint (``job_id`` when the caller knows it: a checkpoint
    object names its job)."""
    try:
        if job_id:
            return await svc.job(job_id)
        jobs = await svc.jobs()
    except ServiceError:
        return None
    for job in jobs:
        if job.get("fine_tuned_model") == model:
            return job
    for job in jobs:  # a checkpoint: ft:…:ckpt-step-N belongs to the job whose model it extends
        ft = job.get("fine_tuned_model") or ""
        if ft and model.startswith(ft + ":ckpt"):
            return job
    return None


async def training_system_prompt(svc, model: str, job_id: str | None = None) -> SystemPrompt | None:
    if not model.startswith("ft:") and not job_id:
        return None
    job = await job_of(svc, model, job_id)
    fid = (job or {}).get("training_file")
    if not fid:
        return None
    known = Ledger().get(svc.identity, fid)
    if known is not None and Path(known.path).is_file() \
            and await asyncio.to_thread(sha256_of, Path(known.path)) == known.sha256:
        found = shared_system_prompt(await asyncio.to_thread(sample_lines, Path(known.path)))
        source = Path(known.path).name
    else:
        try:
            with tempfile.TemporaryDirectory(prefix="ftui-train-") as tmp:
                path = await svc.download_file(fid, Path(tmp) / "train.jsonl")
                found = shared_system_prompt(await asyncio.to_thread(sample_lines, path))
        except ServiceError:  # OpenAI does not serve fine-tune files; a deleted file
            return None
        source = fid
    if found is None:
        return None
    return SystemPrompt(found[0], found[1], source)
