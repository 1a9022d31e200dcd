"""ftui.core.prepare, sources and neardup: pure tests of every step (no server, no app)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from ftui.core import forking, neardup
from ftui.core.prepare import PrepareError, Recipe, parse_split, plan, write
from ftui.core.sources import open_source

SAMPLES = Path(__file__).resolve().parent.parent / "ftui" / "data" / "samples"


def _csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)
    return path


def _reviews(n: int, seed: int = 0, labels=("1", "2", "3", "4", "5"), weights=(0.1, 0.1, 0.2, 0.2, 0.4)):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=12)) + f" item {i}"
        out.append({"id": str(i), "review": text, "star": str(rng.choice(labels, p=weights)), "user": f"u{i % 37}"})
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- reading ---------------------------------------------------------------------------------------------------------
def test_bad_csv_rows_are_reported_by_line_and_skipped(tmp_path):
    p = tmp_path / "raw.csv"
    p.write_bytes(b"review,star\n"
                  b"good app,5\n"
                  b"\"a review\nover two lines\",4\n"   # lines 3-4: one row
                  b"too,many,fields,1\n"                 # line 5: ragged
                  b"bad \xff byte,2\n"                   # line 6: invalid UTF-8
                  b"\n"                                  # line 7: blank, skipped silently
                  b"short row\n"                          # line 8: one field
                  b"fine again,3\n")                     # line 9
    src = open_source(p)
    rows = list(src)
    assert [(r.line, r.values["star"]) for r in rows] == [(2, "5"), (3, "4"), (9, "3")]
    assert rows[1].values["review"] == "a review\nover two lines"
    issues = [(i.line, i.message) for i in src.issues]
    assert issues == [(5, "4 fields, the header has 2"), (6, "invalid UTF-8 at byte 5 of the line"),
                      (8, "1 fields, the header has 2")]
    # and through plan: the read step counts them and names file:line
    pl = plan(Recipe([str(p)], user="review", assistant="star", near=False, leakage=False, split=(1.0,)))
    read = pl.steps[0]
    assert (read.before, read.after) == (6, 3)
    assert read.detail["issues"][0] == f"{p}:5: 4 fields, the header has 2"


def test_missing_column_names_the_file_the_option_and_the_columns(tmp_path):
    p = _csv(tmp_path / "r.csv", [{"review": "x", "star": "1"}])
    with pytest.raises(PrepareError) as e:
        plan(Recipe([str(p)], user="{title}\n{review}", assistant="star"))
    msg = str(e.value)
    assert str(p) in msg and "--user" in msg and "'title'" in msg and "review, star" in msg
    with pytest.raises(PrepareError, match="choose the columns"):
        plan(Recipe([str(_csv(tmp_path / "q.csv", [{"a": "x", "b": "1"}]))]))


def test_json_array_and_pretty_printed_objects_keep_their_line_numbers(tmp_path):
    ex = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([ex, ex, 3], indent=2))
    src = open_source(arr)
    rows = list(src)
    assert [r.line for r in rows] == [2, 14]
    assert [(i.line, i.message) for i in src.issues] == [(26, "expected a JSON object, got a number")]
    stream = tmp_path / "s.jsonl"  # the cookbook's pretty-printed "JSONL": objects over several lines each
    stream.write_text(json.dumps(ex, indent=2) + "\n" + json.dumps(ex, indent=2) + "\n")
    src = open_source(stream)
    assert src.format == "json" and "not JSON Lines" in src.note
    assert [r.line for r in src] == [1, 13]


def test_parquet_input_and_the_message_without_pyarrow(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"review": ["great", "awful", "fine"], "star": [5, 1, 3]}), p)
    rows = list(open_source(p))
    assert [(r.line, r.values["star"]) for r in rows] == [(1, 5), (2, 1), (3, 3)]
    pl = plan(Recipe([str(p)], user="review", assistant="star", near=False, leakage=False, split=(1.0,),
                     shuffle=False))
    assert [e["messages"][1]["content"] for _, e in pl.examples("train", 3)] == ["5", "1", "3"]
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
            "from ftui.cli import main; sys.exit(main(['prepare', sys.argv[1], '--dry-run']))")
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "pip install 'ftui[parquet]'" in r.stderr and str(p) in r.stderr and "Traceback" not in r.stderr


# -- mapping ---------------------------------------------------------------------------------------------------------
def test_templates_system_prompt_and_empty_answers(tmp_path):
    p = _csv(tmp_path / "r.csv", [{"title": "Nice", "body": "works {well}", "star": "5"},
                                  {"title": "Meh", "body": "ok", "star": ""}])
    pl = plan(Recipe([str(p)], user="{title}\n{body} {{raw}}", assistant="Stars: {star}", system="Rate it.",
                     near=False, leakage=False, split=(1.0,)))
    [(where, ex)] = pl.examples("train", 5)
    assert where == f"{p}:2"
    assert ex == {"messages": [{"role": "system", "content": "Rate it."},
                               {"role": "user", "content": "Nice\nworks {well} {raw}"},
                               {"role": "assistant", "content": "Stars: 5"}]}
    # a template's own text is no answer when every column it names is empty
    assert pl.steps[1].detail["dropped"] == [f"{p}:3: the assistant text (Stars: {{star}}) is empty"]


def test_mapped_rows_carry_the_same_keys_the_examples_give(tmp_path):
    """Rows mapped from columns hand the dedup and split steps their prompt, near-duplicate text and answer directly
    (without re-reading the example): they must be what the example itself gives, and a row whose columns are all
    blank is dropped whatever the template."""
    from ftui.core.prepare.mapping import _Mapper, _parts

    p = tmp_path / "r.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in [
        {"t": "Nice", "b": "works", "s": 5}, {"t": "  ", "b": "", "s": 4.0}, {"t": "x", "b": None, "s": True},
        {"t": " ", "b": "\t", "s": 1}, {"t": "0", "b": 0, "s": ""}]))
    for user, assistant, system in [("{t}", "{s}", None), ("{t}: {b}", "Stars: {s}", "Rate it."),
                                    ("{t}{b}", "{s}", "")]:
        r = Recipe([str(p)], user=user, assistant=assistant, system=system)
        mapper = _Mapper(r)
        got = list(mapper.map_source(open_source(p)))
        assert got and all(m.parts == _parts(m.example) for m in got), (user, assistant, system)
        assert {m.line for m in got} == {1, 3}  # 2 and 4: blank columns (whatever the template's text); 5: no star
    assert not _Mapper(Recipe([str(p)], user="{t}", assistant="{s}")).map_source(open_source(p)).__next__().parts[0] \
        .startswith("system")


def test_legacy_prompt_completion_becomes_chat_without_separator_and_leading_space(tmp_path):
    p = tmp_path / "legacy.jsonl"
    rows = [{"prompt": f"Review {i}\n\n###\n\n", "completion": f" {i % 5 + 1} END"} for i in range(12)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pl = plan(Recipe([str(p)], near=False, leakage=False, split=(1.0,), shuffle=False))
    first = pl.examples("train", 1)[0][1]
    assert first == {"messages": [{"role": "user", "content": "Review 0"}, {"role": "assistant", "content": "1"}]}
    note = next(n for n in pl.notes if "legacy" in n)
    assert "'\\n\\n###\\n\\n' removed" in note and "' END' removed" in note and "leading space" in note


def test_chat_passes_through_unchanged_and_errors_are_dropped_by_default(tmp_path):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 1}],
            "tools": []}
    p = tmp_path / "chat.jsonl"
    p.write_text("\n".join([json.dumps(good),
                            json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
                            json.dumps({"messages": [{"role": "robot", "content": "x"},
                                                     {"role": "assistant", "content": "y"}]})]) + "\n")
    pl = plan(Recipe([str(p)], near=False, leakage=False, split=(1.0,)))
    assert [e for _, e in pl.examples("train", 5)] == [good]
    step = next(s for s in pl.steps if s.name == "errors")
    assert (step.before, step.after) == (3, 1)
    assert step.detail["examples"][0].startswith(f"{p}:2: no_answer") or step.detail["examples"][0].startswith(
        f"{p}:2: example_missing_assistant_message")
    assert step.detail["examples"][1].startswith(f"{p}:3: unrecognized_role")
    kept = plan(Recipe([str(p)], near=False, leakage=False, split=(1.0,), keep_errors=True))
    assert kept.splits["train"].size == 3


# -- de-duplication --------------------------------------------------------------------------------------------------
def test_exact_dedup_keys(tmp_path):
    rows = [{"review": "Great  app", "star": "5"}, {"review": "great app", "star": "4"},
            {"review": "Great  app", "star": "5"}, {"review": "other", "star": "1"}]
    p = _csv(tmp_path / "r.csv", rows)
    base = dict(user="review", assistant="star", near=False, leakage=False, split=(1.0,), shuffle=False)
    by_prompt = plan(Recipe([str(p)], **base))
    step = next(s for s in by_prompt.steps if s.name == "exact_dedup")
    assert (step.before, step.after) == (4, 2)
    assert step.detail["conflicting_answers"] == 1  # "great app" → 4 differs from the kept 5
    exact_case = plan(Recipe([str(p)], normalize=False, **base))
    assert exact_case.splits["train"].size == 3
    whole = plan(Recipe([str(p)], dedup="example", **base))
    assert whole.splits["train"].size == 3  # case folded, but 5 vs 4 differ
    whole_exact = plan(Recipe([str(p)], dedup="example", normalize=False, **base))
    assert whole_exact.splits["train"].size == 3  # the byte-identical copy only
    off = plan(Recipe([str(p)], dedup="none", **base))
    assert off.splits["train"].size == 4


def test_near_duplicates_are_removed_with_their_pairs(tmp_path):
    rows = _reviews(200, seed=3)
    rows[10]["review"] = base_text = " ".join(f"word{i}" for i in range(30))  # J(one word inserted) ≈ 0.85
    rows.append({"id": "x1", "review": base_text.replace(" word20", " really word20"), "star": rows[10]["star"],
                 "user": "z"})
    rows.append({"id": "x2", "review": base_text.upper() + "!!", "star": rows[10]["star"], "user": "z"})
    p = _csv(tmp_path / "r.csv", rows)
    pl = plan(Recipe([str(p)], user="review", assistant="star", leakage=False, split=(1.0,)))
    step = next(s for s in pl.steps if s.name == "near_dedup")
    assert (step.before, step.after) == (202, 200)
    assert sorted(x.removed for x in pl.pairs) == [f"{p}:202", f"{p}:203"]
    assert all(x.kept == f"{p}:12" and x.similarity >= 0.7 for x in pl.pairs)
    off = plan(Recipe([str(p)], user="review", assistant="star", near=False, leakage=False, split=(1.0,)))
    assert off.splits["train"].size == 202


def test_candidate_pairs_match_datasketch_lsh_on_the_same_signatures():
    from datasketch import LeanMinHash, MinHashLSH

    rng = np.random.default_rng(5)
    vocab = [f"t{i}" for i in range(300)]
    texts = []
    for i in range(400):
        if i and rng.random() < 0.3:  # a variant of an earlier text
            words = texts[rng.integers(0, i)].split()
            k = rng.integers(0, len(words))
            words[k] = vocab[rng.integers(0, 300)]
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choice(vocab, size=int(rng.integers(8, 30)))))
    sig = neardup.signatures(texts, k=2, num_perm=64)
    bands, rows = neardup.params_for(0.6, 64)
    from datasketch.lsh import _optimal_param

    assert (bands, rows) == _optimal_param(0.6, 64, neardup.FP_WEIGHT, neardup.FN_WEIGHT)
    lsh = MinHashLSH(num_perm=64, params=(bands, rows))
    hashes = [LeanMinHash(seed=1, hashvalues=sig[i].astype(np.uint64), scheme="legacy") for i in range(len(texts))]
    for i, h in enumerate(hashes):
        lsh.insert(i, h)
    theirs = {(min(i, j), max(i, j)) for i, h in enumerate(hashes) for j in lsh.query(h) if j != i}
    ours = {tuple(p) for p in neardup.candidate_pairs(sig, 0.6, window=len(texts)).tolist()}
    assert theirs and ours == theirs


def test_signature_similarity_estimates_jaccard():
    a = " ".join(f"w{i}" for i in range(60))
    b = " ".join(f"w{i}" for i in range(10, 70))  # 3-shingles: 48 shared of 68 → J = 0.706
    sig = neardup.signatures([a, b, "", "w1 w2"], k=3, num_perm=256)
    est = neardup.similarity(sig, np.array([[0, 1]]))[0]
    assert abs(est - 48 / 68) < 0.08
    assert neardup.empty_rows(sig).tolist() == [False, False, True, False]


# -- shuffle, split, balance -----------------------------------------------------------------------------------------
def test_stratified_split_keeps_label_shares_in_every_split(tmp_path):
    p = _csv(tmp_path / "r.csv", _reviews(1000, seed=1))
    pl = plan(Recipe([str(p)], user="review", assistant="star"))
    counts = {k: int(v.size) for k, v in pl.splits.items()}
    assert counts == {"train": 800, "valid": 100, "test": 100}
    labels = pl.label_counts()
    total = Counter()
    for d in labels.values():
        total.update(d)
    for split, d in labels.items():
        for label, n in total.items():
            expected = n * counts[split] / 1000
            assert abs(d.get(label, 0) - expected) <= 1, (split, label, d, expected)
    assert "stratified by the answer (5 labels)" in next(s for s in pl.steps if s.name == "split").note


def test_grouped_split_never_puts_one_group_in_two_splits(tmp_path):
    p = _csv(tmp_path / "r.csv", _reviews(740, seed=2))
    pl = plan(Recipe([str(p)], user="review", assistant="star", group_by="user"))
    rows = {f"{p}:{i + 2}": r["user"] for i, r in enumerate(_reviews(740, seed=2))}
    seen: dict[str, str] = {}
    for split, ids in pl.splits.items():
        for i in ids.tolist():
            g = rows[pl.origin[i]]
            assert seen.setdefault(g, split) == split, g
    sizes = {k: v.size for k, v in pl.splits.items()}
    assert sizes["valid"] > 0 and sizes["test"] > 0 and sizes["train"] > 500


def test_counts_balance_and_cap(tmp_path):
    p = _csv(tmp_path / "r.csv", _reviews(600, seed=4))
    pl = plan(Recipe([str(p)], user="review", assistant="star", max_per_label=40, split_counts=(100, 50, 50)))
    assert {k: int(v.size) for k, v in pl.splits.items()} == {"train": 100, "valid": 50, "test": 50}
    assert all(n == 40 for n in Counter(pl.labels[i] for s in pl.splits.values() for i in s.tolist()).values())
    with pytest.raises(PrepareError, match="asks for 300 examples; 200 are left"):
        plan(Recipe([str(p)], user="review", assistant="star", max_per_label=40, split_counts=(200, 50, 50)))
    capped = plan(Recipe([str(p)], user="review", assistant="star", max_examples=50))
    assert sum(v.size for v in capped.splits.values()) == 50


def test_leakage_from_train_is_removed_and_counted(tmp_path):
    rows = _reviews(300, seed=6)
    rows += [dict(r, id=f"d{i}") for i, r in enumerate(rows[:60])]  # exact copies
    p = _csv(tmp_path / "r.csv", rows)
    pl = plan(Recipe([str(p)], user="review", assistant="star", dedup="none", near=False))
    leak = next(s for s in pl.steps if s.name == "leakage")
    assert leak.detail["exact"] > 0 and leak.removed == leak.detail["exact"] + leak.detail["near"]
    train_prompts = {orjson.loads(pl.lines[i])["messages"][0]["content"] for i in pl.splits["train"].tolist()}
    for split in ("valid", "test"):
        for i in pl.splits[split].tolist():
            assert orjson.loads(pl.lines[i])["messages"][0]["content"] not in train_prompts


def test_parse_split():
    assert parse_split("80/10/10") == (0.8, 0.1, 0.1)
    assert parse_split("0.9,0.1") == (0.9, 0.1)
    with pytest.raises(PrepareError, match="add up to 90"):
        parse_split("80/10")


# -- writing ---------------------------------------------------------------------------------------------------------
def test_same_recipe_and_seed_give_byte_identical_files_and_nothing_is_overwritten(tmp_path):
    src = SAMPLES / "reviews.csv"
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write(plan(Recipe([str(src)])), a)
    write(plan(Recipe([str(src)])), b)
    write(plan(Recipe([str(src)], seed=1)), c)
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "prepare.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()
    report = json.loads((a / "prepare.json").read_text())
    assert report["seed"] == 0 and [s["name"] for s in report["steps"]][:3] == ["read", "map", "errors"]
    assert set(report["labels"]) == {"train", "valid", "test"} and report["labels"]["train"]["5"] > 0
    assert sum(report["counts"].values()) == sum(len(_jsonl(a / f)) for f in ("train.jsonl", "valid.jsonl",
                                                                               "test.jsonl"))
    # refusing: one output exists → nothing at all is written, the file is untouched
    d = tmp_path / "d"
    d.mkdir()
    (d / "valid.jsonl").write_text("mine\n")
    with pytest.raises(PrepareError, match="already exist"):
        write(plan(Recipe([str(src)])), d)
    assert sorted(x.name for x in d.iterdir()) == ["valid.jsonl"] and (d / "valid.jsonl").read_text() == "mine\n"
    write(plan(Recipe([str(src)])), d, force=True)
    assert (d / "valid.jsonl").read_bytes() == (a / "valid.jsonl").read_bytes()


def test_the_bundled_reviews_sample_prepares_with_the_defaults(tmp_path):
    pl = plan(Recipe([str(SAMPLES / "reviews.csv")]))
    names = [s.name for s in pl.steps]
    assert names == ["read", "map", "errors", "exact_dedup", "near_dedup", "shuffle", "split", "leakage"]
    exact = pl.steps[3]
    near = pl.steps[4]
    assert exact.removed > 0 and near.removed > 0  # the generator writes ~10 % exact and ~5 % near duplicates
    assert pl.classification and set(pl.label_counts()["test"]) == {"1", "2", "3", "4", "5"}


# -- two processes: a large CSV read in halves, signatures in halves (the same result as one process) -------------
def _awkward_csv(path: Path, n: int, stray_quote_at: int | None = None) -> Path:
    """Rows that make splitting hard: quoted fields across lines, doubled quotes, separators in quotes, bad UTF-8,
    a ragged row, blank lines, empty answers, duplicates; optionally a quote inside an unquoted field."""
    out = bytearray(b"\xef\xbb\xbfid,review,star\n")
    for i in range(n):
        if i == stray_quote_at:
            out += b'%d,a 5" screen and nothing else,3\n' % i  # csv reads the quote as text: RFC 4180 parity breaks
        elif i % 7 == 0:
            out += b'%d,"line one of %d\nline two, with a comma\nand ""quotes""",%d\n' % (i, i, i % 5 + 1)
        elif i % 11 == 0:
            out += b"%d,bad \xff byte %d,2\n" % (i, i)
        elif i % 13 == 0:
            out += b"%d,ragged,row,4\n" % i
        elif i % 17 == 0:
            out += b"\n%d,no answer %d,\n" % (i, i % 3)
        else:
            out += b"%d,review number %d of %d words,%d\n" % (i, i % 400, i % 9, i % 5 + 1)
    path.write_bytes(bytes(out))
    return path


