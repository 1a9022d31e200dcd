"""Early stopping and the best checkpoint on the local backend (Together's hyperparameter names): the validation loss
at each epoch's end is one evaluation; a job whose loss stops improving by `min_delta` for `patience` evaluations
after `warmup_evals` stops, saying when and why, and with `best_checkpoint` its fine-tuned model is the checkpoint
with the lowest validation loss. Without a validation file, or with early-stopping settings but early stopping off,
the job is refused naming the parameter."""
from __future__ import annotations

import openai
import pytest

from tests.helpers import SAMPLES
from tests.server.conftest import wait_for

pytestmark = pytest.mark.slow


def test_a_job_stops_early_and_keeps_its_best_checkpoint(server):
    c = server.client()
    train = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
    valid = c.files.create(file=(SAMPLES / "marv_valid.jsonl").open("rb"), purpose="fine-tune")
    # no loss improves by 10: after one evaluation of warm-up, the first that does not improve stops the job
    hp = {"n_epochs": 4, "batch_size": 8, "early_stopping_enabled": True, "patience": 1, "min_delta": 10,
          "warmup_evals": 1, "best_checkpoint": True}
    job = c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=train.id, validation_file=valid.id,
                                    seed=2, method={"type": "supervised", "supervised": {"hyperparameters": hp}})
    done = wait_for(c, job.id)
    assert done.status == "succeeded", done.error
    kept = done.method.supervised.hyperparameters.model_dump()
    assert kept["early_stopping_enabled"] is True and kept["patience"] == 1 and kept["best_checkpoint"] is True
    events = list(reversed(c.fine_tuning.jobs.list_events(job.id, limit=100).data))
    steps = [e.data["step"] for e in events if e.type == "metrics"]
    assert steps == [1, 2, 3, 4], "two epochs of two steps, then it stopped"
    [stop] = [e.message for e in events if e.message.startswith("Early stopping")]
    assert stop.startswith("Early stopping at step 4/8 (epoch 2 of 4): the full validation loss has not improved on")
    assert "by more than 10.0 for 1 evaluation(s) (patience 1)" in stop
    ckpts = {k.step_number: k.metrics.full_valid_loss for k in c.fine_tuning.jobs.checkpoints.list(job.id).data}
    assert set(ckpts) == {2, 4}
    best = min(ckpts, key=ckpts.get)
    jobs = server.data_dir / "jobs" / job.id
    assert (jobs / "model" / "adapter_model.safetensors").read_bytes() == (
        jobs / "checkpoints" / f"step-{best}" / "adapter_model.safetensors").read_bytes()
    if best != 4:
        assert any(e.message.startswith(f"The fine-tuned model is the best checkpoint, step {best}") for e in events)


def test_early_stopping_needs_a_validation_file_and_to_be_on(server):
    c = server.client()
    train = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
    for hp, param in (({"early_stopping_enabled": True}, "validation_file"),
                      ({"best_checkpoint": True}, "validation_file"),
                      ({"patience": 3}, "hyperparameters.patience"),
                      ({"early_stopping_enabled": "yes"}, "early_stopping_enabled")):
        with pytest.raises(openai.BadRequestError) as e:
            c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=train.id,
                                      method={"type": "supervised", "supervised": {"hyperparameters": hp}})
        assert param in e.value.body["param"], (hp, e.value.body)
    with pytest.raises(openai.BadRequestError) as e:
        c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=train.id, validation_file=train.id,
                                  method={"type": "supervised", "supervised": {"hyperparameters": {
                                      "early_stopping_enabled": True, "patience": 0}}})
    assert e.value.body["param"] == "hyperparameters.patience"
