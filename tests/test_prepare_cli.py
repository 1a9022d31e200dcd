"""`ftui prepare` end to end, and what the checker learned from real published files (JSON that is not JSON Lines,
double-encoded tool arguments, legacy models, small sizes, leakage across files)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ftui.cli.render import human_size
from ftui.core.analysis import analyze
from ftui.core.catalog import resolve
from ftui.core.example import example_view
from ftui.core.report import Report
from tests.helpers import SAMPLES


def run(*args, cwd=None):
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "ftui.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env)


def test_prepare_writes_three_splits_reports_every_step_and_checks_them(tmp_path):
    out = tmp_path / "out"
    res = run("prepare", SAMPLES / "reviews.csv", "--out", out, "--system", "Answer with the digit only.")
    assert res.returncode == 0, res.stderr
    for step in ("read rows", "map to examples", "drop errors", "exact duplicates", "near duplicates", "shuffle",
                 "split", "leakage"):
        assert step in res.stdout, step
    assert "stratified by the answer (5 labels)" in res.stdout
    assert "Labels" in res.stdout and "Near duplicates" in res.stdout
    assert f"{out / 'train.jsonl'} — chat" in res.stdout  # the check summary of each output, with its estimate
    for name in ("valid.jsonl", "test.jsonl"):  # held-out splits: no 10-example minimum, not billed
        assert f"{out / name} (validation) — chat" in res.stdout
    assert res.stdout.count("Estimate") == 3 and res.stdout.count("tokens per validation pass; not billed") == 2
    report = json.loads((out / "prepare.json").read_text())
    assert report["recipe"]["system"] == "Answer with the digit only."
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "system", "content": "Answer with the digit only."}
    # a second run refuses and writes nothing; --force overwrites with the same bytes
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run("prepare", SAMPLES / "reviews.csv", "--out", out, "--system", "Answer with the digit only.")
    assert again.returncode == 2 and "already exist" in again.stderr and "--force" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    forced = run("prepare", SAMPLES / "reviews.csv", "--out", out, "--system", "Answer with the digit only.",
                 "--force")
    assert forced.returncode == 0 and {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_prepare_bad_input_is_a_message_naming_file_and_line(tmp_path):
    raw = tmp_path / "raw.csv"
    raw.write_text("text,label\n" + "".join(f"example {i},{i % 2}\n" for i in range(30)) + "a,b,c\n")
    res = run("prepare", raw, "--out", tmp_path / "o", "--user", "text", "--assistant", "label")
    assert res.returncode == 0, res.stderr
    assert f"{raw}:32: 3 fields, the header has 2" in res.stdout
    res = run("prepare", raw, "--out", tmp_path / "o2", "--user", "{text}", "--assistant", "{answer}")
    assert res.returncode == 2 and "'answer'" in res.stderr and "label, text" in res.stderr
    assert "Traceback" not in res.stderr
    res = run("prepare", raw, "--split", "70/20")
    assert res.returncode == 2 and "--out DIR is required" in res.stderr
    res = run("prepare", raw, "--out", tmp_path / "o3", "--split", "70/20")
    assert res.returncode == 2 and "add up to 90" in res.stderr
    assert not (tmp_path / "o3").exists()


def test_prepare_json_output_is_the_report(tmp_path):
    res = run("prepare", SAMPLES / "reviews.csv", "--dry-run", "--json", "--split", "90/10", "--seed", "3")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["seed"] == 3 and doc["outputs"] == {} and set(doc["counts"]) == {"train", "valid", "test"}
    assert doc["counts"]["test"] == 0 and doc["labels"]["train"]


def test_pretty_printed_json_is_diagnosed_once_and_still_analysed(tmp_path):
    ex = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": f"question {i}"},
                        {"role": "assistant", "content": f"answer {i}"}]} for i in range(12)]
    p = tmp_path / "01-testing-example.jsonl"
    p.write_text("\n".join(json.dumps(e, indent=2) for e in ex) + "\n")
    a = analyze(p)
    codes = [f.code for f in a.findings]
    assert codes == ["json_not_jsonl"] and "12 object(s)" in a.findings[0].message
    assert a.examples == 12 and int(a.tokens.sum()) > 12 * 10
    report = Report.of(a, "gpt-4.1-mini")
    assert report.estimate.usd > 0
    view = example_view(p, int(a.line[3]), a.encoding, a.line_offset(int(a.line[3])), a.findings)
    assert view.error is None and [m.text for m in view.messages][1] == "question 3"
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(ex))  # an array on one line
    assert [f.code for f in analyze(arr).findings] == ["json_not_jsonl"]
    # and prepare converts it
    res = run("prepare", p, "--out", tmp_path / "o", "--split", "100", "--no-shuffle")
    assert res.returncode == 0, res.stderr
    lines = (tmp_path / "o" / "train.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == ex


def test_double_encoded_tool_arguments_are_warned_with_line_and_path(tmp_path):
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": json.dumps(json.dumps({"a": 1}))}}
    ok = {"id": "c2", "type": "function", "function": {"name": "f", "arguments": json.dumps({"a": 1})}}
    arr = {"id": "c3", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
    lines = []
    for c in (ok, call, arr):
        lines.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [c]},
                                   {"role": "tool", "tool_call_id": c["id"], "content": "r"},
                                   {"role": "assistant", "content": "done"}]})
    p = tmp_path / "tools.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    found = [(f.line, f.path, f.message) for f in analyze(p).findings if f.code == "tool_arguments_not_object"]
    assert found[0][:2] == (2, "messages[1].tool_calls[0].function.arguments")
    assert "double-encoded" in found[0][2]
    assert found[1][:2] == (3, "messages[1].tool_calls[0].function.arguments") and "an array" in found[1][2]
    assert len(found) == 2


def test_legacy_and_unknown_models_and_small_sizes():
    m = resolve("gpt-3.5-turbo-0613")
    assert m.known and m.training_context == 4096 and any("legacy" in n for n in m.notes)
    u = resolve("my-own-model")
    assert not u.known and "not in ftui's catalog" in u.notes[0] and "models.json" in u.notes[0]
    assert (human_size(812), human_size(88_800), human_size(3_400_000)) == ("812 B", "88.8 KB", "3.4 MB")
    res = run("check", SAMPLES / "marv.jsonl")
    assert "KB," in res.stdout and "0.0 MB" not in res.stdout


def test_check_reports_examples_of_a_later_file_that_are_in_an_earlier_one(tmp_path):
    train = (SAMPLES / "marv.jsonl").read_text().splitlines()
    valid = (SAMPLES / "marv_valid.jsonl").read_text().splitlines() + [train[4]]
    v = tmp_path / "valid.jsonl"
    v.write_text("\n".join(valid) + "\n")
    res = run("check", SAMPLES / "marv.jsonl", v)
    assert f"line {len(valid)}: same example as marv.jsonl line 5" in res.stdout
    alone = run("check", v)
    assert "duplicate_across_files" not in alone.stdout


def test_a_semicolon_csv_is_sniffed_and_a_separator_can_be_named(tmp_path):
    from ftui.core.sources import SourceError, open_source

    semi = tmp_path / "semi.csv"
    semi.write_text("review;star\n" + "".join(f'"Review {i}; fine, really";{1 + i % 5}\n' for i in range(30)))
    src = open_source(semi)
    assert (src.delimiter, src.columns, src.note) == (";", ["review", "star"], "semicolon-separated")
    assert [r.values for r in src][0] == {"review": "Review 0; fine, really", "star": "1"}
    assert open_source(semi, delimiter=",").columns == ["review;star"]  # named: not sniffed
    with pytest.raises(SourceError, match="separator ':'"):
        open_source(semi, delimiter=":")
    res = run("prepare", semi, "--out", tmp_path / "out", "--user", "review", "--assistant", "star")
    assert res.returncode == 0, res.stderr
    first = json.loads((tmp_path / "out" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][-1]["content"] in {"1", "2", "3", "4", "5"}
    res = run("prepare", semi, "--out", tmp_path / "out2", "--delimiter", ",", "--user", "review",
              "--assistant", "star")
    assert res.returncode == 2 and res.stderr == (
        f"ftui prepare: {semi}: --user names column(s) 'review' that the file does not have; its columns are "
        "review;star (one column whose name holds ';': the file may be separated by it; --delimiter ';' reads it "
        "so)\n")


def test_prepare_writes_reinforcement_data_with_the_answer_as_an_item_key(tmp_path):
    """`--rft KEY`: the same splits, each line the prompt alone with its answer under KEY (what a grader reads as
    {{ item.KEY }}); `ftui check` reads the files as reinforcement data without an error."""
    plain, rft = tmp_path / "plain", tmp_path / "rft"
    args = ["prepare", SAMPLES / "reviews.csv", "--system", "Answer with the digit only.", "--seed", "3"]
    assert run(*args, "--out", plain).returncode == 0
    res = run(*args, "--out", rft, "--rft", "star")
    assert res.returncode == 0, res.stderr
    assert f"{rft / 'train.jsonl'} — reinforcement" in res.stdout
    assert res.stdout.count("✓ no errors, no warnings") == 3
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl"):
        chat = [json.loads(x) for x in (plain / name).read_text().splitlines()]
        prompts = [json.loads(x) for x in (rft / name).read_text().splitlines()]
        assert [p["messages"] for p in prompts] == [c["messages"][:-1] for c in chat]
        assert [p["star"] for p in prompts] == [c["messages"][-1]["content"] for c in chat]
    assert run(*args, "--out", tmp_path / "bad", "--rft", "messages").returncode == 2
