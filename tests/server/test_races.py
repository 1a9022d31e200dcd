"""The job lifecycle raced: a pause the trainer has not taken yet, followed by a resume, never trains or reports a
step twice (at several delays, and while the runner is still loading the model); a checkpoint is one row per step;
a deleted checkpoint is gone, and a model whose files went is a 404, never a 500."""
from __future__ import annotations

import shutil
import sqlite3
import time

import openai
import pytest

from ftui.server.store import Store
from tests.backend import start_job, wait_for

pytestmark = pytest.mark.slow


def _events(client, job_id):
    return list(reversed(client.fine_tuning.jobs.list_events(job_id, limit=500).data))  # oldest first


def _steps(client, job_id) -> list[int]:
    return [e.data["step"] for e in _events(client, job_id) if e.type == "metrics"]


def _paused_events(client, job_id) -> int:
    return sum(e.message.startswith("Fine-tuning job paused at step") for e in _events(client, job_id))


def test_pause_then_resume_at_any_moment_trains_every_step_once(server):
    """Pause and resume while the runner loads the model, then mid-training at 0 s, 0.3 s and after the trainer
    took the pause: 12 steps, each trained and reported once; one checkpoint row per step; never `cancelled`."""
    server.clear_faults()
    client = server.client()
    job = start_job(client, "race", n_epochs=3)
    wait_for(client, job.id, statuses=("running",), timeout=300)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"  # before its first step: the model loads
    resumed = client.fine_tuning.jobs.resume(job.id)
    messages = [e.message for e in _events(client, job.id)]
    assert "Fine-tuning job started" not in messages, "the race must hit the loading runner"
    assert resumed.status == "running", "a pause nobody took is simply undone"
    taken = 0  # pauses the trainer took: each says so in an event, and its resume queues the job
    for delay in (0.0, 0.3, None):  # None: wait until the trainer says it paused
        wait_for(client, job.id, timeout=300,
                 predicate=lambda j, n=len(_steps(client, job.id)): len(_steps(client, j.id)) > n)
        assert client.fine_tuning.jobs.pause(job.id).status == "paused"
        if delay is None:
            wait_for(client, job.id, timeout=120, predicate=lambda j, n=taken: _paused_events(client, j.id) > n)
            assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
        else:
            time.sleep(delay)
        status = client.fine_tuning.jobs.resume(job.id).status
        if status == "queued":  # the trainer had taken it: it restarts from the state it saved
            taken += 1
            wait_for(client, job.id, timeout=60, predicate=lambda j, n=taken: _paused_events(client, j.id) == n)
        else:
            assert status == "running" and delay is not None
    assert taken >= 1
    assert wait_for(client, job.id).status == "succeeded"
    assert _steps(client, job.id) == list(range(1, 13)), "every step reported once, in order"
    messages = [e.message for e in _events(client, job.id)]
    assert not [m for m in messages if "cancelled" in m]
    assert _paused_events(client, job.id) == taken, "a pause undone before it was taken never stops the trainer"
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert sorted(c.step_number for c in ckpts) == [4, 8, 12]
    assert len({c.id for c in ckpts}) == 3

    # deleting a checkpoint deletes it: the listing, chat and a second delete all say it is gone
    doomed = next(c for c in ckpts if c.step_number == 4)
    assert client.models.delete(doomed.fine_tuned_model_checkpoint).deleted
    assert doomed.id not in [c.id for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=doomed.fine_tuned_model_checkpoint, max_tokens=2,
                                       messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.models.delete(doomed.fine_tuned_model_checkpoint)

    # a model whose folder was removed behind the server's back answers 404, not 500; deleting it still works
    other = next(c for c in ckpts if c.step_number == 8)
    shutil.rmtree(server.data_dir / "jobs" / job.id / "checkpoints" / "step-8")
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model=other.fine_tuned_model_checkpoint, max_tokens=2,
                                       messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found" and "no files left" in err.value.message
    assert client.models.delete(other.fine_tuned_model_checkpoint).deleted


def test_an_older_data_dir_loses_its_duplicate_checkpoint_rows(tmp_path):
    """A data dir written before checkpoints were one row per step (a resumed job wrote a second row): opening it
    keeps the newest row of each step, and the store refuses a second row from then on."""
    data = tmp_path / "data"
    Store(data).close()
    db = sqlite3.connect(data / "ftui.sqlite3")
    db.execute("DROP INDEX checkpoint_step")
    db.execute("ALTER TABLE jobs DROP COLUMN pause")
    for cid, path in (("ftckpt-old", "/gone"), ("ftckpt-new", "/kept")):
        db.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?)", (cid, "ftjob-x", 1, 4, "m:ckpt-step-4", "{}",
                                                                      path))
    db.commit()
    db.close()
    store = Store(data)
    assert [(c["id"], c["path"]) for c in store.list_checkpoints("ftjob-x")] == [("ftckpt-new", "/kept")]
    store.add_checkpoint("ftjob-x", 4, "m:ckpt-step-4", {"step": 4}, "/again")
    assert [(c["id"], c["path"]) for c in store.list_checkpoints("ftjob-x")] == [("ftckpt-new", "/again")]
    assert "pause" in {r[1] for r in store.db.execute("PRAGMA table_info(jobs)")}
