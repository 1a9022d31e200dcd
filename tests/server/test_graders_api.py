"""OpenAI's graders API on `ftui serve`, through the SDK's own calls (`client.fine_tuning.alpha.graders.*`): a bad
grader is a 400 naming its field, a sample's failure is a reward of 0 with OpenAI's error flags, a python grader
that raises or loops affects only its run, and a score_model grader is judged by a model the backend serves."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.slow


def test_validate_and_run_through_the_sdk(server):
    client = server.client()
    grader = {"type": "multi", "name": "stars", "calculate_output": "0.2 * fmt + 0.8 * correct",
              "graders": {"fmt": {"type": "python", "name": "fmt", "source":
                                  "def grade(sample, item):\n    return float(sample['output_text'] in '12345')"},
                          "correct": {"type": "string_check", "name": "correct", "operation": "eq",
                                      "input": "{{ sample.output_text }}", "reference": "{{ item.star }}"}}}
    assert client.fine_tuning.alpha.graders.validate(grader=grader).grader.name == "stars"

    r = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="4", item={"star": "4"})
    assert r.reward == pytest.approx(1.0) and r.sub_rewards == {"fmt": 1.0, "correct": 1.0}
    assert r.metadata.name == "stars" and r.metadata.type == "multi" and r.metadata.execution_time > 0
    assert not any(v for k, v in r.metadata.errors.model_dump().items() if isinstance(v, bool))
    r = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="3", item={"star": "4"})
    assert r.reward == pytest.approx(0.2)

    # a template naming a key the item lacks: reward 0 and OpenAI's flag, not an HTTP error
    r = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="4", item={"stars": "4"})
    assert r.reward == pytest.approx(0.2) and r.metadata.errors.invalid_variable_error

    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.alpha.graders.validate(grader={**grader, "calculate_output": "fmt + __import__('os')"})
    assert e.value.body["param"] == "grader.calculate_output"
    bad = {**grader, "graders": {**grader["graders"], "correct": {**grader["graders"]["correct"],
                                                                  "operation": "contains"}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.alpha.graders.run(grader=bad, model_sample="4")
    assert e.value.body["param"] == "grader.graders.correct.operation"
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.alpha.graders.run(grader=grader, model_sample="4", item=["not", "an", "object"])
    assert e.value.body["param"] == "item"


def test_a_python_grader_that_raises_is_its_runs_error_only(server):
    client = server.client()
    grader = {"type": "python", "name": "p", "source": "def grade(sample, item):\n    raise KeyError('star')"}
    r = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="4")
    assert r.reward == 0.0 and r.metadata.errors.python_grader_runtime_error
    assert "KeyError: 'star'" in r.metadata.errors.python_grader_runtime_error_details
    assert client.models.list().data  # the server goes on


def test_a_score_model_grader_is_judged_by_a_served_model(server):
    client = server.client()
    grader = {"type": "score_model", "name": "judge", "model": "smollm2-135m-instruct", "range": [0, 10],
              "input": [{"role": "user", "content": "Reply with only a number from 0 to 10: how good is this "
                                                    "answer to 'capital of France?': {{ sample.output_text }}"}],
              "sampling_params": {"max_completions_tokens": 8}}
    r = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="Paris")
    assert r.model_grader_token_usage_per_model["smollm2-135m-instruct"] > 20  # it read the prompt and answered
    assert r.reward == 10.0 and not r.metadata.errors.model_grader_parse_error  # greedy: the 135M judge says "10"
    r = client.fine_tuning.alpha.graders.run(grader={**grader, "model": "no-such-model"}, model_sample="Paris")
    assert r.reward == 0.0 and r.metadata.errors.model_grader_server_error
    assert "no-such-model" in r.metadata.errors.model_grader_server_error_details


def test_python_graders_need_a_key_or_the_flag(tmp_path, model_cache):
    """A python grader runs code as the server's user: a server without an API key (anyone on this machine may call
    it) refuses them unless started with --python-graders; with a key they run."""
    from tests.backend import Server

    grader = {"type": "multi", "name": "m", "calculate_output": "a", "graders": {"a": {
        "type": "python", "name": "a", "source": "def grade(sample, item):\n    return 1.0"}}}
    open_server = Server(tmp_path / "open").start()
    keyed = Server(tmp_path / "keyed", api_key="sk-test-graders").start()
    try:
        with pytest.raises(openai.BadRequestError) as e:
            open_server.client().fine_tuning.alpha.graders.run(grader=grader, model_sample="x")
        assert e.value.body["param"] == "grader.graders.a.type" and "--python-graders" in e.value.body["message"]
        assert keyed.client().fine_tuning.alpha.graders.run(grader=grader, model_sample="x").reward == 1.0
    finally:
        open_server.stop()
        keyed.stop()
