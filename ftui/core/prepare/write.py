"""Writing a plan: the three splits and ``prepare.json``, atomically, never over an existing file unless told to."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

import orjson

from ..files import atomic_write
from ..recipe import SPLITS, PrepareError
from .result import FILE_NAMES, REPORT_NAME, Plan


def outputs(plan_: Plan, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    files = {name: out / FILE_NAMES[name] for name in SPLITS if plan_.splits[name].size}
    files["report"] = out / REPORT_NAME
    return files


def existing(plan_: Plan, out_dir: str | Path) -> list[Path]:
    return [p for p in outputs(plan_, out_dir).values() if p.exists()]


def write(plan_: Plan, out_dir: str | Path, force: bool = False) -> dict[str, Path]:
    """Write the splits and ``prepare.json`` atomically. Refuses (before writing anything) when one exists."""
    files = outputs(plan_, out_dir)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {out_dir}: exists and is not a directory")
    there = existing(plan_, out_dir)
    if there and not force:
        raise PrepareError(f"{', '.join(str(p) for p in there)} already exist(s); nothing was written "
                           "(--force overwrites)")
    digests = {}
    for name in SPLITS:
        if name not in files:
            continue
        data = plan_.lines.joined(plan_.splits[name].tolist())
        if plan_.recipe.rft_key:
            data = rft_lines(data, plan_.recipe.rft_key)
        atomic_write(files[name], data)
        digests[name] = sha256(data).hexdigest()
    doc = plan_.report({k: v.name for k, v in files.items() if k != "report"})  # names: the folder may move
    # each output's content hash: a file uploaded from here is known again by it (the app finds a job's own test
    # split through it, and reuses an identical upload)
    doc["sha256"] = digests
    atomic_write(files["report"], orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return files


def rft_lines(data: bytes, key: str) -> bytes:
    """Reinforcement fine-tuning's data from chat examples: each prompt without its answer, the answer under ``key``
    (what a grader reads as ``{{ item.KEY }}``)."""
    out = bytearray()
    for line in data.splitlines():
        example = orjson.loads(line)
        messages = example["messages"]
        answer = messages[-1].get("content") if messages and messages[-1].get("role") == "assistant" else None
        row = {"messages": messages[:-1] if answer is not None else messages}
        row.update({k: v for k, v in example.items() if k not in ("messages",)})
        row[key] = answer if answer is not None else ""
        out += orjson.dumps(row) + b"\n"
    return bytes(out)
