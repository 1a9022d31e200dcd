"""Data-parallel training on the local executor: a supervised job created with `extra_body={"executor": {"workers":
2}}` trains on two processes (torchrun, gloo all-reduce) with the global batch unchanged, and reports the losses the
one-worker job reports on the same seed, step by step; the job says where and on how many workers it ran. Methods
other than supervised are refused by parameter."""

from __future__ import annotations

import openai
import pytest

from tests.helpers import SAMPLES
from tests.server.conftest import wait_for

pytestmark = pytest.mark.slow
SFT = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}}


def losses(client, job_id: str) -> dict[int, float]:
    return {e.data["step"]: e.data["train_loss"] for e in reversed(client.fine_tuning.jobs.list_events(
        job_id, limit=100).data) if e.type == "metrics"}


def test_two_workers_report_the_losses_of_one(server):
    c = server.client()
    f = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
    one = c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=11, method=SFT)
    two = c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=11, method=SFT,
                                    extra_body={"executor": {"workers": 2}})
    assert two.model_extra["executor"]["workers"] == 2
    assert wait_for(c, one.id).status == "succeeded"
    done = wait_for(c, two.id, timeout=600)
    assert done.status == "succeeded", done.error
    assert done.model_extra["executor"] == {"name": "local", "workers": 2, "where": "this machine"}
    said = [e.message for e in c.fine_tuning.jobs.list_events(two.id, limit=100).data]
    assert "Training on 2 data-parallel workers on this machine (torchrun, torch.distributed)" in said
    a, b = losses(c, one.id), losses(c, two.id)
    assert list(a) == list(b) == [1, 2, 3, 4]
    for step in a:  # the same gradients, summed in another order: equal within float noise
        assert b[step] == pytest.approx(a[step], rel=1e-2, abs=1e-3), (step, a, b)
    answer = c.chat.completions.create(model=done.fine_tuned_model, max_tokens=4, temperature=0,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    assert c.fine_tuning.jobs.checkpoints.list(two.id).data


def test_workers_are_for_supervised_jobs_and_checked(server):
    c = server.client()
    f = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as e:
        c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, method={"type": "dpo"},
                                  extra_body={"executor": {"workers": 2}})
    assert e.value.body["param"] == "executor.workers"
    for bad in ({"workers": 0}, {"workers": "2"}, {"nodes": 2}):
        with pytest.raises(openai.BadRequestError) as e:
            c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, extra_body={"executor": bad})
        assert e.value.body["param"].startswith("executor"), e.value.body
