"""/v1/models: the base models this server can train, fine-tuned models and their checkpoints."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter

from ftui.server.http.api import ORG, APIError, Context, CtxDep, model_obj
from ftui.server.models import basemodels

if TYPE_CHECKING:
    from ftui.server.models.inference import LoadedModel

router = APIRouter(prefix="/v1/models")


def _described(c: Context, mid: str) -> dict:
    """A base model's object with ftui's extension: {"ftui": {source, kind, architecture, parameters,
    context_length, problem, throughput}} (the app shows these; OpenAI's SDK keeps unknown fields). ``throughput``:
    the measured training speed of earlier jobs on it here, per method (the app's time estimates)."""
    return {**model_obj(mid, c.started, "ftui"), "ftui": basemodels.describe(mid, c.data_dir)}


async def _base_obj(c: Context, mid: str) -> dict:
    # a base's size and context come from its files' headers: read once in a thread (cached), never on the loop;
    # the store is read on the loop, as every route does
    obj = await asyncio.to_thread(_described, c, mid)
    return {**obj, "ftui": {**obj["ftui"], "throughput": c.store.throughput(mid)}}


def _tuned_obj(mid: str, t: dict) -> dict:
    """A fine-tuned model's object; ftui's extension says its base, its job and the model that job continued."""
    return {**model_obj(mid, t["created_at"], ORG),
            "ftui": {"base": t["base"], "job": t["job_id"], "parent": t.get("parent")}}


@router.get("")
async def list_models(c: CtxDep):
    data = [await _base_obj(c, b) for b in basemodels.names(c.data_dir)]
    data += [_tuned_obj(m["id"], c.store.tuned(m["id"]) or m) for m in c.store.list_models()]
    return {"object": "list", "data": data}


def resolve_model(c: Context, mid: str) -> tuple[str, str | None, dict]:
    """-> (base, adapter folder or None, model object)."""
    if mid in basemodels.names(c.data_dir):
        return mid, None, model_obj(mid, c.started, "ftui")
    t = c.store.tuned(mid)
    if t is None:
        raise APIError(404, f"The model '{mid}' does not exist or you do not have access to it.", param="model",
                       code="model_not_found")
    found = t["base"], t["path"], _tuned_obj(mid, t)
    if not Path(found[1]).is_dir():  # its files were removed behind the store's back: a clean 404, never a 500
        raise APIError(404, f"The model '{mid}' has no files left in the data dir; it cannot answer.",
                       param="model", code="model_not_found")
    return found


async def load_model(c: Context, mid: str, base: str, adapter: str | None) -> LoadedModel:
    """The loaded model (ModelCache entry); a model whose files went between resolving and loading is a 404."""
    from ftui.server.models.inference import on_torch

    try:
        return await on_torch(c.cache.get, mid, base, adapter)
    except OSError:
        if adapter is not None and not Path(adapter).is_dir():
            raise APIError(404, f"The model '{mid}' has no files left in the data dir; it cannot answer.",
                           param="model", code="model_not_found") from None
        raise


@router.get("/{model_id:path}")
async def retrieve_model(c: CtxDep, model_id: str):
    if model_id in basemodels.names(c.data_dir):
        return await _base_obj(c, model_id)
    return resolve_model(c, model_id)[2]


@router.delete("/{model_id:path}")
async def delete_model(c: CtxDep, model_id: str):
    """A fine-tuned model goes with its folder and its checkpoints; a checkpoint can be deleted by itself. Neither
    answers chat afterwards (evicted from the loaded models too)."""
    gone = c.store.delete_model(model_id)  # also one whose files were already gone
    for mid in gone:
        c.cache.evict(mid)
    if not gone:
        resolve_model(c, model_id)  # 404 for a model nobody knows
        raise APIError(403, f"Model {model_id} is not a fine-tuned model you own; it cannot be deleted.",
                       param="model")
    return {"id": model_id, "object": "model", "deleted": True}
