#!/usr/bin/env python3
"""Executors, measured side by side in one run on this machine:

1. the Marv job (the bundled marv.jsonl, 3 epochs, batch 4: the README's first job) through `ftui serve` with the
   local executor, then with the Ray executor on a one-node Ray cluster started here (2 CPUs, the worker asking for
   both): wall time from create to succeeded, and the Ray executor's overhead;
2. the same supervised job on one worker and on two data-parallel workers (torchrun, gloo): steps/s and the largest
   loss difference step by step.

    python bench/executors.py           # needs the 'ray' extra (./dev's venv has it)

On 2 cores, 2 workers share the same cores one worker already uses (each gets one thread): the figure is the
machinery's cost, not a speed-up; on N GPUs each worker has its own device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MARV = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 4}}}


def run_job(client, file_id: str, method: dict, **extra) -> tuple[float, dict[int, float], list[float]]:
    """(seconds from create to succeeded, loss by step, seconds between the first and last step reports)."""
    from tests.backend import wait_for

    t0 = time.perf_counter()
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=file_id, seed=3, method=method,
                                         **extra)
    done = wait_for(client, job.id, timeout=1800)
    took = time.perf_counter() - t0
    if done.status != "succeeded":
        raise SystemExit(f"{job.id} {done.status}: {done.error}")
    events = list(reversed(client.fine_tuning.jobs.list_events(job.id, limit=500).data))
    metrics = [e for e in events if e.type == "metrics"]
    return took, {e.data["step"]: e.data["train_loss"] for e in metrics}, [e.created_at for e in metrics]


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    import openai

    from ftui.serveinfo import free_port
    from tests.backend import Server

    work = Path(tempfile.mkdtemp(prefix="ftui-executors-"))
    os.environ.setdefault("FTUI_MODEL_CACHE", str(work / "models"))
    ray_bin = Path(sys.executable).parent / "ray"
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    print(f"{os.cpu_count()} CPUs; Ray head with 2 CPUs at 127.0.0.1:{port}")
    subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={temp}"], check=True, env=env, capture_output=True)
    try:
        marv = (ROOT / "ftui/data/samples/marv.jsonl").read_bytes()
        local = Server(work / "local").start()
        try:
            c = openai.OpenAI(base_url=local.base_url, api_key="unused")
            f = c.files.create(file=("marv.jsonl", marv), purpose="fine-tune")
            run_job(c, f.id, {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}})  # warm-up
            t_local, l_local, _ = run_job(c, f.id, MARV)
            one = run_job(c, f.id, MARV)
            two = run_job(c, f.id, MARV, extra_body={"executor": {"workers": 2}})
        finally:
            local.stop()
        ray = Server(work / "ray", args=["--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                                         "--ray-cpus", "2"]).start()
        try:
            c = openai.OpenAI(base_url=ray.base_url, api_key="unused")
            f = c.files.create(file=("marv.jsonl", marv), purpose="fine-tune")
            t_ray, l_ray, _ = run_job(c, f.id, MARV)
        finally:
            ray.stop()
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    steps = len(l_local)
    diff = max(abs(l_ray[s] - l_local[s]) for s in l_local)
    print(f"Marv job ({steps} steps), create to succeeded: local {t_local:.1f} s, Ray {t_ray:.1f} s: overhead "
          f"{(t_ray / t_local - 1) * 100:+.1f} % (largest loss difference {diff:.2g})")
    (t1, loss1, at1), (t2, loss2, at2) = one, two
    rate1 = (len(at1) - 1) / max(at1[-1] - at1[0], 1)
    rate2 = (len(at2) - 1) / max(at2[-1] - at2[0], 1)
    dp = max(abs(loss2[s] - loss1[s]) for s in loss1)
    print(f"data-parallel: 1 worker {rate1:.2f} steps/s ({t1:.1f} s in all), 2 workers {rate2:.2f} steps/s "
          f"({t2:.1f} s in all): {rate2 / rate1:.2f}×; largest loss difference {dp:.2g} "
          f"(relative {max(abs(loss2[s] - loss1[s]) / loss1[s] for s in loss1):.2g})")


if __name__ == "__main__":
    main()
