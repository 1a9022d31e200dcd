"""/v1/ftui/score — an ftui-specific endpoint (not in OpenAI's API): the teacher-forced loss and token accuracy of
reference answers under a model, without sampling. It is the quantity the training curves show (mean cross-entropy
over the answer's tokens, end of turn included), measured on held-out examples for ``ftui eval``.

    POST /v1/ftui/score
    {"model": "ft:smollm2-135m-instruct:local::abc",
     "examples": [{"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "4"}]}, …]}
    → {"object": "list", "model": "…", "data": [{"object": "ftui.score", "index": 0, "loss": 0.41,
       "token_accuracy": 0.88, "tokens": 3}, …], "usage": {"prompt_tokens": …, "total_tokens": …}}

The last assistant message of each example is the answer scored; earlier messages are its prompt. At most 256
examples per request (OpenAI-style 400 naming the parameter past that); examples are batched by length on the
model's own lock, so chat requests interleave between batches.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ftui.server.http.api import APIError, CtxDep, json_body, shutting_down
from ftui.server.http.routes.chat import Message
from ftui.server.http.routes.models import load_model, resolve_model
from ftui.server.models import packed
from ftui.server.models.inference import give_back_memory, on_torch, surely_too_long

router = APIRouter(prefix="/v1/ftui")
MAX_EXAMPLES = 256
BATCH_TOKENS = 4096  # padded tokens per forward pass


class ScoreMessage(Message):
    """A training example's message: also its ``weight`` (0 leaves an earlier answer out of training)."""
    weight: int | None = None


class ScoreExample(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # tools and other keys of a chat example are ignored
    messages: list[ScoreMessage] = Field(min_length=2)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str
    examples: list[ScoreExample] = Field(min_length=1, max_length=MAX_EXAMPLES)


@router.post("/score")
async def score(c: CtxDep, r: Annotated[ScoreRequest, Depends(json_body(ScoreRequest))]):
    base, adapter, _ = resolve_model(c, r.model)
    examples = []
    for i, ex in enumerate(r.examples):
        msgs = [m.model_dump(exclude_none=True) for m in ex.messages]
        last = max((j for j, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last is None or last == 0:
            raise APIError(400, f"examples[{i}] needs an assistant answer after at least one message",
                           param=f"examples[{i}].messages")
        msgs = msgs[: last + 1]
        for m in msgs[:last]:  # only the last answer is scored
            if m["role"] == "assistant":
                m["weight"] = 0
        examples.append(msgs)
    entry = await load_model(c, r.model, base, adapter)
    for i, msgs in enumerate(examples):
        if (over := surely_too_long(entry, msgs)) is not None:
            raise APIError(400, f"examples[{i}] holds {over[0]:,} characters, more than this model's {over[1]} "
                           "tokens of context can.", param=f"examples[{i}].messages", code="context_length_exceeded")
    encoded, batches = await asyncio.to_thread(_plan, entry, examples)
    results: list[dict | None] = [None] * len(encoded)
    for batch in batches:  # one batch at a time on the torch thread: chat requests run between them
        if c.stopping:
            raise shutting_down()
        await on_torch(_score_batch, entry, encoded, batch, results)
    give_back_memory()
    data = [{"object": "ftui.score", "index": i, **res} for i, res in enumerate(results)]
    tokens = sum(x["prompt_tokens"] for x in results)
    return {"object": "list", "model": r.model, "data": data,
            "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}}


def _plan(entry, examples: list[list[dict]]):
    """-> (token ids and labels of each example, batches of example indices, similar lengths together)."""
    from ftui.server.train.trainer import encode_sft

    _, tok, _ = entry
    encoded = [encode_sft(tok, msgs) for msgs in examples]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    batches, cur, width = [], [], 0
    for i in order:
        w = max(width, len(encoded[i][0]))
        if cur and w * (len(cur) + 1) > BATCH_TOKENS:
            batches.append(cur)
            cur, w = [], len(encoded[i][0])
        cur.append(i)
        width = w
    if cur:
        batches.append(cur)
    return encoded, batches


def _score_batch(entry, encoded, batch: list[int], out: list) -> None:
    import torch

    model, tok, lock = entry
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    dev = model.device
    from ftui.server.train.packing import right_pad

    # No bfloat16 autocast here, though it is 2.25x faster on a CPU with AMX: a score is a measurement, and in bf16
    # it depended on what the example was batched with (8.7256 alone vs 8.5616 in a batch of six on an AMX Xeon:
    # oneDNN picks another kernel for another batch shape, and bf16 rounds each differently). In the model's own
    # dtype (float32 on a CPU) an example scores the same alone or in any batch, within 1e-6, on any vendor's CPU.
    ids, lab, att = right_pad([encoded[i] for i in batch], pad, dev)
    tgt = lab[:, 1:]
    keep = tgt != -100
    with lock, torch.inference_mode(), packed.float_products(model):  # see models/packed.py
        inner = getattr(model, "model", None)
        if inner is not None and hasattr(model, "lm_head"):  # the output layer only where an answer is
            hidden = inner(input_ids=ids, attention_mask=att).last_hidden_state[:, :-1]
            logits = model.lm_head(hidden[keep]).float()
        else:
            logits = model(input_ids=ids, attention_mask=att).logits[:, :-1][keep].float()
        losses = torch.nn.functional.cross_entropy(logits, tgt[keep], reduction="none")
        right = (logits.argmax(-1) == tgt[keep]).float()
    rows = keep.nonzero()[:, 0]
    for r, i in enumerate(batch):
        sel = rows == r
        n = int(sel.sum())
        out[i] = {"loss": round(float(losses[sel].mean()), 6) if n else None,
                  "token_accuracy": round(float(right[sel].mean()), 6) if n else None,
                  "tokens": n, "prompt_tokens": len(encoded[i][0])}
