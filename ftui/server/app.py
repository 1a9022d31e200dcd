"""The OpenAI-compatible HTTP API of the local backend (FastAPI).

Paths, objects and errors follow OpenAI's (shared/openapi): the official SDK pointed at ``http://HOST:PORT/v1`` works
unchanged. Errors always use ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
import secrets
import threading
import time
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import basemodels
from .inference import ModelCache, generate
from .store import TERMINAL, Store, new_id, now

ORG = "org-local"
PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def _err(status, message, type="invalid_request_error", param=None, code=None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}}, status)


def not_found(what: str, ident: str, param: str | None = None) -> APIError:
    return APIError(404, f"No such {what}: {ident}", param=param, code=f"{what}_not_found" if what != "model"
                    else "model_not_found")


def file_obj(f: dict) -> dict:
    return {"id": f["id"], "object": "file", "bytes": f["bytes"], "created_at": f["created_at"],
            "filename": f["filename"], "purpose": f["purpose"], "status": "processed"}


def job_obj(j: dict) -> dict:
    kind = j["method"]["type"]
    hp = dict(j["method"].get(kind, {}).get("hyperparameters", {}))
    for k in ("n_epochs", "batch_size", "learning_rate_multiplier"):
        hp.setdefault(k, "auto")
    if kind == "dpo":
        hp.setdefault("beta", "auto")
    method = {"type": kind, kind: {"hyperparameters": hp}}
    return {
        "id": j["id"], "object": "fine_tuning.job", "created_at": j["created_at"], "error": j["error"],
        "fine_tuned_model": j["fine_tuned_model"], "finished_at": j["finished_at"],
        "hyperparameters": {k: hp[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
        "model": j["model"], "organization_id": ORG, "result_files": j["result_files"], "seed": j["seed"],
        "status": j["status"], "trained_tokens": j["trained_tokens"], "training_file": j["training_file"],
        "validation_file": j["validation_file"], "integrations": None, "metadata": j["metadata"],
        "method": method, "estimated_finish": j["estimated_finish"] if j["status"] == "running" else None,
        "user_provided_suffix": j["suffix"],
    }


def event_obj(e: dict) -> dict:
    return {"object": "fine_tuning.job.event", "id": e["id"], "created_at": e["created_at"], "level": e["level"],
            "message": e["message"], "type": e["type"], "data": e["data"]}


IDEMPOTENT = re.compile(r"^/v1/(files|fine_tuning/jobs(/[^/]+/(cancel|pause|resume))?)$")


class Idempotency:
    """Answers of creating POSTs by ``Idempotency-Key`` (bounded: the newest 1,000 for 24 hours, as OpenAI keeps
    them a day). A retry that arrives while the first is still running waits for it, then gets its answer."""

    def __init__(self, keep: int = 1000, ttl: float = 86400.0) -> None:
        self.keep, self.ttl = keep, ttl
        self.done: OrderedDict = OrderedDict()  # key -> (time, status, body, media type)
        self.locks: dict = {}

    async def run(self, key, call):
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self.done.get(key)
            if hit is not None and time.time() - hit[0] < self.ttl:
                return Response(hit[2], status_code=hit[1], media_type=hit[3],
                                headers={"idempotent-replayed": "true"})
            resp = await call()
            if resp.status_code < 400:
                body = b"".join([chunk async for chunk in resp.body_iterator])
                self.done[key] = (time.time(), resp.status_code, body, resp.media_type or "application/json")
                while len(self.done) > self.keep:
                    self.done.popitem(last=False)
                headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
                resp = Response(body, status_code=resp.status_code, headers=headers)
        if not lock.locked():
            self.locks.pop(key, None)
        return resp


def create_app(data_dir: str | Path, api_key: str | None = None, test_hooks: bool = False,
               on_request=None) -> FastAPI:
    """``test_hooks`` (``ftui serve --test-hooks``, hidden) adds ``/_test/faults`` and ``/_test/requests``: the test
    suite arms real failures (an HTTP status with Retry-After for the next N requests under a path, a raw body such
    as HTML or broken JSON, a failure *after* the request was carried out, an error after N streamed chunks) and
    counts the requests the TUI makes. Off by default; never needed to use the server. ``on_request`` is called on
    every request (``--idle-exit`` uses it)."""
    data_dir = Path(data_dir)
    store = Store(data_dir)
    cache = ModelCache(data_dir)
    app = FastAPI(title="ftui local backend", version="1", docs_url=None, redoc_url=None)
    app.state.store = store

    faults: list[dict] = []  # armed by /_test/faults: {"path", "status", "times", "retry_after", "message"}
    stream_fault = {"after": None}  # fail a chat stream after this many content chunks (once)
    counts: dict[str, int] = {}

    idempotent = Idempotency()

    @app.middleware("http")
    async def replay(request: Request, call_next):
        """``Idempotency-Key`` on a creating POST: a retry of a request already carried out gets the first answer
        again instead of a second file or job (the SDK resends the same key when it retries)."""
        key = request.headers.get("idempotency-key")
        if not key or request.method != "POST" or not IDEMPOTENT.match(request.url.path):
            return await call_next(request)
        return await idempotent.run((key, request.url.path), lambda: call_next(request))

    @app.middleware("http")
    async def auth(request: Request, call_next):
        if on_request is not None:
            on_request()
        if api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _err(401, "Incorrect API key provided." if given else
                            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                            code="invalid_api_key")
        return await call_next(request)

    # the test hooks go outermost (added last): a fault armed 'after' drops an answer the server already gave
    if test_hooks:
        @app.middleware("http")
        async def hooks(request: Request, call_next):
            path = request.url.path
            if not path.startswith("/_test"):
                key = f"{request.method} {path}"
                counts[key] = counts.get(key, 0) + 1
                for f in faults:
                    if f["times"] > 0 and path.startswith(f["path"]) and f["method"] in (None, request.method):
                        f["times"] -= 1
                        if f["after"]:  # carry the request out, then lose its answer (a dropped response)
                            await call_next(request)
                        if f.get("body") is not None:
                            return Response(f["body"], status_code=f["status"],
                                            media_type=f.get("content_type") or "text/html")
                        resp = _err(f["status"], f.get("message") or f"Injected fault {f['status']}",
                                    type="requests" if f["status"] == 429 else "server_error")
                        if f.get("retry_after") is not None:
                            resp.headers["retry-after"] = str(f["retry_after"])
                        return resp
            return await call_next(request)

        @app.post("/_test/faults")
        async def arm_fault(request: Request):
            req = await body(request)
            if "stream_error_after" in req:
                stream_fault["after"] = int(req["stream_error_after"])
            else:
                faults.append({"path": req.get("path", "/v1"), "status": int(req.get("status", 500)),
                               "times": int(req.get("times", 1)), "retry_after": req.get("retry_after"),
                               "message": req.get("message"), "method": req.get("method"),
                               "body": req.get("body"), "content_type": req.get("content_type"),
                               "after": bool(req.get("after"))})
            return {"ok": True}

        @app.get("/_test/requests")
        async def request_counts():
            return counts

        @app.delete("/_test/requests")
        async def reset_counts():
            counts.clear()
            return {"ok": True}

    @app.exception_handler(APIError)
    async def api_error(_, exc: APIError):
        return _err(exc.status, exc.message, exc.type, exc.param, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_, exc: StarletteHTTPException):
        return _err(exc.status_code, str(exc.detail), code=None if exc.status_code != 404 else "not_found")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x not in ("body", "query", "path")]
        return _err(400, f"Invalid request: {first.get('msg', 'bad input')}", param=".".join(loc) or None)

    @app.exception_handler(Exception)
    async def server_error(_, exc: Exception):
        return _err(500, f"The server had an error while processing your request: {type(exc).__name__}",
                    type="server_error")

    async def body(request: Request) -> dict:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise APIError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(data, dict):
            raise APIError(400, "The request body must be a JSON object.")
        return data

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": "ftui", "base_models": basemodels.names(data_dir)}

    # -- files -------------------------------------------------------------------------------------------------
    @app.post("/v1/files")
    async def upload(request: Request):
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

    @app.get("/v1/files")
    async def list_files(purpose: str | None = None, limit: int = 10000, order: str = "desc",
                         after: str | None = None):
        rows = store.list_files(purpose, max(1, min(limit, 10000)), "asc" if order == "asc" else "desc", after)
        data = [file_obj(f) for f in rows]
        return {"object": "list", "data": data, "has_more": False,
                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    def get_file(file_id: str) -> dict:
        f = store.get_file(file_id)
        if f is None:
            raise not_found("file", file_id)
        return f

    @app.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: str):
        return file_obj(get_file(file_id))

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str):
        get_file(file_id)
        data = await asyncio.to_thread(store.file_path(file_id).read_bytes)
        return Response(data, media_type="application/octet-stream")

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str):
        get_file(file_id)
        store.delete_file(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    # -- jobs --------------------------------------------------------------------------------------------------
    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request):
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

    def get_job(job_id: str) -> dict:
        j = store.get_job(job_id)
        if j is None:
            raise not_found("fine-tuning job", job_id)
        return j

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(limit: int = 20, after: str | None = None):
        rows = store.list_jobs(max(1, min(limit, 100)) + 1, after)
        return {"object": "list", "data": [job_obj(j) for j in rows[:limit]], "has_more": len(rows) > limit}

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def retrieve_job(job_id: str):
        return job_obj(get_job(job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str):
        j = get_job(job_id)
        if j["status"] in TERMINAL:
            raise APIError(400, f"Job {job_id} is already {j['status']} and cannot be cancelled.")
        if store.set_status_if(job_id, ("validating_files", "queued", "running", "paused"), "cancelled",
                               finished_at=now(), estimated_finish=None):
            store.add_event(job_id, "Fine-tuning job cancelled")
        return job_obj(get_job(job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/pause")
    async def pause_job(job_id: str):
        j = get_job(job_id)
        if not store.set_status_if(job_id, ("running", "queued"), "paused"):
            raise APIError(400, f"Job {job_id} is {j['status']}; only a running or queued job can be paused.")
        store.add_event(job_id, "Pause requested")
        return job_obj(get_job(job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/resume")
    async def resume_job(job_id: str):
        j = get_job(job_id)
        if not store.set_status_if(job_id, ("paused",), "queued"):
            raise APIError(400, f"Job {job_id} is {j['status']}; only a paused job can be resumed.")
        store.add_event(job_id, "Fine-tuning job resumed; queued")
        return job_obj(get_job(job_id))

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def list_events(job_id: str, limit: int = 20, after: str | None = None):
        get_job(job_id)
        rows, more = store.list_events(job_id, max(1, min(limit, 1000)), after)
        return {"object": "list", "data": [event_obj(e) for e in rows], "has_more": more}

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def list_checkpoints(job_id: str, limit: int = 10, after: str | None = None):
        get_job(job_id)
        rows = store.list_checkpoints(job_id)
        if after:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else rows
        page = rows[:limit]
        data = [{"object": "fine_tuning.job.checkpoint", "id": c["id"], "created_at": c["created_at"],
                 "fine_tuned_model_checkpoint": c["model"], "fine_tuning_job_id": job_id,
                 "step_number": c["step_number"], "metrics": c["metrics"]} for c in page]
        return {"object": "list", "data": data, "has_more": len(rows) > limit,
                "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    # -- models ------------------------------------------------------------------------------------------------
    started = int(time.time())

    def model_obj(mid: str, created: int, owned_by: str) -> dict:
        return {"id": mid, "object": "model", "created": created, "owned_by": owned_by, "shutdown_date": None}

    @app.get("/v1/models")
    async def list_models():
        data = [model_obj(b, started, "ftui") for b in basemodels.names(data_dir)]
        data += [model_obj(m["id"], m["created_at"], ORG) for m in store.list_models()]
        return {"object": "list", "data": data}

    def resolve_model(mid: str) -> tuple[str, str | None, dict]:
        """-> (base, adapter folder or None, model object)."""
        if mid in basemodels.names(data_dir):
            return mid, None, model_obj(mid, started, "ftui")
        m = store.get_model(mid)
        if m is not None:
            return m["base"], m["path"], model_obj(mid, m["created_at"], ORG)
        c = store.find_checkpoint(mid)
        if c is not None:
            job = store.get_job(c["job_id"])
            return job["model"], c["path"], model_obj(mid, c["created_at"], ORG)
        raise APIError(404, f"The model '{mid}' does not exist or you do not have access to it.", param="model",
                       code="model_not_found")

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str):
        return resolve_model(model_id)[2]

    @app.delete("/v1/models/{model_id:path}")
    async def delete_model(model_id: str):
        resolve_model(model_id)
        if not store.delete_model(model_id):
            raise APIError(403, f"Model {model_id} is not a fine-tuned model you own; it cannot be deleted.",
                           param="model")
        return {"id": model_id, "object": "model", "deleted": True}

    # -- chat --------------------------------------------------------------------------------------------------
    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = await body(request)
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise APIError(400, "'messages' must be a non-empty array of message objects.", param="messages")
        mid = req.get("model")
        if not isinstance(mid, str):
            raise APIError(400, "Missing required parameter: 'model'.", param="model")
        base, adapter, _ = resolve_model(mid)
        if req.get("n", 1) != 1:
            raise APIError(400, "Only n=1 is supported by the local backend.", param="n")
        max_tokens = req.get("max_completion_tokens") or req.get("max_tokens") or 256
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise APIError(400, "max_tokens must be a positive integer.", param="max_tokens")
        temperature = req.get("temperature", 1.0)
        top_p = req.get("top_p", 1.0)
        if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
            raise APIError(400, "temperature must be between 0 and 2.", param="temperature")
        stop = req.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)][:4]
        entry = await asyncio.to_thread(cache.get, mid, base, adapter)
        cid = f"chatcmpl-{secrets.token_hex(12)}"
        created = int(time.time())
        halt = threading.Event()
        gen = generate(entry, messages, max_tokens=min(max_tokens, 4096), temperature=float(temperature),
                       top_p=float(top_p), seed=req.get("seed"), stop=stop, halt=halt)
        next_piece = lambda: next(gen, None)  # noqa: E731

        if not req.get("stream"):
            text, info = "", {}
            while (item := await asyncio.to_thread(next_piece)) is not None:
                text += item[0]
                info = item[1] or info
            usage = {"prompt_tokens": info["prompt_tokens"], "completion_tokens": info["completion_tokens"],
                     "total_tokens": info["prompt_tokens"] + info["completion_tokens"]}
            return {"id": cid, "object": "chat.completion", "created": created, "model": mid,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                                 "logprobs": None, "finish_reason": info["finish_reason"]}],
                    "usage": usage}

        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish=None, usage=None, choices=True) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": mid,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                   if choices else []}
            if usage is not None:
                obj["usage"] = usage
            return b"data: " + orjson.dumps(obj) + b"\n\n"

        async def stream():
            try:
                yield chunk({"role": "assistant", "content": ""})
                info = {}
                fail_after, stream_fault["after"] = stream_fault["after"], None
                sent = 0
                while (item := await asyncio.to_thread(next_piece)) is not None:
                    if fail_after is not None and sent >= fail_after:
                        raise RuntimeError("injected fault: the stream broke")
                    if item[0]:
                        yield chunk({"content": item[0]})
                        sent += 1
                    info = item[1] or info
                yield chunk({}, finish=info.get("finish_reason", "stop"))
                if include_usage:
                    u = {"prompt_tokens": info["prompt_tokens"], "completion_tokens": info["completion_tokens"],
                         "total_tokens": info["prompt_tokens"] + info["completion_tokens"]}
                    yield chunk({}, usage=u, choices=False)
                yield b"data: [DONE]\n\n"
            except Exception as exc:  # an error in the middle of a stream, in the shape the SDK raises
                err = {"error": {"message": f"Generation failed: {type(exc).__name__}: {exc}", "type": "server_error",
                                 "param": None, "code": None}}
                yield b"data: " + orjson.dumps(err) + b"\n\n"
            finally:
                halt.set()
                await asyncio.to_thread(gen.close)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


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
