"""From raw labelled data to clean train / validation / test files (``ftui prepare`` and the Prepare workspace).

``plan(recipe)`` reads the inputs, maps each row to an example, and runs the steps — drop examples with errors,
exact and near de-duplication, shuffle, balance, cap, split (stratified by the answer or grouped by a key), leakage
removal — recording what each did, without writing anything. ``write(plan, out_dir)`` then writes
``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` and ``prepare.json`` atomically, never over an existing file unless
told to. The same recipe and seed give byte-identical files.

Memory: one serialised line per example plus a few numbers and its prompt text — never the parsed rows of all
inputs at once beyond the file being mapped.
"""

from __future__ import annotations

import itertools
import re
import time
from array import array
from dataclasses import asdict, dataclass, field
from hashlib import blake2b, sha256
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import orjson

from . import neardup
from .files import PREPARE_REPORT, atomic_write
from .findings import CODES, ERROR
from .rules import CHAT, COMPLETION, PREFERENCE, ExampleChecker
from .sources import DELIMITER_NAMES, ReadIssue, Row, Source, SourceError, open_source

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


class PrepareError(Exception):
    """The recipe cannot run (a missing column, a bad split, nothing readable). Names the option or file."""


class Cancelled(Exception):
    pass


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
            out[name] = dict(sorted(counts.items(), key=lambda kv: _label_order(kv[0])))
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


def _label_order(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


# -- mapping ---------------------------------------------------------------------------------------------------------
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class Template:
    """``{column}`` placeholders over a row; ``{{`` and ``}}`` are literal braces. A bare name is one column."""

    def __init__(self, text: str, option: str) -> None:
        self.text = text
        self.option = option
        if "{" not in text and "}" not in text:
            self.parts: list[tuple[bool, str]] = [(True, text)]
        else:
            self.parts = []
            pos = 0
            for m in _FIELD.finditer(text):
                if m.start() > pos:
                    self.parts.append((False, text[pos:m.start()]))
                tok = m.group(0)
                if tok in ("{{", "}}"):
                    self.parts.append((False, tok[0]))
                else:
                    name = m.group(1).strip()
                    if not name:
                        raise PrepareError(f"{option} {text!r}: an empty {{}} placeholder")
                    self.parts.append((True, name))
                pos = m.end()
            rest = text[pos:]
            if "{" in rest or "}" in rest:
                raise PrepareError(f"{option} {text!r}: an unmatched brace (write {{{{ or }}}} for a literal one)")
            if rest:
                self.parts.append((False, rest))

    @property
    def columns(self) -> list[str]:
        return [v for is_field, v in self.parts if is_field]

    def empty(self, values: dict) -> bool:
        """Every column the template names is empty in this row (its literal text alone is no content)."""
        cols = self.columns
        return all(_blank(values.get(c)) for c in cols) if cols else not self.text.strip()

    def render(self, values: dict) -> str:
        out = []
        for is_field, v in self.parts:
            if is_field:
                x = values.get(v)
                out.append("" if x is None else x if isinstance(x, str) else _scalar(x))
            else:
                out.append(v)
        return "".join(out)


def _blank(x) -> bool:
    return x is None or (isinstance(x, str) and not x.strip())


def _scalar(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))  # 5.0 stars from a JSON or Parquet number → "5"
    if isinstance(x, (int, float)):
        return str(x)
    return orjson.dumps(x, default=str).decode()


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "" if content is None else orjson.dumps(content, default=str).decode()


def _answer_of(message: dict) -> str:
    if message.get("tool_calls") is not None:
        return orjson.dumps(message.get("tool_calls"), default=str).decode()
    if message.get("function_call") is not None:
        return orjson.dumps(message.get("function_call"), default=str).decode()
    return _text(message.get("content"))


def _parts(example: dict) -> tuple[str, str, str]:
    """(prompt key text, near-duplicate text without system messages, answer) of a chat or preference example."""
    if isinstance(example.get("messages"), list):
        msgs = [m for m in example["messages"] if isinstance(m, dict)]
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        before = msgs if last is None else msgs[:last]
        answer = "" if last is None else _answer_of(msgs[last])
    else:
        inp = example.get("input")
        before = [m for m in inp.get("messages", []) if isinstance(m, dict)] if isinstance(inp, dict) else []
        pref = example.get("preferred_output")
        answer = _answer_of(pref[0]) if isinstance(pref, list) and pref and isinstance(pref[0], dict) else ""
    prompt = "\n".join(f"{m.get('role')}: {_text(m.get('content'))}" for m in before)
    near = "\n".join(_text(m.get("content")) for m in before if m.get("role") != "system")
    return prompt, near, answer


