"""The local backend through the official SDK: files, SFT and DPO jobs, events, checkpoints, chat, errors."""
from __future__ import annotations

import base64
import csv
import io
import json
import urllib.error
import urllib.request

import openai
import pytest

from tests.helpers import SAMPLES
from tests.server.conftest import Server, check_schema, wait_for

pytestmark = pytest.mark.slow
MARV_SYSTEM = "Marv is a factual chatbot that is also sarcastic."


def upload(client, name):
    with open(SAMPLES / name, "rb") as f:
        return client.files.create(file=f, purpose="fine-tune")


@pytest.fixture(scope="module")
def sft_job(client):
    train = upload(client, "marv.jsonl")
    valid = upload(client, "marv_valid.jsonl")
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=train.id, validation_file=valid.id, suffix="marv", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}})
    assert job.status == "validating_files"
    check_schema("FineTuningJob", job)
    return wait_for(client, job.id)


def test_files_roundtrip(client):
    f = upload(client, "marv.jsonl")
    check_schema("OpenAIFile", f)
    assert f.purpose == "fine-tune" and f.bytes == (SAMPLES / "marv.jsonl").stat().st_size
    assert client.files.retrieve(f.id).filename == "marv.jsonl"
    assert client.files.content(f.id).read() == (SAMPLES / "marv.jsonl").read_bytes()
    assert f.id in [x.id for x in client.files.list(purpose="fine-tune").data]
    deleted = client.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(f.id)
    check_schema("ErrorResponse", err.value.body if "error" in err.value.body else {"error": err.value.body})


def test_upload_rejects_a_line_that_is_not_an_object(client, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"messages": []}\n[1, 2]\n')
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=p.open("rb"), purpose="fine-tune")
    assert "Line 2 is not a dictionary" in err.value.message


def test_sft_job_succeeds_with_openai_shaped_events(client, sft_job):
    job = sft_job
    assert job.status == "succeeded", job.error
    check_schema("FineTuningJob", job)
    assert job.fine_tuned_model.startswith("ft:smollm2-135m-instruct:local:marv:")
    assert job.hyperparameters.n_epochs == 3 and job.trained_tokens > 0 and job.seed == 7
    events = []
    page = client.fine_tuning.jobs.list_events(job.id, limit=5)
    events += page.data
    while page.has_more:  # newest first, paged with `after`
        page = client.fine_tuning.jobs.list_events(job.id, limit=5, after=events[-1].id)
        events += page.data
    for e in events:
        check_schema("FineTuningJobEvent", e)
    events.reverse()
    messages = [e.message for e in events]
    assert messages[0].startswith("Created fine-tuning job")
    assert any(m.startswith("Validating training file") for m in messages)
    assert f"New fine-tuned model created: {job.fine_tuned_model}" in messages
    assert messages[-1] == "The job has successfully completed"
    metrics = [e.data for e in events if e.type == "metrics"]
    steps = [m["step"] for m in metrics]
    assert steps == list(range(1, len(steps) + 1)) and metrics[0]["total_steps"] == len(steps) == 12
    assert all({"train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy"} <= set(m)
               for m in metrics)
    assert sum("full_valid_loss" in m for m in metrics) == 3  # one per epoch end
    first = sum(m["train_loss"] for m in metrics[:4]) / 4
    last = sum(m["train_loss"] for m in metrics[-4:]) / 4
    assert last < first * 0.8, (first, last)
    assert any(m.startswith("Step 12/12: training loss=") for m in messages)


def test_checkpoints_and_results_csv(client, sft_job):
    ckpts = client.fine_tuning.jobs.checkpoints.list(sft_job.id).data
    for c in ckpts:
        check_schema("FineTuningJobCheckpoint", c)
    assert [c.step_number for c in ckpts] == [12, 8, 4]
    assert ckpts[0].fine_tuned_model_checkpoint == f"{sft_job.fine_tuned_model}:ckpt-step-12"
    assert ckpts[0].metrics.train_loss is not None and ckpts[0].metrics.full_valid_loss is not None
    raw = client.files.content(sft_job.result_files[0]).read()
    text = base64.b64decode(raw).decode()  # as OpenAI serves it, and as the cookbook reads it
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
                             "full_valid_loss", "full_valid_mean_token_accuracy"]
    assert [int(r["step"]) for r in rows] == list(range(1, 13)) and float(rows[-1]["valid_loss"]) > 0
    # the full-validation metrics the events carry at each epoch end are in the CSV too
    assert [int(r["step"]) for r in rows if r["full_valid_loss"]] == [4, 8, 12]


