"""One example, read back from its file by line, split into messages with their token counts (for viewers)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import orjson

from .findings import Finding
from .rules import ExampleChecker
from .tokens import counter


@dataclass(frozen=True)
class MessageView:
    path: str  # JSON path of the message, e.g. "messages[2]" or "preferred_output[0]"
    section: str  # "messages", "input", "preferred_output", "non_preferred_output", "prompt", "completion"
    role: str
    text: str  # the content as text; tool calls and image parts rendered readably
    tokens: int  # the cookbook's count for this message (3 + its strings)
    weight: int | None = None


@dataclass
class ExampleView:
    line: int
    raw: str  # the line as text (invalid UTF-8 replaced)
    error: str | None = None  # why the line could not be read as JSON
    messages: list[MessageView] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # other top-level keys (tools, metadata…)
    findings: list[Finding] = field(default_factory=list)

    def message_for(self, finding_path: str) -> int | None:
        """Index of the message a finding's JSON path points into (longest matching prefix), if any."""
        best, best_len = None, -1
        for i, m in enumerate(self.messages):
            if finding_path == m.path or finding_path.startswith(m.path + ".") or finding_path.startswith(m.path + "["):
                if len(m.path) > best_len:
                    best, best_len = i, len(m.path)
        return best


def read_line(path: str | os.PathLike, line: int, offset: int | None = None) -> bytes | None:
    """The bytes of physical ``line`` (1-based) without its line ending; ``offset`` (its byte offset) skips the scan."""
    with open(path, "rb") as f:
        if offset is not None:
            f.seek(offset)
            data = f.readline()
        else:
            for n, data in enumerate(f, 1):
                if n == line:
                    break
            else:
                return None
    return data.rstrip(b"\r\n")


def _text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for p in content:
            if isinstance(p, dict) and p.get("type") == "text":
                out.append(str(p.get("text", "")))
            elif isinstance(p, dict) and p.get("type") == "image_url":
                url = (p.get("image_url") or {}).get("url", "") if isinstance(p.get("image_url"), dict) else ""
                out.append(f"[image {url[:60]}{'…' if len(url) > 60 else ''}]")
            else:
                out.append(orjson.dumps(p).decode())
        return "\n".join(out)
    return orjson.dumps(content).decode()


def _message(checker: ExampleChecker, m, path: str, section: str) -> MessageView:
    if not isinstance(m, dict):
        return MessageView(path, section, "?", orjson.dumps(m).decode(), 0)
    tokens = checker._messages([m], path, lambda *a: None, True)[0]
    text = _text(m.get("content"))
    calls = m.get("tool_calls") or ([m["function_call"]] if m.get("function_call") else None)
    if isinstance(calls, list):
        for c in calls:
            fn = c.get("function", c) if isinstance(c, dict) else {}
            if isinstance(fn, dict):
                text += ("\n" if text else "") + f"→ {fn.get('name')}({fn.get('arguments', '')})"
    role = m.get("role")
    w = m.get("weight")
    return MessageView(path, section, role if isinstance(role, str) else repr(role), text, tokens,
                       w if isinstance(w, int) else None)


def _document_at(path, offset: int, limit: int = 16 << 20):
    """The JSON object that starts at ``offset`` and spans several lines (a pretty-printed JSON file), or None."""
    import json

    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read(limit)
        obj, _ = json.JSONDecoder().raw_decode(chunk.decode("utf-8", "replace").removeprefix("\ufeff"))
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _past_end(path, offset: int) -> bool:
    try:
        return os.path.getsize(path) <= offset
    except OSError:
        return True


def example_view(path: str | os.PathLike, line: int, encoding: str, offset: int | None = None,
                 findings: list[Finding] | None = None) -> ExampleView:
    try:
        raw = read_line(path, line, offset)
    except OSError as e:  # moved, deleted or made unreadable since it was analysed
        return ExampleView(line, "", error=f"{os.fspath(path)}: cannot read line {line} ({e.strerror or e}); the "
                           "file was moved, deleted or changed since it was analysed")
    if raw is None or (offset is not None and raw == b"" and _past_end(path, offset)):
        return ExampleView(line, "", error=f"{os.fspath(path)} has no line {line} (any more: was it truncated "
                           "since it was analysed?)")
    view = ExampleView(line, raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace"),
                       findings=[f for f in (findings or []) if f.line == line])
    try:
        obj = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as e:
        obj = _document_at(path, offset) if offset is not None else None
        if obj is None:
            view.error = f"not valid JSON: {e}"
            return view
        view.raw = orjson.dumps(obj).decode()
    if not isinstance(obj, dict):
        view.error = f"not a JSON object but {type(obj).__name__}"
        return view
    return fill_view(view, obj, encoding)


def fill_view(view: ExampleView, obj: dict, encoding: str) -> ExampleView:
    """Split an example object into messages with their token counts (also for examples that are not in a file
    yet: the Prepare workspace's preview)."""
    checker = ExampleChecker(counter(encoding), encoding)
    msgs = view.messages
    if isinstance(obj.get("messages"), list):
        for i, m in enumerate(obj["messages"]):
            msgs.append(_message(checker, m, f"messages[{i}]", "messages"))
    inp = obj.get("input")
    if isinstance(inp, dict) and isinstance(inp.get("messages"), list):
        for i, m in enumerate(inp["messages"]):
            msgs.append(_message(checker, m, f"input.messages[{i}]", "input"))
    for key in ("preferred_output", "non_preferred_output"):
        if isinstance(obj.get(key), list):
            for i, m in enumerate(obj[key]):
                msgs.append(_message(checker, m, f"{key}[{i}]", key))
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        if key in obj:
            v = obj[key]
            text = v if isinstance(v, str) else orjson.dumps(v).decode()
            msgs.append(MessageView(key, key, role, text, checker.count(text) if isinstance(v, str) else 0))
    view.extra = {k: v for k, v in obj.items()
                  if k not in ("messages", "input", "preferred_output", "non_preferred_output", "prompt", "completion")}
    return view