@dataclass
class _Mapped:
    example: dict
    line: int
    group: str | None


def _guess(columns: list[str], names) -> str | None:
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


class _Mapper:
    """Turns one source's rows into examples, counting what it did."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.user = Template(recipe.user, "--user") if recipe.user else None
        self.assistant = Template(recipe.assistant, "--assistant") if recipe.assistant else None
        if (self.user is None) != (self.assistant is None):
            raise PrepareError("give both --user and --assistant (a column or a template each), or neither")
        self.notes: list[str] = []
        self.dropped: list[ReadIssue] = []
        self.n_dropped = 0
        self.kinds: dict[str, int] = {}

    def _drop(self, src: Source, line: int, message: str) -> None:
        self.n_dropped += 1
        if len(self.dropped) < MAX_LISTED:
            self.dropped.append(ReadIssue(src.path, line, message))

    def map_source(self, src: Source) -> Iterator[_Mapped]:
        """The source's examples, one at a time (the rows are never all held)."""
        it = iter(src)
        head = next(it, None)
        if head is None:
            return iter(())
        rows = itertools.chain((head,), it)
        if self.user is not None:
            return self._tabular(src, rows, head, self.user, self.assistant)
        sample = head.values
        if "messages" in sample or "input" in sample or "preferred_output" in sample:
            return self._passthrough(src, rows)
        if "prompt" in sample and "completion" in sample:
            return self._legacy(src, rows)
        columns = src.columns or list(sample)
        u, a = _guess(columns, USER_GUESSES), _guess(columns, ANSWER_GUESSES)
        if u is None or a is None or u == a:
            raise PrepareError(f"{src.path}: choose the columns: --user COLUMN --assistant COLUMN (or templates "
                               f"like '{{title}}\\n{{body}}'); the columns are {', '.join(columns) or 'none'}")
        self.notes.append(f"{src.path}: user ← column {u!r}, assistant ← column {a!r} (guessed from the names; "
                          "--user/--assistant choose others)")
        return self._tabular(src, rows, head, Template(u, "--user"), Template(a, "--assistant"))

    def _group(self, values: dict) -> str | None:
        g = self.recipe.group_by
        if g is None:
            return None
        v = values.get(g)
        return None if v is None else v if isinstance(v, str) else _scalar(v)

    def _tabular(self, src: Source, rows, head: Row, user: Template, assistant: Template) -> Iterator[_Mapped]:
        columns = set(src.columns) | set(head.values)
        if columns:
            for t in (user, assistant):
                missing = [c for c in t.columns if c not in columns]
                if missing:
                    hint = ""
                    if src.format == "csv" and len(src.columns) == 1:  # one column: the separator may be another
                        other = [d for d in DELIMITER_NAMES if d != (src.delimiter or ",") and d in src.columns[0]]
                        if other:
                            hint = (f" (one column whose name holds {other[0]!r}: the file may be separated by it; "
                                    f"--delimiter {'tab' if other[0] == chr(9) else other[0]!r} reads it so)")
                    raise PrepareError(f"{src.path}: {t.option} names column(s) {', '.join(map(repr, missing))} "
                                       f"that the file does not have; its columns are {', '.join(sorted(columns))}"
                                       + hint)
        g = self.recipe.group_by
        if g is not None and columns and g not in columns:
            raise PrepareError(f"{src.path}: --group-by {g!r} is not a column; the columns are "
                               f"{', '.join(sorted(columns))}")
        return self._tabular_rows(src, rows, user, assistant)

    def _tabular_rows(self, src: Source, rows, user: Template, assistant: Template) -> Iterator[_Mapped]:
        system = self.recipe.system
        kind = "mapped from columns"
        for row in rows:
            u = user.render(row.values)
            a = assistant.render(row.values)
            if not u.strip() or user.empty(row.values):
                self._drop(src, row.line, f"the user text ({user.text}) is empty")
                continue
            if not a.strip() or assistant.empty(row.values):
                self._drop(src, row.line, f"the assistant text ({assistant.text}) is empty")
                continue
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": u}, {"role": "assistant", "content": a}]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield _Mapped({"messages": msgs}, row.line, self._group(row.values))

    def _passthrough(self, src: Source, rows) -> Iterator[_Mapped]:
        system = self.recipe.system
        added = 0
        kind = "chat or preference, unchanged"
        for row in rows:
            ex = row.values
            if system and isinstance(ex.get("messages"), list) and not any(
                    isinstance(m, dict) and m.get("role") == "system" for m in ex["messages"]):
                ex = {**ex, "messages": [{"role": "system", "content": system}, *ex["messages"]]}
                added += 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield _Mapped(ex, row.line, self._group(row.values))
        if added:
            self.notes.append(f"{src.path}: the system prompt was added to {added:,} example(s) that had none")

    def _legacy(self, src: Source, rows) -> Iterator[_Mapped]:
        # a first pass (a second reader over the same file) finds the separator and stop sequence all rows share
        seps, stops, lead, any_comp = set(LEGACY_SEPARATORS), set(LEGACY_STOPS), True, False
        for r in open_source(src.path, src.format, src.delimiter or None):
            p, c = r.values.get("prompt"), r.values.get("completion")
            if isinstance(p, str):
                seps = {x for x in seps if p.endswith(x)}
            if isinstance(c, str):
                any_comp = True
                stops = {x for x in stops if c.endswith(x)}
                lead = lead and c.startswith((" ", "\n"))
        sep = next((x for x in LEGACY_SEPARATORS if x in seps), "")
        stop = next((x for x in LEGACY_STOPS if x in stops), "")
        lead = lead and any_comp
        system = self.recipe.system
        kind = "legacy prompt/completion → chat"
        done = [f"separator {sep!r} removed from the prompts" if sep else "",
                f"stop sequence {stop!r} removed from the completions" if stop else "",
                "the leading space of the completions removed" if lead else ""]
        done = [d for d in done if d]
        self.notes.append(f"{src.path}: legacy prompt/completion converted to chat"
                          + (f" ({'; '.join(done)})" if done else ""))
        for row in rows:
            p, c = row.values.get("prompt"), row.values.get("completion")
            if not isinstance(p, str) or not isinstance(c, str):
                self._drop(src, row.line, "`prompt` and `completion` must be strings")
                continue
            if sep:
                p = p[: -len(sep)]
            if stop:
                c = c[: -len(stop)]
            if lead:
                c = c[1:]
            if not p.strip() or not c.strip():
                self._drop(src, row.line, "empty prompt or completion")
                continue
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": p}, {"role": "assistant", "content": c}]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield _Mapped({"messages": msgs}, row.line, self._group(row.values))


