"""Any failure in validation or training ends that job `failed` with a readable error and code; a runner that dies
on a job fails that job (never a crash loop on it) and is replaced with backoff, and the server stays usable."""
from __future__ import annotations

import time

import pytest

from tests.backend import Server, stacks_of, start_job, wait_for


def test_an_unexpected_validation_failure_fails_the_job_not_the_runner(tmp_path, model_cache):
    server = Server(tmp_path / "data", env={"FTUI_TEST_RUNNER_FAULT": "raise"}).start()
    try:
        client = server.client()
        first = wait_for(client, start_job(client, "a", n_epochs=1).id, timeout=60)
        second = wait_for(client, start_job(client, "b", n_epochs=1).id, timeout=60)
        for job in (first, second):  # the same runner handled both: it did not die
            assert job.status == "failed" and job.error.code == "validation_error"
            assert "injected validation fault" in job.error.message
    finally:
        server.stop()


def test_a_runner_dying_on_a_job_fails_that_job_and_backs_off(tmp_path, model_cache):
    server = Server(tmp_path / "data", env={"FTUI_TEST_RUNNER_FAULT": "die"}).start()
    try:
        client = server.client()
        t0 = time.monotonic()
        jobs = [start_job(client, f"d{i}", n_epochs=1).id for i in range(3)]
        ended = [wait_for(client, j, timeout=90) for j in jobs]
        took = time.monotonic() - t0
        assert [j.status for j in ended] == ["failed"] * 3
        assert all(j.error.code == "trainer_crashed" and "exit code 17" in j.error.message for j in ended)
        assert took >= 0.5 + 1 + 2 - 0.5, "the supervisor backs off (0.5 s, 1 s, 2 s …) between young deaths"
        log = (tmp_path / "data" / "serve.log").read_text()
        assert log.count("the trainer process died") == 3
        assert client.models.list().data, "the API still answers"
    finally:
        server.stop()


def test_delete_really_deletes_and_gc_frees_the_rest(tmp_path, model_cache):
    """A fine-tuned model's folder, its checkpoints and their answers go with it; a checkpoint can go by itself;
    ended jobs keep no resumable state; `ftui serve --gc` reports and frees what is left over."""
    import subprocess
    import sys

    from openai import NotFoundError

    data = tmp_path / "data"
    server = Server(data).start()
    try:
        client = server.client()
        job = wait_for(client, start_job(client, "del", n_epochs=2).id)  # a checkpoint per epoch
        assert job.status == "succeeded"
        ckpts = [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
        assert len(ckpts) >= 2
        job_dir = data / "jobs" / job.id
        assert not (job_dir / "state").exists(), "an ended job keeps no resumable state"
        client.models.delete(ckpts[-1])  # a checkpoint by itself
        assert ckpts[-1] not in {c.fine_tuned_model_checkpoint
                                 for c in client.fine_tuning.jobs.checkpoints.list(job.id).data}
        client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=2)  # loaded: it must stop answering once deleted
        client.models.delete(job.fine_tuned_model)
        for gone in (job.fine_tuned_model, ckpts[0]):
            with pytest.raises(NotFoundError):
                client.chat.completions.create(model=gone, messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=2)
        assert not (job_dir / "model").exists() and not any((job_dir / "checkpoints").iterdir())
        (job_dir / "state").mkdir()  # something left over, as a crash would leave it
        (job_dir / "state" / "adapter.bin").write_bytes(b"x" * 2**20)
    finally:
        server.stop()
    res = subprocess.run([sys.executable, "-m", "ftui.cli", "serve", "--gc", "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"jobs/{job.id}/state" in res.stdout and "freed 1.0 MB" in res.stdout
    assert not (job_dir / "state").exists()


def test_each_trained_job_gets_a_fresh_trainer_process(tmp_path, model_cache):
    """The memory a model and its optimizer took goes back after every job: each job trains in a process forked
    from the runner for it, which ends with the job; the runner imported torch once (~380 MB here) but never holds
    a model (the base model alone is 540 MB in float32, and a process that trained holds well over 1 GB)."""
    import psutil

    server = Server(tmp_path / "data").start()
    try:
        def runner() -> psutil.Process:
            [proc] = [p for p in psutil.Process(server.proc.pid).children()
                      if "ftui.server.executors.runner" in " ".join(p.cmdline())]
            return proc

        the_runner = runner()
        client = server.client()
        trainers = []
        for suffix in ("fresh", "again"):
            job = start_job(client, suffix, n_epochs=3)
            wait_for(client, job.id, statuses=("running",))  # set by the trainer process: it is there
            [trainer] = the_runner.children()
            trainers.append(trainer.pid)
            if suffix == "fresh":  # what a stuck job's test failure shows: every process's stacks, none harmed
                stacks = stacks_of(client)
                assert "in _trainer_main" in stacks and "in _watch" in stacks and "uvicorn" in stacks, stacks
                assert stacks.count("in fork_for") == 2, stacks  # the runner waiting, and the trainer it forked
                # oneMKL's memory manager is off where training computes (ftui/server/mkl.py)
                assert the_runner.environ().get("MKL_DISABLE_FAST_MM") == trainer.environ().get(
                    "MKL_DISABLE_FAST_MM") == "1"
            assert wait_for(client, job.id).status == "succeeded"
            deadline = time.monotonic() + 30
            while the_runner.children():
                assert time.monotonic() < deadline, "the trainer process outlived its job"
                time.sleep(0.1)
            assert runner().pid == the_runner.pid, "the runner stays (a trainer that ends cleanly takes nothing)"
            assert the_runner.memory_info().rss < 700 * 2**20, "the runner holds no model"
        assert trainers[0] != trainers[1], "each job a fresh process"
    finally:
        server.stop()
    # a runner started as the server went knows its parent: none is left behind
    def left() -> list:
        out = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if str(tmp_path / "data") in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p.pid)
            except psutil.Error:
                continue
        return out

    deadline = time.monotonic() + 10
    while left():
        assert time.monotonic() < deadline, "a runner outlived its server"
        time.sleep(0.2)
