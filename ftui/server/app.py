"""The OpenAI-compatible HTTP API of the local backend (FastAPI): the app factory assembles the routers (one per
resource, in ``routes/``), the middleware and the error handlers.

Paths, objects and errors follow OpenAI's (shared/openapi): the official SDK pointed at ``http://HOST:PORT/v1`` works
unchanged. Errors always use ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from . import basemodels, guard
from .api import APIError, Context, _err, body
from .inference import ModelCache
from .azure import AzureShape
from .routes import chat, files, jobs, models, score, uploads
from .store import Store, atomic_write

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
               on_request=None, bind: str = "127.0.0.1", allow_hosts: list[str] | None = None,
               allow_origins: list[str] | None = None, deployments: dict[str, str] | None = None) -> FastAPI:
    """``test_hooks`` (``ftui serve --test-hooks``, hidden) adds ``/_test/faults`` and ``/_test/requests``: the test
    suite arms real failures (an HTTP status with Retry-After for the next N requests under a path, a raw body such
    as HTML or broken JSON, a failure *after* the request was carried out, an error after N streamed chunks) and
    counts the requests the TUI makes. Off by default; never needed to use the server. ``on_request`` is called on
    every request (``--idle-exit`` uses it)."""
    data_dir = Path(data_dir)
    store = Store(data_dir)
    cache = ModelCache(data_dir)
    app = FastAPI(title="ftui local backend", version="1", docs_url=None, redoc_url=None)
    app.state.ctx = Context(data_dir, store, cache, started=_started(data_dir), deployments=dict(deployments or {}))
    stream_fault = app.state.ctx.stream_fault  # fail a chat stream after this many content chunks (once)
    faults: list[dict] = []  # armed by /_test/faults: {"path", "status", "times", "retry_after", "message"}
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

    hosts = guard.allowed_hosts(bind, allow_hosts)
    origins = {o.rstrip("/").lower() for o in allow_origins or []}

    @app.middleware("http")
    async def auth(request: Request, call_next):
        """The guard (Host, Origin, Content-Type: see guard.py), then the key, for every path."""
        if on_request is not None:
            on_request()
        refused = guard.refusal(request.method, request.url.path, request.headers, hosts, origins)
        if refused is not None:
            return _err(refused[0], refused[1], code="request_refused")
        if api_key:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _err(401, "Incorrect API key provided." if given else
                            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                            code="invalid_api_key")
        return await call_next(request)

    access = logging.getLogger("ftui.server.http")

    @app.middleware("http")
    async def request_log(request: Request, call_next):
        """One line per request with an x-request-id the response carries too (as OpenAI's do)."""
        rid = f"req_{secrets.token_hex(12)}"
        t0 = time.perf_counter()
        try:
            resp = await call_next(request)
        except Exception:
            access.exception("%s %s failed [%s]", request.method, request.url.path, rid)
            raise
        resp.headers["x-request-id"] = rid
        access.info("%s %s %s %.0f ms [%s]", request.method, request.url.path, resp.status_code,
                    1000 * (time.perf_counter() - t0), rid)
        return resp

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
            elif "generation_errors" in req:
                stream_fault["generation"] = int(req["generation_errors"])
            else:
                faults.append({"path": req.get("path", "/v1"), "status": int(req.get("status", 500)),
                               "times": int(req.get("times", 1)), "retry_after": req.get("retry_after"),
                               "message": req.get("message"), "method": req.get("method"),
                               "body": req.get("body"), "content_type": req.get("content_type"),
                               "after": bool(req.get("after"))})
            return {"ok": True}

        @app.delete("/_test/faults")
        async def clear_faults():
            faults.clear()
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
        resp = _err(exc.status, exc.message, exc.type, exc.param, exc.code)
        resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_, exc: StarletteHTTPException):
        return _err(exc.status_code, str(exc.detail), code=None if exc.status_code != 404 else "not_found")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x not in ("body", "query", "path")]
        return _err(400, f"Invalid request: {first.get('msg', 'bad input')}", param=".".join(loc) or None)

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, exc: ClientDisconnect):
        """The client went away while sending its body (a cancelled upload): nothing was kept; one INFO line."""
        logging.getLogger("ftui.server.http").info("%s %s 499: the client closed the request while sending it",
                                                   request.method, request.url.path)
        return _err(499, "The client closed the request.", type="server_error")

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        logging.getLogger("ftui.server").error("%s %s: unexpected error", request.method, request.url.path,
                                               exc_info=exc)
        return _err(500, f"The server had an error while processing your request: {type(exc).__name__}",
                    type="server_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": "ftui", "base_models": basemodels.names(data_dir)}

    for module in (files, jobs, models, chat, score, uploads):
        app.include_router(module.router)
    app.add_middleware(guard.DisconnectWatch)  # a client that goes away stops its generation
    app.add_middleware(AzureShape)  # outermost: Azure's /openai/... paths become /v1/... before anything else
    return app


def _started(data_dir: Path) -> int:
    """The base models' `created`: when this data dir first served, kept in a file so it never changes on restart."""
    marker = data_dir / "created"
    try:
        return int(marker.read_text().strip())
    except (OSError, ValueError):
        stamp = int(time.time())
        atomic_write(marker, str(stamp).encode())
        return stamp