def _same_plans(a, b) -> None:
    assert a.report() == b.report()
    assert a.origin == b.origin and a.labels == b.labels
    assert [a.lines[i] for i in range(len(a.lines))] == [b.lines[i] for i in range(len(b.lines))]
    assert {k: v.tolist() for k, v in a.splits.items()} == {k: v.tolist() for k, v in b.splits.items()}


@pytest.mark.forks
@pytest.mark.parametrize("fmt,columns", [("csv", "given"), ("tsv", "given"), ("csv", "guessed")])
def test_a_large_csv_read_in_two_halves_gives_what_one_process_gives(tmp_path, monkeypatch, fmt, columns):
    from ftui.core.prepare import halves, steps
    from ftui.core.rules import ExampleChecker
    from ftui.core.tokens import counter

    # forking is safe only without other threads: a test before this one that left a thread running (tqdm's monitor
    # after an in-process export did) would make every plan below serial
    assert forking.can_fork(), f"this process runs other threads: {[t.name for t in threading.enumerate()]}"
    src_path = _awkward_csv(tmp_path / "raw.csv", 3000)
    if fmt == "tsv":
        src_path = tmp_path / "raw.tsv"
        src_path.write_bytes((tmp_path / "raw.csv").read_bytes().replace(b",", b"\t"))
    given = {"user": "review", "assistant": "star"} if columns == "given" else {}
    recipe = Recipe(inputs=[str(src_path)], seed=3, **given)
    monkeypatch.setattr(halves, "MIN_BYTES", 1 << 40)
    serial = plan(recipe)
    monkeypatch.setattr(halves, "MIN_BYTES", 0)
    split = plan(recipe)
    _same_plans(serial, split)
    assert sum("guessed from the names" in n for n in split.notes) == (columns == "guessed")
    read = serial.steps[0].detail["issues"]  # the awkward rows are in: bad UTF-8, a ragged row
    assert any("invalid UTF-8" in i for i in read) and any("4 fields" in i for i in read)
    # and it did read in halves: two parts, the second starting at a record in the file's second half
    mapper = steps._Mapper(recipe)
    src = open_source(src_path)
    parts = halves.map_in_halves(recipe, src, mapper, ExampleChecker(counter("o200k_base")), lambda s, n: None, 0)
    assert parts is not None and len(parts) == 2
    assert parts[0].rows_seen > 1000 and parts[1].rows_seen > 1000
    assert int(parts[1].origin[0].rsplit(":", 1)[1]) > int(parts[0].origin[-1].rsplit(":", 1)[1])


