"""The system prompt a training set's examples share: the chat offers it as the default for the model trained on it,
and an Ollama export writes it as the Modelfile's SYSTEM."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

SAMPLE_LINES = 2000  # examples read to find the shared system prompt
MIN_SHARE = 0.5  # the most common system prompt is the default when at least this share of examples has it


def shared_system_prompt(lines) -> tuple[str, float] | None:
    """The system prompt that at least ``MIN_SHARE`` of these JSONL lines' examples begin with, and its share."""
    seen, counts = 0, Counter[str]()
    for raw in lines:
        try:
            ex = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        msgs = ex.get("messages") if isinstance(ex, dict) else None
        if not isinstance(msgs, list) or not msgs:
            if isinstance(ex, dict) and isinstance(ex.get("input"), dict):  # DPO: {"input": {"messages": …}}
                msgs = ex["input"].get("messages")
            if not isinstance(msgs, list) or not msgs:
                continue
        seen += 1
        first = msgs[0]
        if isinstance(first, dict) and first.get("role") in ("system", "developer") \
                and isinstance(first.get("content"), str) and first["content"].strip():
            counts[first["content"]] += 1
        if seen >= SAMPLE_LINES:
            break
    if not seen or not counts:
        return None
    text, n = counts.most_common(1)[0]
    return (text, n / seen) if n / seen >= MIN_SHARE else None


def sample_lines(path: Path) -> list[bytes]:
    """The first ``SAMPLE_LINES`` non-blank lines of a JSONL file (what ``shared_system_prompt`` reads)."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                out.append(line)
            if len(out) >= SAMPLE_LINES:
                break
    return out