def test_models_list_retrieve_and_chat(client, sft_job):
    ids = [m.id for m in client.models.list().data]
    assert "smollm2-135m-instruct" in ids and sft_job.fine_tuned_model in ids
    m = client.models.retrieve(sft_job.fine_tuned_model)
    check_schema("Model", m)
    msgs = [{"role": "system", "content": MARV_SYSTEM}, {"role": "user", "content": "What is the capital of Japan?"}]
    r = client.chat.completions.create(model=sft_job.fine_tuned_model, messages=msgs, temperature=0, max_tokens=24)
    check_schema("CreateChatCompletionResponse", r)
    assert r.choices[0].message.content.strip() and r.usage.completion_tokens > 0
    ckpt = client.fine_tuning.jobs.checkpoints.list(sft_job.id).data[-1].fine_tuned_model_checkpoint
    stream = client.chat.completions.create(model=ckpt, messages=msgs, temperature=0, max_tokens=16, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    for ch in chunks:
        check_schema("CreateChatCompletionStreamResponse", ch)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].choices == []
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    # the next turn of a streamed chat starts from the last turn's keys and values, and the usage says so
    long = [msgs[0], {"role": "user", "content": "What is the capital of Japan? " + "Answer in a word. " * 8}]
    turn = list(client.chat.completions.create(model=ckpt, messages=long, temperature=0, max_tokens=8, stream=True,
                                               stream_options={"include_usage": True}))
    assert turn[-1].usage.prompt_tokens_details.cached_tokens == 0
    said = "".join(c.choices[0].delta.content or "" for c in turn if c.choices)
    follow = long + [{"role": "assistant", "content": said}, {"role": "user", "content": "And of France?"}]
    nxt = list(client.chat.completions.create(model=ckpt, messages=follow, temperature=0, max_tokens=8, stream=True,
                                              stream_options={"include_usage": True}))
    check_schema("CreateChatCompletionStreamResponse", nxt[-1])
    assert nxt[-1].usage.prompt_tokens_details.cached_tokens >= turn[-1].usage.prompt_tokens


def test_unknown_model_and_job_get_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="ft:nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file="file-nope")
    assert err.value.param == "training_file"


def test_too_few_examples_fails_the_job(client, tmp_path):
    p = tmp_path / "seven.jsonl"
    p.write_text("".join(line + "\n" for line in (SAMPLES / "marv.jsonl").read_text().splitlines()[:7]))
    f = client.files.create(file=p.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id)
    job = wait_for(client, job.id)
    assert job.status == "failed"
    assert job.error.code == "invalid_n_examples" and job.error.param == "training_file"
    assert job.error.message == "Training file has 7 example(s), but must have at least 10 examples"


def test_dpo_job_succeeds(client):
    f = upload(client, "marv_dpo.jsonl")
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct", training_file=f.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "beta": 0.1}}})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.method.dpo.hyperparameters.beta == 0.1
    metrics = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    metrics.sort(key=lambda m: m["step"])
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert abs(metrics[0]["train_loss"] - 0.6931) < 0.01  # policy == reference at the start (LoRA B is zero)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    text = base64.b64decode(client.files.content(job.result_files[0]).read()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert "train_mean_reward_accuracy" in rows[0] and "train_accuracy" not in rows[0], "reward metrics by name"
    assert float(rows[-1]["train_mean_reward_accuracy"]) >= 0


def test_cancel_a_running_job(client):
    f = upload(client, "marv.jsonl")
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 40}}})
    wait_for(client, job.id, predicate=lambda j: j.status == "running")
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert "Fine-tuning job cancelled" in events
    # the runner stops within a step and takes the next job
    g = upload(client, "marv.jsonl")
    nxt = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=g.id,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 1}}})
    assert wait_for(client, nxt.id).status == "succeeded"
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model is None
    newest_first = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    after_cancel = newest_first[:[e.message for e in newest_first].index("Fine-tuning job cancelled")]
    assert not [e for e in after_cancel if e.type == "metrics"], "no step is reported after the cancel"


def test_job_list_pages(client):
    page = client.fine_tuning.jobs.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    nxt = client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id)
    assert not {j.id for j in nxt.data} & {j.id for j in page.data}
    for j in page.data:
        check_schema("FineTuningJob", j)


def test_api_key_is_required_when_set(tmp_path, model_cache):
    s = Server(tmp_path / "data", api_key="sekret").start()
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(api_key="wrong").models.list()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{s.base_url}/models", timeout=10)
        text = err.value.read().decode()
        assert err.value.code == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"
        assert "sekret" not in text
        assert s.client().models.list().data
    finally:
        s.stop()


def test_non_loopback_without_key_is_refused(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "ftui.cli", "serve", "--host", "0.0.0.0", "--data-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "without an API key" in res.stderr


def test_pause_at_the_last_step_pauses_and_resumes_to_the_finished_model(client):
    """Paused while the last step runs: the job is paused (not cancelled), no results file is left behind, and the
    resume finishes without training the last epoch again."""
    f = upload(client, "marv.jsonl")
    files_before = {x.id for x in client.files.list().data}
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=4,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 1}}})

    def at_last_step(j):  # metrics of step total-1 are out: the last step is running now
        data = [e.data for e in client.fine_tuning.jobs.list_events(j.id, limit=3).data if e.type == "metrics"]
        return j.status == "running" and data and data[0]["step"] >= data[0]["total_steps"] - 1

    wait_for(client, job.id, predicate=at_last_step)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    wait_for(client, job.id, timeout=60, predicate=lambda j: any(
        e.message.startswith("Fine-tuning job paused at step")
        for e in client.fine_tuning.jobs.list_events(j.id, limit=5).data))
    paused = client.fine_tuning.jobs.retrieve(job.id)
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=50).data]
    assert paused.status == "paused" and not any("cancelled" in m for m in messages)
    assert {x.id for x in client.files.list().data} == files_before, "no orphaned results file"
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    done = wait_for(client, job.id)
    assert done.status == "succeeded" and len(done.result_files) == 1
    steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data
             if e.type == "metrics"]
    assert sorted(steps) == list(range(1, done.hyperparameters.n_epochs * 4 + 1)), "no step trained twice"
