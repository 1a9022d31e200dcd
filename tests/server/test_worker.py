"""The self-contained worker (ftui/server/executors/worker.py), started the way a SkyPilot task or a Slurm script
starts it — `python -m ftui.server.executors.worker BUNDLE_DIR` in a separate process — trains the same job as
`ftui serve` does, also when it is killed (a preempted spot node) and started again in the same folder: its records,
applied to a store, give the same losses step by step, the model, its checkpoints and the results file. A record
that reaches outside its job's folder is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ftui.server.executors.worker import BundleError, apply, bundle_of, read_records, write_bundle
from ftui.server.store import Store, new_id, now
from tests.helpers import SAMPLES
from tests.server.conftest import wait_for

pytestmark = pytest.mark.slow
METHOD = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 8}}}  # 2 × 2 steps


def test_the_worker_command_trains_the_job_the_server_trains(server, tmp_path, model_cache):
    client = server.client()
    marv = (SAMPLES / "marv.jsonl").read_bytes()
    f = client.files.create(file=("marv.jsonl", marv), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=3, method=METHOD)
    assert wait_for(client, job.id).status == "succeeded"
    here = {e.data["step"]: e.data["train_loss"] for e in reversed(client.fine_tuning.jobs.list_events(
        job.id, limit=100).data) if e.type == "metrics"}

    home = Store(tmp_path / "home")  # a server's store that hands the job to a worker elsewhere
    fid = home.add_file("marv.jsonl", "fine-tune", marv)["id"]
    jid = new_id("ftjob")
    home.add_job(id=jid, created_at=now(), model="smollm2-135m-instruct", training_file=fid, validation_file=None,
                 status="running", method=METHOD, suffix="far", seed=3, metadata=None)
    folder = tmp_path / "bundle"
    write_bundle(bundle_of(home, home.get_job(jid)), folder)
    command = [sys.executable, "-m", "ftui.server.executors.worker", str(folder)]
    env = {**os.environ, "FTUI_MODEL_CACHE": model_cache}
    # preempted (SIGKILL) after the first epoch's end, whose state is in the records; started again in the same
    # folder, as SkyPilot's recovery starts a task's `run` again, it goes on from that state
    err = tmp_path / "first.err"
    with open(err, "wb") as fh:
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.time() + 300
    while not any(e["type"] == "metrics" and e["data"]["step"] >= 3 for r in read_records(folder)
                  for e in r["events"]):
        assert first.poll() is None and time.time() < deadline, "the worker never got past its first epoch"
        time.sleep(0.2)
    first.send_signal(signal.SIGUSR1)  # a worker that seems stuck says where it is, and goes on
    deadline = time.time() + 30
    while "in run_bundle" not in err.read_text(errors="replace"):
        assert first.poll() is None and time.time() < deadline, err.read_text(errors="replace")[-2000:]
        time.sleep(0.1)
    assert first.poll() is None
    first.kill()
    first.wait()
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == f"job {jid}: succeeded"
    records = read_records(folder)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1)) and records[-1]["ended"] == "succeeded"
    for r in records + records:  # applying a record twice changes nothing
        apply(home, r)

    done = home.get_job(jid)
    assert done["status"] == "succeeded" and done["fine_tuned_model"].startswith("ft:smollm2-135m-instruct:")
    events = home.events_of(jid)
    far = {e["data"]["step"]: e["data"]["train_loss"] for e in events if e["type"] == "metrics"}
    assert list(far) == list(here) == list(range(1, 5)), "each step once"
    for step in here:
        assert far[step] == pytest.approx(here[step], rel=2e-3, abs=2e-3), step
    assert [e["message"] for e in events][-1] == "The job has successfully completed"
    assert any(e["message"].startswith("Resuming fine-tuning from step 2/4") for e in events)
    model = home.get_model(done["fine_tuned_model"])
    assert model is not None and (tmp_path / "home" / "jobs" / jid / "model" / "adapter_config.json").exists()
    assert model["path"] == str((tmp_path / "home" / "jobs" / jid / "model").resolve())
    ckpts = home.list_checkpoints(jid)
    assert [c["step_number"] for c in ckpts] == [4, 2] and all(
        (os.path.exists(c["path"] + "/adapter_model.safetensors")) for c in ckpts)
    [result] = done["result_files"]
    assert home.get_file(result)["filename"] == "step_metrics.csv" and home.file_path(result).stat().st_size > 0
    assert not (tmp_path / "home" / "jobs" / jid / "state").exists(), "the state of an ended job is not kept"

    # a record is data: one that writes outside its job's folder is refused, nothing written
    evil = {**records[-1], "blobs": {f"jobs/{jid}/../../files/{fid}": b"x"}, "removed": []}
    with pytest.raises(BundleError):
        apply(home, evil)
    assert home.file_path(fid).read_bytes() == marv
