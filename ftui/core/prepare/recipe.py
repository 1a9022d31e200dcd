"""The recipe of ``ftui prepare`` and what a plan reports: options checked once, steps and near pairs recorded."""

from __future__ import annotations

import re
from array import array
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import orjson

from ...errors import FtuiError
from ..files import PREPARE_REPORT
from ..labels import label_sort_key

SPLITS = ("train", "valid", "test")
FILE_NAMES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
REPORT_NAME = PREPARE_REPORT
MAX_LABELS = 50  # stratify by the answer when it takes at most this many distinct values
MAX_LISTED = 20  # examples of each kind of drop kept in the report
MAX_PAIRS = 50  # near-duplicate pairs kept for the report and the app
DEDUP_KEYS = ("prompt", "example", "none")
# the legacy prompt/completion guide's separators and stop sequences, longest first
LEGACY_SEPARATORS = ("\n\n###\n\n", "\n###\n", "###\n", "\n\n###", "###", " ->", "->", "\n\n")
LEGACY_STOPS = (" END", "\nEND", "###", "\n")
USER_GUESSES = ("prompt", "question", "input", "instruction", "query", "text", "review", "user", "content")
ANSWER_GUESSES = ("completion", "answer", "output", "response", "label", "target", "star", "stars", "rating",
                  "score", "class", "category", "assistant")


class PrepareError(FtuiError):
    """The recipe cannot run (a missing column, a bad split, nothing readable). Names the option or file."""

    title = "ftui prepare"


Progress = Callable[[str, int], None]  # (step name, rows read so far — 0 for the steps after reading)


