"""The steps of a plan, one function each, in the order ``plan()`` runs them. Each reads and narrows one ``Pool``
and records what it did as a ``Step``: read and map, drop examples with errors, exact and near de-duplication,
shuffle, balance, cap, split (stratified by the answer or grouped by a key), leakage removal."""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Callable

import numpy as np
import orjson

from .. import neardup
from ..findings import CODES, ERROR
from ..labels import label_sort_key
from ..recipe import MAX_LABELS, SPLITS, PrepareError, Recipe
from ..rules import CHAT, COMPLETION, PREFERENCE, ExampleChecker
from ..sources import ReadIssue, Source, SourceError, open_source
from .mapping import _Mapper, _parts
from .result import FILE_NAMES, MAX_LISTED, MAX_PAIRS, Lines, NearPair, Step

Tick = Callable[[str, int], None]  # (step name, rows read so far); raises Cancelled when the person stopped


@dataclass
class Pool:
    """What the steps share: the examples (by id) and, per example, what the later steps look at."""

    recipe: Recipe
    lines: Lines = field(default_factory=Lines)  # each example's JSON line
    origin: list[str] = field(default_factory=list)  # "file:line"
    keys: list[bytes] = field(default_factory=list)  # digest of the prompt (case and whitespace folded unless told)
    labels: list[str] = field(default_factory=list)  # the answer, stripped
    groups: list[str | None] = field(default_factory=list)  # the --group-by value
    near_texts: list[str] = field(default_factory=list)  # the prompt without system messages (for MinHash)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pairs: list[NearPair] = field(default_factory=list)
    alive: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=bool))  # not removed as a duplicate
    sig: np.ndarray | None = None  # MinHash signatures (near de-duplication and leakage)
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # the survivors, in output order
    distinct: int = 0  # distinct answers among ids
    classification: bool = False  # the answers are a small label set
    splits: dict[str, np.ndarray] = field(default_factory=dict)  # split name -> example ids


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _digest(data: str | bytes) -> bytes:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return blake2b(raw, digest_size=16).digest()


def _near_text(line: bytes) -> str:
    return _parts(orjson.loads(line))[1][:2000]


@dataclass
class _Part:
    """What reading and mapping one source (or a part of one) gives, before it joins the pool."""

    lines: Lines = field(default_factory=Lines)
    origin: list[str] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    near_texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first MAX_LISTED, "file:line: code: message"
    error_codes: dict[str, int] = field(default_factory=dict)
    rows_seen: int = 0
    n_issues: int = 0
    issues: list[ReadIssue] = field(default_factory=list)
    n_dropped: int = 0  # the mapper's drops, counted and listed, and what kinds of rows it mapped
    dropped: list[ReadIssue] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    ended_clean: bool = True


def _map_part(recipe: Recipe, src: Source, mapped, checker: ExampleChecker, tick: Tick, before: int) -> _Part:
    """Check and key every mapped example of ``src``; ``before``: the rows read before it (for progress)."""
    part = _Part()
    want_sig = recipe.near or recipe.leakage
    norm = _normalise if recipe.normalize else str  # chosen once: it runs for every example
    dumps = orjson.dumps
    path = src.path
    errors, error_codes = part.errors, part.error_codes
    for m in mapped:
        if src.rows_seen % 8192 == 0:
            tick("read", before + src.rows_seen)
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
            for code, _ in found:
                error_codes[code] = error_codes.get(code, 0) + 1
            if len(errors) < MAX_LISTED:
                errors.append(f"{where}: {found[0][0]}: {found[0][1]}")
            if not recipe.keep_errors:
                continue
        prompt, near, answer = m.parts or _parts(ex)
        part.lines.append(dumps(ex))
        part.origin.append(where)
        part.keys.append(_digest(norm(prompt)))
        if want_sig:
            part.near_texts.append(near)
        part.labels.append(answer.strip())
        part.groups.append(m.group)
    part.rows_seen, part.n_issues, part.issues = src.rows_seen, src.n_issues, src.issues
    return part


