"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

import re
import secrets

from fastapi import APIRouter, Request

from .. import basemodels
from ..api import APIError, body, ctx, event_obj, job_obj, not_found
from ..store import TERMINAL, new_id, now

router = APIRouter()


@router.post("/v1/fine_tuning/jobs")
async def create_job(request: Request):
    c = ctx(request)
    store, data_dir = c.store, c.data_dir
    req = await body(request)
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise APIError(400, "Missing required parameter: 'model'.", param="model")
    bases = basemodels.names(data_dir)
    base = model
    if model not in bases:
        tuned = store.get_model(model)
        if tuned is None:
            raise APIError(400, f"Model {model} is not available for fine-tuning here. Available: "
                           f"{', '.join(bases)}.", param="model", code="model_not_available")
        raise APIError(400, "Fine-tuning a fine-tuned model is not supported by the local backend yet.",
                       param="model", code="model_not_available")
    for param in ("training_file", "validation_file"):
        fid = req.get(param)
        if fid is None and param == "validation_file":
            continue
        if not isinstance(fid, str):
            raise APIError(400, f"Missing required parameter: '{param}'.", param=param)
        f = store.get_file(fid)
        if f is None:
            raise APIError(400, f"Invalid file ID: {fid}. No such file.", param=param, code="invalid_file_id")
        if f["purpose"] != "fine-tune":
            raise APIError(400, f"File {fid} has purpose {f['purpose']!r}; fine-tuning needs 'fine-tune'.",
                           param=param)
    suffix = req.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= 64):
        raise APIError(400, "suffix must be a string of 1 to 64 characters.", param="suffix")
    if suffix is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", suffix):
        raise APIError(400, "suffix may only hold letters, digits, '-', '_' and '.'.", param="suffix")
    seed = req.get("seed")
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2147483647:
        raise APIError(400, "seed must be an integer from 0 to 2147483647.", param="seed")
    metadata = req.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16 or any(
            not isinstance(k, str) or len(k) > 64 or not isinstance(v, str) or len(v) > 512
            for k, v in metadata.items())):
        raise APIError(400, "metadata: at most 16 string pairs, keys ≤ 64 and values ≤ 512 characters.",
                       param="metadata")
    method = req.get("method") or {"type": "supervised",
                                   "supervised": {"hyperparameters": req.get("hyperparameters") or {}}}
    kind = method.get("type") if isinstance(method, dict) else None
    if kind not in ("supervised", "dpo"):
        raise APIError(400, f"method.type {kind!r} is not supported by the local backend (supervised, dpo).",
                       param="method.type")
    hp = dict(((method.get(kind) or {}).get("hyperparameters") or {}))
    _check_hyperparameters(hp, kind)
    job_id = new_id("ftjob")
    store.add_job(id=job_id, created_at=now(), model=base, training_file=req["training_file"],
                  validation_file=req.get("validation_file"), status="validating_files",
                  method={"type": kind, kind: {"hyperparameters": hp}}, suffix=suffix, seed=seed,
                  metadata=metadata)
    store.add_event(job_id, f"Created fine-tuning job: {job_id}")
    return job_obj(store.get_job(job_id))

def get_job(request: Request, job_id: str) -> dict:
    j = ctx(request).store.get_job(job_id)
    if j is None:
        raise not_found("fine-tuning job", job_id)
    return j

@router.get("/v1/fine_tuning/jobs")
async def list_jobs(request: Request, limit: int = 20, after: str | None = None):
    rows = ctx(request).store.list_jobs(max(1, min(limit, 100)) + 1, after)
    return {"object": "list", "data": [job_obj(j) for j in rows[:limit]], "has_more": len(rows) > limit}

@router.get("/v1/fine_tuning/jobs/{job_id}")
async def retrieve_job(request: Request, job_id: str):
    return job_obj(get_job(request, job_id))

@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str):
    store = ctx(request).store
    j = get_job(request, job_id)
    if j["status"] in TERMINAL:
        raise APIError(400, f"Job {job_id} is already {j['status']} and cannot be cancelled.")
    if store.set_status_if(job_id, ("validating_files", "queued", "running", "paused"), "cancelled",
                           finished_at=now(), estimated_finish=None):
        store.add_event(job_id, "Fine-tuning job cancelled")
    return job_obj(get_job(request, job_id))

@router.post("/v1/fine_tuning/jobs/{job_id}/pause")
async def pause_job(request: Request, job_id: str):
    store = ctx(request).store
    j = get_job(request, job_id)
    if not store.set_status_if(job_id, ("running", "queued"), "paused"):
        raise APIError(400, f"Job {job_id} is {j['status']}; only a running or queued job can be paused.")
    store.add_event(job_id, "Pause requested")
    return job_obj(get_job(request, job_id))

@router.post("/v1/fine_tuning/jobs/{job_id}/resume")
async def resume_job(request: Request, job_id: str):
    store = ctx(request).store
    j = get_job(request, job_id)
    if not store.set_status_if(job_id, ("paused",), "queued"):
        raise APIError(400, f"Job {job_id} is {j['status']}; only a paused job can be resumed.")
    store.add_event(job_id, "Fine-tuning job resumed; queued")
    return job_obj(get_job(request, job_id))

@router.get("/v1/fine_tuning/jobs/{job_id}/events")
async def list_events(request: Request, job_id: str, limit: int = 20, after: str | None = None):
    get_job(request, job_id)
    rows, more = ctx(request).store.list_events(job_id, max(1, min(limit, 1000)), after)
    return {"object": "list", "data": [event_obj(e) for e in rows], "has_more": more}

@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(request: Request, job_id: str, limit: int = 10, after: str | None = None):
    get_job(request, job_id)
    rows = ctx(request).store.list_checkpoints(job_id)
    if after:
        ids = [r["id"] for r in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else rows
    page = rows[:limit]
    data = [{"object": "fine_tuning.job.checkpoint", "id": c["id"], "created_at": c["created_at"],
             "fine_tuned_model_checkpoint": c["model"], "fine_tuning_job_id": job_id,
             "step_number": c["step_number"], "metrics": c["metrics"]} for c in page]
    return {"object": "list", "data": data, "has_more": len(rows) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def _check_hyperparameters(hp: dict, kind: str) -> None:
    rules = {"n_epochs": (int, 1, 50), "batch_size": (int, 1, 256), "learning_rate_multiplier": (float, 0, 10)}
    if kind == "dpo":
        rules["beta"] = (float, 0, 2)
    for key, value in hp.items():
        if key not in rules:
            raise APIError(400, f"Unknown hyperparameter {key!r} for {kind}.", param=f"hyperparameters.{key}")
        if value == "auto":
            continue
        typ, lo, hi = rules[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if typ is int:
            ok = ok and float(value).is_integer()
        if not ok or not (lo < value <= hi if typ is float else lo <= value <= hi):
            raise APIError(400, f"Invalid value for {key}: {value!r}.", param=f"hyperparameters.{key}")
