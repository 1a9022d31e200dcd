"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ftui.server.http.api import APIError, Context, CtxDep, event_obj, job_obj, json_body, not_found
from ftui.server.models import basemodels
from ftui.server.store import TERMINAL, Store, new_id, now

router = APIRouter(prefix="/v1/fine_tuning/jobs")


AUTO = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    n_epochs: AUTO | int | None = None
    batch_size: AUTO | int | None = None
    learning_rate_multiplier: AUTO | float | None = None
    beta: AUTO | float | None = None
    # Together's early stopping (ftui's local backend only; never sent to other backends by the app)
    early_stopping_enabled: bool | None = None
    patience: int | None = None
    min_delta: float | int | None = None
    warmup_evals: int | None = None
    best_checkpoint: bool | None = None


class MethodBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodBody | None = None
    dpo: MethodBody | None = None
    reinforcement: dict | None = None


class ExecutorRequest(BaseModel):
    """ftui's extension (the SDK's ``extra_body={"executor": {"workers": 2}}``): a supervised job trained on N
    data-parallel workers (torch.distributed), the global batch unchanged."""
    model_config = ConfigDict(extra="forbid", strict=True)
    workers: int = Field(1, ge=1, le=64)


class JobCreate(BaseModel):
    """POST /v1/fine_tuning/jobs, typed and strict (OpenAI's CreateFineTuningJobRequest)."""
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str = Field(min_length=1)
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None  # deprecated by OpenAI in favour of method.<type>
    method: Method | None = None
    suffix: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int | None = Field(None, ge=0, le=2147483647)
    metadata: dict[str, str] | None = None
    integrations: list | None = None
    executor: ExecutorRequest | None = None  # ftui's extension: not sent by OpenAI's clients


def _method(r: JobCreate, c: Context) -> tuple[str, dict, dict]:
    """(type, hyperparameters set, the method's other settings) from `method`, or from the deprecated top-level
    field; a conflict is refused. Reinforcement's other settings: its checked grader and response_format."""
    top = r.hyperparameters.model_dump(exclude_none=True) if r.hyperparameters else {}
    if r.method is None:
        return "supervised", top, {}
    kind = r.method.type
    for other in ("supervised", "dpo", "reinforcement"):
        if other != kind and getattr(r.method, other) is not None:
            raise APIError(400, f"method.{other} is given but method.type is {kind!r}: give the settings of the "
                           f"method you chose, in method.{kind}.", param=f"method.{other}")
    if kind == "reinforcement":
        return kind, *_reinforcement(r.method.reinforcement, top, c)
    inner = getattr(r.method, kind)
    hp = inner.hyperparameters.model_dump(exclude_none=True) if inner and inner.hyperparameters else {}
    if top and hp and top != hp:
        raise APIError(400, "Give hyperparameters in method.<type>.hyperparameters only: the top-level "
                       "'hyperparameters' is deprecated and differs from them.", param="hyperparameters")
    return kind, hp or top, {}


RFT_SETTINGS = ("grader", "hyperparameters", "response_format")


def _reinforcement(body: dict | None, top: dict, c: Context) -> tuple[dict, dict]:
    """method.reinforcement checked: (hyperparameters, {"grader", "response_format"})."""
    from ftui.server.http.routes.graders import checked

    if not isinstance(body, dict) or "grader" not in body:
        raise APIError(400, "method.reinforcement.grader is required: the grader that scores each sampled answer.",
                       param="method.reinforcement.grader")
    for key in body:
        if key not in RFT_SETTINGS:
            raise APIError(400, f"Unknown setting {key!r} in method.reinforcement ({', '.join(RFT_SETTINGS)}).",
                           param=f"method.reinforcement.{key}")
    if not isinstance(body["grader"], dict):
        raise APIError(400, "method.reinforcement.grader must be a grader object.",
                       param="method.reinforcement.grader")
    try:
        grader = checked(body["grader"], c)
    except APIError as e:
        raise APIError(400, e.message, param=f"method.reinforcement.{e.param}", code=e.code) from None
    hp = body.get("hyperparameters") or {}
    if not isinstance(hp, dict):
        raise APIError(400, "method.reinforcement.hyperparameters must be an object.",
                       param="method.reinforcement.hyperparameters")
    if top and hp and top != hp:
        raise APIError(400, "Give hyperparameters in method.reinforcement.hyperparameters only.",
                       param="hyperparameters")
    hp = dict(hp or top)
    effort = hp.get("reasoning_effort", "default")
    if effort not in ("default", "low", "medium", "high"):
        raise APIError(400, f"Invalid value for reasoning_effort: {effort!r} (default, low, medium, high).",
                       param="method.reinforcement.hyperparameters.reasoning_effort")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object", "text")):
        raise APIError(400, "response_format must be {\"type\": \"json_schema\", \"json_schema\": …}, "
                       "{\"type\": \"json_object\"} or {\"type\": \"text\"}.",
                       param="method.reinforcement.response_format")
    return hp, {"grader": grader, "response_format": fmt}


