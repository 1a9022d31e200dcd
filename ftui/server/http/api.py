"""What every route module shares: OpenAI's error shape, the objects the API returns, the request context."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Awaitable, Callable, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from ftui.server.faults import Faults

if TYPE_CHECKING:  # torch loads with inference, when the first model does
    from ftui.server.models.inference import ModelCache
    from ftui.server.store import Store

M = TypeVar("M")

ORG = "org-local"
PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


def error_response(status, message, type="invalid_request_error", param=None, code=None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}}, status)


def shutting_down() -> APIError:
    """What a request that would start work gets while the server shuts down (chat, score)."""
    return APIError(503, "The local backend is shutting down; try again when it is back.", type="server_error",
                    code="server_shutting_down", headers={"retry-after": "5"})


def not_found(what: str, ident: str, param: str | None = None) -> APIError:
    code = "model_not_found" if what == "model" else what.replace("-", "_").replace(" ", "_") + "_not_found"
    return APIError(404, f"No such {what}: {ident}", param=param, code=code)


def file_obj(f: dict) -> dict:
    # sha256: an ftui extension (not in OpenAI's object), the content hash lineage and duplicate checks use
    return {"id": f["id"], "object": "file", "bytes": f["bytes"], "created_at": f["created_at"],
            "filename": f["filename"], "purpose": f["purpose"], "status": "processed", "sha256": f.get("sha256")}


def job_obj(j: dict) -> dict:
    kind = j["method"]["type"]
    hp = dict(j["method"].get(kind, {}).get("hyperparameters", {}))
    for k in ("n_epochs", "batch_size", "learning_rate_multiplier"):
        hp.setdefault(k, "auto")
    if kind == "dpo":
        hp.setdefault("beta", "auto")
    settings = {}
    if kind == "reinforcement":
        for k in ("compute_multiplier", "eval_interval", "eval_samples"):
            hp.setdefault(k, "auto")
        hp.setdefault("reasoning_effort", "default")
        inner = j["method"].get(kind, {})
        settings = {"grader": inner.get("grader")}
        if inner.get("response_format") is not None:
            settings["response_format"] = inner["response_format"]
    method = {"type": kind, kind: {"hyperparameters": hp, **settings}}
    return {
        "id": j["id"], "object": "fine_tuning.job", "created_at": j["created_at"], "error": j["error"],
        "fine_tuned_model": j["fine_tuned_model"], "finished_at": j["finished_at"],
        "hyperparameters": {k: hp[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
        "model": j["model"], "organization_id": ORG, "result_files": j["result_files"], "seed": j["seed"],
        "status": j["status"], "trained_tokens": j["trained_tokens"], "training_file": j["training_file"],
        "validation_file": j["validation_file"], "integrations": None, "metadata": j["metadata"],
        "method": method, "estimated_finish": j["estimated_finish"] if j["status"] == "running" else None,
        "user_provided_suffix": j["suffix"],
        # an ftui extension (not in OpenAI's object): where the job trains, on how many workers
        "executor": j.get("executor") or {"name": "local", "workers": 1, "where": "this machine"},
    }


def event_obj(e: dict) -> dict:
    return {"object": "fine_tuning.job.event", "id": e["id"], "created_at": e["created_at"], "level": e["level"],
            "message": e["message"], "type": e["type"], "data": e["data"]}


def model_obj(mid: str, created: int, owned_by: str) -> dict:
    return {"id": mid, "object": "model", "created": created, "owned_by": owned_by, "shutdown_date": None}


@dataclass
class Context:
    """The server's state, on ``app.state.ctx``: every router reads it from the request."""
    data_dir: Path
    store: Store
    cache: ModelCache
    started: int  # the base models' `created` (the server's start)
    faults: Faults = field(default_factory=Faults)  # armed only by the test suite (ftui serve --test-hooks)
    generating: int = 0  # chat requests running or waiting for their model (bounded: 429 past the limit)
    # python graders run code as the server's user: only behind an API key, or when `--python-graders` says so
    python_graders: bool = False
    deployments: dict = field(default_factory=dict)  # Azure shape: deployment name -> model (ftui serve --deployment)
    batched: int = 0  # short greedy requests waiting for or in a batch (bounded too)
    halts: set = field(default_factory=set)  # the threading.Events that stop each running generation
    stopping: bool = False  # the server is shutting down: generations halt, no new one starts
    executor_name: str = "local"  # where jobs train (ftui serve --executor)

    def halt_all(self) -> None:
        """Shutdown: every generation stops at its next token, as when its client goes away."""
        self.stopping = True
        for halt in list(self.halts):
            halt.set()


def ctx(request: Request) -> Context:
    return request.app.state.ctx


CtxDep = Annotated[Context, Depends(ctx)]  # the server's state, as a route parameter


def json_body(model_cls: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency that reads the JSON body within ``MAX_JSON_BODY`` (refused as it arrives, never held whole past
    it: FastAPI's own body parameters read the whole body first) and validates it into ``model_cls`` with OpenAI's
    400 naming the parameter: ``r: Annotated[JobCreate, Depends(json_body(JobCreate))]``."""

    async def read(request: Request) -> M:
        return validated(model_cls, await body(request))

    return read


def validated(model_cls, data: dict):
    """``model_cls.model_validate(data)``, with pydantic's first complaint as OpenAI's 400 naming the parameter
    (``messages[1].role``), never a 500."""
    from pydantic import ValidationError

    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ""
        for part in err.get("loc", ()):
            if isinstance(part, int):
                param += f"[{part}]"
            elif part not in ("str", "list[str]", "int", "float", "bool", "dict[any,any]") and not str(part).startswith(
                    ("list[", "function-", "literal[")):
                param += f".{part}" if param else str(part)
        what = err.get("msg", "invalid value")
        if err.get("type") == "extra_forbidden":
            raise APIError(400, f"Unrecognized request argument supplied: {param}", param=param) from None
        if err.get("type") == "missing":
            raise APIError(400, f"Missing required parameter: '{param}'.", param=param) from None
        raise APIError(400, f"Invalid value for '{param}': {what}.", param=param or None) from None


# A JSON request body's most: 256 scored examples of a model's whole context, a long chat, with room to spare. A
# larger one is refused with 413 before it is read — by its Content-Length, or as its chunks arrive — so one request
# can never make the API process hold more than this (a 100 MB chat request had driven it past 9 GB).
MAX_JSON_BODY = int(os.environ.get("FTUI_SERVE_MAX_JSON_BODY", str(16 * 2**20)))


def _too_large() -> APIError:
    return APIError(413, f"The request body is larger than the {MAX_JSON_BODY:,} bytes this API takes.",
                    code="request_too_large")


async def read_bounded(request: Request, limit: int | None = None) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes before more than that is held."""
    limit = MAX_JSON_BODY if limit is None else limit
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large()
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _too_large()
    return bytes(buf)


async def body(request: Request) -> dict:
    try:
        data = orjson.loads(await read_bounded(request))
    except orjson.JSONDecodeError:
        raise APIError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.")
    return data
