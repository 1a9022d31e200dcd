"""The Ray executor: each job trains in a Ray actor on a cluster (``ftui serve --executor ray --ray-address ADDR``).

The runner (on the serving machine) validates the job, builds its bundle (:func:`worker.bundle_of`: the files, the
saved state, the adapter it continues) and starts a **detached** actor named after the job in the ``ftui``
namespace, with the job's resources (``--ray-cpus``, ``--ray-gpus``). The actor runs the worker in a thread and
keeps its records until the runner has applied them (``pull(cursor)``); the runner writes them into the store, so
the job looks exactly like a local one, and passes pauses and cancels on (``control``), which the worker takes
within a step. The runner's cursor is kept in ``jobs/<id>/.executor.json``:

- the **serving machine restarts** (the API killed, the runner orphaned): the actor, detached, goes on; the next
  runner finds it by name and follows it again from its cursor (records applied twice change nothing);
- the **worker is lost** (its node, an out-of-memory kill): the runner builds the bundle again from the store — the
  state saved at the last epoch end or validation came back with the records — and starts a new actor, which
  resumes from it; after ``--ray-tries`` losses the job fails saying why.

Only the records of the actor this runner started (or found by its name on the cluster it was pointed at) are
applied, and only inside the job's own folder: a worker cannot write elsewhere in the data dir.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ftui.core.files import atomic_write
from ftui.server.executors import ExecutorConfig
from ftui.server.executors.worker import apply, bundle_of, run_bundle
from ftui.server.store import Store
from ftui.server.train.trainer import Stop

log = logging.getLogger("ftui.ray")
NAMESPACE = "ftui"
POLL = 0.5  # seconds between pulls of a worker's records


class JobActor:
    """One job's worker on the cluster (a threaded actor: ``pull`` and ``control`` answer while it trains)."""

    def __init__(self, bundle: dict) -> None:
        self.bundle = bundle
        self.records: list[dict] = []
        self.lock = threading.Lock()
        self.wanted: str | None = None
        self.ended: str | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> dict:
        import socket

        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="ftui-worker", daemon=True)
            self.thread.start()
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _run(self) -> None:
        def emit(record: dict) -> None:
            with self.lock:
                self.records.append(record)

        try:
            self.ended = run_bundle(self.bundle, emit, lambda: self.wanted)
        except BaseException as exc:  # noqa: BLE001 — the bundle could not even be read: say so, as a record
            log.exception("worker failed")
            self.ended = "failed"
            with self.lock:
                self.records.append({"error": f"{type(exc).__name__}: {exc}"})

    def pull(self, cursor: int) -> list[dict]:
        """The records after ``cursor`` (those up to it were applied: they are dropped)."""
        with self.lock:
            self.records = [r for r in self.records if r.get("seq", cursor + 1) > cursor]
            return list(self.records)

    def control(self, wanted: str) -> None:
        self.wanted = wanted


