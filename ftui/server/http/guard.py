"""Who may talk to the local backend. It runs on the user's machine, so any web page the user visits, another local
user or a buggy script can reach it; it answers only requests that are plainly not from a browser page elsewhere:

- **Host**: the name the client used must be the bound loopback address (or one given with ``--allow-host``):
  a DNS-rebinding page, whose requests carry its own host name, is refused.
- **Origin**: browsers send it on cross-site requests (and on every POST); the SDK and scripts never do. A request
  with an Origin not allowed by ``--allow-origin`` is refused, so a page cannot drive the server even with "simple"
  requests that skip the CORS preflight.
- **Content-Type**: JSON bodies must be ``application/json`` and uploads ``multipart/form-data`` (a ``text/plain``
  form post is not parsed as JSON).
- **Key**: when the app starts the server it makes a random key and hands it over in a 0600 file, never on the
  command line (where ``ps`` shows it). Every path but none needs it then, ``/health`` included.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def host_name(header: str) -> str:
    """The host part of a Host header (``[::1]:8765`` -> ``::1``; ``Example.COM:80`` -> ``example.com``)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def allowed_hosts(bind: str, extra: list[str] | None = None) -> set[str] | None:
    """Host names accepted for a server bound to ``bind``; None (any) for a non-loopback bind, which needs a key."""
    names = {h.lower() for h in extra or []}
    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return names or None
    return names | LOOPBACK_NAMES | {bind.lower()}


def refusal(method: str, path: str, headers, hosts: set[str] | None, origins: set[str]) -> tuple[int, str] | None:
    """(status, message) when the request must be refused, else None."""
    host = headers.get("host")
    if hosts is not None and (host is None or host_name(host) not in hosts):
        return 403, (f"Host {host!r} is not allowed: this server answers only to {', '.join(sorted(hosts))} "
                     "(start it with --allow-host NAME to add one).")
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() not in origins:
        return 403, (f"Cross-origin requests are refused (Origin {origin}): a web page cannot drive this server. "
                     "Start it with --allow-origin ORIGIN to allow one.")
    if method in ("POST", "PUT", "PATCH") and _has_body(headers):
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        want = "multipart/form-data" if path.rstrip("/").endswith(("/v1/files", "/parts")) else "application/json"
        if ctype != want:
            return 400, f"Content-Type must be {want} for {method} {path}, not {ctype or 'missing'!r}."
    return None


def _has_body(headers) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


class DisconnectWatch:
    """Pure ASGI, outermost: once a request's body has been read, listen for the client going away and set
    ``scope["state"]["disconnected"]`` (an asyncio.Event). Starlette's BaseHTTPMiddleware layers (``@app.middleware``)
    do not pass the disconnect on, so a long generation would otherwise go on for nobody."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import asyncio

        gone = asyncio.Event()
        scope.setdefault("state", {})["disconnected"] = gone
        done = False
        listener = None

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        async def wrapped():
            nonlocal done, listener
            if done:  # the body is read: the next thing from the client can only be its going away
                await gone.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            elif not message.get("more_body"):
                done = True
                listener = asyncio.ensure_future(listen())
            return message

        try:
            await self.app(scope, wrapped, send)
        finally:
            if listener is not None:
                listener.cancel()