def read_and_map(recipe: Recipe, tick: Tick) -> Pool:
    """Read every input, map its rows to examples and check them; examples with errors are dropped (or kept with
    --keep-errors). Records the read, map and errors steps. A large CSV or TSV mapped from its columns is read in two
    halves at once, the second in a forked process (see ``halves``), with the same result."""
    from ..catalog import resolve
    from ..tokens import counter
    from .halves import map_in_halves

    pool = Pool(recipe)
    mapper = _Mapper(recipe)
    n_rows = n_issues = 0
    read_issues: list[ReadIssue] = []
    errors: list[str] = []
    error_codes: dict[str, int] = {}
    model = resolve(recipe.model)
    checker = ExampleChecker(counter(model.encoding), model.encoding)

    for path in recipe.inputs:
        tick("read", n_rows)
        try:
            src = open_source(path, recipe.input_format, recipe.delimiter)
        except SourceError as exc:
            raise PrepareError(str(exc)) from None
        parts = map_in_halves(recipe, src, mapper, checker, tick, n_rows)
        if parts is None:
            parts = [_map_part(recipe, src, mapper.map_source(src), checker, tick, n_rows)]
        for part in parts:
            for name in ("lines", "origin", "keys", "near_texts", "labels", "groups"):
                getattr(pool, name).extend(getattr(part, name))
            errors.extend(part.errors[: MAX_LISTED - len(errors)])
            for code, n in part.error_codes.items():
                error_codes[code] = error_codes.get(code, 0) + n
            n_rows += part.rows_seen
            n_issues += part.n_issues
            if len(read_issues) < MAX_LISTED:
                read_issues.extend(part.issues[: MAX_LISTED - len(read_issues)])
        if src.note:
            pool.notes.append(f"{path}: {src.note}")
    pool.notes.extend(mapper.notes)
    n_files = f"{len(recipe.inputs)} file(s)"
    pool.steps.append(Step("read", n_rows + n_issues, n_rows,
                           f"{n_files}; rows that could not be read are skipped" if n_issues else n_files,
                           {"issues": [str(i) for i in read_issues]} if read_issues else {}))
    n_mapped = n_rows - mapper.n_dropped
    pool.steps.append(Step("map", n_rows, n_mapped, ", ".join(f"{v:,} {k}" for k, v in mapper.kinds.items()),
                           {"dropped": [str(i) for i in mapper.dropped]} if mapper.dropped else {}))
    pool.steps.append(Step("errors", n_mapped, len(pool.lines),
                           ("kept (--keep-errors): " if recipe.keep_errors else "dropped: ")
                           + (", ".join(f"{v:,} {k}" for k, v in sorted(error_codes.items())) or "none"),
                           {"examples": errors} if errors else {}))
    if not pool.lines:
        raise PrepareError("no examples left to prepare: "
                           + ("every row had errors (see the read, map and errors steps)"
                              if n_rows else "no rows could be read from the input(s)")
                           + (f"; first problem: {read_issues[0]}" if read_issues and not n_rows else ""))
    pool.alive = np.ones(len(pool.lines), dtype=bool)
    return pool


def exact_dedup(pool: Pool, tick: Tick) -> None:
    """Remove later copies of a prompt (or of a whole example); count copies whose answer differed."""
    tick("exact_dedup", 0)
    recipe, n = pool.recipe, len(pool.lines)
    key_kind = recipe.dedup
    if key_kind == "none":
        pool.steps.append(Step("exact_dedup", n, n, "off (--dedup none)"))
        return
    if key_kind == "prompt":
        dkeys = pool.keys
    else:
        dkeys = [_digest(_normalise(pool.lines[i].decode("utf-8")) if recipe.normalize else pool.lines[i])
                 for i in range(n)]
    first: dict[bytes, int] = {}
    conflicts = 0
    removed_examples: list[str] = []
    for i, k in enumerate(dkeys):
        j = first.get(k)
        if j is None:
            first[k] = i
            continue
        pool.alive[i] = False
        if key_kind == "prompt" and pool.labels[i] != pool.labels[j]:
            conflicts += 1
        if len(removed_examples) < MAX_LISTED:
            removed_examples.append(f"{pool.origin[i]} = {pool.origin[j]}")
    note = f"key: {'the prompt' if key_kind == 'prompt' else 'the whole example'}" + (
        ", case and whitespace ignored" if recipe.normalize else "")
    if conflicts:
        note += f"; {conflicts:,} removed copies had a different answer than the kept one"
    pool.steps.append(Step("exact_dedup", n, int(pool.alive.sum()), note,
                           {"examples": removed_examples, "conflicting_answers": conflicts} if removed_examples
                           else {}))


