"""The local executor: the trainer in the runner process, on this machine (``ftui serve``'s default).

A supervised job created with ``extra_body={"executor": {"workers": N}}`` trains data-parallel on N processes of
this machine instead: torchrun (``torch.distributed.run --standalone``) starts the worker command N times on the
job's bundle; the ranks sum their gradients with ``torch.distributed`` (gloo on CPUs, NCCL on GPUs) and rank 0's
records are written into the store as they come, as the Ray executor does.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

from ftui.server.store import Store

log = logging.getLogger("ftui.local")


class LocalExecutor:
    name = "local"

    def describe(self) -> dict:
        return {"name": "local", "workers": 1, "where": "this machine"}

    def train(self, store: Store, job: dict, control: Callable[[], None]) -> None:
        workers = (job.get("executor") or {}).get("workers") or 1
        if workers > 1:
            self._train_parallel(store, job, control, workers)
            return
        from ftui.server.executors import trainer_for

        trainer_for(store, job, control).run()

    def recover(self, store: Store, job: dict) -> bool:
        return False

    def _train_parallel(self, store: Store, job: dict, control: Callable[[], None], workers: int) -> None:
        from ftui.server.executors.worker import bundle_of, follow, write_bundle
        from ftui.server.train.trainer import Stop

        folder = store.dir / "jobs" / job["id"] / ".workers"  # dot-named: never part of a bundle or a record
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_bundle(bundle_of(store, job), folder)
        store.add_event(job["id"], f"Training on {workers} data-parallel workers on this machine (torchrun, "
                        "torch.distributed)")
        log_file = open(folder / "workers.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 f"--nproc-per-node={workers}", "-m", "ftui.server.executors.worker", str(folder)],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ended = follow(store, folder, control, lambda: proc.poll() is not None)
            proc.wait(timeout=60)
        except BaseException:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            log_file.close()
        if ended in ("paused", "cancelled"):
            shutil.rmtree(folder, ignore_errors=True)
            raise Stop(ended)
        if ended is None:
            tail = (folder / "workers.log").read_text(errors="replace")[-2000:]
            log.error("job %s: the data-parallel workers exited with %s:\n%s", job["id"], proc.returncode, tail)
            last = [line for line in tail.splitlines() if line.strip()][-1:] or ["no output"]
            raise RuntimeError(f"the {workers} data-parallel workers exited with code {proc.returncode} before the "
                               f"job ended ({last[0][:300]})")
        shutil.rmtree(folder, ignore_errors=True)
