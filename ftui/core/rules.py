"""Per-example validation and token accounting.

``ExampleChecker.check(obj, emit)`` looks at one parsed line: it detects the line's format, reports every problem
through ``emit(code, message, path)``, and returns the numbers the statistics need. Nothing here recurses into user
data beyond a fixed depth, so pathological nesting cannot raise RecursionError.

Token accounting (the OpenAI cookbook's formula, ``num_tokens_from_messages``):

* each message costs 3 tokens plus the tokens of every string value in it (``role`` included), plus 1 for a
  ``name``; each example adds 3 (the reply primer);
* content parts: text parts count their text; each image part counts 85 tokens (the ``detail: low`` cost; high
  detail costs more, depending on the image size, which is not known offline);
* ``tool_calls`` / ``function_call`` count the function name and the arguments string;
* ``tools`` definitions use the cookbook's function-definition overheads (``func_init`` 7 for o200k, 10 for
  cl100k; ``prop_init`` 3, ``prop_key`` 3, ``enum_init`` -3, ``enum_item`` 3, ``func_end`` 12);
* trainable tokens are the content and tool-call tokens of assistant messages whose ``weight`` is not 0;
* preference (DPO) examples: input messages + both outputs; trainable = the two outputs' tokens;
* legacy completion examples: prompt + completion tokens; trainable = the completion's.
"""

from __future__ import annotations

import re
from typing import Callable

import orjson

# per-line kinds; AMBIGUOUS = messages without an assistant answer and no grader fields (chat missing its answer,
# or a reinforcement line): the file's format decides which
NONE, CHAT, PREFERENCE, REINFORCEMENT, COMPLETION, AMBIGUOUS = range(6)
FORMAT_NAMES = {CHAT: "chat", PREFERENCE: "preference", REINFORCEMENT: "reinforcement", COMPLETION: "completion"}

# flags per example
HAS_SYSTEM = 1
HAS_USER = 2
_PLAIN_ROLES = {"system": HAS_SYSTEM, "user": HAS_USER, "assistant": 0}  # the fast path's roles and their flags

ROLES = frozenset(("system", "user", "assistant", "tool", "function"))
MESSAGE_KEYS = frozenset(("role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id",
                          "refusal"))
CHAT_TOP_KEYS = frozenset(("messages", "tools", "parallel_tool_calls", "functions"))
# the special-token strings of OpenAI encodings and chat formats; the service rejects them in training text
SPECIAL_STRINGS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>",
                   "<|im_start|>", "<|im_end|>", "<|im_sep|>")
IMAGE_TOKENS = 85
MAX_IMAGES = 10
_FUNC_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

Emit = Callable[[str, str, str], None]


