"""The grader engine (ftui/core/graders): OpenAI's templating and every grader type against hand-computed rewards,
the validation errors naming the field, the error categories, and python graders that raise, loop or allocate
10 GB affecting only their own sample."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from ftui.core.graders import Engine, GraderError, JudgeError, check
from ftui.core.graders.template import make_sample, render

ITEM = {"answer": "Paris", "stars": 4, "tags": ["a", "b"], "meta": {"lang": "fr"}}


def sc(op: str, inp: str = "{{ sample.output_text }}", ref: str = "{{ item.answer }}") -> dict:
    return {"type": "string_check", "name": "s", "operation": op, "input": inp, "reference": ref}


def run(grader: dict, text: str, item: dict | None = ITEM, **kw) -> dict:
    with Engine(grader, **kw) as e:
        return e.run(text, item)


def flags(result: dict) -> list[str]:
    return sorted(k for k, v in result["metadata"]["errors"].items() if v is True)


def test_templates_read_items_and_samples_as_openai_names_them():
    sample = make_sample('{"city": "Paris", "n": [1, 2]}', [{"function": {"name": "lookup"}}])
    assert render("{{item.answer}} {{ item.stars }} {{ item.meta.lang }} {{ item.tags[1] }}", sample, ITEM) == \
        "Paris 4 fr b"
    assert render("{{ sample.output_json.city }}/{{ sample.output_json.n }}", sample, ITEM) == "Paris/[1, 2]"
    assert render("{{ sample.output_tools[0].function.name }}", sample, ITEM) == "lookup"


@pytest.mark.parametrize(("op", "text", "reward"), [
    ("eq", "Paris", 1.0), ("eq", "paris", 0.0), ("eq", "Paris.", 0.0),
    ("ne", "Paris", 0.0), ("ne", "Lyon", 1.0),
    ("like", "It is Paris.", 1.0), ("like", "it is paris", 0.0),
    ("ilike", "it is PARIS", 1.0), ("ilike", "Lyon", 0.0),
])
def test_string_check(op, text, reward):
    r = run(sc(op), text)
    assert r["reward"] == reward and flags(r) == []
    assert r["metadata"]["name"] == "s" and r["metadata"]["type"] == "string_check"


def test_text_similarity_metrics_are_the_libraries_values():
    from nltk.translate.gleu_score import sentence_gleu
    from rapidfuzz import fuzz, utils
    from rouge_score import rouge_scorer

    def ts(metric: str, text: str, ref: str) -> float:
        return run({"type": "text_similarity", "name": "t", "evaluation_metric": metric,
                    "input": "{{ sample.output_text }}", "reference": ref}, text)["reward"]

    hyp, ref = "the cat is on the mat", "the cat sat on the mat"
    assert ts("fuzzy_match", "The capital is Paris", "paris") == \
        fuzz.WRatio("The capital is Paris", "paris", processor=utils.default_process) / 100
    assert ts("gleu", hyp, ref) == sentence_gleu([ref.split()], hyp.split()) == 0.5
    assert ts("rouge_1", hyp, ref) == pytest.approx(5 / 6)  # 5 of 6 unigrams both ways
    assert ts("rouge_2", hyp, ref) == pytest.approx(3 / 5)  # the cat, on the, the mat
    assert ts("rouge_l", hyp, ref) == rouge_scorer.RougeScorer(["rougeL"]).score(ref, hyp)["rougeL"].fmeasure
    assert ts("rouge_5", hyp, ref) == 0.0
    for metric in ("bleu", "gleu", "fuzzy_match", "rouge_3"):
        assert ts(metric, ref, ref) == pytest.approx(1.0), metric  # identical: full marks
    assert ts("meteor", ref, ref) == pytest.approx(1 - 0.5 * (1 / 6) ** 3)  # METEOR's one-chunk penalty
    assert 0 < ts("bleu", hyp, ref) < 1 and 0 < ts("meteor", hyp, ref) < 1


def test_multi_combines_sub_graders_with_a_safe_formula():
    g = {"type": "multi", "name": "m", "calculate_output": "0.3 * fmt + 0.7 * correct",
         "graders": {"fmt": {"type": "python", "name": "fmt",
                             "source": "import re\ndef grade(sample, item):\n"
                                       "    return 1.0 if re.fullmatch(r'[1-5]', sample['output_text']) else 0.0"},
                     "correct": sc("eq", ref="{{ item.stars }}")}}
    assert run(g, "4")["reward"] == pytest.approx(1.0)
    r = run(g, "3")
    assert r["reward"] == pytest.approx(0.3) and r["sub_rewards"] == {"fmt": 1.0, "correct": 0.0}
    assert run(g, "four stars")["reward"] == 0.0
    both = dict(g, calculate_output="max(fmt, correct) ^ 2 - abs(-1) + sqrt(4) * floor(1.7) / ceil(0.2) + "
                                    "log(exp(0))")
    assert run(both, "3")["reward"] == pytest.approx(1.0 - 1 + 2)


@pytest.mark.parametrize("bad", ["__import__('os').system('true')", "fmt.__class__", "open('x')", "fmt[0]",
                                 "lambda: 1", "fmt if 1 else 0", "nothing + 1", "1 +", "'a' * 3",
                                 "(" * 300 + "1" + ")" * 300, "-" * 2000 + "1", "+".join(["fmt"] * 1200)])
def test_a_formula_runs_no_code_and_names_what_it_refuses(bad):
    g = {"type": "multi", "name": "m", "calculate_output": bad, "graders": {"fmt": sc("eq")}}
    with pytest.raises(GraderError) as e:
        check(g)
    assert e.value.param == "grader.calculate_output"


@pytest.mark.parametrize(("grader", "param", "says"), [
    ({"type": "nope", "name": "x"}, "grader.type", "type must be one of"),
    ({"type": "string_check", "name": "x", "input": "a", "reference": "b", "operation": "contains"},
     "grader.operation", "operation must be one of eq, ne, like, ilike"),
    ({"type": "string_check", "input": "a", "reference": "b", "operation": "eq"}, "grader.name", "name is required"),
    ({"type": "string_check", "name": "x", "input": "{{ answer }}", "reference": "b", "operation": "eq"},
     "grader.input", "the namespace must be item or sample"),
    ({"type": "text_similarity", "name": "x", "input": "a", "reference": "b", "evaluation_metric": "cosine"},
     "grader.evaluation_metric", "cosine needs OpenAI's embeddings"),
    ({"type": "python", "name": "x", "source": "def grade(sample):\n    return 1"}, "grader.source",
     "two arguments"),
    ({"type": "python", "name": "x", "source": "def grade(s, i):\n  return (1"}, "grader.source", "does not compile"),
    ({"type": "python", "name": "x", "source": "x = 1\n" * 50_000}, "grader.source", "256 kB"),
    ({"type": "score_model", "name": "x", "model": "m", "input": [{"role": "user", "content": "hi"}],
      "range": [1, 0]}, "grader.range", "the lower first"),
    ({"type": "label_model", "name": "x", "model": "m", "input": [{"role": "user", "content": "hi"}],
      "labels": ["yes", "no"], "passing_labels": ["maybe"]}, "grader.passing_labels", "of the labels"),
    ({"type": "multi", "name": "x", "calculate_output": "a", "graders": {"a": {
        "type": "multi", "name": "y", "calculate_output": "1", "graders": {}}}}, "grader.graders.a.type",
     "cannot hold another multi"),
    ({"type": "multi", "name": "x", "calculate_output": "a", "graders": {"a": {
        "type": "string_check", "name": "y", "input": "a", "reference": "b", "operation": "is"}}},
     "grader.graders.a.operation", "operation must be"),
])
def test_a_bad_grader_is_refused_naming_the_field(grader, param, says):
    with pytest.raises(GraderError) as e:
        check(grader)
    assert e.value.param == param and says in str(e.value)


def test_errors_are_counted_in_openais_categories_and_score_zero():
    r = run(sc("eq", ref="{{ item.missing }}"), "Paris")
    assert r["reward"] == 0.0 and flags(r) == ["invalid_variable_error"]
    r = run(sc("eq", inp="{{ sample.output_json.city }}"), "not json")
    assert r["reward"] == 0.0 and flags(r) == ["sample_parse_error"]
    assert run(sc("eq", inp="{{ sample.output_json.city }}"), '{"city": "Paris"}')["reward"] == 1.0
    for formula_ in ("a / b", "log(b)", "min(a)", "9 ^ 9 ^ 9 ^ 9"):  # 1/0, log(0), one number, overflow
        r = run({"type": "multi", "name": "m", "calculate_output": formula_, "graders": {
            "a": sc("eq"), "b": sc("ne")}}, "Paris")
        assert r["reward"] == 0.0 and flags(r) == ["other_error"], formula_


def test_python_graders_errors_stay_with_their_sample():
    src = """
