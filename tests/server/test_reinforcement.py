"""Reinforcement fine-tuning on `ftui serve` through the SDK (`method: reinforcement` with an OpenAI grader): the job
samples answers, grades them, trains, validates, reports OpenAI's RFT metrics and keeps the best checkpoints; bad RFT
data fails naming the line; a grader under which every starting sample scores the same fails saying so."""

from __future__ import annotations

import base64
import csv
import io
import json
import time

import openai
import pytest

from ftui.server.store import Store
from tests.backend import Server, wait_for
from tests.helpers import SAMPLES

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"
SYSTEM = "Rate the app review from 1 to 5 stars. Answer with the digit only."
# partial credit (fuzzy match), so a group's samples differ and every step has something to learn from
GRADER = {"type": "text_similarity", "name": "close", "evaluation_metric": "fuzzy_match",
          "input": "{{ sample.output_text }}", "reference": "{{ item.star }} stars"}


def rft_lines(n: int, skip: int = 0) -> bytes:
    rows = list(csv.DictReader((SAMPLES / "reviews.csv").open(encoding="utf-8")))[skip:skip + n]
    return "".join(json.dumps({"messages": [{"role": "system", "content": SYSTEM},  # reviews cut short: cheap steps
                                            {"role": "user", "content": r["review"][:60]}], "star": r["star"]})
                   + "\n" for r in rows).encode()


def test_a_reinforcement_job_samples_grades_trains_reports_and_survives_pause_and_kill_9(tmp_path, model_cache):
    """One RFT job through the SDK: it samples, grades, trains and validates, reporting OpenAI's RFT metrics; it is
    paused after a step and resumed, then the server is killed (-9) after the validation at step 4 and restarted on
    the same data dir, which resumes from the state saved there. Each step is reported once, and the steps trained
    again after the restart report what the interrupted run had reported for them (the same adapter, optimizer
    state and samples: a true resume, not a re-run). The three best checkpoints are kept, each validation step keeps
    one set of rollouts, and the results CSV and the model answer."""
    data = tmp_path / "data"
    s = Server(data).start()
    c = s.client()
    train = c.files.create(file=("rft.jsonl", rft_lines(16)), purpose="fine-tune")
    valid = c.files.create(file=("rft-valid.jsonl", rft_lines(1, skip=40)), purpose="fine-tune")
    job = c.fine_tuning.jobs.create(
        model=BASE, training_file=train.id, validation_file=valid.id, seed=1, suffix="rft",
        method={"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {
            "n_epochs": 1, "batch_size": 2, "compute_multiplier": 0.5, "eval_interval": 2,
            "reasoning_effort": "low"}}})
    assert job.method.type == "reinforcement" and job.method.reinforcement.grader.name == "close"

    def reports(client) -> list[dict]:
        return [e.data for e in reversed(client.fine_tuning.jobs.list_events(job.id, limit=200).data)
                if e.type == "metrics"]

    wait_for(c, job.id, predicate=lambda j: j.status == "running" and len(reports(c)) >= 1, timeout=300)
    assert c.fine_tuning.jobs.pause(job.id).status == "paused"
    wait_for(c, job.id, timeout=120, predicate=lambda j: any(e.message.startswith("Fine-tuning job paused at step")
                                                             for e in c.fine_tuning.jobs.list_events(j.id).data))
    assert c.fine_tuning.jobs.resume(job.id).status == "queued"
    # killed once the runner has recorded an even step (4 or 6) as done: it saved its state at that validation and
    # went on to the next step, which the orphaned runner finishes (reporting it) before it notices and stops; the
    # restart resumes from the saved state, so that next step is trained again
    store = Store(data)
    deadline = time.time() + 300
    while not ((step := store.get_job(job.id)["step"] or 0) >= 4 and step % 2 == 0):
        assert time.time() < deadline, "the job never reached step 4"
        time.sleep(0.02)
    s.kill9()
    saved = step
    before: dict[int, dict] = {}
    try:  # what the orphaned runner wrote, read before a new server forgets it
        while saved + 1 not in before:
            before = {e["data"]["step"]: e["data"] for e in store.list_events(job.id, 200, None)[0]
                      if e["type"] == "metrics"}
            assert time.time() < deadline + 120, "the orphaned runner never finished its step"
            time.sleep(0.1)
    finally:
        store.close()
    s2 = Server(data).start()
    try:
        _check_the_finished_job(s2.client(), job.id, before)
    finally:
        s2.stop()


