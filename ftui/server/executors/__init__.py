"""Where a job trains: the executor seam between the runner (the queue, validation, pause/cancel, recovery) and the
trainer.

An executor takes one validated job whose status is ``running`` and trains it until it ends, calling the runner's
``control()`` between steps (which raises :class:`~ftui.server.train.trainer.Stop` on a pause, a cancel, or when the
server died); the job's events, metrics, checkpoints, result file and model arrive in the store exactly as the
trainer writes them, so the API, the TUI, chat, eval and export see no difference.

- ``local`` (:mod:`.local`): the trainer in the runner process — ``ftui serve``'s default.
- ``ray`` (:mod:`.ray_cluster`): the trainer in a Ray actor on a cluster (``ftui serve --executor ray``); the
  actor runs the self-contained worker (:mod:`.worker`), whose records the runner writes into the store.
- ``skypilot`` (:mod:`.skypilot`): a SkyPilot managed job per job (clouds, Kubernetes, Slurm), the worker command
  as its ``run``, bundle and records through a bucket both sides see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from ftui.server.store import Store


@dataclass(frozen=True)
class ExecutorConfig:
    """How ``ftui serve`` was told to run jobs (passed to its runner as JSON)."""

    name: str = "local"
    address: str | None = None  # ray: the cluster (``auto``, ``HOST:PORT`` or ``ray://HOST:10001``)
    cpus: float = 1.0  # ray: CPUs a job's worker asks for
    gpus: float = 0.0  # ray: GPUs a job's worker asks for
    tries: int = 3  # ray: workers a job may lose before it fails
    shared_dir: str | None = None  # skypilot: where this machine sees the bucket the tasks mount (bundles, records)
    bucket: str | None = None  # skypilot: that bucket as the task mounts it (s3://…, gs://…, r2://…, a storage name)
    accelerators: str | None = None  # skypilot: e.g. L4:1 (None: CPUs only)
    spot: bool = False  # skypilot: spot instances (a preempted task is recovered and resumes from its state)

    def to_json(self) -> dict:
        return asdict(self)


class Executor(Protocol):
    name: str

    def describe(self) -> dict:
        """What the job object says about where jobs train: {"name", "workers", "where"}."""
        ...

    def train(self, store: Store, job: dict, control: Callable[[], None]) -> None:
        """Train ``job`` (status ``running``) until it ends; raises Stop when ``control`` does (a pause, a
        cancel, the server gone)."""
        ...

    def recover(self, store: Store, job: dict) -> bool:
        """After a server restart, a job left ``running``: True when it is still training elsewhere and
        ``train`` can follow it again (it stays ``running``); False: it resumes from its saved state."""
        ...


def trainer_for(store: Store, job: dict, control: Callable[[], None]):
    """The trainer of ``job``'s method: reinforcement's, or the supervised/DPO one."""
    from ftui.server.train.trainer import JobTrainer

    if job["method"]["type"] == "reinforcement":
        from ftui.server.train.rft import ReinforcementTrainer

        return ReinforcementTrainer(store, job, control)
    return JobTrainer(store, job, control)


def make(config: ExecutorConfig) -> Executor:
    if config.name == "local":
        from ftui.server.executors.local import LocalExecutor

        return LocalExecutor()
    if config.name == "ray":
        from ftui.server.executors.ray_cluster import RayExecutor

        return RayExecutor(config)
    if config.name == "skypilot":
        from ftui.server.executors.skypilot import SkyPilotExecutor

        return SkyPilotExecutor(config)
    raise ValueError(f"unknown executor {config.name!r} (local, ray or skypilot)")
