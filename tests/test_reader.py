"""Reading: physical line numbers, CRLF, BOM, blank lines, bad UTF-8/JSON, nesting, huge lines, odd files."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ftui.core.analysis import Cancelled, DatasetError, analyze
from ftui.core.report import Report
from ftui.core.rules import ExampleChecker
from ftui.core.tokens import counter
from tests.helpers import chat, chats


def codes(path):
    return [(f.line, f.code) for f in Report.of(analyze(path)).findings]


def test_crlf_and_bom(write_jsonl, tmp_path):
    rows = [json.dumps(r).encode() for r in chats(12)]
    crlf = write_jsonl(rows, newline=b"\r\n")
    assert codes(crlf) == []
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(rows) + b"\r\n")
    assert codes(bom) == [(1, "utf8_bom")]
    assert analyze(bom).examples == 12


def test_blank_lines_are_skipped_and_lines_stay_physical(write_jsonl):
    rows = chats(12)
    rows[3:3] = ["", "   "]
    rows.insert(9, '{"messages": oops}')
    path = write_jsonl(rows)
    a = analyze(path)
    assert a.examples == 13 and a.lines == 15
    assert codes(path) == [(4, "blank_line"), (5, "blank_line"), (10, "invalid_json")]


def test_no_trailing_newline(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in chats(11)))
    assert analyze(p).examples == 11 and codes(p) == []


def test_invalid_utf8_on_one_line_rest_still_read(write_jsonl):
    rows = chats(12)
    rows.insert(4, b'{"messages": [{"role": "user", "content": "caf\xe9"}]}')
    path = write_jsonl(rows)
    got = codes(path)
    assert got == [(5, "invalid_utf8")]
    assert analyze(path).valid_mask.sum() == 12


def test_pathological_nesting_never_recurses(write_jsonl):
    deep = "[" * 200_000 + "]" * 200_000
    deep_obj = '{"messages": [{"role": "user", "content": ' + "[" * 5000 + "]" * 5000 + "}]}"
    path = write_jsonl(chats(10) + [deep, deep_obj])
    got = codes(path)
    assert (11, "invalid_json") in got or (11, "data_type") in got
    assert any(line == 12 for line, _ in got)


def test_multi_megabyte_line(write_jsonl):
    big = chat("x " * 2_000_000, "ok")
    a = analyze(write_jsonl(chats(10) + [big]))
    assert a.examples == 11 and a.tokens[-1] > 1_000_000


def test_empty_file_is_an_error_not_a_crash(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    assert codes(p) == [(None, "empty_file")]
    q = tmp_path / "blank.jsonl"
    q.write_bytes(b"\n\n")
    assert (None, "empty_file") in codes(q)


@pytest.mark.parametrize("setup, words", [
    (lambda p: p.write_bytes(b"\x00\x01\x02binary\x00" * 100), "binary"),
    (lambda p: p.mkdir(), "directory"),
    (lambda p: None, "no such file"),
])
def test_unreadable_files_raise_dataset_error(tmp_path, setup, words):
    p = tmp_path / "thing.jsonl"
    setup(p)
    with pytest.raises(DatasetError) as err:
        analyze(p)
    assert words in str(err.value) and str(p) in str(err.value)


@pytest.mark.parametrize("piece_bytes,narrow", [(4 << 20, None), (16 << 10, None), (16 << 10, "middle")])
def test_parallel_equals_serial(write_jsonl, monkeypatch, piece_bytes, narrow):
    """Three processes, each taking one third of the file or (16 KB pieces) ~60 pieces in turn: the merge puts them
    back in file order, line numbers and offsets included. Line numbers and offsets are 32-bit below
    ``analysis.NARROW`` (2 GB); with it moved to the middle of the file the pieces before it are 32-bit, those after
    64-bit, and the columns 64-bit."""
    import random

    from ftui.core import analysis

    rng = random.Random(7)
    rows = []
    for i in range(3000):
        r = rng.random()
        if r < 0.02:
            rows.append('{"broken": ')
        elif r < 0.03:
            rows.append("")
        elif r < 0.05:
            rows.append(chat(f"dup {i % 3}", "same"))
        else:
            rows.append(chat("q " * rng.randint(1, 50) + str(i), "a " * rng.randint(1, 200), system=None if r > 0.9
                             else "sys"))
    path = write_jsonl(rows)
    if narrow:
        monkeypatch.setattr(analysis.limits, "NARROW", path.stat().st_size // 2)
    serial = analyze(path, workers=1)
    parallel = analyze(path, workers=3, parallel_min_bytes=1, piece_bytes=piece_bytes)
    assert parallel.findings == serial.findings
    for name in ("line", "offset", "kind", "tokens", "trainable", "messages", "flags", "hash"):
        assert (getattr(parallel, name) == getattr(serial, name)).all(), name
        assert getattr(parallel, name).dtype == getattr(serial, name).dtype, name
    assert serial.line.dtype == serial.offset.dtype == (np.int64 if narrow else np.int32)
    assert parallel.lines == serial.lines and parallel.format == serial.format
    # one process counts a 1 MB file with the small-file counter, the workers with quicktok: the same counts
    same = {"seconds": 0, "tokenizer": ""}
    assert Report.of(parallel).to_dict() | same == Report.of(serial).to_dict() | same


def test_a_process_taking_several_pieces_keeps_one_cap_per_code(write_jsonl, monkeypatch):
    """The findings a process stores are capped per code over all the pieces it takes, not per piece; the counts
    stay exact (stored + dropped)."""
    from ftui.core import analysis

    monkeypatch.setattr(analysis.limits, "MAX_FINDINGS_PER_CODE", 5)
    path = write_jsonl(["", chat("q", "a")] * 20)
    data = path.read_bytes()
    half = data.index(b"\n", len(data) // 2) + 1
    per_code: dict = {}
    first = analysis.process_range(path, 0, half, "cl100k_base", per_code=per_code)
    second = analysis.process_range(path, half, len(data), "cl100k_base", per_code=per_code)
    stored = [f for ch in (first, second) for f in ch.findings if f.code == "blank_line"]
    assert len(stored) == 5 and len(first.findings) == 5 and not second.findings
    assert len(stored) + first.dropped.get("blank_line", 0) + second.dropped["blank_line"] == 20


def test_offsets_point_at_lines(write_jsonl):
    path = write_jsonl(chats(12))
    a = analyze(path)
    data = path.read_bytes()
    for ln in (1, 5, 12):
        off = a.line_offset(ln)
        assert data[off:].split(b"\n", 1)[0] == data.split(b"\n")[ln - 1]


def test_progress_and_cancel(write_jsonl):
    path = write_jsonl(chats(5000))
    seen = []
    analyze(path, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] == path.stat().st_size
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    stop = threading.Event()

    def cancel_halfway(done, total):
        if done > total // 3:
            stop.set()

    with pytest.raises(Cancelled):
        analyze(path, progress=cancel_halfway, cancel=stop)
    stop2 = threading.Event()
    with pytest.raises(Cancelled):
        analyze(path, workers=2, parallel_min_bytes=1, progress=lambda d, t: stop2.set(), cancel=stop2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=200), st.text(max_size=100).map(str.encode)), max_size=30))
def test_arbitrary_bytes_never_raise(tmp_path_factory, lines):
    p = tmp_path_factory.mktemp("fuzz") / "f.jsonl"
    p.write_bytes(b"\n".join(lines))
    try:
        report = Report.of(analyze(p))
    except DatasetError as exc:  # only for binary (NUL) content
        assert "binary" in str(exc)
        return
    assert report.to_dict()["lines"] >= 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "role", "content", "weight", "tool_calls", "function", "name", "arguments",
                         "type", "image_url", "url", "input", "preferred_output", "non_preferred_output",
                         "prompt", "completion", "tools", "parameters", "properties", "enum", "text", "id",
                         "x"]), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_arbitrary_json_shapes_never_raise(value):
    found = []
    ExampleChecker(counter("o200k_base")).check(value, lambda c, m, p: found.append((c, m, p)))
    from ftui.core.findings import CODES

    assert all(c in CODES for c, _, _ in found)


def test_a_dying_analysis_worker_is_explained(write_jsonl):
    """A worker process killed mid-analysis (out of memory, a signal) gives a DatasetError naming the file and what
    happened — the app shows it in the summary — never a traceback or a hang."""
    import multiprocessing
    import os
    import signal

    from ftui.core.analysis import DatasetError

    path = write_jsonl(chats(40000))
    killed = []

    def kill_a_worker(done, total):
        if not killed:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    with pytest.raises(DatasetError) as exc:
        analyze(path, workers=2, parallel_min_bytes=1, progress=kill_a_worker)
    assert killed
    assert str(path) in str(exc.value) and "died (signal 9" in str(exc.value)


@pytest.mark.parametrize("shape, broken", [("objects", 5), ("array", 5), ("objects", 11), ("objects", 0),
                                           ("array", 11)])
def test_a_broken_object_in_a_pretty_printed_file_is_one_finding_where_it_starts(tmp_path, shape, broken):
    """A pretty-printed file (objects over several lines) in which one object has a raw newline inside a string: the
    file-level diagnosis once, the broken object once at the line it starts on, every other object analysed —
    never one invalid_json per physical line."""
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(12)]
    if shape == "objects":
        text = "".join(json.dumps(r, indent=2) + "\n" for r in rows)
    else:
        text = json.dumps(rows, indent=2)
    text = text.replace(f'"question {broken}"', f'"question\n{broken}"')
    p = tmp_path / "pretty.jsonl"
    p.write_text(text)
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "{" and
              line.index("{") == (0 if shape == "objects" else 2)]
    a = analyze(p)
    assert sorted(f.code for f in a.findings) == ["invalid_json", "json_not_jsonl"]
    [bad] = [f for f in a.findings if f.code == "invalid_json"]
    assert bad.line == starts[broken] and "Invalid control character" in bad.message
    assert a.examples == 12 and "12 object(s)" in next(f.message for f in a.findings if f.code == "json_not_jsonl")
    assert int((a.kind != 0).sum()) == 11  # the other eleven are read as examples
