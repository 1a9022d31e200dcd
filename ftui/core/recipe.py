"""The recipe of ``ftui prepare`` and the Prepare workspace: every option, its default, and its check. The one source
of the defaults (the CLI's flags and the form's fields read them here). Standard library only: the CLI builds its
parser from it without loading the data stack."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

from ..errors import FtuiError

SPLITS = ("train", "valid", "test")
MAX_LABELS = 50  # stratify by the answer when it takes at most this many distinct values
DEDUP_KEYS = ("prompt", "example", "none")


class PrepareError(FtuiError):
    """The recipe cannot run (a missing column, a bad split, nothing readable). Names the option or file."""

    title = "ftui prepare"


Progress = Callable[[str, int], None]  # (step name, rows read so far — 0 for the steps after reading)


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
    rft_key: str | None = None  # write reinforcement data: each prompt alone, its answer under this key

    def to_dict(self) -> dict:
        d = asdict(self)
        d["split"] = list(self.split)
        d["split_counts"] = list(self.split_counts) if self.split_counts else None
        return d

    def check(self) -> None:
        if self.rft_key is not None and (not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.rft_key)
                                         or self.rft_key in ("messages", "tools")):
            raise PrepareError(f"--rft {self.rft_key!r}: a key a grader can read as {{{{ item.KEY }}}} (letters, "
                               "digits, _; not messages or tools)")
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



def format_split(shares: tuple[float, ...]) -> str:
    """(0.8, 0.1, 0.1) → "80/10/10", the form ``parse_split`` reads."""
    return "/".join(f"{s * 100:g}" for s in shares)


def default(name: str) -> Any:
    """The default of one recipe option (``Recipe``'s field default)."""
    for f in fields(Recipe):
        if f.name == name:
            return f.default
    raise KeyError(name)