def near_dedup(pool: Pool, tick: Tick) -> None:
    """MinHash signatures (for this step and for leakage); remove near copies among the survivors."""
    recipe = pool.recipe
    if recipe.near or recipe.leakage:
        tick("near_dedup", 0)
        pool.sig = neardup.signatures(pool.near_texts, recipe.shingle)
        pool.near_texts = []
    before = int(pool.alive.sum())
    if not recipe.near or pool.sig is None:
        pool.steps.append(Step("near_dedup", before, before, "off"))
        return
    live = np.flatnonzero(pool.alive)
    res = neardup.dedup(pool.sig[live], recipe.near_threshold)
    for j, i, s in res.matches:
        gj, gi = int(live[j]), int(live[i])
        pool.alive[gj] = False
        if len(pool.pairs) < MAX_PAIRS:
            pool.pairs.append(NearPair(pool.origin[gj], pool.origin[gi], round(s, 3), _near_text(pool.lines[gj]),
                                       _near_text(pool.lines[gi])))
    pool.steps.append(Step("near_dedup", before, int(pool.alive.sum()),
                           f"MinHash LSH: Jaccard ≥ {recipe.near_threshold:g} over {recipe.shingle}-word shingles"))


def shuffle(pool: Pool, tick: Tick) -> None:
    """The survivors in a seeded random order (or input order); decides whether the answers are a label set."""
    recipe = pool.recipe
    ids = np.flatnonzero(pool.alive)
    if recipe.shuffle:
        ids = ids[np.random.default_rng(recipe.seed).permutation(ids.size)]
    pool.ids = ids
    pool.steps.append(Step("shuffle", ids.size, ids.size,
                           f"seed {recipe.seed}" if recipe.shuffle else "off (input order)"))
    pool.distinct = len({pool.labels[i] for i in ids.tolist()})
    pool.classification = 1 < pool.distinct <= MAX_LABELS
    if recipe.stratify == "on" and not pool.classification:
        raise PrepareError(f"--stratify on: the answers take {pool.distinct:,} distinct values; stratifying needs "
                           f"2 to {MAX_LABELS}")


def balance(pool: Pool, tick: Tick) -> None:
    """At most --max-per-label examples of each answer (the first ones in the shuffled order)."""
    cap = pool.recipe.max_per_label
    if cap is None:
        return
    seen: dict[str, int] = {}
    keep = []
    for i in pool.ids.tolist():
        c = seen.get(pool.labels[i], 0)
        if c < cap:
            seen[pool.labels[i]] = c + 1
            keep.append(i)
    before = pool.ids.size
    pool.ids = np.asarray(keep, dtype=np.int64)
    pool.steps.append(Step("balance", before, pool.ids.size, f"at most {cap:,} examples per answer"))


def cap(pool: Pool, tick: Tick) -> None:
    """At most --max-examples examples."""
    most = pool.recipe.max_examples
    if most is not None and pool.ids.size > most:
        before = pool.ids.size
        pool.ids = pool.ids[:most]
        pool.steps.append(Step("cap", before, pool.ids.size, f"at most {most:,} examples"))


def _targets(recipe: Recipe, total: int) -> list[int]:
    """How many examples each split gets: the counts asked for, or the shares by largest remainder."""
    if recipe.split_counts is not None:
        targets = [int(c) for c in recipe.split_counts] + [0] * (3 - len(recipe.split_counts))
        if sum(targets) > total:
            raise PrepareError(f"--split-counts asks for {sum(targets):,} examples; {total:,} are left after the "
                               "steps before the split")
        return targets
    shares = list(recipe.split) + [0.0] * (3 - len(recipe.split))
    raw = [total * s for s in shares]
    targets = [int(x) for x in raw]
    rest = total - sum(targets)
    for s in sorted(range(3), key=lambda s: (-(raw[s] - targets[s]), s))[:rest]:
        targets[s] += 1
    return targets


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


def _by_group(pool: Pool, targets: list[int], parts: dict[str, list[int]]) -> str:
    order: dict[str, list[int]] = {}
    for i in pool.ids.tolist():
        g = pool.groups[i]
        order.setdefault(f"\x00row{i}" if g is None else g, []).append(i)
    got = [0, 0, 0]
    for members in order.values():
        # the split furthest below its target (by share) takes the whole group
        s = max(range(3), key=lambda s: ((targets[s] - got[s]) / targets[s] if targets[s] else -1.0, -s))
        if targets[s] - got[s] <= 0:
            continue  # every split is full: the group is left out (only with --split-counts)
        parts[SPLITS[s]].extend(members)
        got[s] += len(members)
    return f"grouped by {pool.recipe.group_by!r}: {len(order):,} groups, none split across files"