# -- the steps -------------------------------------------------------------------------------------------------------
def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _digest(text: str) -> bytes:
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _near_text(line: bytes) -> str:
    return _parts(orjson.loads(line))[1][:2000]


def _allocate(group_sizes: list[int], targets: list[int]) -> list[list[int]]:
    """How many of each group go to each split: proportional to the targets, exact column sums (largest
    remainder), never more than a group holds."""
    total = sum(group_sizes)
    if not total:
        return [[0] * len(targets) for _ in group_sizes]
    alloc = [[(g * t) // total for t in targets] for g in group_sizes]
    rema = [[(g * t) % total for t in targets] for g in group_sizes]
    deficit = [t - sum(alloc[i][s] for i in range(len(group_sizes))) for s, t in enumerate(targets)]
    spare = [g - sum(row) for g, row in zip(group_sizes, alloc)]
    cells = sorted(((rema[i][s], -i, -s) for i in range(len(group_sizes)) for s in range(len(targets))),
                   reverse=True)
    for _, ni, ns in cells:
        i, s = -ni, -ns
        if deficit[s] > 0 and spare[i] > 0:
            alloc[i][s] += 1
            deficit[s] -= 1
            spare[i] -= 1
    # what the remainders could not place (a group ran out of room) goes wherever there is room
    for s in range(len(targets)):
        for i in range(len(group_sizes)):
            while deficit[s] > 0 and spare[i] > 0:
                alloc[i][s] += 1
                deficit[s] -= 1
                spare[i] -= 1
    return alloc


def plan(recipe: Recipe, progress: Progress | None = None, cancel=None) -> Plan:
    """Run every step of the recipe in memory; nothing is written."""
    from .catalog import resolve
    from .tokens import counter

    t0 = time.perf_counter()
    recipe.check()

    def tick(step: str, done: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if progress is not None:
            progress(step, done)

    steps: list[Step] = []
    notes: list[str] = []
    mapper = _Mapper(recipe)
    lines = Lines()
    origin: list[str] = []
    keys: list[bytes] = []  # digest of each example's prompt (case and whitespace folded unless told not to)
    near_texts: list[str] = []
    labels: list[str] = []
    groups: list[str | None] = []
    n_rows = n_issues = 0
    read_issues: list[ReadIssue] = []
    rows_before_map = 0
    errors: list[str] = []
    n_error_examples = 0
    error_codes: dict[str, int] = {}

    norm = _normalise if recipe.normalize else (lambda text: text)
    want_sig = recipe.near or recipe.leakage
    model = resolve(recipe.model)
    checker = ExampleChecker(counter(model.encoding), model.encoding)
    dumps = orjson.dumps

    for fi, path in enumerate(recipe.inputs):
        tick("read", n_rows)
        try:
            src = open_source(path, recipe.input_format, recipe.delimiter)
        except SourceError as exc:
            raise PrepareError(str(exc)) from None
        for m in mapper.map_source(src):
            if src.rows_seen % 8192 == 0:
                tick("read", n_rows + src.rows_seen)
            ex = m.example
            found: list[tuple[str, str]] = []

            def emit(code: str, message: str, jpath: str = "", _f=found) -> None:
                if CODES.get(code, (ERROR,))[0] == ERROR:
                    _f.append((code, message))

            kind = checker.check(ex, emit)[0]
            where = f"{path}:{m.line}"
            if found or kind not in (CHAT, PREFERENCE, COMPLETION):
                if not found:
                    found.append(("no_answer", "no assistant answer to train on"))
                n_error_examples += 1
                for code, _ in found:
                    error_codes[code] = error_codes.get(code, 0) + 1
                if len(errors) < MAX_LISTED:
                    errors.append(f"{where}: {found[0][0]}: {found[0][1]}")
                if not recipe.keep_errors:
                    continue
            prompt, near, answer = _parts(ex)
            lines.append(dumps(ex))
            origin.append(where)
            keys.append(_digest(norm(prompt)))
            if want_sig:
                near_texts.append(near)
            labels.append(answer.strip())
            groups.append(m.group)
        n_rows += src.rows_seen
        n_issues += src.n_issues
        rows_before_map += src.rows_seen
        if len(read_issues) < MAX_LISTED:
            read_issues.extend(src.issues[: MAX_LISTED - len(read_issues)])
        if src.note:
            notes.append(f"{path}: {src.note}")
    notes.extend(mapper.notes)
    steps.append(Step("read", n_rows + n_issues, n_rows,
                      f"{len(recipe.inputs)} file(s); rows that could not be read are skipped" if n_issues else
                      f"{len(recipe.inputs)} file(s)",
                      {"issues": [str(i) for i in read_issues]} if read_issues else {}))
    n_mapped = rows_before_map - mapper.n_dropped
    steps.append(Step("map", rows_before_map, n_mapped, ", ".join(f"{v:,} {k}" for k, v in mapper.kinds.items()),
                      {"dropped": [str(i) for i in mapper.dropped]} if mapper.dropped else {}))
    steps.append(Step("errors", n_mapped, len(lines),
                      ("kept (--keep-errors): " if recipe.keep_errors else "dropped: ")
                      + (", ".join(f"{v:,} {k}" for k, v in sorted(error_codes.items())) or "none"),
                      {"examples": errors} if errors else {}))
    if not lines:
        raise PrepareError("no examples left to prepare: "
                           + ("every row had errors (see the read, map and errors steps)"
                              if n_rows else "no rows could be read from the input(s)")
                           + (f"; first problem: {read_issues[0]}" if read_issues and not n_rows else ""))

    n = len(lines)
    alive = np.ones(n, dtype=bool)
    pairs: list[NearPair] = []

    # exact duplicates
    tick("exact_dedup", 0)
    key_kind = recipe.dedup
    if key_kind != "none":
        if key_kind == "prompt":
            dkeys = keys
        else:
            dkeys = [_digest(norm(lines[i].decode("utf-8")) if recipe.normalize else lines[i])
                     for i in range(len(lines))]
        first: dict = {}
        conflicts = 0
        removed_examples = []
        for i, k in enumerate(dkeys):
            j = first.get(k)
            if j is None:
                first[k] = i
                continue
            alive[i] = False
            if key_kind == "prompt" and labels[i] != labels[j]:
                conflicts += 1
            if len(removed_examples) < MAX_LISTED:
                removed_examples.append(f"{origin[i]} = {origin[j]}")
        del first, dkeys
        n_after = int(alive.sum())
        note = f"key: {'the prompt' if key_kind == 'prompt' else 'the whole example'}" + (
            ", case and whitespace ignored" if recipe.normalize else "")
        if conflicts:
            note += f"; {conflicts:,} removed copies had a different answer than the kept one"
        steps.append(Step("exact_dedup", n, n_after, note,
                          {"examples": removed_examples, "conflicting_answers": conflicts} if removed_examples
                          else {}))
    else:
        steps.append(Step("exact_dedup", n, n, "off (--dedup none)"))

    # near duplicates
    sig = None
    if want_sig:
        tick("near_dedup", 0)
        sig = neardup.signatures(near_texts, recipe.shingle)
        del near_texts
    if recipe.near:
        live = np.flatnonzero(alive)
        res = neardup.dedup(sig[live], recipe.near_threshold)
        before = int(alive.sum())
        for j, i, s in res.matches:
            gj, gi = int(live[j]), int(live[i])
            alive[gj] = False
            if len(pairs) < MAX_PAIRS:
                pairs.append(NearPair(origin[gj], origin[gi], round(s, 3), _near_text(lines[gj]),
                                      _near_text(lines[gi])))
        steps.append(Step("near_dedup", before, int(alive.sum()),
                          f"MinHash LSH: Jaccard ≥ {recipe.near_threshold:g} over {recipe.shingle}-word shingles"))
    else:
        steps.append(Step("near_dedup", int(alive.sum()), int(alive.sum()), "off"))

    # shuffle
    ids = np.flatnonzero(alive)
    if recipe.shuffle:
        ids = ids[np.random.default_rng(recipe.seed).permutation(ids.size)]
    steps.append(Step("shuffle", ids.size, ids.size, f"seed {recipe.seed}" if recipe.shuffle else "off (input order)"))

    distinct = len({labels[i] for i in ids.tolist()})
    classification = 1 < distinct <= MAX_LABELS
    if recipe.stratify == "on" and not classification:
        raise PrepareError(f"--stratify on: the answers take {distinct:,} distinct values; stratifying needs "
                           f"2 to {MAX_LABELS}")

    # balance
    if recipe.max_per_label is not None:
        seen: dict[str, int] = {}
        keep = []
        for i in ids.tolist():
            c = seen.get(labels[i], 0)
            if c < recipe.max_per_label:
                seen[labels[i]] = c + 1
                keep.append(i)
        before = ids.size
        ids = np.asarray(keep, dtype=np.int64)
        steps.append(Step("balance", before, ids.size, f"at most {recipe.max_per_label:,} examples per answer"))
    # cap
    if recipe.max_examples is not None and ids.size > recipe.max_examples:
        before = ids.size
        ids = ids[: recipe.max_examples]
        steps.append(Step("cap", before, ids.size, f"at most {recipe.max_examples:,} examples"))

    # split
    tick("split", 0)
    total = int(ids.size)
    names = SPLITS
    if recipe.split_counts is not None:
        targets = [int(c) for c in recipe.split_counts] + [0] * (3 - len(recipe.split_counts))
        if sum(targets) > total:
            raise PrepareError(f"--split-counts asks for {sum(targets):,} examples; {total:,} are left after the "
                               "steps before the split")
    else:
        shares = list(recipe.split) + [0.0] * (3 - len(recipe.split))
        raw = [total * s for s in shares]
        targets = [int(x) for x in raw]
        rest = total - sum(targets)
        for s in sorted(range(3), key=lambda s: (-(raw[s] - targets[s]), s))[:rest]:
            targets[s] += 1
    use_strata = classification and recipe.stratify != "off" and recipe.group_by is None
    parts: dict[str, list[int]] = {s: [] for s in names}
    if recipe.group_by is not None:
        order: dict[str, list[int]] = {}
        for i in ids.tolist():
            g = groups[i]
            order.setdefault(f"\x00row{i}" if g is None else g, []).append(i)
        got = [0, 0, 0]
        for members in order.values():
            # the split furthest below its target (by share) takes the whole group
            s = max(range(3), key=lambda s: ((targets[s] - got[s]) / targets[s] if targets[s] else -1.0, -s))
            if targets[s] - got[s] <= 0:
                continue  # every split is full: the group is left out (only with --split-counts)
            parts[names[s]].extend(members)
            got[s] += len(members)
        note = f"grouped by {recipe.group_by!r}: {len(order):,} groups, none split across files"
    elif use_strata:
        by_label: dict[str, list[int]] = {}
        for i in ids.tolist():
            by_label.setdefault(labels[i], []).append(i)
        labs = sorted(by_label, key=_label_order)
        alloc = _allocate([len(by_label[lab]) for lab in labs], targets)
        pos_of = {int(i): p for p, i in enumerate(ids.tolist())}
        for lab, row in zip(labs, alloc):
            members = by_label[lab]
            start = 0
            for s, k in enumerate(row):
                parts[names[s]].extend(members[start:start + k])
                start += k
        for s in names:  # keep the shuffled order inside each split
            parts[s].sort(key=pos_of.__getitem__)
        note = f"stratified by the answer ({distinct} labels)"
    else:
        start = 0
        flat = ids.tolist()
        for s, k in enumerate(targets):
            parts[names[s]] = flat[start:start + k]
            start += k
        note = "by position" + ("" if classification or distinct <= MAX_LABELS else
                                f" (the answers take {distinct:,} values: not a label set to stratify by)")
        if classification and recipe.stratify == "off":
            note = "by position (--stratify off)"
    shares_text = "/".join(str(t) for t in targets)
    splits = {s: np.asarray(parts[s], dtype=np.int64) for s in names}
    steps.append(Step("split", total, sum(v.size for v in splits.values()),
                      f"{note}; train/valid/test = {shares_text}"))

    # leakage: validation or test examples that also occur in train
    if recipe.leakage and splits["train"].size and (splits["valid"].size or splits["test"].size):
        tick("leakage", 0)
        train_keys = {keys[i] for i in splits["train"].tolist()}
        before = splits["valid"].size + splits["test"].size
        exact_leaks = near_leaks = 0
        others = np.concatenate([splits["valid"], splits["test"]])
        near_found = neardup.cross_matches(sig, splits["train"], others, recipe.near_threshold)
        for name in ("valid", "test"):
            keep = []
            for i in splits[name].tolist():
                if keys[i] in train_keys:
                    exact_leaks += 1
                    continue
                hit = near_found.get(i)
                if hit is not None:
                    near_leaks += 1
                    if len(pairs) < MAX_PAIRS * 2:
                        pairs.append(NearPair(origin[i], origin[hit[0]], round(hit[1], 3), _near_text(lines[i]),
                                              _near_text(lines[hit[0]]), "leakage"))
                    continue
                keep.append(i)
            splits[name] = np.asarray(keep, dtype=np.int64)
        after = splits["valid"].size + splits["test"].size
        steps.append(Step("leakage", before, after,
                          f"validation and test examples also in train removed: {exact_leaks:,} exact, "
                          f"{near_leaks:,} near", {"exact": exact_leaks, "near": near_leaks}))

    if recipe.sort_train_by_label:
        tr = splits["train"].tolist()
        tr.sort(key=lambda i: _label_order(labels[i]))
        splits["train"] = np.asarray(tr, dtype=np.int64)
        notes.append("train is sorted by the answer (--sort-train-by-label), not shuffled")

    for name in ("valid", "test"):
        if not splits[name].size:
            notes.append(f"{FILE_NAMES[name]} gets no examples and is not written")
    if 0 < splits["train"].size < 10:
        notes.append(f"train.jsonl gets {splits['train'].size} example(s); fine-tuning needs at least 10")
    return Plan(recipe, steps, lines, origin, labels, splits, classification, pairs, notes,
                time.perf_counter() - t0)


# -- writing ---------------------------------------------------------------------------------------------------------
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
        atomic_write(files[name], data)
        digests[name] = sha256(data).hexdigest()
    doc = plan_.report({k: v.name for k, v in files.items() if k != "report"})  # names: the folder may move
    # each output's content hash: a file uploaded from here is known again by it (the app finds a job's own test
    # split through it, and reuses an identical upload)
    doc["sha256"] = digests
    atomic_write(files["report"], orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return files