import time
def grade(sample, item):
    t = sample["output_text"]
    if t == "raise":
        raise ValueError("no")
    if t == "loop":
        while True:
            pass
    if t == "sleep":
        time.sleep(60)
    if t == "alloc":
        x = bytearray(10 * 1024 ** 3)
    if t == "text":
        return "1"
    if t == "nan":
        return float("nan")
    if t == "net":
        import socket
        socket.create_connection(("1.1.1.1", 80), timeout=3)
    print("noise on stdout")
    return len(t) / 10
"""
    g = {"type": "python", "name": "p", "source": src}
    with Engine(g, python_timeout=2) as e:
        results = {t: e.run(t, {}) for t in ("ok", "raise", "loop", "alloc", "sleep", "text", "nan", "net",
                                             "after")}
    assert results["ok"]["reward"] == pytest.approx(0.2) and flags(results["ok"]) == []
    assert results["after"]["reward"] == pytest.approx(0.5) and flags(results["after"]) == []
    for bad in ("raise", "loop", "alloc", "sleep", "text", "nan", "net"):
        r = results[bad]
        assert r["reward"] == 0.0 and flags(r) == ["python_grader_runtime_error"], (bad, r)
    errors = {k: results[k]["metadata"]["errors"]["python_grader_runtime_error_details"] for k in results}
    assert "ValueError: no" in errors["raise"]
    assert "ran over its 2 s limit" in errors["loop"] and "ran over its 2 s limit" in errors["sleep"]
    assert "MemoryError" in errors["alloc"]
    assert "returned str '1', not a finite number" in errors["text"]
    assert "Network is unreachable" in errors["net"] or "Errno" in errors["net"]


def test_a_python_grader_that_does_not_load_is_a_server_error():
    r = run({"type": "python", "name": "p", "source": "import no_such_module_here\ndef grade(s, i):\n    return 1"},
            "x")
    assert r["reward"] == 0.0 and flags(r) == ["python_grader_server_error"]
    assert "No module named 'no_such_module_here'" in r["metadata"]["errors"]["python_grader_server_error_type"]


def test_model_graders_ask_the_judge_and_read_its_answer():
    asked = []

    def judge(model, messages, params):
        asked.append((model, messages, params))
        answer = {"Paris": '{"result": 0.9, "steps": []}', "Lyon": "I would say 3 out of 10", "?": "no idea",
                  "refuse": ""}[messages[-1]["content"]]
        if not answer:
            raise JudgeError("refused", refusal=True)
        return answer, 12

    score = {"type": "score_model", "name": "judge", "model": "smollm2-135m-instruct", "range": [0, 10],
             "input": [{"role": "system", "content": "Score the answer to {{ item.answer }}."},
                       {"role": "user", "content": [{"type": "input_text", "text": "{{ sample.output_text }}"}]}],
             "sampling_params": {"temperature": 0}}
    r = run(score, "Paris", judge=judge)
    assert r["reward"] == pytest.approx(0.9) and r["model_grader_token_usage_per_model"] == \
        {"smollm2-135m-instruct": 12}
    assert asked[0] == ("smollm2-135m-instruct", [{"role": "system", "content": "Score the answer to Paris."},
                                                  {"role": "user", "content": "Paris"}], {"temperature": 0})
    assert run(score, "Lyon", judge=judge)["reward"] == 3.0
    assert flags(run(score, "?", judge=judge)) == ["model_grader_parse_error"]
    assert flags(run(score, "refuse", judge=judge)) == ["model_grader_refusal_error"]
    assert flags(run(score, "Paris")) == ["model_grader_server_error"]  # no judge here
    label = {"type": "label_model", "name": "l", "model": "m", "labels": ["correct", "incorrect"],
             "passing_labels": ["correct"], "input": [{"role": "user", "content": "{{ sample.output_text }}"}]}
    said = {"a": "Correct.", "b": "incorrect", "c": "The answer is correct, I think", "d": "correct or incorrect"}
    rewards = {k: run(label, k, judge=lambda m, msgs, p: (said[msgs[0]["content"]], 3))["reward"] for k in said}
    assert rewards == {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}


@given(st.text(max_size=40), st.text(max_size=40))
def test_string_check_matches_its_definition(text, ref):
    item = {"r": ref}
    got = {op: run(sc(op, ref="{{ item.r }}"), text, item)["reward"] for op in ("eq", "ne", "like", "ilike")}
    assert got == {"eq": float(text == ref), "ne": float(text != ref), "like": float(ref in text),
                   "ilike": float(ref.lower() in text.lower())}


@given(st.floats(0, 1), st.floats(0, 1), st.floats(-3, 3))
def test_formulas_compute_what_python_computes(a, b, w):
    from ftui.core.graders import formula

    tree = formula.parse("w * a + (1 - w) * b - min(a, b) ^ 2", {"a", "b", "w"})
    assert math.isclose(formula.evaluate(tree, {"a": a, "b": b, "w": w}), w * a + (1 - w) * b - min(a, b) ** 2,
                        abs_tol=1e-12)


def test_ftui_grade_on_the_command_line(tmp_path):
    import json
    import subprocess
    import sys

    grader = {"type": "multi", "name": "stars", "calculate_output": "0.2 * fmt + 0.8 * correct",
              "graders": {"fmt": {"type": "python", "name": "fmt", "source":
                                  "def grade(sample, item):\n    return float(sample['output_text'] in '12345')"},
                          "correct": sc("eq", ref="{{ item.star }}")}}
    path = tmp_path / "stars.json"
    path.write_text(json.dumps({"grader": grader}))

    def grade(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ftui.cli", "grade", str(path), *args], capture_output=True,
                              text=True, timeout=60)

    res = grade("--sample", "4", "--item", '{"star": "4"}')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("reward 1  (stars, multi, ")
    assert "  fmt                  1\n  correct              1\n" in res.stdout
    res = grade("--sample", "4", "--item", '{"stars": "4"}', "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["reward"] == pytest.approx(0.2) and doc["metadata"]["errors"]["invalid_variable_error"] is True
    res = grade("--sample", "4")
    assert res.returncode == 1 and "error: invalid_variable_error: item.star does not exist" in res.stdout
    res = grade("--sample", "4", "--item", "[1]")
    assert res.returncode == 2 and "--item must be a JSON object" in res.stderr
    path.write_text(json.dumps({**grader, "calculate_output": "fmt + nope"}))
    res = grade("--sample", "4")
    assert res.returncode == 2 and "grader.calculate_output: calculate_output names 'nope'" in res.stderr
    assert "Traceback" not in res.stderr
