"""/v1/fine_tuning/alpha/graders/{validate,run}: OpenAI's graders API, so ``client.fine_tuning.alpha.graders.*``
works unchanged. One engine (ftui/core/graders) serves these, RFT jobs and ``ftui grade``/``ftui eval --grader``.

A bad grader is a 400 naming its field (``grader.graders.correct.operation``); a sample's own failure is never an
HTTP error: its reward is 0 and ``metadata.errors`` says which of OpenAI's categories it fell in. ``score_model`` and
``label_model`` graders are judged by any model this backend serves (base or fine-tuned), greedy unless
``sampling_params`` say otherwise; python graders run in a process of their own with OpenAI's limits."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ftui.core import graders
from ftui.server.http.api import APIError, Context, CtxDep, json_body
from ftui.server.http.routes.models import resolve_model

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders")
MAX_SAMPLE = 1_000_000  # characters of model_sample


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    grader: dict[str, Any]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    grader: dict[str, Any]
    model_sample: str = Field(max_length=MAX_SAMPLE)
    item: Any = None


def checked(grader: dict, c: Context | None = None) -> dict:
    """The grader, checked; with ``c``, a python grader is refused where this server may not run code."""
    try:
        graders.check(grader)
    except graders.GraderError as e:
        raise APIError(400, f"Invalid grader: {e}", param=e.param, code="invalid_grader") from None
    if c is not None and not c.python_graders:
        for param, sub in graders.walk(grader):
            if sub["type"] == "python":
                raise APIError(400, "python graders run code as you on this machine, so this server runs them only "
                               "behind an API key (ftui serve --api-key-file; the app's local backend has one) or "
                               "when started with --python-graders.", param=f"{param}.type",
                               code="python_graders_disabled")
    return grader


def judge_for(c: Context) -> graders.Judge:
    """Answer a model grader's messages with a model this backend serves (called from the grading thread)."""
    def judge(model: str, messages: list[dict], params: dict) -> tuple[str, int]:
        from ftui.server.models.inference import judge_answer, torch_thread

        try:
            base, adapter, _ = resolve_model(c, model)
        except APIError as e:
            raise graders.JudgeError(f"{model}: {e.message}") from None
        try:
            entry = torch_thread().submit(c.cache.get, model, base, adapter).result()
            return judge_answer(entry, messages, params)
        except Exception as e:  # the judge failed: this sample's model_grader_server_error, never a 500
            raise graders.JudgeError(f"{model} could not answer: {e}") from None

    return judge


@router.post("/validate")
async def validate(r: Annotated[ValidateRequest, Depends(json_body(ValidateRequest))]):
    return {"grader": checked(r.grader)}


@router.post("/run")
async def run(c: CtxDep, r: Annotated[RunRequest, Depends(json_body(RunRequest))]):
    grader = checked(r.grader, c)
    if r.item is not None and not isinstance(r.item, dict):
        raise APIError(400, "item must be an object (the dataset row the grader's {{ item.* }} templates read)",
                       param="item")

    def grade() -> dict:
        with graders.Engine(grader, judge=judge_for(c)) as engine:
            return engine.run(r.model_sample, r.item)

    return await asyncio.to_thread(grade)
