"""Training a fine-tuned model further (OpenAI's SFT-then-DPO and warm starts): `model` may be a fine-tuned model or
a checkpoint of this server; the new job's adapter continues the old one, its DPO reference is the model it starts
from, and the job and the model say what they came from."""

from __future__ import annotations

import openai
import pytest

from tests.backend import wait_for
from tests.helpers import SAMPLES

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"


def metrics(client, job_id: str) -> list[dict]:
    found = [e.data for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data if e.type == "metrics"]
    return sorted(found, key=lambda d: d["step"])


def upload(client, name: str):
    with open(SAMPLES / name, "rb") as fh:
        return client.files.create(file=fh, purpose="fine-tune")


def test_sft_then_sft_then_dpo_each_continuing_the_last(server):
    client = server.client()
    marv, pairs = upload(client, "marv.jsonl"), upload(client, "marv_dpo.jsonl")
    sft = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    first = wait_for(client, client.fine_tuning.jobs.create(model=BASE, training_file=marv.id, seed=3, suffix="one",
                                                            method=sft).id)
    assert first.status == "succeeded", first.error
    second = wait_for(client, client.fine_tuning.jobs.create(model=first.fine_tuned_model, training_file=marv.id,
                                                             seed=3, suffix="two", method=sft).id)
    assert second.status == "succeeded", second.error
    assert second.model == first.fine_tuned_model  # the job says what it continued (OpenAI's shape)
    assert second.fine_tuned_model.startswith(f"ft:{BASE}:local:two:")  # named by its base, as OpenAI names them
    events = [e.message for e in client.fine_tuning.jobs.list_events(second.id, limit=100).data]
    assert f"Fine-tuning job started, continuing {first.fine_tuned_model}" in events
    # it went on from where the first stopped: its first step is already at the first job's end, far below the
    # first job's first step (the same examples, the same seed: a fresh adapter would repeat the first's losses)
    one, two = metrics(client, first.id), metrics(client, second.id)
    assert two[0]["train_loss"] < one[0]["train_loss"] - 0.5
    assert two[0]["train_loss"] == pytest.approx(one[-1]["train_loss"], abs=0.6)
    model = client.models.retrieve(second.fine_tuned_model)
    assert model.model_extra["ftui"] == {"base": BASE, "job": second.id, "parent": first.fine_tuned_model}
    answer = client.chat.completions.create(model=second.fine_tuned_model, max_tokens=4, temperature=0,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content

    # DPO from a checkpoint of the SFT model: its reference is that checkpoint, so the first step's policy equals
    # the reference and the loss is exactly ln 2 (against the bare base it would not be)
    ckpt = client.fine_tuning.jobs.checkpoints.list(second.id).data[-1].fine_tuned_model_checkpoint
    dpo = wait_for(client, client.fine_tuning.jobs.create(
        model=ckpt, training_file=pairs.id, seed=3, suffix="dpo",
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "beta": 0.1}}}).id)
    assert dpo.status == "succeeded", dpo.error
    steps = metrics(client, dpo.id)
    assert steps[0]["train_loss"] == pytest.approx(0.693147, abs=2e-3)
    assert steps[-1]["train_loss"] < steps[0]["train_loss"]
    assert client.models.retrieve(dpo.fine_tuned_model).model_extra["ftui"]["parent"] == ckpt


def test_a_model_that_cannot_be_continued_is_refused_naming_model(server):
    client = server.client()
    marv = upload(client, "marv.jsonl")
    for model, says in (("ft:smollm2-135m-instruct:local:nope:00000000", "is not available for fine-tuning here"),
                        ("gpt-4o-mini", "is not available for fine-tuning here")):
        with pytest.raises(openai.BadRequestError) as e:
            client.fine_tuning.jobs.create(model=model, training_file=marv.id)
        assert e.value.body["param"] == "model" and says in e.value.body["message"]
