"""`ftui serve --executor ray` against a real local Ray cluster (a head with 2 CPUs, started here): jobs train in Ray
actors and look exactly like local ones through the SDK — events, checkpoints, the results file, a model that
answers. A pause and a cancel reach the worker within a step; a worker killed with SIGKILL (as the OOM killer does)
is replaced and the job resumes from its last saved state; the API server killed while a job trains on Ray finds
the job again after a restart and follows it to the end, each step reported once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from ftui.serveinfo import free_port
from tests.backend import Server
from tests.helpers import SAMPLES
from tests.server.conftest import wait_for

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"
# two epochs of two steps: a state saved after step 2 (an epoch's end), four steps in all
SFT = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 8}}}


@pytest.fixture(scope="module")
def ray_head(model_cache):
    """A one-node Ray cluster (2 CPUs), its own temp dir (short: Ray's socket paths are limited), stopped after."""
    ray_bin = Path(sys.executable).parent / "ray"
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FTUI_MODEL_CACHE": model_cache}
    subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, env=env, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def ray_server(data: Path, address: str) -> Server:
    return Server(data, args=["--executor", "ray", "--ray-address", address, "--ray-cpus", "2"]).start()


def messages(client, job_id: str) -> list[str]:
    return [e.message for e in reversed(client.fine_tuning.jobs.list_events(job_id, limit=200).data)]


def steps(client, job_id: str) -> list[int]:
    return [e.data["step"] for e in reversed(client.fine_tuning.jobs.list_events(job_id, limit=200).data)
            if e.type == "metrics"]


def workers() -> list[psutil.Process]:
    """The processes of Ray actors running ftui jobs (Ray titles them ``ray::JobActor…``)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any("JobActor" in part for part in p.info["cmdline"] or []):
                out.append(p)
        except psutil.Error:
            pass
    return out


def gone(timeout: float = 60) -> bool:
    """No job's worker left on the cluster (an ended job's actor is killed; its process takes a moment to exit)."""
    deadline = time.time() + timeout
    while workers():
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_job_on_ray_trains_pauses_resumes_and_looks_like_a_local_one(ray_head, tmp_path):
    s = ray_server(tmp_path / "data", ray_head)
    try:
        c = s.client()
        f = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
        job = c.fine_tuning.jobs.create(model=BASE, training_file=f.id, seed=5, suffix="onray", method=SFT)
        wait_for(c, job.id, timeout=300, predicate=lambda j: j.status == "running" and len(steps(c, j.id)) >= 1)
        running = c.fine_tuning.jobs.retrieve(job.id)
        where = running.model_extra["executor"]
        assert where["name"] == "ray" and where["workers"] == 1 and ray_head in where["where"], where
        assert c.fine_tuning.jobs.pause(job.id).status == "paused"
        wait_for(c, job.id, timeout=120, predicate=lambda j: any(
            m.startswith("Fine-tuning job paused at step") for m in messages(c, j.id)))
        assert gone(), "a paused job holds no worker"
        assert c.fine_tuning.jobs.resume(job.id).status == "queued"
        done = wait_for(c, job.id, timeout=600)
        assert done.status == "succeeded", done.error
        said = messages(c, job.id)
        assert sum(m.startswith("Training on the Ray cluster at " + ray_head) for m in said) == 2  # before and after
        assert any(m.startswith("Resuming fine-tuning from step") for m in said)
        assert steps(c, job.id) == list(range(1, 5)), "each step reported once"
        assert said[-1] == "The job has successfully completed"
        # what the worker made came back: checkpoints, the results file, a model the server answers with
        assert [k.step_number for k in c.fine_tuning.jobs.checkpoints.list(job.id).data] == [4, 2]
        assert c.files.content(done.result_files[0]).read()
        answer = c.chat.completions.create(model=done.fine_tuned_model, max_tokens=4, temperature=0,
                                           messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content
        assert gone()
    finally:
        s.stop()


def test_a_killed_ray_worker_is_replaced_and_the_job_resumes_from_its_saved_state(ray_head, tmp_path):
    data = tmp_path / "data"
    s = ray_server(data, ray_head)
    try:
        c = s.client()
        f = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
        three = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 8}}}
        job = c.fine_tuning.jobs.create(model=BASE, training_file=f.id, seed=5, method=three)
        # past the first epoch's end (its state saved and sent back), then the worker is killed as the OOM killer does
        wait_for(c, job.id, timeout=300, predicate=lambda j: j.status == "running" and max(steps(c, j.id),
                                                                                           default=0) >= 3)
        [worker] = workers()
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        time.sleep(1)  # what the runner had pulled before the kill is all the server has: the state it resumes from
        saved = json.loads((data / "jobs" / job.id / "state" / "state.json").read_text())["step"]
        assert saved in (2, 4)  # an epoch's end: the newest one the worker had reported when it died
        done = wait_for(c, job.id, timeout=600)
        assert done.status == "succeeded", done.error
        said = messages(c, job.id)
        assert any(m.startswith("The Ray worker training this job was lost") and m.endswith("(try 2 of 3)")
                   for m in said), said
        assert any(m.startswith(f"Resuming fine-tuning from step {saved}/6") for m in said), said
        assert steps(c, job.id) == list(range(1, 7)), "each step reported once"
        assert gone(), "the replacement worker leaves with the job, and the killed one holds nothing"
    finally:
        s.stop()


def test_the_server_killed_while_a_job_trains_on_ray_follows_it_again_and_a_cancel_reaches_the_worker(ray_head,
                                                                                                       tmp_path):
    data = tmp_path / "data"
    s = ray_server(data, ray_head)
    c = s.client()
    f = c.files.create(file=(SAMPLES / "marv.jsonl").open("rb"), purpose="fine-tune")
    job = c.fine_tuning.jobs.create(model=BASE, training_file=f.id, seed=5, method=SFT)
    wait_for(c, job.id, timeout=300, predicate=lambda j: j.status == "running" and len(steps(c, j.id)) >= 1)
    s.kill9()
    time.sleep(3)  # the worker goes on training while no server runs (it is detached from the runner)
    assert len(workers()) == 1
    s2 = ray_server(data, ray_head)
    try:
        c2 = s2.client()
        done = wait_for(c2, job.id, timeout=600)
        assert done.status == "succeeded", done.error
        said = messages(c2, job.id)
        assert any(m.startswith("The server restarted while this job trained on the Ray cluster; following")
                   for m in said), said
        assert not any(m.startswith("Resuming fine-tuning") for m in said), "followed, not restarted"
        assert steps(c2, job.id) == list(range(1, 5)), "nothing lost, nothing twice"

        other = c2.fine_tuning.jobs.create(model=BASE, training_file=f.id, seed=6, method=SFT)
        wait_for(c2, other.id, timeout=300, predicate=lambda j: j.status == "running" and len(steps(c2, j.id)) >= 1)
        assert c2.fine_tuning.jobs.cancel(other.id).status == "cancelled"
        wait_for(c2, other.id, timeout=120, predicate=lambda j: "Fine-tuning job stopped: cancelled" in
                 messages(c2, j.id))
        assert max(steps(c2, other.id)) < 4 and gone()
    finally:
        s2.stop()
