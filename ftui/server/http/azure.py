"""Azure OpenAI's data-plane shape on the local backend, so the app's Azure profile (the SDK's ``AzureOpenAI``) can
run against it end to end.

- ``/openai/<resource>?api-version=…`` is served as ``/v1/<resource>`` (files, uploads, fine_tuning/jobs, models);
  ``api-version`` is required, as on Azure (any value is accepted: the shapes here are the current ones).
- ``/openai/deployments/<name>/chat/completions`` chats with the model the deployment names: ``ftui serve
  --deployment NAME=MODEL``, or, without one, a deployment named like a model id is that model (one-to-one).
- ``/openai/v1/<resource>`` (Azure's GA v1 surface, what ``OpenAI(base_url="https://…/openai/v1/")`` calls) is
  served as ``/v1/<resource>`` with no ``api-version``; its chat names the deployment in ``model``.
- ``api-key: KEY`` authenticates like ``Authorization: Bearer KEY``.

A pure ASGI middleware (outermost): the rewritten request goes through the same guard, key check, validation and
routes as any other.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

import orjson

DEPLOYMENT = "ftui_deployment"  # request.scope["state"] keys this shape sets; never read from a client's headers
AZURE_V1 = "ftui_azure_v1"


class AzureShape:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = dict(scope.get("state") or {})
        state.pop(DEPLOYMENT, None)
        state.pop(AZURE_V1, None)
        scope = dict(scope, state=state)
        if not scope["path"].startswith("/openai/"):
            return await self.app(scope, receive, send)
        rest = scope["path"][len("/openai"):]
        if rest.startswith("/v1/"):  # the v1 surface: no api-version, the deployment is the body's model
            state[AZURE_V1] = True
        else:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if not query.get("api-version"):
                return await _error(send, 404, "Resource not found: Azure OpenAI paths need the api-version query "
                                    "parameter (e.g. ?api-version=2025-04-01-preview), or the v1 surface "
                                    "/openai/v1/… without one.", "api-version")
            parts = rest.split("/")
            if len(parts) >= 4 and parts[1] == "deployments":  # /deployments/<name>/chat/completions
                state[DEPLOYMENT] = unquote(parts[2])
                rest = "/" + "/".join(parts[3:])
            rest = "/v1" + rest
        headers = [(k, v) for k, v in scope["headers"] if k != b"api-key"]
        key = next((v for k, v in scope["headers"] if k == b"api-key"), None)
        if key is not None and not any(k == b"authorization" for k, _ in headers):
            headers.append((b"authorization", b"Bearer " + key))
        scope = dict(scope, path=rest, raw_path=rest.encode("utf-8"), headers=headers)
        return await self.app(scope, receive, send)


async def _error(send, status: int, message: str, param: str | None) -> None:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": str(status)}})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def deployment_model(request, deployments: dict[str, str], model: str) -> str | None:
    """The model an Azure request's deployment names (None: not an Azure deployment request): the deployment in
    the path, or on the v1 surface a ``model`` that names a deployment."""
    state = request.scope.get("state") or {}
    name = state.get(DEPLOYMENT)
    if name is not None:
        return deployments.get(name, name)
    if state.get(AZURE_V1) and model in deployments:
        return deployments[model]
    return None
