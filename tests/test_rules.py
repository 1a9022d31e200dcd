"""Every validation rule, with the line number and JSON path it reports."""
from __future__ import annotations

import json

import pytest

from ftui.core.analysis import analyze
from ftui.core.report import Report
from tests.helpers import SAMPLES, chat, chats

S = {"role": "system", "content": "Be brief."}


def U(text="Hi?", **kw):
    return {"role": "user", "content": text, **kw}


def A(text="Hello.", **kw):
    return {"role": "assistant", "content": text, **kw}


def findings(path, model=None):
    return Report.of(analyze(path, model), model).findings


def where(path, code, model=None):
    return [(f.line, f.path) for f in findings(path, model) if f.code == code]


def test_clean_file_has_no_findings(write_jsonl):
    assert findings(write_jsonl(chats(12))) == []


@pytest.mark.parametrize("row, code, path", [
    ([1, 2], "data_type", ""),
    ('"just a string"', "data_type", ""),
    ({"messages": []}, "missing_messages_list", "messages"),
    ({"messages": "hi"}, "missing_messages_list", "messages"),
    ({"conversation": []}, "missing_messages_list", "messages"),
    ({"messages": [S, {"content": "x"}, A()]}, "message_missing_key", "messages[1].role"),
    ({"messages": [S, {"role": "user"}, A()]}, "message_missing_key", "messages[1].content"),
    ({"messages": [S, U(), A(mood="x")]}, "message_unrecognized_key", "messages[2].mood"),
    ({"messages": [S, U(), {"role": "robot", "content": "x"}, A()]}, "unrecognized_role", "messages[2].role"),
    ({"messages": [S, {"role": ["user"], "content": "x"}, A()]}, "unrecognized_role", "messages[1].role"),
    ({"messages": [S, U(), {"role": {"a": 1}, "content": "x"}, A()]}, "unrecognized_role", "messages[2].role"),
    ({"messages": [S, U(""), A()]}, "missing_content", "messages[1].content"),
    ({"messages": [S, U(None), A()]}, "missing_content", "messages[1].content"),
    ({"messages": [S, U(42), A()]}, "missing_content", "messages[1].content"),
    ({"messages": [S, U(), A(weight=2)]}, "invalid_weight", "messages[2].weight"),
    ({"messages": [S, U(), A(weight=True)]}, "invalid_weight", "messages[2].weight"),
    ({"messages": [S, U(weight=1), A()]}, "weight_not_on_assistant", "messages[1].weight"),
    ({"messages": [S, U([{"type": "audio", "x": 1}]), A()]}, "invalid_content_part", "messages[1].content[0]"),
    ({"messages": [S, U(), A([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])]},
     "image_not_in_user_message", "messages[2].content[0]"),
    ({"messages": [S, U([{"type": "image_url", "image_url": {"url": f"https://x/{i}.png"}} for i in range(11)]),
                   A()]}, "too_many_images", "messages"),
    ({"messages": [S, U(), A(None, tool_calls="nope")]}, "invalid_tool_calls", "messages[2].tool_calls"),
    ({"messages": [S, U(), A(None, tool_calls=[{"id": "c", "type": "function", "function": {"name": "f"}}])]},
     "invalid_tool_calls", "messages[2].tool_calls[0]"),
    ({"messages": [S, U(), A()], "tools": [{"type": "function", "function": {"name": "bad name!"}}]},
     "invalid_tools", "tools[0].function.name"),
    ({"messages": [S, U("a <|fim_suffix|> b"), A()]}, "special_token", "messages[1].content"),
    ({"messages": [S, U(), A("ok <|endoftext|>")]}, "special_token", "messages[2].content"),
    ({"messages": [S, U(), A("   ")]}, "blank_assistant_content", "messages[2].content"),
    ({"messages": [S, U(), A(weight=0)]}, "no_trainable_tokens", "messages"),
    ({"messages": [S, U(), A()], "extra": 1}, "unrecognized_key", "extra"),
    ({"messages": [{"role": "developer", "content": "x"}, U(), A()]}, "developer_role", "messages[0].role"),
    ({"messages": [S, U(), A(None, tool_calls=[{"id": "c", "type": "function",
                                                 "function": {"name": "f", "arguments": "{oops"}}])]},
     "invalid_tool_arguments", "messages[2].tool_calls[0].function.arguments"),
    ({"messages": [U(), A()]}, "missing_system_message", "messages"),
    ({"messages": [S, A()]}, "missing_user_message", "messages"),
    ({"messages": [S, U()]}, "example_missing_assistant_message", "messages"),
])
def test_rule_reports_line_and_path(write_jsonl, row, code, path):
    rows = chats(12)
    rows.insert(6, row)  # physical line 7
    assert (7, path) in where(write_jsonl(rows), code)