def _short(value, limit: int = 40) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ExampleChecker:
    """Validates and counts one example at a time for one encoding."""

    def __init__(self, count: Callable[[str], int], encoding: str = "o200k_base") -> None:
        self._count = count
        self._cache: dict[str, int] = {}
        self.func_init = 10 if encoding == "cl100k_base" else 7

    # -- tokens ------------------------------------------------------------------------------------------------
    def count(self, text: str) -> int:
        # short and repeated strings (roles, system prompts) are common: a small cache pays for itself
        if len(text) < 256:
            n = self._cache.get(text)
            if n is None:
                n = self._count(text)
                if len(self._cache) < 4096:
                    self._cache[text] = n
            return n
        return self._count(text)

    def _special(self, text: str, path: str, emit: Emit) -> None:
        if "<" in text and "<|" in text:  # "<" first: see _messages
            for tok in SPECIAL_STRINGS:
                if tok in text:
                    emit("special_token", f"contains the special token {tok}; the service rejects the file", path)

    # -- entry point -------------------------------------------------------------------------------------------
    def check(self, obj, emit: Emit) -> tuple[int, int, int, int, int]:
        """-> (kind, tokens, trainable_tokens, n_messages, flags)."""
        if not isinstance(obj, dict):
            emit("data_type", f"expected a JSON object, got {type(obj).__name__ if obj is not None else 'null'}",
                 "")
            return NONE, 0, 0, 0, 0
        if "messages" in obj:
            return self._chat(obj, emit)
        if "input" in obj or "preferred_output" in obj or "non_preferred_output" in obj:
            return self._preference(obj, emit)
        if "prompt" in obj or "completion" in obj:
            return self._completion(obj, emit)
        keys = ", ".join(sorted(obj)[:5]) or "none"
        emit("missing_messages_list", f"no `messages` list (keys: {keys})", "messages")
        return NONE, 0, 0, 0, 0

    # -- chat / reinforcement ----------------------------------------------------------------------------------
    def _chat(self, obj: dict, emit: Emit) -> tuple[int, int, int, int, int]:
        messages = obj["messages"]
        if not isinstance(messages, list) or not messages:
            emit("missing_messages_list", "`messages` must be a non-empty list", "messages")
            return NONE, 0, 0, 0, 0
        extra = [k for k in obj if k not in CHAT_TOP_KEYS]
        tokens, trainable, flags, has_assistant, any_weighted = self._messages(messages, "messages", emit, True)
        tokens += 3 + self._tools(obj, emit)
        if has_assistant:
            if extra:
                emit("unrecognized_key", f"top-level key(s) {', '.join(map(repr, extra[:5]))} are not part of "
                     "the chat format", extra[0])
            if not any_weighted:
                emit("no_trainable_tokens", "every assistant message has weight 0", "messages")
            return CHAT, tokens, trainable, len(messages), flags
        return (REINFORCEMENT if extra else AMBIGUOUS), tokens, 0, len(messages), flags

    def _messages(self, messages: list, base: str, emit: Emit, images_ok: bool):
        """-> (tokens, trainable, flags, has_assistant, any_trainable_assistant)."""
        tokens = trainable = flags = images = 0
        has_assistant = any_weighted = False
        # the hot loop of `ftui check` (every message of every example): the usual message takes the shortcut
        # below, with the count cache inlined; the others are checked in full
        cache, raw_count, special, count = self._cache, self._count, self._special, self.count
        for i, m in enumerate(messages):
            # the common message, {"role": system|user|assistant, "content": "text"} and nothing else, with nothing
            # the checks below would report (not empty, not blank, no special token): counted straight away. The
            # special-token test looks for "<" first: one character is found ~3x faster than two (8 against 27 ms
            # over 30 MB of contents), and most contents have none
            if type(m) is dict and len(m) == 2:
                role = m.get("role")
                content = m.get("content")
                if (type(role) is str and type(content) is str and role in _PLAIN_ROLES and content
                        and not content.isspace() and ("<" not in content or "<|" not in content)):
                    rn = cache.get(role)
                    if rn is None:
                        rn = cache[role] = raw_count(role)
                    if len(content) < 256:
                        n = cache.get(content)
                        if n is None:
                            n = raw_count(content)
                            if len(cache) < 4096:
                                cache[content] = n
                    else:
                        n = raw_count(content)
                    tokens += 3 + rn + n
                    if role == "assistant":
                        has_assistant = any_weighted = True
                        trainable += n
                    else:
                        flags |= _PLAIN_ROLES[role]
                    continue
            p = f"{base}[{i}]"
            if type(m) is not dict:
                emit("data_type", f"message {i} is not an object", p)
                continue
            tokens += 3
            role = m.get("role")
            if "role" not in m:
                emit("message_missing_key", f"message {i} has no `role`", f"{p}.role")
            elif type(role) is not str or role not in ROLES:  # (a list or an object is not hashable)
                if role == "developer":
                    emit("developer_role", f"message {i} has role `developer`; the fine-tuning schema lists "
                         "system, user, assistant, tool and function", f"{p}.role")
                else:
                    emit("unrecognized_role", f"message {i} has role {_short(role)!s}", f"{p}.role")
            if not MESSAGE_KEYS.issuperset(m):
                for k in m:
                    if k not in MESSAGE_KEYS:
                        emit("message_unrecognized_key", f"message {i} has unrecognized key {_short(k)!r}",
                             f"{p}.{k}")
            if role == "system" or role == "developer":
                flags |= HAS_SYSTEM
            elif role == "user":
                flags |= HAS_USER
            # every string value counts (the cookbook's formula), role and name included
            content_tokens = 0
            for k, v in m.items():
                if type(v) is str:
                    n = count(v)
                    if k == "content":
                        content_tokens = n
                    else:
                        tokens += n
                    if "<" in v and "<|" in v:
                        special(v, f"{p}.{k}", emit)
                if k == "name":
                    tokens += 1
            content = m.get("content")
            calls = m.get("tool_calls")
            fcall = m.get("function_call")
            call_tokens = 0
            if calls is not None:
                call_tokens += self._tool_calls(calls, f"{p}.tool_calls", emit, role)
            if fcall is not None:
                call_tokens += self._function_call(fcall, f"{p}.function_call", emit)
            if "content" not in m:
                if not (role == "assistant" and (calls or fcall)):
                    emit("message_missing_key", f"message {i} has no `content`", f"{p}.content")
            elif type(content) is str:
                if not content:
                    if not (role == "assistant" and (calls or fcall)):
                        emit("missing_content", f"message {i} ({_short(role)}) has empty content", f"{p}.content")
                elif role == "assistant" and content.isspace():
                    emit("blank_assistant_content", f"assistant message {i} is only whitespace", f"{p}.content")
            elif content is None:
                if not (role == "assistant" and (calls or fcall)):
                    emit("missing_content", f"message {i} ({_short(role)}) has null content", f"{p}.content")
            elif isinstance(content, list):
                n_tok, n_img = self._parts(content, f"{p}.content", emit, role, images_ok)
                content_tokens += n_tok
                images += n_img
            else:
                emit("missing_content", f"message {i} content must be a string or a list of parts, got "
                     f"{type(content).__name__}", f"{p}.content")
            tokens += content_tokens + call_tokens
            if "weight" in m:
                w = m["weight"]
                if type(w) is not int or w not in (0, 1):
                    emit("invalid_weight", f"message {i} has weight {_short(w)}; allowed values are 0 and 1",
                         f"{p}.weight")
                if role != "assistant":
                    emit("weight_not_on_assistant", f"message {i} ({_short(role)}) has a weight; only assistant "
                         "messages take one", f"{p}.weight")
            if role == "assistant":
                has_assistant = True
                if m.get("weight", 1) != 0:
                    any_weighted = True
                    trainable += content_tokens + call_tokens
        if images > MAX_IMAGES:
            emit("too_many_images", f"{images} images in one example; at most {MAX_IMAGES} are allowed", base)
        return tokens, trainable, flags, has_assistant, any_weighted

    def _parts(self, parts: list, p: str, emit: Emit, role, images_ok: bool) -> tuple[int, int]:
        tokens = images = 0
        for j, part in enumerate(parts):
            q = f"{p}[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                tokens += self.count(part["text"])
                self._special(part["text"], f"{q}.text", emit)
            elif kind == "image_url":
                img = part.get("image_url")
                url = img.get("url") if isinstance(img, dict) else None
                if not isinstance(url, str) or not url:
                    emit("invalid_content_part", "image_url part without a `url` string", f"{q}.image_url")
                elif not images_ok:
                    emit("images_not_supported", "images are not supported in this format", q)
                elif role != "user":
                    emit("image_not_in_user_message", f"image in a(n) {_short(role)} message; only user messages may "
                         "hold images", q)
                images += 1
                tokens += IMAGE_TOKENS
            else:
                emit("invalid_content_part", f"content part {j} is not a text or image_url part", q)
        if not parts:
            emit("missing_content", "content is an empty list", p)
        return tokens, images

    def _tool_calls(self, calls, p: str, emit: Emit, role) -> int:
        if role != "assistant":
            emit("invalid_tool_calls", f"`tool_calls` on a {_short(role)} message", p)
        if not isinstance(calls, list):
            emit("invalid_tool_calls", "`tool_calls` must be a list", p)
            return 0
        tokens = 0
        for j, call in enumerate(calls):
            q = f"{p}[{j}]"
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(
                    fn.get("arguments"), str):
                emit("invalid_tool_calls", f"tool call {j} needs `function` with string `name` and `arguments`", q)
                continue
            if not isinstance(call.get("id"), str):
                emit("invalid_tool_calls", f"tool call {j} has no string `id`", f"{q}.id")
            tokens += self.count(fn["name"]) + self.count(fn["arguments"])
            self._arguments(fn["arguments"], f"{q}.function.arguments", emit)
        return tokens

    def _function_call(self, fcall, p: str, emit: Emit) -> int:
        if not isinstance(fcall, dict) or not isinstance(fcall.get("name"), str):
            emit("invalid_tool_calls", "`function_call` needs a string `name`", p)
            return 0
        args = fcall.get("arguments", "")
        if not isinstance(args, str):
            emit("invalid_tool_calls", "`function_call.arguments` must be a string", f"{p}.arguments")
            args = ""
        self._arguments(args, f"{p}.arguments", emit)
        return self.count(fcall["name"]) + self.count(args)

    @staticmethod
    def _arguments(args: str, p: str, emit: Emit) -> None:
        if args:
            try:
                value = orjson.loads(args)
            except orjson.JSONDecodeError:
                emit("invalid_tool_arguments", "tool-call arguments are not valid JSON", p)
                return
            if isinstance(value, dict):
                return
            if isinstance(value, str):
                try:
                    inner = orjson.loads(value)
                except orjson.JSONDecodeError:
                    inner = None
                if isinstance(inner, (dict, list)):
                    emit("tool_arguments_not_object", "tool-call arguments are double-encoded: a JSON string "
                         f"holding JSON ({_short(value)}); write the object itself", p)
                    return
            kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "null" if value is None
                                                                                else "a number")
            emit("tool_arguments_not_object", f"tool-call arguments are {kind}, not a JSON object", p)

    def _tools(self, obj: dict, emit: Emit) -> int:
        tools = obj.get("tools")
        functions = obj.get("functions")
        if tools is None and functions is None:
            return 0
        defs = []
        if tools is not None:
            if not isinstance(tools, list):
                emit("invalid_tools", "`tools` must be a list", "tools")
            else:
                for j, t in enumerate(tools):
                    fn = t.get("function") if isinstance(t, dict) else None
                    if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
                        emit("invalid_tools", f"tool {j} must be {{\"type\": \"function\", \"function\": {{…}}}}",
                             f"tools[{j}]")
                        continue
                    defs.append((fn, f"tools[{j}].function"))
        if functions is not None:
            if not isinstance(functions, list) or not functions:
                emit("invalid_tools", "`functions` must be a non-empty list", "functions")
            else:
                defs.extend((fn, f"functions[{j}]") for j, fn in enumerate(functions) if isinstance(fn, dict))
        if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
            emit("invalid_tools", "`parallel_tool_calls` must be true or false", "parallel_tool_calls")
        tokens = 0
        for fn, p in defs:
            name = fn.get("name")
            if not isinstance(name, str) or not _FUNC_NAME.match(name):
                emit("invalid_tools", f"function name {_short(name)} must match [a-zA-Z0-9_-]{{1,64}}", f"{p}.name")
                name = name if isinstance(name, str) else ""
            desc = fn.get("description")
            desc = desc if isinstance(desc, str) else ""
            tokens += self.func_init + self.count(f"{name}:{desc.removesuffix('.')}")
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, dict) else None
            if isinstance(props, dict) and props:
                tokens += 3
                for key, prop in props.items():
                    prop = prop if isinstance(prop, dict) else {}
                    tokens += 3
                    enum = prop.get("enum")
                    if isinstance(enum, list):
                        tokens -= 3
                        for item in enum:
                            tokens += 3 + self.count(item if isinstance(item, str) else str(item))
                    ptype = prop.get("type") if isinstance(prop.get("type"), str) else ""
                    pdesc = prop.get("description")
                    pdesc = pdesc if isinstance(pdesc, str) else ""
                    tokens += self.count(f"{key}:{ptype}:{pdesc.removesuffix('.')}")
        return tokens + (12 if defs else 0)

    # -- preference (DPO) --------------------------------------------------------------------------------------
    def _preference(self, obj: dict, emit: Emit) -> tuple[int, int, int, int, int]:
        inp = obj.get("input")
        tokens = trainable = flags = n_messages = 0
        if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list) or not inp["messages"]:
            emit("preference_shape", "`input` must be an object with a non-empty `messages` list", "input")
        else:
            msgs = inp["messages"]
            tokens, _, flags, _, _ = self._messages(msgs, "input.messages", emit, images_ok=False)
            tokens += 3 + self._tools(inp, emit)
            n_messages = len(msgs)
            last = msgs[-1]
            if isinstance(last, dict) and last.get("role") == "assistant":
                emit("preference_shape", "the input ends with an assistant message; it must end with the turn "
                     "the outputs answer", f"input.messages[{len(msgs) - 1}]")
        for key in ("preferred_output", "non_preferred_output"):
            out = obj.get(key)
            if not isinstance(out, list) or len(out) != 1 or not isinstance(out[0], dict) or out[0].get(
                    "role") != "assistant":
                emit("preference_shape", f"`{key}` must be a list holding exactly one assistant message", key)
                continue
            t, tr, _, _, _ = self._messages(out, key, emit, images_ok=False)
            tokens += t
            trainable += tr
        n_messages += 1
        for k in obj:
            if k not in ("input", "preferred_output", "non_preferred_output"):
                emit("unrecognized_key", f"top-level key {_short(k)!r} is not part of the preference format", k)
        return PREFERENCE, tokens, trainable, n_messages, flags

    # -- legacy completion -------------------------------------------------------------------------------------
    def _completion(self, obj: dict, emit: Emit) -> tuple[int, int, int, int, int]:
        prompt, completion = obj.get("prompt"), obj.get("completion")
        tokens = trainable = 0
        for key, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, str):
                emit("invalid_completion", f"`{key}` must be a string", key)
                continue
            n = self.count(value)
            tokens += n
            if key == "completion":
                trainable = n
                if not value.strip():
                    emit("invalid_completion", "`completion` is empty", key)
            self._special(value, key, emit)
        for k in obj:
            if k not in ("prompt", "completion"):
                emit("unrecognized_key", f"top-level key {_short(k)!r} is not part of the completion format", k)
        return COMPLETION, tokens, trainable, 2, HAS_USER
