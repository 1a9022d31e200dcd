"""The server stopped in the middle of training (kill -9, or a signal to its whole process group), then a restart on the
same data dir: the job resumes."""
from __future__ import annotations

import pytest

from tests.backend import start_job
from tests.helpers import SAMPLES
from tests.server.conftest import Server, wait_for

pytestmark = pytest.mark.slow


def test_kill_9_during_training_then_restart_resumes(tmp_path, model_cache):
    data = tmp_path / "data"
    s = Server(data).start()
    c = s.client()
    f = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
    job = c.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=5,
                                    method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}})

    def past_first_epoch(j):  # a resumable state is saved at each epoch end (with the epoch's checkpoint; read from
        # the checkpoints, not the newest events: under load several steps' events can come between two polls). Three
        # epochs: at least a whole epoch lies between this poll and the kill, so the job cannot end in between
        return j.status == "running" and bool(c.fine_tuning.jobs.checkpoints.list(j.id).data)

    wait_for(c, job.id, predicate=past_first_epoch)
    base_created = c.models.retrieve("smollm2-135m-instruct").created
    s.kill9()
    assert not (data / "jobs" / job.id / "model").exists()  # no half-written model

    s2 = Server(data).start()
    try:
        c2 = s2.client()
        assert job.id in [j.id for j in c2.fine_tuning.jobs.list().data]
        assert all(m.id.startswith("smollm2") for m in c2.models.list().data)  # nothing listed before it is done
        assert c2.models.retrieve("smollm2-135m-instruct").created == base_created, "stable across restarts"
        done = wait_for(c2, job.id)
        assert done.status == "succeeded", done.error
        events = [e for e in c2.fine_tuning.jobs.list_events(job.id, limit=200).data]
        messages = [e.message for e in events]
        assert any(m.startswith("The server restarted during training; resuming from its last checkpoint")
                   for m in messages)
        assert any(m.startswith("Resuming fine-tuning from step") for m in messages)
        steps = [e.data["step"] for e in reversed(events) if e.type == "metrics"]
        assert steps == list(range(1, 13)), "each step reported once: the interrupted run's later reports are gone"
        assert done.fine_tuned_model in [m.id for m in c2.models.list().data]
        # a true resume, not a re-run: the same seed without the kill gives the same losses step by step (the
        # weights, the optimizer state and the data order were restored)
        again = c2.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=5,
                                           method={"type": "supervised",
                                                   "supervised": {"hyperparameters": {"n_epochs": 3}}})
        assert wait_for(c2, again.id).status == "succeeded"
        resumed, straight = losses(c2, job.id), losses(c2, again.id)
        assert list(resumed) == list(straight) == list(range(1, 13))
        for step in resumed:
            assert resumed[step] == pytest.approx(straight[step], rel=2e-3, abs=2e-3), f"step {step}"
    finally:
        s2.stop()


def losses(client, job_id: str) -> dict[int, float]:
    """The training loss reported for each step."""
    events = client.fine_tuning.jobs.list_events(job_id, limit=200).data
    out: dict[int, float] = {}
    for e in reversed(events):  # oldest first: later reports win
        if e.type == "metrics":
            out[e.data["step"]] = e.data["train_loss"]
    return dict(sorted(out.items()))


def test_a_server_stopped_with_its_whole_process_group_leaves_the_job_to_resume(tmp_path, model_cache):
    """A terminal's Ctrl-C and systemd's stop (SIGTERM to the unit's every process) reach the server, its runner and
    the trainer at once. The job being trained is no crash: it stays running and resumes at the next start, and a
    Ctrl-C prints no traceback (the runner and the trainer leave SIGINT to the server, which stops them)."""
    import os
    import signal

    data = tmp_path / "data"
    s = Server(data).start()
    c = s.client()
    job = start_job(c, "group", n_epochs=3)

    def training(j) -> bool:  # the trainer is in a step (a Ctrl-C there once printed a KeyboardInterrupt)
        return j.status == "running" and any(e.type == "metrics" for e in c.fine_tuning.jobs.list_events(j.id).data)

    wait_for(c, job.id, predicate=training)
    for sig, again in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        os.killpg(s.proc.pid, sig)
        assert s.proc.wait(30) == 0
        said = s.log.read_text()
        assert "Traceback" not in said and "died" not in said, said[-3000:]
        s = Server(data).start()  # a new log: the next round checks its own
        c = s.client()
        wait_for(c, job.id, predicate=lambda j: any(
            e.message.startswith("The server restarted during training; resuming from")
            for e in c.fine_tuning.jobs.list_events(j.id).data))
        assert not any("died" in e.message for e in c.fine_tuning.jobs.list_events(job.id).data)
        if again:
            wait_for(c, job.id, predicate=training)
    s.stop()
