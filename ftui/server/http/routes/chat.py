"""/v1/chat/completions: base models, fine-tuned models and checkpoints; streamed (SSE) or not."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from ftui.server.http.api import APIError, CtxDep, body, shutting_down, validated
from ftui.server.http.azure import deployment_model
from ftui.server.http.routes.models import load_model, resolve_model
from ftui.server.models.batching import BATCH_MAX_TOKENS
from ftui.server.models.inference import (
    GenerationFailed,
    generate,
    give_back_memory,
    on_torch,
    prompt_length,
    surely_too_long,
)

router = APIRouter(prefix="/v1/chat")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # an image_url/input_audio part is refused by its type
    type: str
    text: str | None = None


class Message(BaseModel):
    """OpenAI's chat message keys; any other key is refused (strict, like OpenAI)."""
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list | None = None
    tool_call_id: str | None = None
    function_call: dict | None = None
    refusal: str | None = None
    audio: dict | None = None


TEXT_PARTS = {"text", "refusal"}
UNREADABLE = {"image_url": "images", "input_audio": "audio", "file": "files"}


def check_messages(messages: list[Message]) -> None:
    """OpenAI's message rules, and what these text-only models cannot read refused by name (never dropped: a model
    asked about an image it never saw would invent one)."""
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if m.role in ("system", "developer", "user") and m.content is None:
            raise APIError(400, f"Invalid value for '{at}.content': a {m.role} message needs content (a string or "
                           "an array of content parts).", param=f"{at}.content")
        if m.role == "tool" and not m.tool_call_id:
            raise APIError(400, f"Missing required parameter: '{at}.tool_call_id'.", param=f"{at}.tool_call_id")
        if m.role in ("tool", "function") or m.tool_calls or m.function_call:
            key = "tool_calls" if m.tool_calls else ("function_call" if m.function_call else "role")
            raise APIError(400, f"{at}.{key}: the local backend's models have no tool-calling template, so tool "
                           "calls and their results are not supported.", param=f"{at}.{key}")
        if m.audio is not None:
            raise APIError(400, f"{at}.audio: the local backend's models read text only.", param=f"{at}.audio")
        for j, part in enumerate(m.content if isinstance(m.content, list) else []):
            if part.type not in TEXT_PARTS:
                what = UNREADABLE.get(part.type)
                raise APIError(400, (f"{at}.content[{j}] is an {part.type} part: the local backend's models read "
                                     f"text only, not {what}." if what else
                                     f"{at}.content[{j}].type {part.type!r} is not a content part type."),
                               param=f"{at}.content[{j}].type")
            if part.text is None:
                raise APIError(400, f"Missing required parameter: '{at}.content[{j}].text'.",
                               param=f"{at}.content[{j}].text")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatRequest(BaseModel):
    """What the local backend accepts, typed (strict: a string is not a number). What it cannot honour is refused
    by name below, never silently dropped."""
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = Field(None)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    logit_bias: dict | None = None
    tools: list | None = None
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict | None = None
    user: str | None = None
    metadata: dict | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list | None = None
    verbosity: Literal["low", "medium", "high"] | None = None  # a hint for reasoning models: null or "medium"
    prompt_cache_key: str | None = None  # OpenAI's cache routing hint: harmless, nothing to route here
    safety_identifier: str | None = None  # who the end user is, for abuse monitoring: nothing monitors here


MAX_MESSAGES = 4096  # each costs a few tokens of template at least: more never fit these models' contexts
MAX_WAITING = 4  # generations running or waiting for the model; past that a request gets 429 + Retry-After
MAX_BATCHED = 32  # short greedy requests waiting for a batch


def _completion(cid: str, created: int, mid: str, text: str, info: dict) -> dict:
    usage = {"prompt_tokens": info["prompt_tokens"], "completion_tokens": info["completion_tokens"],
             "total_tokens": info["prompt_tokens"] + info["completion_tokens"]}
    return {"id": cid, "object": "chat.completion", "created": created, "model": mid,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": info["finish_reason"]}],
            "usage": usage}