class RayExecutor:
    name = "ray"

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self._connected = False

    def describe(self) -> dict:
        return {"name": "ray", "workers": 1, "where": f"Ray cluster {self.config.address}"}

    def _connect(self):
        import ray

        if not self._connected:
            ray.init(address=self.config.address, namespace=NAMESPACE, ignore_reinit_error=True,
                     log_to_driver=False, logging_level=logging.WARNING)
            self._connected = True
        return ray

    # -- where a job is followed from -----------------------------------------------------------------------------
    @staticmethod
    def _note_path(store: Store, job_id: str) -> Path:
        return store.dir / "jobs" / job_id / ".executor.json"

    def _note(self, store: Store, job_id: str) -> dict | None:
        try:
            return json.loads(self._note_path(store, job_id).read_text())
        except (OSError, ValueError):
            return None

    def _save_note(self, store: Store, job_id: str, note: dict) -> None:
        atomic_write(self._note_path(store, job_id), json.dumps(note).encode())

    def _actor(self, name: str):
        ray = self._connect()
        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return None

    def recover(self, store: Store, job: dict) -> bool:
        note = self._note(store, job["id"])
        if note is None or note.get("ended"):
            return False
        try:
            alive = self._actor(note["actor"]) is not None
        except Exception:  # noqa: BLE001 — the cluster is gone: resume from the saved state like a local job
            log.warning("Ray cluster %s unreachable after a restart", self.config.address, exc_info=True)
            return False
        if alive:
            store.add_event(job["id"], f"The server restarted while this job trained on the Ray cluster; following "
                            f"its worker {note['actor']} again", level="warn")
        return alive

    # -- training -------------------------------------------------------------------------------------------------
    def _start(self, store: Store, job: dict, tries: int):
        ray = self._connect()
        name = f"ftui-{job['id']}-{tries}"
        old = self._actor(name)
        if old is not None:  # a worker of this name from a runner that died before it could follow it
            ray.kill(old)
        cls = ray.remote(JobActor)
        actor = cls.options(name=name, namespace=NAMESPACE, lifetime="detached", num_cpus=self.config.cpus,
                            num_gpus=self.config.gpus, max_concurrency=4, max_restarts=0).remote(bundle_of(store, job))
        self._save_note(store, job["id"], {"actor": name, "cursor": 0, "tries": tries, "ended": None})
        where = ray.get(actor.start.remote(), timeout=600)
        store.update_job(job["id"], executor={"name": "ray", "workers": 1,
                                              "where": f"Ray cluster {self.config.address} · {where['host']}"})
        cpus = f"{self.config.cpus:g} CPU" + ("s" if self.config.cpus != 1 else "")
        gpus = f", {self.config.gpus:g} GPU" if self.config.gpus else ""
        store.add_event(job["id"], f"Training on the Ray cluster at {self.config.address}: worker {name} on "
                        f"{where['host']} ({cpus}{gpus})")
        return actor

    def train(self, store: Store, job: dict, control: Callable[[], None]) -> None:
        import ray

        note = self._note(store, job["id"])
        actor = self._actor(note["actor"]) if note and not note.get("ended") else None
        if actor is None:
            tries = 1
            actor = self._start(store, job, tries)
            note = self._note(store, job["id"])
        assert note is not None
        cursor, tries, told = int(note["cursor"]), int(note["tries"]), None
        while True:
            try:
                records = ray.get(actor.pull.remote(cursor), timeout=120)
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.RayActorError as exc:  # the worker is gone (its node, an OOM kill, ray.kill)
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                step = (store.get_job(job["id"]) or {}).get("step") or 0
                if told is not None:  # it was being stopped anyway: the state the server has is what counts
                    raise Stop(told) from exc
                if tries >= self.config.tries:
                    message = (f"Training failed: the job's Ray worker was lost {tries} time(s); the last time: "
                               f"{type(exc).__name__}: {reason}")
                    self._save_note(store, job["id"], {**note, "ended": "failed"})
                    if store.set_status_if(job["id"], ("running",), "failed", finished_at=int(time.time()),
                                           error={"code": "training_error", "message": message, "param": None}):
                        store.add_event(job["id"], message, level="error")
                    return
                tries += 1
                store.add_event(job["id"], f"The Ray worker training this job was lost ({type(exc).__name__}); "
                                f"resuming from its last saved state (step {step} or before) on another worker "
                                f"(try {tries} of {self.config.tries})", level="warn")
                actor = self._start(store, store.get_job(job["id"]), tries)
                note = self._note(store, job["id"]) or note
                cursor = 0
                continue
            ended = None
            for r in records:
                if "error" in r:
                    raise RuntimeError(f"the Ray worker could not start the job: {r['error']}")
                apply(store, r)
                cursor = r["seq"]
                ended = r["ended"] or ended
            if records:
                note = {**note, "cursor": cursor}
                self._save_note(store, job["id"], note)
            if ended is not None:
                self._save_note(store, job["id"], {**note, "ended": ended})
                ray.kill(actor)
                if ended in ("paused", "cancelled"):
                    raise Stop(ended)
                return
            if told is None:
                try:
                    control()
                except Stop as stop:
                    if stop.why not in ("paused", "cancelled"):
                        raise  # the server is gone: the detached worker goes on, the next server follows it
                    told = stop.why
                    actor.control.remote(told)
            time.sleep(POLL)
