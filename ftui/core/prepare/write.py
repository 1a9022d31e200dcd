"""Writing a plan: the three splits and ``prepare.json``, atomically, never over an existing file unless told to."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

import orjson

from ..files import atomic_write, sha256_of
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
    doc["inputs"], doc["recipe_id"] = lineage(plan_)
    atomic_write(files["report"], orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return files


def lineage(plan_: Plan) -> tuple[list[dict], str]:
    """What the outputs were made from: each input file with its size and content hash, and the recipe's id — a
    hash of the recipe's options (input paths left out) and the inputs' contents: the same recipe on the same data
    has the same id wherever the files lie, and any change of option or data gives another."""
    inputs = []
    for path in plan_.recipe.inputs:
        try:
            inputs.append({"path": str(path), "bytes": Path(path).stat().st_size, "sha256": sha256_of(path)})
        except OSError:  # read a moment ago: gone now; the id says so by leaving its hash out
            inputs.append({"path": str(path), "bytes": None, "sha256": None})
    options = {k: v for k, v in plan_.recipe.to_dict().items() if k != "inputs"}
    key = orjson.dumps({"options": options, "inputs": [i["sha256"] for i in inputs]}, option=orjson.OPT_SORT_KEYS)
    return inputs, "recipe-" + sha256(key).hexdigest()[:12]


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