def _refuse_what_cannot_be_honoured(r: ChatRequest) -> None:
    if r.n not in (None, 1):
        raise APIError(400, "Only n=1 is supported by the local backend.", param="n")
    if r.logprobs or r.top_logprobs:
        raise APIError(400, "logprobs are not supported by the local backend.", param="logprobs")
    if r.tools:
        raise APIError(400, "The local backend's models have no tool-calling template: 'tools' is not supported.",
                       param="tools")
    if r.tool_choice not in (None, "none"):
        raise APIError(400, "tool_choice needs tools, which the local backend does not support.",
                       param="tool_choice")
    if r.response_format not in (None, {"type": "text"}):
        raise APIError(400, "Only response_format {\"type\": \"text\"} is supported by the local backend.",
                       param="response_format")
    if r.frequency_penalty or r.presence_penalty or r.logit_bias:
        param = "frequency_penalty" if r.frequency_penalty else ("presence_penalty" if r.presence_penalty
                                                                 else "logit_bias")
        raise APIError(400, f"{param} is not supported by the local backend.", param=param)
    if r.stream_options is not None and not r.stream:
        raise APIError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                       param="stream_options")
    if r.verbosity not in (None, "medium"):
        raise APIError(400, "verbosity is for reasoning models; the local backend's answers have one length.",
                       param="verbosity")
    check_messages(r.messages)
    if isinstance(r.stop, list) and len(r.stop) > 4:
        raise APIError(400, "stop holds at most 4 sequences.", param="stop")