def test_valid_modern_chat_features_pass(write_jsonl):
    """tool role, tool_calls with null content, tool_call_id, image parts, weight: all valid (the cookbook errs)."""
    tool_row = {
        "messages": [S, U("Weather?"),
                     A(None, tool_calls=[{"id": "c1", "type": "function",
                                          "function": {"name": "get_weather", "arguments": "{\"c\": 1}"}}]),
                     {"role": "tool", "tool_call_id": "c1", "content": "18C"},
                     A("18C.", weight=1), U("thanks"), A("np", weight=0)],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                                    "parameters": {"type": "object",
                                                                   "properties": {"c": {"type": "string",
                                                                                        "enum": ["a", "b"]}}}}}],
        "parallel_tool_calls": False,
    }
    image_row = {"messages": [S, U([{"type": "text", "text": "What is it?"},
                                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                                        "detail": "low"}}]), A("A cat.")]}
    assert findings(write_jsonl(chats(10) + [tool_row, image_row])) == []


def test_weight_zero_messages_are_not_trainable(write_jsonl):
    a = analyze(write_jsonl(chats(9) + [{"messages": [S, U("a"), A("one two three", weight=0), U("b"),
                                                          A("four")]}]))
    last = int(a.trainable[-1])
    four = analyze(write_jsonl(chats(9) + [chat("b", "four")], name="b.jsonl")).trainable[-1]
    assert last == four


def test_duplicate_names_both_lines(write_jsonl):
    rows = chats(12)
    rows.append(rows[2])
    rows.append(rows[2])
    got = [(f.line, f.message) for f in findings(write_jsonl(rows)) if f.code == "duplicate_example"]
    assert got == [(13, "same example as line 3"), (14, "same example as line 3")]


@pytest.mark.parametrize("block", [None, 7])
def test_duplicates_name_the_first_copy_in_every_group(write_jsonl, monkeypatch, block):
    """Many groups of copies, their examples spread over the file (and, with 7-example blocks, over the blocks in
    which the analysis looks up the repeated digests); unparsed lines in between."""
    import random

    from ftui.core import analysis

    if block:
        monkeypatch.setattr(analysis.limits, "DEDUP_BLOCK", block)
    rng = random.Random(3)
    pool = chats(15)
    rows = [rng.choice(pool) if rng.random() < 0.6 else ("{oops" if rng.random() < 0.1 else chat(f"q{i}", "a"))
            for i in range(200)]
    first: dict[str, int] = {}
    want = []
    for ln, r in enumerate(rows, 1):
        if isinstance(r, str):
            continue
        key = json.dumps(r)
        if key in first:
            want.append((ln, f"same example as line {first[key]}"))
        first.setdefault(key, ln)
    got = [(f.line, f.message) for f in findings(write_jsonl(rows)) if f.code == "duplicate_example"]
    assert len(want) > 80 and got == want


def test_too_few_examples_is_a_file_level_error(write_jsonl):
    got = [(f.line, f.code) for f in findings(write_jsonl(chats(7)))]
    assert got == [(None, "too_few_examples")]


def test_too_long_depends_on_the_model(write_jsonl):
    long = chat("word " * 17000, "ok")
    path = write_jsonl(chats(10) + [long])
    assert [ln for ln, _ in where(path, "too_long", "gpt-3.5-turbo")] == [11]  # 16,385 context
    assert where(path, "too_long", "gpt-4.1-mini") == []
    msg = [f.message for f in findings(path, "gpt-4-0613") if f.code == "too_long"][0]
    assert "over the 8,192-token training context" in msg


def test_mixed_formats_are_errors(write_jsonl):
    rows = chats(12)
    rows.insert(3, {"prompt": "x", "completion": "y"})
    got = where(write_jsonl(rows), "mixed_format")
    assert [ln for ln, _ in got] == [4]