def _check_the_finished_job(client, job_id: str, before: dict[int, dict]) -> None:
    done = wait_for(client, job_id, timeout=600)
    assert done.status == "succeeded", done.error
    hp = done.method.reinforcement.hyperparameters
    assert (hp.n_epochs, hp.batch_size, hp.compute_multiplier, hp.eval_interval) == (1, 2, 0.5, 2)
    events = list(reversed(client.fine_tuning.jobs.list_events(job_id, limit=200).data))
    messages = [e.message for e in events]
    assert any(m.startswith("The starting model's reward on 8 prompts × 2 samples: mean ") for m in messages)
    last = max(before)  # the step the orphaned runner finished after the kill: trained again from the state before it
    assert any(m.startswith(f"Resuming fine-tuning from step {last - 1}/8") for m in messages)
    steps = [e.data for e in events if e.type == "metrics"]
    assert [d["step"] for d in steps] == list(range(1, 9)), "each step reported once"
    for d in steps:
        assert d["samples"] == 4 and 0 <= d["train_mean_reward"] <= 1 and 0 <= d["frac_reward_zero_std"] <= 1
        assert d["scores"]["graders"][0] == {"name": "close", "type": "text_similarity",
                                             "train_reward_mean": d["train_mean_reward"]}
        validated = d["step"] % 2 == 0
        assert set(d["timing"]["step"]) == {"sampling", "grading", "training", "full_iteration"} | (
            {"eval"} if validated else set())
        if validated:
            assert 0 <= d["full_valid_mean_reward"] <= 1 and d["full_valid_mean_parse_error"] == 0
        assert 1 <= d["completion_tokens_mean"] <= 16
        if d["step"] == last:  # trained again after the restart: what the interrupted run had reported
            was = before[last]
            assert (d["train_mean_reward"], d["completion_tokens_mean"]) == pytest.approx(
                (was["train_mean_reward"], was["completion_tokens_mean"]), abs=1e-6), d["step"]
            assert d["train_loss"] == pytest.approx(was["train_loss"], rel=2e-2, abs=2e-3), d["step"]
    assert messages[-1] == "The job has successfully completed"
    assert any(m.startswith("Step 8/8 , train mean reward=") and "full validation mean reward=" in m
               for m in messages)
    # a checkpoint at each of the four validations; the three best by validation reward are kept
    ckpts = client.fine_tuning.jobs.checkpoints.list(job_id).data
    validations = [d for d in steps if "full_valid_mean_reward" in d]
    best = sorted((d["full_valid_mean_reward"] for d in validations), reverse=True)[:3]
    assert len(validations) == 4 and sorted(c.metrics.to_dict()["full_valid_mean_reward"] for c in ckpts) == \
        sorted(best)
    # each validation step's rollouts (an ftui endpoint): the prompt, its samples and the rewards the grader gave
    listed = client.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts", cast_to=object)
    assert [r["step"] for r in listed["data"]] == [2, 4, 6, 8] and listed["has_more"] is False
    for r, d in zip(listed["data"], validations):
        assert (r["object"], r["prompts"], r["samples"]) == ("ftui.rollouts", 1, 1)
        assert r["mean_reward"] == d["full_valid_mean_reward"]
    page = client.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts", cast_to=object,
                      options={"params": {"after": 4, "limit": 1}})
    assert [r["step"] for r in page["data"]] == [6] and page["has_more"] is True
    last = client.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts/8", cast_to=object)
    [prompt] = last["data"]
    review = json.loads(rft_lines(1, skip=40))
    assert prompt["prompt"] == review["messages"][-1]["content"] and prompt["item"] == {"star": review["star"]}
    [sample] = prompt["samples"]
    regraded = client.fine_tuning.alpha.graders.run(grader=GRADER, model_sample=sample["text"], item=prompt["item"])
    assert sample["reward"] == pytest.approx(regraded.reward, abs=1e-5) and sample["errors"] == []
    assert prompt["mean_reward"] == sample["reward"] == last["mean_reward"]
    with pytest.raises(openai.NotFoundError):
        client.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts/5", cast_to=object)
    with pytest.raises(openai.BadRequestError) as e:
        client.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts", cast_to=object, options={"params": {"after": 9}})
    assert e.value.body["param"] == "after"
    text = base64.b64decode(client.files.content(done.result_files[0]).read()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0].keys() >= {"step", "train_mean_reward", "frac_reward_zero_std", "full_valid_mean_reward"}
    answer = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=4, temperature=0,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content


def test_rft_data_and_graders_are_checked_before_training(server):
    client = server.client()
    good = client.files.create(file=("rft.jsonl", rft_lines(12)), purpose="fine-tune")

    def job(grader, training_file=good.id) -> str:
        return client.fine_tuning.jobs.create(model=BASE, training_file=training_file, method={
            "type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {
                "n_epochs": 1, "compute_multiplier": 0.5, "reasoning_effort": "low"}}}).id

    with pytest.raises(openai.BadRequestError) as e:
        job({**GRADER, "evaluation_metric": "cosine"})
    assert e.value.body["param"] == "method.reinforcement.grader.evaluation_metric"
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.jobs.create(model=BASE, training_file=good.id,
                                       method={"type": "reinforcement", "reinforcement": {}})
    assert e.value.body["param"] == "method.reinforcement.grader"
    # a line without the key the grader reads fails validation, naming the line
    lines = rft_lines(12).splitlines(keepends=True)
    lines[4] = json.dumps({"messages": json.loads(lines[4])["messages"]}).encode() + b"\n"
    bad = client.files.create(file=("rft-bad.jsonl", b"".join(lines)), purpose="fine-tune")
    failed = wait_for(client, job(GRADER, bad.id))
    assert failed.status == "failed" and failed.error.param == "training_file"
    assert "line 5: the grader reads {{ item.star }}, which this line does not have" in failed.error.message
    # a grader that every sample of the starting model satisfies: nothing to learn, said before training
    always = {"type": "string_check", "name": "always", "operation": "ne", "input": "{{ sample.output_text }}",
              "reference": "\u0000"}
    failed = wait_for(client, job(always))
    assert failed.status == "failed" and "scored 1: the grader gives nothing to learn from" in failed.error.message
