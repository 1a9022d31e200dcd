"""The OpenAI-compatible HTTP API of the local backend (FastAPI): the app factory assembles the routers (one per
resource, in ``routes/``), the middleware and the error handlers.

Paths, objects and errors follow OpenAI's (shared/openapi): the official SDK pointed at ``http://HOST:PORT/v1`` works
unchanged. Errors always use ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import hashlib
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

from ftui.core.files import atomic_write
from ftui.server.http import guard
from ftui.server.http.api import APIError, Context, body, error_response
from ftui.server.http.azure import AzureShape
from ftui.server.http.routes import chat, files, graders, jobs, models, rollouts, score, uploads
from ftui.server.models import basemodels
from ftui.server.models.inference import ModelCache
from ftui.server.store import Store

# one per resource, each mounted at its own /v1/... paths
ROUTERS = (files, jobs, graders, models, chat, score, uploads, rollouts)
IDEMPOTENT = re.compile(r"^/v1/(files|fine_tuning/jobs(/[^/]+/(cancel|pause|resume))?)$")


class BodyDigest:
    """sha256 of a request body as it streams; a multipart body's boundary (random per attempt: the SDK builds the
    body again when it retries) is left out, so a retry of the same upload has the same digest."""

    def __init__(self, scope) -> None:
        self.h = hashlib.sha256()
        ctype = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
        found = re.search(rb"boundary=\"?([^\";]+)", ctype) if ctype.startswith(b"multipart/") else None
        self.boundary = found.group(1) if found else None
        self.tail = b""

    def update(self, chunk: bytes) -> None:
        if self.boundary is None:
            self.h.update(chunk)
            return
        data = (self.tail + chunk).replace(self.boundary, b"")
        keep = len(self.boundary) - 1  # a boundary that starts here is completed by the next chunk
        self.h.update(data[:-keep] if keep else data)
        self.tail = data[-keep:] if keep else b""

    def hexdigest(self) -> str:
        self.h.update(self.tail)
        self.tail = b""
        return self.h.hexdigest()


class Idempotency:
    """``Idempotency-Key`` on a creating POST (pure ASGI): a retry of a request already carried out gets the first
    answer again instead of a second file or job (the SDK resends the same key when it retries). Answers are kept
    bounded (the newest 1,000 for 24 hours, as OpenAI keeps them a day) with the sha256 of the body that made them:
    the same key with a different body is refused (422, as the IETF Idempotency-Key draft says), never replayed. A
    retry that arrives while the first is still running waits for it, then gets its answer."""

    def __init__(self, app, keep: int = 1000, ttl: float = 86400.0) -> None:
        self.app, self.keep, self.ttl = app, keep, ttl
        self.done: OrderedDict = OrderedDict()  # (key, path) -> (time, body sha256, status, headers, body)
        self.locks: dict = {}

    async def __call__(self, scope, receive, send):
        key = next((v for k, v in scope.get("headers", ()) if k == b"idempotency-key"), None) \
            if scope["type"] == "http" else None
        if not key or scope["method"] != "POST" or not IDEMPOTENT.match(scope["path"]):
            return await self.app(scope, receive, send)
        slot = (key, scope["path"])
        lock = self.locks.setdefault(slot, asyncio.Lock())
        try:
            async with lock:
                hit = self.done.get(slot)
                if hit is not None and time.time() - hit[0] < self.ttl:
                    return await self._answer(hit, key, scope, receive, send)
                await self._first(slot, scope, receive, send)
        finally:
            if not lock.locked():
                self.locks.pop(slot, None)

    async def _answer(self, hit, key: bytes, scope, receive, send) -> None:
        digest = BodyDigest(scope)
        while True:  # the retry's body, hashed as it streams (never held)
            message = await receive()
            digest.update(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if digest.hexdigest() != hit[1]:
            resp = error_response(422, f"Idempotency-Key {key.decode('latin-1')!r} was already used with a different "
                        "request body; use a new key for a new request.", param="Idempotency-Key",
                        code="idempotency_key_reused")
            return await resp({"type": "http"}, receive, send)
        await send({"type": "http.response.start", "status": hit[2],
                    "headers": [*hit[3], (b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": hit[4]})

    async def _first(self, slot, scope, receive, send) -> None:
        digest = BodyDigest(scope)
        answer: dict = {"body": bytearray(), "keep": True}

        async def hashing():
            message = await receive()
            if message["type"] == "http.request":
                digest.update(message.get("body", b""))
            return message

        async def capture(message):
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
                answer["keep"] = answer["keep"] and len(answer["body"]) <= 2**20  # objects, never file contents
                answer["done"] = not message.get("more_body")
            await send(message)

        await self.app(scope, hashing, capture)
        if answer.get("done") and answer["keep"] and answer.get("status", 500) < 400:
            headers = [(k, v) for k, v in answer["headers"] if k.lower() != b"x-request-id"]
            self.done[slot] = (time.time(), digest.hexdigest(), answer["status"], headers, bytes(answer["body"]))
            while len(self.done) > self.keep:
                self.done.popitem(last=False)


def create_app(data_dir: str | Path, api_key: str | None = None, test_hooks: bool = False,
               on_request=None, bind: str = "127.0.0.1", allow_hosts: list[str] | None = None,
               allow_origins: list[str] | None = None, deployments: dict[str, str] | None = None,
               python_graders: bool | None = None, executor_name: str = "local") -> FastAPI:
    """``test_hooks`` (``ftui serve --test-hooks``, hidden) adds ``/_test/faults`` and ``/_test/requests``: the test
    suite arms real failures (an HTTP status with Retry-After for the next N requests under a path, a raw body such
    as HTML or broken JSON, a failure *after* the request was carried out, an error after N streamed chunks) and
    counts the requests the TUI makes. Off by default; never needed to use the server. ``on_request`` is called on
    every request (``--idle-exit`` uses it)."""
    data_dir = Path(data_dir)
    store = Store(data_dir)
    cache = ModelCache(data_dir)
    app = FastAPI(title="ftui local backend", version="1", docs_url=None, redoc_url=None)
    app.state.ctx = Context(data_dir, store, cache, started=_started(data_dir), deployments=dict(deployments or {}),
                            python_graders=bool(api_key) if python_graders is None else python_graders,
                            executor_name=executor_name)
    faults = app.state.ctx.faults  # every fault the suite can arm (see faults.py)

    app.add_middleware(Idempotency)  # the innermost layer: a request refused by the guard or the key is never kept

    hosts = guard.allowed_hosts(bind, allow_hosts)
    origins = {o.rstrip("/").lower() for o in allow_origins or []}

    @app.middleware("http")
    async def auth(request: Request, call_next):
        """The guard (Host, Origin, Content-Type: see guard.py), then the key, for every path."""
        if on_request is not None:
            on_request()
        refused = guard.refusal(request.method, request.url.path, request.headers, hosts, origins)
        if refused is not None:
            return error_response(refused[0], refused[1], code="request_refused")
        if api_key:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error_response(401, "Incorrect API key provided." if given else
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
            f = None if path.startswith("/_test") else faults.seen(request.method, path)
            if f is None:
                return await call_next(request)
            if f["after"]:  # carry the request out, then lose its answer (a dropped response)
                await call_next(request)
            if f.get("body") is not None:
                return Response(f["body"], status_code=f["status"], media_type=f.get("content_type") or "text/html")
            resp = error_response(f["status"], f.get("message") or f"Injected fault {f['status']}",
                        type="requests" if f["status"] == 429 else "server_error")
            if f.get("retry_after") is not None:
                resp.headers["retry-after"] = str(f["retry_after"])
            return resp

        @app.post("/_test/faults")
        async def arm_fault(request: Request):
            faults.arm(await body(request))
            return {"ok": True}

        @app.delete("/_test/faults")
        async def clear_faults():
            faults.armed.clear()
            return {"ok": True}

        @app.get("/_test/requests")
        async def request_counts():
            return faults.counts

        @app.delete("/_test/requests")
        async def reset_counts():
            faults.counts.clear()
            return {"ok": True}

        @app.get("/_test/generations")
        async def generations():
            """Generations under way now (each holds a halt event from the call to generate until it ends): the
            evidence a test waits for before it abandons a request."""
            return {"running": len(app.state.ctx.halts)}

    @app.exception_handler(APIError)
    async def api_error(_, exc: APIError):
        resp = error_response(exc.status, exc.message, exc.type, exc.param, exc.code)
        resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        resp = error_response(exc.status_code, str(exc.detail), code=None if exc.status_code != 404 else "not_found")
        resp.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method the path takes (Starlette names only its first route's)
            methods = set()
            for module in ROUTERS:
                for route in module.router.routes:
                    regex = getattr(route, "path_regex", None)
                    if getattr(route, "methods", None) and regex is not None and regex.match(request.url.path):
                        methods |= route.methods - {"HEAD"}
            resp.headers["allow"] = ", ".join(sorted(methods))
        return resp

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", []) if x not in ("body", "query", "path")]
        return error_response(400, f"Invalid request: {first.get('msg', 'bad input')}", param=".".join(loc) or None)

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, exc: ClientDisconnect):
        """The client went away while sending its body (a cancelled upload): nothing was kept; one INFO line."""
        logging.getLogger("ftui.server.http").info("%s %s 499: the client closed the request while sending it",
                                                   request.method, request.url.path)
        return error_response(499, "The client closed the request.", type="server_error")

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        logging.getLogger("ftui.server").error("%s %s: unexpected error", request.method, request.url.path,
                                               exc_info=exc)
        return error_response(500, f"The server had an error while processing your request: {type(exc).__name__}",
                    type="server_error")

    @app.get("/health")
    async def health():
        return {"status": "ok", "backend": "ftui", "base_models": basemodels.names(data_dir)}

    for module in ROUTERS:
        app.include_router(module.router)
    if allow_origins:  # a page on an origin the user allowed may read the answers (and its preflight is answered
        from starlette.middleware.cors import CORSMiddleware  # before the key check, which a preflight never passes)

        app.add_middleware(CORSMiddleware, allow_origins=[o.rstrip("/") for o in allow_origins],
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["*"],
                           expose_headers=["x-request-id", "idempotent-replayed"], max_age=600)
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
