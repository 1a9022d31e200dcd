"""/v1/chat/completions: base models, fine-tuned models and checkpoints; streamed (SSE) or not."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..api import APIError, body, ctx
from ..inference import generate
from .models import resolve_model

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat(request: Request):
    c = ctx(request)
    cache, stream_fault = c.cache, c.stream_fault
    req = await body(request)
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise APIError(400, "'messages' must be a non-empty array of message objects.", param="messages")
    mid = req.get("model")
    if not isinstance(mid, str):
        raise APIError(400, "Missing required parameter: 'model'.", param="model")
    base, adapter, _ = resolve_model(request, mid)
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