def test_a_stray_quote_before_the_split_makes_it_read_in_one_piece(tmp_path, monkeypatch):
    """A quote inside an unquoted field flips the quote count: the line where the halves would meet is then inside
    a quoted field, the first half does not end clean there, and the file is read whole — the same result."""
    from ftui.core.prepare import halves, steps
    from ftui.core.rules import ExampleChecker
    from ftui.core.tokens import counter

    src_path = _awkward_csv(tmp_path / "raw.csv", 3000, stray_quote_at=1000)
    recipe = Recipe(inputs=[str(src_path)], user="review", assistant="star", seed=3)
    src = open_source(src_path)
    checker = ExampleChecker(counter("o200k_base"))
    assert halves.map_in_halves(recipe, src, steps._Mapper(recipe), checker, lambda s, n: None, 0,
                                min_bytes=0) is None
    monkeypatch.setattr(halves, "MIN_BYTES", 1 << 40)
    serial = plan(recipe)
    monkeypatch.setattr(halves, "MIN_BYTES", 0)
    _same_plans(serial, plan(recipe))


def test_signatures_signed_in_two_processes_equal_one_process():
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(300)] + ["ünïcode", "日本語", "x_y"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(0, 20)))) for _ in range(5000)]
    texts[10] = ""  # no words: a row that matches nothing
    texts[11] = "two words"  # fewer words than k
    one = neardup.signatures(texts, k=3, num_perm=64, fork_at=10**9)
    two = neardup.signatures(texts, k=3, num_perm=64, fork_at=0)
    assert isinstance(two, np.ndarray) and two.shape == (5000, 64)
    assert np.array_equal(one, two)
    assert neardup.empty_rows(two)[10] and not neardup.empty_rows(two)[11]


def test_candidate_pairs_from_bands_on_two_threads_equal_one_thread(monkeypatch):
    rng = np.random.default_rng(9)
    words = [f"w{i}" for i in range(60)]
    base = [" ".join(rng.choice(words, size=15)) for _ in range(400)]
    texts = base + [t.rsplit(" ", 1)[0] + " changed" for t in base[:200]]  # 200 near copies
    sig = neardup.signatures(texts, k=3, num_perm=128)
    two = neardup.candidate_pairs(sig, 0.7)
    monkeypatch.setattr(neardup, "cores", lambda: 1)
    one = neardup.candidate_pairs(sig, 0.7)
    assert np.array_equal(one, two) and len(two) >= 150
    codes = two[:, 0] * len(texts) + two[:, 1]
    assert (two[:, 0] < two[:, 1]).all() and (np.diff(codes) > 0).all()  # unique, sorted