def _by_label(pool: Pool, targets: list[int], parts: dict[str, list[int]]) -> str:
    by_label: dict[str, list[int]] = {}
    for i in pool.ids.tolist():
        by_label.setdefault(pool.labels[i], []).append(i)
    labs = sorted(by_label, key=label_sort_key)
    alloc = _allocate([len(by_label[lab]) for lab in labs], targets)
    pos_of = {int(i): p for p, i in enumerate(pool.ids.tolist())}
    for lab, row in zip(labs, alloc):
        members = by_label[lab]
        start = 0
        for s, k in enumerate(row):
            parts[SPLITS[s]].extend(members[start:start + k])
            start += k
    for name in SPLITS:  # keep the shuffled order inside each split
        parts[name].sort(key=pos_of.__getitem__)
    return f"stratified by the answer ({pool.distinct} labels)"


def _by_position(pool: Pool, targets: list[int], parts: dict[str, list[int]]) -> str:
    start = 0
    flat = pool.ids.tolist()
    for s, k in enumerate(targets):
        parts[SPLITS[s]] = flat[start:start + k]
        start += k
    if pool.classification and pool.recipe.stratify == "off":
        return "by position (--stratify off)"
    return "by position" + ("" if pool.classification or pool.distinct <= MAX_LABELS else
                            f" (the answers take {pool.distinct:,} values: not a label set to stratify by)")


def split(pool: Pool, tick: Tick) -> None:
    """Train / validation / test: grouped by a key, stratified by the answer, or by position."""
    tick("split", 0)
    recipe = pool.recipe
    total = int(pool.ids.size)
    targets = _targets(recipe, total)
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    if recipe.group_by is not None:
        note = _by_group(pool, targets, parts)
    elif pool.classification and recipe.stratify != "off":
        note = _by_label(pool, targets, parts)
    else:
        note = _by_position(pool, targets, parts)
    pool.splits = {s: np.asarray(parts[s], dtype=np.int64) for s in SPLITS}
    pool.steps.append(Step("split", total, sum(v.size for v in pool.splits.values()),
                           f"{note}; train/valid/test = {'/'.join(str(t) for t in targets)}"))


def leakage(pool: Pool, tick: Tick) -> None:
    """Remove validation or test examples that also occur in train, exactly (same prompt key) or nearly."""
    splits = pool.splits
    if not (pool.recipe.leakage and splits["train"].size and (splits["valid"].size or splits["test"].size)):
        return
    assert pool.sig is not None  # computed by near_dedup whenever leakage is on
    tick("leakage", 0)
    train_keys = {pool.keys[i] for i in splits["train"].tolist()}
    before = splits["valid"].size + splits["test"].size
    exact_leaks = near_leaks = 0
    others = np.concatenate([splits["valid"], splits["test"]])
    near_found = neardup.cross_matches(pool.sig, splits["train"], others, pool.recipe.near_threshold)
    for name in ("valid", "test"):
        keep = []
        for i in splits[name].tolist():
            if pool.keys[i] in train_keys:
                exact_leaks += 1
                continue
            hit = near_found.get(i)
            if hit is not None:
                near_leaks += 1
                if len(pool.pairs) < MAX_PAIRS * 2:
                    pool.pairs.append(NearPair(pool.origin[i], pool.origin[hit[0]], round(hit[1], 3),
                                               _near_text(pool.lines[i]), _near_text(pool.lines[hit[0]]), "leakage"))
                continue
            keep.append(i)
        splits[name] = np.asarray(keep, dtype=np.int64)
    after = splits["valid"].size + splits["test"].size
    pool.steps.append(Step("leakage", before, after,
                           f"validation and test examples also in train removed: {exact_leaks:,} exact, "
                           f"{near_leaks:,} near", {"exact": exact_leaks, "near": near_leaks}))


def order_and_notes(pool: Pool, tick: Tick) -> None:
    """The seed's sorted training order when asked for; notes on splits left empty or too small."""
    splits = pool.splits
    if pool.recipe.sort_train_by_label:
        tr = splits["train"].tolist()
        tr.sort(key=lambda i: label_sort_key(pool.labels[i]))
        splits["train"] = np.asarray(tr, dtype=np.int64)
        pool.notes.append("train is sorted by the answer (--sort-train-by-label), not shuffled")
    for name in ("valid", "test"):
        if not splits[name].size:
            pool.notes.append(f"{FILE_NAMES[name]} gets no examples and is not written")
    if 0 < splits["train"].size < 10:
        pool.notes.append(f"train.jsonl gets {splits['train'].size} example(s); fine-tuning needs at least 10")


# every step after reading, in order
STEPS = (exact_dedup, near_dedup, shuffle, balance, cap, split, leakage, order_and_notes)