@router.post("")
async def create_job(c: CtxDep, r: Annotated[JobCreate, Depends(json_body(JobCreate))]):
    store, data_dir = c.store, c.data_dir
    if r.integrations:
        raise APIError(400, "integrations (Weights & Biases) are not supported by the local backend: it never "
                       "sends data off this machine.", param="integrations")
    if r.metadata is not None and (len(r.metadata) > 16 or any(len(k) > 64 or len(v) > 512
                                                               for k, v in r.metadata.items())):
        raise APIError(400, "metadata: at most 16 string pairs, keys ≤ 64 and values ≤ 512 characters.",
                       param="metadata")
    model = r.model
    bases = basemodels.names(data_dir)
    base = model
    if model not in bases:
        # a fine-tuned model or one of its checkpoints: the new job continues its adapter (SFT then DPO, a warm start)
        tuned = store.tuned(model)
        if tuned is None:
            raise APIError(400, f"Model {model} is not available for fine-tuning here. Available: "
                           f"{', '.join(bases)}, or a fine-tuned model or checkpoint of this server.", param="model",
                           code="model_not_available")
        if not (Path(tuned["path"]) / "adapter_config.json").exists():
            raise APIError(400, f"Model {model} has no adapter files left in the data dir; it cannot be trained "
                           "further.", param="model", code="model_not_available")
        base = tuned["base"]
        if base not in bases:
            raise APIError(400, f"Model {model} was tuned from {base}, which this server no longer serves.",
                           param="model", code="model_not_available")
    if base != basemodels.DEFAULT_BASE:  # a configured base whose files changed since the server checked them
        problem = basemodels.describe(base, data_dir)["problem"]
        if problem:
            raise APIError(400, f"Model {model} cannot be fine-tuned here: {problem}", param="model",
                           code="model_not_available")
    for param in ("training_file", "validation_file"):
        fid = getattr(r, param)
        if fid is None:
            continue
        f = store.get_file(fid)
        if f is None:
            raise APIError(400, f"Invalid file ID: {fid}. No such file.", param=param, code="invalid_file_id")
        if f["purpose"] != "fine-tune":
            raise APIError(400, f"File {fid} has purpose {f['purpose']!r}; fine-tuning needs 'fine-tune'.",
                           param=param)
    suffix, metadata = r.suffix, r.metadata
    seed = secrets.randbelow(2**31) if r.seed is None else r.seed
    kind, hp, settings = _method(r, c)
    _check_hyperparameters(hp, kind)
    wants = [k for k in ("early_stopping_enabled", "best_checkpoint") if hp.get(k)]
    if wants and r.validation_file is None:
        raise APIError(400, f"{' and '.join(wants)} need a validation file: the job measures the validation loss at "
                       "each epoch's end to decide.", param="validation_file")
    others = [k for k in ("patience", "min_delta", "warmup_evals") if k in hp]
    if others and not hp.get("early_stopping_enabled"):
        raise APIError(400, f"{', '.join(others)} apply to early stopping: set early_stopping_enabled to true.",
                       param=f"hyperparameters.{others[0]}")
    workers = r.executor.workers if r.executor is not None else 1
    if workers > 1 and kind != "supervised":
        raise APIError(400, f"executor.workers={workers}: data-parallel training is for supervised jobs (a {kind} "
                       "job trains on one worker).", param="executor.workers")
    if workers > 1 and c.executor_name != "local":
        raise APIError(400, f"executor.workers={workers}: this server's {c.executor_name} executor trains each job "
                       "on one worker; data-parallel jobs run with the local executor.", param="executor.workers")
    job_id = new_id("ftjob")
    store.add_job(id=job_id, created_at=now(), model=model, training_file=r.training_file,
                  validation_file=r.validation_file, status="validating_files",
                  method={"type": kind, kind: {"hyperparameters": hp, **settings}}, suffix=suffix, seed=seed,
                  metadata=metadata, executor={"name": c.executor_name, "workers": workers} if workers > 1 else None)
    store.add_event(job_id, f"Created fine-tuning job: {job_id}")
    return job_obj(store.get_job(job_id))


def job_of(c: CtxDep, job_id: str) -> dict:
    j = c.store.get_job(job_id)
    if j is None:
        raise not_found("fine-tuning job", job_id)
    return j


JobDep = Annotated[dict, Depends(job_of)]  # the job the path names, or OpenAI's 404


@router.get("")
async def list_jobs(request: Request, c: CtxDep, limit: int = Query(20, ge=1, le=100), after: str | None = None):
    """Newest first; ``metadata[KEY]=VALUE`` query parameters keep the jobs whose metadata has each pair."""
    wanted = {}
    for k, v in request.query_params.items():
        if k == "metadata" or k.startswith("metadata["):
            if not (k.startswith("metadata[") and k.endswith("]") and len(k) > 10):
                raise APIError(400, "metadata filters are given as metadata[KEY]=VALUE.", param="metadata")
            wanted[k[9:-1]] = v
    if after and c.store.get_job(after) is None:
        raise _unknown_after("fine-tuning job", after)
    rows = c.store.list_jobs(10_000 if wanted else limit + 1, after)
    if wanted:
        rows = [j for j in rows if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())][:limit + 1]
    return {"object": "list", "data": [job_obj(j) for j in rows[:limit]], "has_more": len(rows) > limit}


