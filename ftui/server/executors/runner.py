"""The job runner: a separate process that validates and trains queued jobs, one at a time.

Started and watched by ``ftui serve``; talks to the API process only through the store. A crash or an out-of-memory
kill here never takes the API down (the API marks the job failed and starts a new runner). If the whole server dies,
the next runner finds the job still ``running``, and resumes it from its last saved state (epoch ends and pauses), or
from the start if it had none. A runner whose parent died stops within one training step.

    python -m ftui.server.executors.runner DATA_DIR [PARENT_PID] [--warm] [--executor JSON]

The runner keeps the queue; where a job trains is its executor's business (:mod:`ftui.server.executors`): here by
default, or on a Ray cluster. A job trained here runs in a *trainer process* forked from the runner for it: the
runner imports torch, transformers and peft once (never running a torch operation itself, so the fork is safe) and
each job starts in milliseconds with them, in a fresh process whose memory (a model and its optimizer take gigabytes)
goes back to the system when it ends. A trainer that dies (the OOM killer, a crash) takes the runner with it, with
the same exit status, so the supervisor fails that job and starts a new runner as it always has.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from ftui.server import mkl
from ftui.server.diagnostics import stacks_on_sigusr1
from ftui.server.executors import Executor, ExecutorConfig, make
from ftui.server.faults import runner_fault
from ftui.server.store import CURRENT, TERMINAL, Store, now
from ftui.server.train.trainer import Stop, job_files

log = logging.getLogger("ftui.runner")


def validate(store: Store, job: dict) -> dict | None:
    """The job's error object, or None when its files are fine (ftui's own rules, as `ftui check` runs them)."""
    from ftui.core.analysis import DatasetError, analyze
    from ftui.core.report import Report

    if job["method"]["type"] == "reinforcement":  # prompts and the keys the grader reads, not chat examples
        from ftui.server.train.rft import validate as validate_rft

        return validate_rft(store, job)
    want = "preference" if job["method"]["type"] == "dpo" else "chat"
    for param, fid, label in job_files(job):
        try:
            report = Report.of(analyze(store.file_path(fid), encoding="o200k_base", workers=1), job["model"])
        except DatasetError as exc:
            return {"code": "invalid_file", "param": param, "message": f"The {label} file could not be read: "
                    f"{exc.reason}"}
        a = report.analysis
        if param == "training_file" and a.examples < 10:
            return {"code": "invalid_n_examples", "param": param,
                    "message": f"Training file has {a.examples} example(s), but must have at least 10 examples"}
        if a.format is not None and a.format != want:
            return {"code": "invalid_file_format", "param": param,
                    "message": f"The {label} file is in {a.format} format; a {job['method']['type']} job needs "
                    f"{want} examples"}
        errors = [f for f in report.errors if f.code not in ("too_few_examples",)]
        if errors:
            shown = "; ".join(f"line {f.line}: {f.message}" if f.line else f.message for f in errors[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            return {"code": "invalid_file_format", "param": param,
                    "message": f"The job failed due to a file format error in the {label} file. {shown}{more}"}
    return None


class Runner:
    def __init__(self, data_dir: Path, parent: int | None = None, executor: Executor | None = None) -> None:
        self.store = Store(data_dir)
        self.parent = parent or os.getppid()
        self.executor = executor or make(ExecutorConfig())
        self.following: list[str] = []  # jobs still training elsewhere after a server restart, to follow again
        self.trainer: int | None = None  # the pid of the trainer process forked for the job training now
        self.warming: threading.Thread | None = None  # the imports a trainer process starts with

    def orphaned(self) -> bool:
        return os.getppid() != self.parent

    def recover(self) -> None:
        """Jobs left `running` by a server that died: resume them from their saved state. A pause no trainer took
        is held (nothing trains it now)."""
        self.store.release_pauses()
        for job in self.store.list_jobs(1000, None):
            if job["status"] == "running":
                if self.executor.recover(self.store, job):
                    self.following.append(job["id"])
                    continue
                state = self.store.dir / "jobs" / job["id"] / "state" / "state.json"
                where = "its last checkpoint" if state.exists() else "the start (no checkpoint was saved yet)"
                self.store.update_job(job["id"], status="queued")
                self.store.add_event(job["id"], f"The server restarted during training; resuming from {where}",
                                     level="warn")

    def control_for(self, job_id: str):
        def control() -> None:
            if self.orphaned():
                raise Stop("orphaned")
            status = self.store.get_job(job_id)["status"]
            if status == "paused" and not self.store.acknowledge_pause(job_id):
                status = self.store.get_job(job_id)["status"]  # resumed (or cancelled) before it was taken
            if status == "cancelled":
                raise Stop("cancelled")
            if status == "paused":
                raise Stop("paused")

        return control

    def run_one(self, job: dict) -> None:
        """Validate and train ``job``."""
        store = self.store
        # the supervisor fails this job if the runner dies on it (out of memory, a crash): never a loop on one job
        (store.dir / CURRENT).write_text(job["id"])
        try:
            self._run_one(job)
        finally:
            (store.dir / CURRENT).unlink(missing_ok=True)
            ended = store.get_job(job["id"])
            if ended is not None and ended["status"] in TERMINAL:  # resumable state is for paused jobs only
                shutil.rmtree(store.dir / "jobs" / job["id"] / "state", ignore_errors=True)

    def _run_one(self, job: dict) -> None:
        store = self.store
        if job["status"] == "validating_files":
            store.add_event(job["id"], "Validating training file: " + job["training_file"] + (
                f" and validation file: {job['validation_file']}" if job["validation_file"] else ""))
            try:
                runner_fault()
                error = validate(store, job)
            except Exception as exc:  # noqa: BLE001 — an unexpected failure fails the job, never the runner
                log.error("validating job %s failed:\n%s", job["id"], traceback.format_exc())
                error = {"code": "validation_error", "param": None,
                         "message": f"The files could not be validated: {type(exc).__name__}: {exc}"}
            if error is not None:
                if store.set_status_if(job["id"], ("validating_files",), "failed", error=error, finished_at=now()):
                    store.add_event(job["id"], error["message"], level="error")
                return
            if not store.set_status_if(job["id"], ("validating_files",), "queued"):
                return
            store.add_event(job["id"], "Files validated, moving job to queued state")
        if not store.set_status_if(job["id"], ("queued",), "running"):
            return
        workers = (job.get("executor") or {}).get("workers") or 1  # asked for at creation (data-parallel)
        store.update_job(job["id"], executor={**self.executor.describe(), "workers": workers})
        self.train(job["id"])

    def train(self, job_id: str) -> None:
        """Hand a running job to the executor until it ends."""
        store = self.store
        job = store.get_job(job_id)
        try:
            self.executor.train(store, job, self.control_for(job["id"]))
        except Stop as stop:
            if stop.why == "paused":
                store.add_event(job["id"], f"Fine-tuning job paused at step {store.get_job(job['id'])['step']}")
            elif stop.why == "cancelled":
                store.add_event(job["id"], "Fine-tuning job stopped: cancelled")
            else:
                raise SystemExit(0)
        except Exception as exc:  # a training failure fails the job, never the runner
            log.error("job %s failed:\n%s", job["id"], traceback.format_exc())
            message = f"Training failed: {type(exc).__name__}: {exc}"
            if store.set_status_if(job["id"], ("running",), "failed", finished_at=now(),
                                   error={"code": "training_error", "message": message, "param": None}):
                store.add_event(job["id"], message, level="error")

    def loop(self) -> None:
        lock = open(self.store.dir / "runner.lock", "w")
        while True:  # wait for an orphaned runner of a dead server to notice and let go
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if self.orphaned():
                    return
                time.sleep(0.2)
        self.recover()
        while self.following and not self.orphaned():  # jobs that went on training elsewhere while no server ran
            self.train(self.following.pop(0))
        while not self.orphaned():
            job = self.store.next_job()
            if job is None:
                time.sleep(0.25)
                continue
            if self.executor.name == "local":
                self.fork_for(job)
            else:  # a job that trains elsewhere (Ray, SkyPilot): no model is loaded here
                self.run_one(job)

    def fork_for(self, job: dict) -> None:
        """Run ``job`` in a trainer process forked from this one, and wait for it. Its exit status, when not 0, ends
        this runner the same way (the supervisor fails the job and starts another runner)."""
        if self.warming is None:  # the first job of a runner started cold: import here, once, for every later job
            self.warming = warm_up()
        self.warming.join()  # never fork while another thread holds the import lock
        for h in logging.getLogger().handlers:
            h.flush()
        pid = os.fork()
        if pid == 0:
            self._trainer_main(job)
        self.trainer = pid
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if self.orphaned():  # the server is gone: the trainer notices this runner gone within a step
                    os._exit(0)
                time.sleep(0.1)
        finally:
            self.trainer = None
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # killed by a signal (the OOM killer's 9): this runner ends by the same one
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        if code != 0:
            raise SystemExit(code)

    def _trainer_main(self, job: dict) -> None:
        """The forked trainer process: its own store connection (an SQLite connection is never used across a
        fork; the inherited one is kept, unused and unclosed), the runner as its parent, out by ``os._exit``."""
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._inherited = self.store
            self.store = Store(self._inherited.dir)
            self.parent = os.getppid()
            self.run_one(job)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 — as an uncaught exception would end a process: logged, exit 1
            log.error("the trainer process failed on job %s:\n%s", job["id"], traceback.format_exc())
            code = 1
        finally:
            for h in logging.getLogger().handlers:
                h.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def forward_term(self) -> None:
        """SIGTERM (the server stopping) reaches the trainer too, then ends this runner as it would have."""
        def term(signum, frame) -> None:
            if self.trainer:
                try:
                    os.kill(self.trainer, signum)
                except ProcessLookupError:
                    pass
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, term)


def warm_up() -> threading.Thread:
    """Import what training needs in the background while the runner waits for a job (a job that comes first
    waits on the same imports, never does them twice); the thread is joined before a trainer is forked."""
    def imports() -> None:
        try:
            import importlib

            # peft (3.5 s here: it imports bloom's model and generation), and the modules transformers loads
            # lazily at the first model (the bundled base is a Llama): a job that comes now starts at once
            for name in ("torch", "peft", "transformers.models.llama.modeling_llama",
                         "transformers.models.auto.modeling_auto", "ftui.server.train.rft"):
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 — the job that needs them will say what is wrong
            log.warning("warming up the trainer failed:\n%s", traceback.format_exc())

    thread = threading.Thread(target=imports, name="ftui-runner-warm-up", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s runner %(levelname)s %(message)s")
    stacks_on_sigusr1()
    mkl.without_its_memory_manager()  # inherited from the server; set here too for a runner started alone
    # a terminal's Ctrl-C reaches every process of the group: the server stops this runner (SIGTERM) once it stops,
    # and a trainer forked from here inherits the same (no KeyboardInterrupt in the middle of a step)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm = "--warm" in args
    args = [a for a in args if a != "--warm"]
    config = ExecutorConfig()
    if "--executor" in args:
        i = args.index("--executor")
        config = ExecutorConfig(**json.loads(args[i + 1]))
        del args[i:i + 2]
    runner = Runner(Path(args[0]), int(args[1]) if len(args) > 1 else None, make(config))
    if warm and config.name == "local":
        runner.warming = warm_up()
    runner.forward_term()
    runner.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
