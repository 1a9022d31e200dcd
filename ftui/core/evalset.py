"""Held-out examples for ``ftui eval``: the prompt to send and the reference answer, by line.

Chat examples: the reference is the last assistant message, the prompt everything before it (system message and
tools included). Legacy prompt/completion: the prompt as a user message, the completion as the reference.
Preference (DPO): the input's messages, the preferred output as the reference. A line that cannot serve (not
JSON, no answer, an answer that is a tool call) is reported by line and skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from hashlib import blake2b

import orjson

from ..errors import FtuiError
from .sources import ReadIssue, SourceError, open_source


class EvalDataError(FtuiError):
    """The file cannot be read at all."""


@dataclass
class EvalExample:
    line: int
    messages: list[dict]  # the prompt
    reference: str
    tools: list | None = None
    id: str = ""  # a digest of the prompt and reference: the cache key, stable across files and runs
    item: dict = field(default_factory=dict)  # the line's other keys: what a grader's {{ item.* }} reads

    def __post_init__(self) -> None:
        if not self.id:
            blob = orjson.dumps([self.messages, self.tools, self.reference], option=orjson.OPT_SORT_KEYS)
            self.id = blake2b(blob, digest_size=12).hexdigest()

    @property
    def prompt_key(self) -> str:
        """What an answer depends on (with the sampling parameters): the prompt and tools, not the reference or the
        item — the answers cache is keyed by it, so a chat file and its RFT twin share their answers."""
        blob = orjson.dumps([self.messages, self.tools], option=orjson.OPT_SORT_KEYS)
        return "p" + blake2b(blob, digest_size=12).hexdigest()


@dataclass
class EvalSet:
    path: str
    examples: list[EvalExample]
    issues: list[ReadIssue] = field(default_factory=list)
    n_issues: int = 0

    @property
    def references(self) -> list[str]:
        return [e.reference for e in self.examples]


def _content(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def _from_row(values: dict, prompts: bool = False) -> tuple[list[dict], str, list | None] | str:
    """(prompt messages, reference, tools) or why the row cannot be used. ``prompts``: a chat line that ends before
    the answer (reinforcement fine-tuning's data) is a prompt with no reference (a grader scores its answers)."""
    if isinstance(values.get("messages"), list):
        msgs = values["messages"]
        last = max((i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "assistant"),
                   default=None)
        tools = values.get("tools") if isinstance(values.get("tools"), list) else None
        if prompts and (last is None or last < len(msgs) - 1):
            prompt = [{k: v for k, v in m.items() if k != "weight"} for m in msgs if isinstance(m, dict)]
            return (prompt, "", tools) if prompt else "no messages to use as the prompt"
        if last is None:
            return "no assistant message to use as the reference"
        ref = _content(msgs[last].get("content"))
        if ref is None:
            return "the last assistant message is a tool call or has no text: nothing to compare with"
        # a training example's `weight` says what was trained on; a chat request has no such key (it is refused)
        prompt = [{k: v for k, v in m.items() if k != "weight"} for m in msgs[:last] if isinstance(m, dict)]
        if not prompt:
            return "nothing before the reference answer to use as the prompt"
        return prompt, ref, tools
    if isinstance(values.get("input"), dict) and isinstance(values.get("preferred_output"), list):
        inp = values["input"].get("messages")
        out = values["preferred_output"]
        if not isinstance(inp, list) or not inp or not out or not isinstance(out[0], dict):
            return "a preference example needs input.messages and one preferred_output message"
        ref = _content(out[0].get("content"))
        if ref is None:
            return "the preferred output has no text"
        return [m for m in inp if isinstance(m, dict)], ref, None
    if isinstance(values.get("prompt"), str) and isinstance(values.get("completion"), str):
        return [{"role": "user", "content": values["prompt"]}], values["completion"].strip(), None
    return "not a chat, preference or prompt/completion example"


def load(path: str | os.PathLike, limit: int | None = None, prompts: bool = False) -> EvalSet:
    """The examples of ``path``; ``prompts`` (a grader scores the answers) also takes lines with no answer."""
    try:
        src = open_source(path)
    except SourceError as e:
        raise EvalDataError(str(e)) from None
    if src.format not in ("jsonl", "json"):
        raise EvalDataError(f"{path}: evaluation data is JSON Lines (chat, preference or prompt/completion); "
                            f"`ftui prepare` turns a {src.format.upper()} table into that")
    out = EvalSet(str(path), [])
    for row in src:
        got = _from_row(row.values, prompts)
        if isinstance(got, str):
            src.issue(row.line, got)
            continue
        messages, ref, tools = got
        if not ref.strip() and not prompts:
            src.issue(row.line, "the reference answer is empty")
            continue
        item = {k: v for k, v in row.values.items() if k not in ("messages", "tools")}
        if ref and "reference" not in item:
            item["reference"] = ref  # a chat line's answer, for graders that compare with it
        ex = EvalExample(row.line, messages, ref, tools, item=item)
        if not ref:  # lines differing only in what the grader reads are different examples
            ex.id = blake2b(orjson.dumps([messages, tools, item], option=orjson.OPT_SORT_KEYS),
                            digest_size=12).hexdigest()
        out.examples.append(ex)
        if limit is not None and len(out.examples) >= limit:
            break
    out.issues = src.issues
    out.n_issues = src.n_issues
    return out