@router.get("/{job_id}")
async def retrieve_job(job: JobDep):
    return job_obj(job)


@dataclass(frozen=True)
class Transition:
    """A status change a person asks for. ``apply`` makes it in the store and returns the event to record ("" for
    none: a cancel that lost a race with the job's end), or None when the job's status does not allow it."""

    apply: Callable[[Store, dict], str | None]
    refusal: str  # with {id} and {status}


def _cancel(store: Store, job: dict) -> str | None:
    if job["status"] in TERMINAL:
        return None
    changed = store.set_status_if(job["id"], ("validating_files", "queued", "running", "paused"), "cancelled",
                                  finished_at=now(), estimated_finish=None)
    return "Fine-tuning job cancelled" if changed else ""


def _pause(store: Store, job: dict) -> str | None:
    """The job shows `paused` at once; its trainer stops at its next step and says so in an event ("paused at step
    N"). A resume before then lets it go on (see Store.resume): no step is trained or reported twice."""
    return "Pause requested" if store.request_pause(job["id"]) else None


def _resume(store: Store, job: dict) -> str | None:
    status = store.resume(job["id"])
    if status is None:
        return None
    return ("Fine-tuning job resumed before the trainer stopped; it goes on" if status == "running" else
            "Fine-tuning job resumed; queued")


TRANSITIONS = {
    "cancel": Transition(_cancel, "Job {id} is already {status} and cannot be cancelled."),
    "pause": Transition(_pause, "Job {id} is {status}; only a running or queued job can be paused."),
    "resume": Transition(_resume, "Job {id} is {status}; only a paused job can be resumed."),
}


def _transition_route(t: Transition):
    async def transition(c: CtxDep, job: JobDep):
        event = t.apply(c.store, job)
        if event is None:
            raise APIError(400, t.refusal.format(id=job["id"], status=job["status"]))
        if event:
            c.store.add_event(job["id"], event)
        return job_obj(c.store.get_job(job["id"]))

    return transition


for _name, _t in TRANSITIONS.items():
    router.add_api_route(f"/{{job_id}}/{_name}", _transition_route(_t), methods=["POST"], name=f"{_name}_job")


@router.get("/{job_id}/events")
async def list_events(c: CtxDep, job: JobDep, limit: int = Query(20, ge=1, le=1000), after: str | None = None):
    job_id = job["id"]
    if after and not c.store.has_event(job_id, after):
        raise _unknown_after("event of this job", after)
    rows, more = c.store.list_events(job_id, limit, after)
    return {"object": "list", "data": [event_obj(e) for e in rows], "has_more": more}


@router.get("/{job_id}/checkpoints")
async def list_checkpoints(c: CtxDep, job: JobDep, limit: int = Query(10, ge=1, le=100), after: str | None = None):
    job_id = job["id"]
    rows = c.store.list_checkpoints(job_id)
    if after:
        ids = [r["id"] for r in rows]
        if after not in ids:
            raise _unknown_after("checkpoint of this job", after)
        rows = rows[ids.index(after) + 1:]
    page = rows[:limit]
    data = [{"object": "fine_tuning.job.checkpoint", "id": c["id"], "created_at": c["created_at"],
             "fine_tuned_model_checkpoint": c["model"], "fine_tuning_job_id": job_id,
             "step_number": c["step_number"], "metrics": c["metrics"]} for c in page]
    return {"object": "list", "data": data, "has_more": len(rows) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def _unknown_after(what: str, ident: str) -> APIError:
    """A cursor that names nothing (a typo, a deleted object) is an error, never the first page again."""
    return APIError(400, f"Invalid 'after': no {what} {ident}.", param="after", code="invalid_cursor")


def _check_hyperparameters(hp: dict, kind: str) -> None:
    rules = {"n_epochs": (int, 1, 50), "batch_size": (int, 1, 256), "learning_rate_multiplier": (float, 0, 10)}
    if kind == "dpo":
        rules["beta"] = (float, 0, 2)
    if kind == "reinforcement":
        rules.update({"compute_multiplier": (float, 1e-5, 10), "eval_interval": (int, 1, 10_000),
                      "eval_samples": (int, 1, 64)})
    if kind in ("supervised", "dpo"):
        rules.update({"patience": (int, 1, 100), "min_delta": (float, -1, 100), "warmup_evals": (int, 0, 100)})
    for key, value in hp.items():
        if kind == "reinforcement" and key == "reasoning_effort":
            continue  # checked with the method
        if kind in ("supervised", "dpo") and key in ("early_stopping_enabled", "best_checkpoint"):
            if not isinstance(value, bool):
                raise APIError(400, f"Invalid value for {key}: {value!r} (true or false).",
                               param=f"hyperparameters.{key}")
            continue
        if kind in ("supervised", "dpo") and key == "min_delta" and isinstance(value, (int, float)) and value < 0:
            raise APIError(400, f"Invalid value for min_delta: {value!r} (0 or more).",
                           param="hyperparameters.min_delta")
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
