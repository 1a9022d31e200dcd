"""Training a fine-tuned model further (OpenAI's SFT-then-DPO and warm starts): `model` may be a fine-tuned model or
a checkpoint of this server; the new job's adapter continues the old one, its DPO reference is the model it starts
from, and the job and the model say what they came from. (RFT from a fine-tuned model: bench/rft_stars.py.)"""

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


def test_sft_then_dpo_from_its_checkpoint_continues_it(server):
    client = server.client()
    marv, pairs = upload(client, "marv.jsonl"), upload(client, "marv_dpo.jsonl")
    first = wait_for(client, client.fine_tuning.jobs.create(
        model=BASE, training_file=marv.id, seed=3, suffix="one",
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}).id)
    assert first.status == "succeeded", first.error
    # DPO from a checkpoint of the SFT model. Its first step's loss is exactly ln 2 only when the policy it trains
    # starts as that checkpoint AND its reference is that checkpoint: a fresh adapter (the bare base as policy) or
    # the bare base as reference would both move it off ln 2
    ckpt = client.fine_tuning.jobs.checkpoints.list(first.id).data[-1].fine_tuned_model_checkpoint
    dpo = wait_for(client, client.fine_tuning.jobs.create(
        model=ckpt, training_file=pairs.id, seed=3, suffix="dpo",
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "beta": 0.1}}}).id)
    assert dpo.status == "succeeded", dpo.error
    assert dpo.model == ckpt  # the job says what it continued (OpenAI's shape)
    assert dpo.fine_tuned_model.startswith(f"ft:{BASE}:local:dpo:")  # named by its base, as OpenAI names them
    events = [e.message for e in client.fine_tuning.jobs.list_events(dpo.id, limit=100).data]
    assert f"Fine-tuning job started, continuing {ckpt}" in events
    steps = metrics(client, dpo.id)
    assert steps[0]["train_loss"] == pytest.approx(0.693147, abs=2e-3)
    assert steps[-1]["train_loss"] < steps[0]["train_loss"]
    model = client.models.retrieve(dpo.fine_tuned_model)
    assert model.model_extra["ftui"] == {"base": BASE, "job": dpo.id, "parent": ckpt}
    answer = client.chat.completions.create(model=dpo.fine_tuned_model, max_tokens=4, temperature=0,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    one = metrics(client, first.id)  # the model it continued had learned something: its loss went down
    assert one[-1]["train_loss"] < one[0]["train_loss"]


def test_a_model_that_cannot_be_continued_is_refused_naming_model(server):
    client = server.client()
    marv = upload(client, "marv.jsonl")
    for model, says in (("ft:smollm2-135m-instruct:local:nope:00000000", "is not available for fine-tuning here"),
                        ("gpt-4o-mini", "is not available for fine-tuning here")):
        with pytest.raises(openai.BadRequestError) as e:
            client.fine_tuning.jobs.create(model=model, training_file=marv.id)
        assert e.value.body["param"] == "model" and says in e.value.body["message"]