@pytest.mark.parametrize("row, path", [
    ({"input": {"messages": [U()]}, "preferred_output": [A(), A()], "non_preferred_output": [A("no")]},
     "preferred_output"),
    ({"input": {"messages": [U(), A()]}, "preferred_output": [A()], "non_preferred_output": [A("no")]},
     "input.messages[1]"),
    ({"input": {"messages": [U()]}, "preferred_output": [A()]}, "non_preferred_output"),
    ({"input": "hi", "preferred_output": [A()], "non_preferred_output": [A("no")]}, "input"),
    ({"input": {"messages": [U()]}, "preferred_output": [U()], "non_preferred_output": [A("no")]},
     "preferred_output"),
])
def test_preference_shape(write_jsonl, row, path):
    good = {"input": {"messages": [U()]}, "preferred_output": [A()], "non_preferred_output": [A("Meh.")]}
    rows = [good] * 3 + [row] + [dict(good, input={"messages": [U(f"q{i}")]}) for i in range(9)]
    assert (4, path) in where(write_jsonl(rows), "preference_shape")


def test_preference_rejects_images(write_jsonl):
    img = [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    rows = [{"input": {"messages": [U(f"q{i}")]}, "preferred_output": [A()], "non_preferred_output": [A("x")]}
            for i in range(10)]
    rows.append({"input": {"messages": [U(img)]}, "preferred_output": [A()], "non_preferred_output": [A("x")]})
    assert (11, "input.messages[0].content[0]") in where(write_jsonl(rows), "images_not_supported")


@pytest.mark.parametrize("name, fmt", [("marv.jsonl", "chat"), ("marv_dpo.jsonl", "preference")])
def test_samples_are_clean(name, fmt):
    a = analyze(SAMPLES / name)
    assert a.format == fmt and Report.of(a).findings == []


def test_reinforcement_and_completion_formats(write_jsonl):
    rft = [{"messages": [U(f"Is {i} even?")], "answer": "yes" if i % 2 == 0 else "no"} for i in range(12)]
    a = analyze(write_jsonl(rft))
    assert a.format == "reinforcement" and Report.of(a).findings == []
    comp = [{"prompt": f"{i}+{i}=", "completion": f" {2 * i}"} for i in range(12)]
    b = analyze(write_jsonl(comp, name="c.jsonl"))
    assert b.format == "completion" and Report.of(b).findings == []
    bad = comp + [{"prompt": 1, "completion": "x"}]
    assert (13, "prompt") in where(write_jsonl(bad, name="d.jsonl"), "invalid_completion")


def test_broken_sample_reports_each_problem_on_its_line():
    got = {(f.line, f.code) for f in findings(SAMPLES / "broken.jsonl")}
    expected = {(2, "invalid_json"), (3, "unrecognized_role"), (4, "example_missing_assistant_message"),
                (5, "message_missing_key"), (6, "blank_line"), (7, "invalid_weight"), (8, "special_token"),
                (9, "duplicate_example"), (10, "data_type"), (11, "mixed_format"), (12, "blank_assistant_content"),
                (13, "weight_not_on_assistant"), (15, "image_not_in_user_message"),
                (16, "message_unrecognized_key")}
    assert got == expected


def test_plain_message_fast_path_says_and_counts_what_the_full_checks_do(monkeypatch):
    """The hot loop's shortcut for {"role", "content"} messages gives the same kind, counts, flags and findings as
    the full checks, on messages generated near and at the edge of that shape."""
    from hypothesis import given, settings, strategies as st

    from ftui.core import rules
    from ftui.core.tokens import counter

    count = counter("cl100k_base")
    text = st.sampled_from(["", " ", "\n\t", "Hi?", "a <|im_end|> b", "파인튜닝", "x" * 300, " lead", "<|endoftext|>"])
    role = st.sampled_from(["system", "user", "assistant", "tool", "developer", "robot", "", "<|im_start|>"])
    message = st.one_of(
        st.fixed_dictionaries({"role": role, "content": text}),
        st.fixed_dictionaries({"role": role, "content": st.one_of(text, st.none(), st.integers(), st.lists(text))}),
        st.fixed_dictionaries({"role": role, "content": text, "weight": st.sampled_from([0, 1, 2, "1"])}),
        st.fixed_dictionaries({"content": text, "name": text}),
        st.fixed_dictionaries({"role": st.one_of(role, st.lists(role)), "mood": text}))
    example = st.lists(message, min_size=1, max_size=5).map(lambda ms: {"messages": ms})

    def run(obj):
        said = []
        got = rules.ExampleChecker(count, "cl100k_base").check(obj, lambda *a: said.append(a))
        return got, said

    @settings(max_examples=400, deadline=None)
    @given(example)
    def same(obj):
        fast = run(obj)
        with monkeypatch.context() as m:
            m.setattr(rules, "_PLAIN_ROLES", {})  # no message takes the shortcut
            full = run(obj)
        assert fast == full

    same()
