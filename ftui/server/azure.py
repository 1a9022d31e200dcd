"""Azure OpenAI's data-plane shape on the local backend, so the app's Azure profile (the SDK's ``AzureOpenAI``) can
run against it end to end.

- ``/openai/<resource>?api-version=…`` is served as ``/v1/<resource>`` (files, uploads, fine_tuning/jobs, models);
  ``api-version`` is required, as on Azure (any value is accepted: the shapes here are the current ones).
- ``/openai/deployments/<name>/chat/completions`` chats with the model the deployment names: ``ftui serve
  --deployment NAME=MODEL``, or, without one, a deployment named like a model id is that model (one-to-one).
- ``api-key: KEY`` authenticates like ``Authorization: Bearer KEY``.

A pure ASGI middleware (outermost): the rewritten request goes through the same guard, key check, validation and
routes as any other.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

import orjson

DEPLOYMENT_HEADER = b"x-ftui-deployment"


class AzureShape:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/openai/"):
            return await self.app(scope, receive, send)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not query.get("api-version"):
            return await _error(send, 404, "Resource not found: Azure OpenAI paths need the api-version query "
                                "parameter (e.g. ?api-version=2025-04-01-preview).", "api-version")
        rest = scope["path"][len("/openai"):]
        headers = [(k, v) for k, v in scope["headers"] if k != b"api-key"]
        key = next((v for k, v in scope["headers"] if k == b"api-key"), None)
        if key is not None and not any(k == b"authorization" for k, _ in headers):
            headers.append((b"authorization", b"Bearer " + key))
        parts = rest.split("/")
        if len(parts) >= 4 and parts[1] == "deployments":  # /deployments/<name>/chat/completions
            name = unquote(parts[2])
            rest = "/" + "/".join(parts[3:])
            headers.append((DEPLOYMENT_HEADER, name.encode("utf-8")))
        path = "/v1" + rest
        scope = dict(scope, path=path, raw_path=path.encode("utf-8"), headers=headers)
        return await self.app(scope, receive, send)


async def _error(send, status: int, message: str, param: str | None) -> None:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": str(status)}})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def deployment_model(request, deployments: dict[str, str]) -> str | None:
    """The model a request's Azure deployment names (None: not an Azure deployment request)."""
    name = request.headers.get(DEPLOYMENT_HEADER.decode())
    if name is None:
        return None
    return deployments.get(name, name)