# -- the recipe ------------------------------------------------------------------------------------------------------
@dataclass
class Recipe:
    inputs: list[str]
    input_format: str | None = None  # csv | tsv | json | jsonl | parquet; default: by extension / content
    delimiter: str | None = None  # a CSV's separator ("," ";" "|" or a tab); default: sniffed from its first lines
    user: str | None = None  # a column name or a template over columns, e.g. "{title}\n{review}"
    assistant: str | None = None
    system: str | None = None
    keep_errors: bool = False
    dedup: str = "prompt"  # prompt | example | none
    normalize: bool = True  # exact de-duplication ignores case and runs of whitespace
    near: bool = True
    near_threshold: float = 0.7
    shingle: int = 3
    seed: int = 0
    shuffle: bool = True
    split: tuple = (0.8, 0.1, 0.1)  # fractions of what is left, in SPLITS order
    split_counts: tuple | None = None  # or exact counts (the rest is not used)
    stratify: str = "auto"  # auto (when the answers are a small label set) | on | off
    group_by: str | None = None  # a column / top-level key: all examples sharing it go to one split
    max_per_label: int | None = None
    max_examples: int | None = None
    leakage: bool = True
    sort_train_by_label: bool = False  # the seed's "sorted" training order (to compare with shuffled)
    model: str | None = None  # for validation and token counts (encoding); default: the catalog's default

    def to_dict(self) -> dict:
        d = asdict(self)
        d["split"] = list(self.split)
        d["split_counts"] = list(self.split_counts) if self.split_counts else None
        return d

    def check(self) -> None:
        if not self.inputs:
            raise PrepareError("no input files")
        if self.dedup not in DEDUP_KEYS:
            raise PrepareError(f"--dedup must be one of {', '.join(DEDUP_KEYS)}, not {self.dedup!r}")
        if self.stratify not in ("auto", "on", "off"):
            raise PrepareError(f"--stratify must be auto, on or off, not {self.stratify!r}")
        if not 0.0 < self.near_threshold <= 1.0:
            raise PrepareError(f"--near-threshold must be in (0, 1], not {self.near_threshold}")
        if not 1 <= self.shingle <= 16:
            raise PrepareError(f"--shingle must be from 1 to 16 words, not {self.shingle}")
        if self.split_counts is not None:
            if len(self.split_counts) not in (2, 3) or any(int(c) < 0 for c in self.split_counts) \
                    or not self.split_counts[0]:
                raise PrepareError("--split-counts takes 2 or 3 non-negative counts (train first, not 0)")
        else:
            if len(self.split) not in (1, 2, 3) or any(f < 0 for f in self.split) or not self.split[0]:
                raise PrepareError("--split takes 1 to 3 non-negative shares, train first and not 0")
            if abs(sum(self.split) - 1.0) > 1e-6:
                raise PrepareError(f"--split shares add up to {sum(self.split):g}, not 1 (or 100 %)")
        for name in ("max_per_label", "max_examples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise PrepareError(f"--{name.replace('_', '-')} must be at least 1")


def parse_split(text: str) -> tuple[float, ...]:
    """``80/10/10``, ``0.8,0.1,0.1``, ``90/10`` → fractions. Percentages are told apart by their sum."""
    parts = [p for p in re.split(r"[/,:\s]+", text.strip()) if p]
    try:
        nums = [float(p.rstrip("%")) for p in parts]
    except ValueError:
        raise PrepareError(f"--split {text!r}: expected numbers like 80/10/10 or 0.8,0.1,0.1") from None
    if not 1 <= len(nums) <= 3 or any(n < 0 for n in nums):
        raise PrepareError(f"--split {text!r}: 1 to 3 non-negative shares (train, validation, test)")
    total = sum(nums)
    if abs(total - 100) < 1e-6:
        return tuple(n / 100 for n in nums)
    if abs(total - 1) < 1e-6:
        return tuple(nums)
    raise PrepareError(f"--split {text!r}: the shares add up to {total:g}; they must add up to 100 (or 1)")


# -- what the plan reports -------------------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    before: int
    after: int
    note: str = ""
    detail: dict = field(default_factory=dict)

    @property
    def removed(self) -> int:
        return self.before - self.after

    def to_dict(self) -> dict:
        return {"name": self.name, "before": self.before, "after": self.after, "removed": self.removed,
                "note": self.note, **({"detail": self.detail} if self.detail else {})}


@dataclass
class NearPair:
    """A near duplicate that was removed and the example it matched (``where`` = "file:line")."""
    removed: str
    kept: str
    similarity: float
    removed_text: str
    kept_text: str
    step: str = "near_dedup"  # or "leakage"

    def to_dict(self) -> dict:
        return asdict(self)


class Lines:
    """Serialised examples in one buffer (an ``orjson.dumps`` result keeps a ~4 KB allocation however short it is:
    300,000 of them held 1.2 GB; here they take their length)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ends = array("q")

    def append(self, data: bytes) -> None:
        self._buf += data
        self._ends.append(len(self._buf))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> bytes:
        start = self._ends[i - 1] if i > 0 else 0
        return bytes(self._buf[start:self._ends[i]])

    def joined(self, ids) -> bytes:
        """The lines ``ids`` as JSON Lines (each followed by a newline)."""
        out = bytearray()
        buf, ends = self._buf, self._ends
        for i in ids:
            out += buf[(ends[i - 1] if i > 0 else 0):ends[i]]
            out += b"\n"
        return bytes(out)


@dataclass
class Plan:
    recipe: Recipe
    steps: list[Step]
    lines: Lines  # every mapped example's JSON line (indexed by example id)
    origin: list[str]  # "file:line" of each example
    labels: list[str]
    splits: dict[str, np.ndarray]  # split name -> example ids in output order
    classification: bool
    pairs: list[NearPair]
    notes: list[str]
    seconds: float = 0.0

    def label_counts(self) -> dict[str, dict[str, int]] | None:
        if not self.classification:
            return None
        out = {}
        for name, ids in self.splits.items():
            counts: dict[str, int] = {}
            for i in ids.tolist():
                counts[self.labels[i]] = counts.get(self.labels[i], 0) + 1
            out[name] = dict(sorted(counts.items(), key=lambda kv: label_sort_key(kv[0])))
        return out

    def examples(self, split: str, limit: int) -> list[tuple[str, dict]]:
        """The first ``limit`` examples of a split, parsed: (origin, example)."""
        ids = self.splits.get(split, np.zeros(0, np.int64))[:limit]
        return [(self.origin[i], orjson.loads(self.lines[i])) for i in ids.tolist()]

    def report(self, outputs: dict[str, str] | None = None) -> dict:
        return {
            "ftui_prepare": 1,
            "recipe": self.recipe.to_dict(),
            "seed": self.recipe.seed,
            "steps": [s.to_dict() for s in self.steps],
            "counts": {name: int(ids.size) for name, ids in self.splits.items()},
            "classification": self.classification,
            "labels": self.label_counts(),
            "near_duplicate_pairs": [p.to_dict() for p in self.pairs],
            "notes": self.notes,
            "outputs": outputs or {},
        }

