"""What a plan holds and reports: every step's counts, the near pairs, the examples' lines and the splits."""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass, field

import numpy as np
import orjson

from ..files import PREPARE_REPORT
from ..labels import label_sort_key
from ..recipe import Recipe

FILE_NAMES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
REPORT_NAME = PREPARE_REPORT
MAX_LISTED = 20  # examples of each kind of drop kept in the report
MAX_PAIRS = 50  # near-duplicate pairs kept for the report and the app
# the legacy prompt/completion guide's separators and stop sequences, longest first
LEGACY_SEPARATORS = ("\n\n###\n\n", "\n###\n", "###\n", "\n\n###", "###", " ->", "->", "\n\n")
LEGACY_STOPS = (" END", "\nEND", "###", "\n")
USER_GUESSES = ("prompt", "question", "input", "instruction", "query", "text", "review", "user", "content")
ANSWER_GUESSES = ("completion", "answer", "output", "response", "label", "target", "star", "stars", "rating",
                  "score", "class", "category", "assistant")


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

    def extend(self, other: Lines) -> None:
        base = len(self._buf)
        self._buf += other._buf
        self._ends.extend(base + e for e in other._ends)

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