@router.post("/completions")
async def chat(request: Request, c: CtxDep):
    cache = c.cache
    data = await body(request)
    if isinstance(data.get("messages"), list) and len(data["messages"]) > MAX_MESSAGES:  # before building them
        raise APIError(400, f"Invalid 'messages': {len(data['messages']):,} messages; at most {MAX_MESSAGES:,} are "
                       "taken (more cannot fit a context here).", param="messages", code="context_length_exceeded")
    r = validated(ChatRequest, data)
    _refuse_what_cannot_be_honoured(r)
    mid = r.model
    dep = deployment_model(request, c.deployments, r.model)  # Azure: the deployment in the path names the model
    if dep is not None:
        mid = dep
        try:
            resolve_model(c, mid)
        except APIError:
            raise APIError(404, "The API deployment for this resource does not exist. (ftui serve --deployment "
                           "NAME=MODEL names one; a deployment named like a model id is that model.)",
                           code="DeploymentNotFound") from None
    base, adapter, _ = resolve_model(c, mid)
    messages = [m.model_dump(exclude_none=True) for m in r.messages]
    max_tokens = r.max_completion_tokens or r.max_tokens or 256
    temperature = 1.0 if r.temperature is None else r.temperature
    top_p = 1.0 if r.top_p is None else r.top_p
    stop = [r.stop] if isinstance(r.stop, str) else list(r.stop or [])
    # short greedy answers without streaming (an evaluation's) are generated in batches: see batching.Batcher
    batchable = (not r.stream and (temperature <= 1e-4 or top_p == 0) and max_tokens <= BATCH_MAX_TOKENS
                 and not c.faults.generation_errors)
    if c.stopping:
        raise shutting_down()
    slot, limit_waiting = ("batched", MAX_BATCHED) if batchable else ("generating", MAX_WAITING)
    if getattr(c, slot) >= limit_waiting:
        raise APIError(429, f"The local backend is busy with {getattr(c, slot)} chat requests; try again shortly.",
                       type="requests", code="rate_limit_exceeded", headers={"retry-after": "2"})
    setattr(c, slot, getattr(c, slot) + 1)
    released = []

    def release() -> None:  # exactly once, however the request ends
        if not released:
            released.append(True)
            setattr(c, slot, getattr(c, slot) - 1)
            c.halts.difference_update(halts)
            give_back_memory()

    halts: list = []  # this request's generation, once it has one

    try:
        entry = await load_model(c, mid, base, adapter)
        if r.stream:  # streamed answers in bf16 where that is fast; the others stay float32 (see ModelCache.fast)
            entry = await on_torch(cache.fast, mid, entry)
        over = surely_too_long(entry, messages)
        if over is not None:
            raise APIError(400, f"This model's maximum context length is {over[1]} tokens. However, your messages "
                           f"hold {over[0]:,} characters, more than {over[1]} tokens can. Please reduce the length "
                           "of the messages.", param="messages", code="context_length_exceeded")
        prompt, limit = await asyncio.to_thread(prompt_length, entry, messages)
    except BaseException:
        release()
        raise
    if prompt >= limit:
        release()
        raise APIError(400, f"This model's maximum context length is {limit} tokens. However, your messages "
                       f"resulted in {prompt} tokens. Please reduce the length of the messages.",
                       param="messages", code="context_length_exceeded")
    max_tokens = min(max_tokens, limit - prompt, 4096)
    cid = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    if batchable:
        try:
            text, info = await asyncio.wrap_future(cache.batcher(mid, entry).submit(messages, max_tokens, stop,
                                                                                       prompt))
        except GenerationFailed as exc:
            raise APIError(500, f"Generation failed: {exc}", type="server_error") from None
        finally:
            release()
        return _completion(cid, created, mid, text, info)
    halt = threading.Event()
    c.halts.add(halt)  # a shutdown halts it too (Context.halt_all)
    halts.append(halt)
    fail = c.faults.take_generation_error()
    gen = generate(entry, messages, max_tokens=max_tokens, temperature=float(temperature),
                   top_p=float(top_p), seed=None if r.seed is None else r.seed % 2**32, stop=stop, halt=halt,
                   fail=fail, reuse_prefix=bool(r.stream))
    next_piece = lambda: next(gen, None)  # noqa: E731
    gone = request.scope.get("state", {}).get("disconnected") or asyncio.Event()  # set by guard.DisconnectWatch

    async def stop_when_gone() -> None:  # at once, not at the next piece (the streamer may hold text for long)
        await gone.wait()
        halt.set()

    watcher = asyncio.ensure_future(stop_when_gone())

    if not r.stream:
        text, info = "", {}
        try:
            while (item := await asyncio.to_thread(next_piece)) is not None:
                text += item[0]
                info = item[1] or info
                if gone.is_set():  # the client went away: stop generating for nobody
                    halt.set()
                    raise APIError(499, "The client closed the request.", type="server_error")
            if c.stopping:  # halted by the shutdown: the answer is cut, say so rather than pass it as whole
                raise shutting_down()
        except GenerationFailed as exc:
            raise APIError(500, f"Generation failed: {exc}", type="server_error") from None
        finally:  # the slot first: an await here may be cancelled (a client gone), the slot must not leak
            release()
            watcher.cancel()
            halt.set()
            await asyncio.to_thread(gen.close)
        return _completion(cid, created, mid, text, info)

    include_usage = bool(r.stream_options and r.stream_options.include_usage)

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
            fail_after = c.faults.take_stream_error_after()
            sent = 0
            while (item := await asyncio.to_thread(next_piece)) is not None:
                if gone.is_set():  # nobody reads this stream any more
                    return
                if fail_after is not None and sent >= fail_after:
                    raise RuntimeError("injected fault: the stream broke")
                if item[0]:
                    yield chunk({"content": item[0]})
                    sent += 1
                info = item[1] or info
            if c.stopping:
                raise RuntimeError("the server is shutting down; the answer was cut short")
            yield chunk({}, finish=info.get("finish_reason", "stop"))
            if include_usage:
                u = {"prompt_tokens": info["prompt_tokens"], "completion_tokens": info["completion_tokens"],
                     "total_tokens": info["prompt_tokens"] + info["completion_tokens"],
                     # OpenAI's field for prompt tokens served from a cache (here: the last turn's keys/values)
                     "prompt_tokens_details": {"cached_tokens": info.get("cached_tokens", 0)}}
                yield chunk({}, usage=u, choices=False)
            yield b"data: [DONE]\n\n"
        except Exception as exc:  # an error in the middle of a stream, in the shape the SDK raises
            err = {"error": {"message": f"Generation failed: {type(exc).__name__}: {exc}", "type": "server_error",
                             "param": None, "code": None}}
            yield b"data: " + orjson.dumps(err) + b"\n\n"
        finally:  # also when the client disconnects: generation stops (the slot first, before any await)
            release()
            watcher.cancel()
            halt.set()
            await asyncio.to_thread(gen.close)

    # the background task frees the slot too if the stream never ran (release is idempotent)
    return StreamingResponse(stream(), media_type="text/event-stream", background=BackgroundTask(release))
