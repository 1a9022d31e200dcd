"""ftui.core.scoring and ftui.core.evalset: pure tests (normalisation, label detection, confusion matrix, McNemar on
known tables, reading evaluation data by line)."""
from __future__ import annotations

import json
import math

import pytest

from ftui.core import scoring
from ftui.core.evalset import EvalDataError, load


def test_normalise_exact_and_contains():
    assert scoring.normalise("  The Answer:  \n 42. ") == "the answer: 42"
    assert scoring.normalise('"Paris."') == "paris"
    assert scoring.normalise("**4**") == "4"
    assert scoring.normalise("3.5") == "3.5" and scoring.normalise("-3") == "-3"
    assert scoring.exact("PARIS!", "paris") and not scoring.exact("Paris, France", "paris")
    assert scoring.contains("It is Paris, France.", "paris") and not scoring.contains("", "x")
    assert not scoring.contains("anything", "")


def test_label_set_and_the_label_an_answer_gives():
    refs = ["1", "2", "5", "5", "4", "3", "1", "2", "3", "4", "5", "5"]
    labels = scoring.label_set(refs)
    assert labels == ["1", "2", "3", "4", "5"]
    assert scoring.label_set([f"free text {i}" for i in range(30)]) is None  # every answer different
    assert scoring.predicted_label("4", labels) == "4"
    assert scoring.predicted_label("I'd give it 4 stars.", labels) == "4"
    assert scoring.predicted_label("between 3 and 4", labels) is None  # two labels: no answer
    assert scoring.predicted_label("14", labels) is None  # a word, not a digit inside a number
    assert scoring.predicted_label("great app", labels) is None


def test_scores_per_label_and_confusion_matrix():
    refs = ["a", "a", "a", "b", "b", "c"]
    answers = ["a", "a", "b", "b", "nonsense", "a"]
    s = scoring.score(answers, refs, ["a", "b", "c"])
    assert s.n == 6 and s.exact_match == pytest.approx(3 / 6) and s.accuracy == pytest.approx(3 / 6)
    assert s.confusion == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]  # last column: no label given
    assert s.outside == 1
    a, b, c = s.per_label["a"], s.per_label["b"], s.per_label["c"]
    assert (a["precision"], a["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b["precision"], b["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 1)
    assert s.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert scoring.majority_rate(refs) == pytest.approx(0.5)


def test_mcnemar_exact_on_known_tables():
    # b=1, c=9: 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11/1024
    assert scoring.mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert scoring.mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert scoring.mcnemar_exact(0, 0) == 1.0 and scoring.mcnemar_exact(5, 5) == 1.0
    # b=0, c=12: 2 / 4096
    assert scoring.mcnemar_exact(0, 12) == pytest.approx(2 / 4096)
    assert math.isclose(scoring.mcnemar_exact(3, 17), 2 * sum(math.comb(20, i) for i in range(4)) / 2 ** 20)
    p = scoring.paired([True, True, False, False, True], [False, True, True, False, False])
    assert (p.wins, p.losses, p.ties_right, p.ties_wrong) == (2, 1, 1, 1)
    assert p.p_value == pytest.approx(1.0)


def test_evaluation_data_by_line(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "Rate."}, {"role": "user", "content": "great"},
                      {"role": "assistant", "content": "5"}]},
        {"messages": [{"role": "user", "content": "no answer"}]},
        "not an object",
        {"prompt": "Review: bad\n\n###\n\n", "completion": " 1"},
        {"input": {"messages": [{"role": "user", "content": "q"}]},
         "preferred_output": [{"role": "assistant", "content": "good"}],
         "non_preferred_output": [{"role": "assistant", "content": "bad"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{"id": "x"}]}]},
    ]
    p = tmp_path / "test.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    data = load(p)
    assert [e.line for e in data.examples] == [1, 4, 5]
    assert data.examples[0].messages[0]["content"] == "Rate." and data.examples[0].reference == "5"
    assert data.examples[1].reference == "1" and data.examples[2].reference == "good"
    assert [(i.line, i.message.split(":")[0]) for i in data.issues] == [
        (2, "no assistant message to use as the reference"), (3, "expected a JSON object, got a string"),
        (6, "the last assistant message is a tool call or has no text"), (7, "invalid JSON")]
    assert len({e.id for e in data.examples}) == 3
    assert load(p, limit=2).examples[-1].line == 4
    csv = tmp_path / "r.csv"
    csv.write_text("review,star\nok,3\n")
    with pytest.raises(EvalDataError, match="ftui prepare"):
        load(csv)


def test_running_cost_of_fine_tuned_answers():
    from ftui.core.catalog import inference_cost

    # gpt-4.1-mini fine-tuned inference: $0.80 in, $3.20 out per 1M tokens (the reference's pricing table)
    assert inference_cost("ft:gpt-4.1-mini-2025-04-14:org::abc", 1_000_000, 500_000) == pytest.approx(0.8 + 1.6)
    assert inference_cost("gpt-4.1-mini", 1000, 10) is None  # base models: no fine-tuned price
    assert inference_cost("ft:smollm2-135m-instruct:local::x", 1000, 10) is None  # local: free, no price


def test_graded_evaluation_data_takes_prompts_and_keeps_the_lines_keys(tmp_path):
    """With a grader (`ftui eval --grader`) a line that ends before the answer (RFT data) is a prompt, and every line's
    other keys are the grader's item (a chat line's answer as item.reference)."""
    path = tmp_path / "rft.jsonl"
    rows = [{"messages": [{"role": "user", "content": "Rate: great"}], "star": "5"},
            {"messages": [{"role": "user", "content": "Rate: great"}], "star": "4"},
            {"messages": [{"role": "user", "content": "Rate: bad"}, {"role": "assistant", "content": "1"}],
             "id": 7}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = load(path)
    assert [e.line for e in plain.examples] == [3] and plain.n_issues == 2
    data = load(path, prompts=True)
    assert [e.reference for e in data.examples] == ["", "", "1"]
    assert [e.item for e in data.examples] == [{"star": "5"}, {"star": "4"}, {"id": 7, "reference": "1"}]
    assert data.examples[0].messages == rows[0]["messages"]
    assert data.examples[0].id != data.examples[1].id  # the same prompt, graded against different items
