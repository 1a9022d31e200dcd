"""/v1/models: the base models this server can train, fine-tuned models and their checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .. import basemodels
from ..api import ORG, APIError, ctx, model_obj

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request):
    c = ctx(request)
    data = [model_obj(b, c.started, "ftui") for b in basemodels.names(c.data_dir)]
    data += [model_obj(m["id"], m["created_at"], ORG) for m in c.store.list_models()]
    return {"object": "list", "data": data}


def resolve_model(request: Request, mid: str) -> tuple[str, str | None, dict]:
    """-> (base, adapter folder or None, model object)."""
    c = ctx(request)
    store = c.store
    if mid in basemodels.names(c.data_dir):
        return mid, None, model_obj(mid, c.started, "ftui")
    m = store.get_model(mid)
    if m is not None:
        return m["base"], m["path"], model_obj(mid, m["created_at"], ORG)
    c = store.find_checkpoint(mid)
    if c is not None:
        job = store.get_job(c["job_id"])
        return job["model"], c["path"], model_obj(mid, c["created_at"], ORG)
    raise APIError(404, f"The model '{mid}' does not exist or you do not have access to it.", param="model",
                   code="model_not_found")


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str):
    return resolve_model(request, model_id)[2]


@router.delete("/v1/models/{model_id:path}")
async def delete_model(request: Request, model_id: str):
    """A fine-tuned model goes with its folder and its checkpoints; a checkpoint can be deleted by itself. Neither
    answers chat afterwards (evicted from the loaded models too)."""
    resolve_model(request, model_id)
    c = ctx(request)
    gone = c.store.delete_model(model_id)
    for mid in gone:
        c.cache.evict(mid)
    if not gone:
        raise APIError(403, f"Model {model_id} is not a fine-tuned model you own; it cannot be deleted.",
                       param="model")
    return {"id": model_id, "object": "model", "deleted": True}
