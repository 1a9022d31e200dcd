"""`ftui serve`: the API (uvicorn, this process) plus a supervised runner process that trains."""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ftui.core.files import atomic_write
from ftui.serveinfo import API_KEY_ENV, LIVE, DataDirBusy, default_data_dir, free_port, lock_data_dir, running_server
from ftui.server import mkl
from ftui.server.diagnostics import stacks_on_sigusr1
from ftui.server.store import CURRENT, Store, now

log = logging.getLogger("ftui.server")
__all__ = ["API_KEY_ENV", "default_data_dir", "free_port", "running_server", "serve"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class Supervisor:
    """Keeps one runner process alive; a runner that dies mid-job fails that job and is replaced. Each job the runner
    trains here runs in a trainer process it forks (memory is returned after every job; the runner imported torch
    and the trainer once, so a job starts at once, a sweep's next one too); a trainer that dies takes its runner
    with it, and the supervisor deals with it as with a runner that died.

    A runner ended by the signal that is stopping the server too is no crash: a process group's SIGTERM (systemd's
    default way to stop a service, ``kill -- -PGID``) reaches the runner and the server at once, and the job it was
    training stays ``running``, to resume at the next start. The server marks stopping at its first signal
    (``begin_stop``), and a runner that died of SIGTERM or SIGINT is judged after that has had a moment to happen.
    The runner ignores SIGINT (a terminal's Ctrl-C reaches the whole group): the server stops it with SIGTERM."""

    STOP_SIGNAL_GRACE = 2.0  # seconds the server's own handling of a group's signal may lag the runner's death

    def __init__(self, data_dir: Path, executor: dict | None = None) -> None:
        self.data_dir = data_dir
        self.executor = executor if executor and executor.get("name", "local") != "local" else None
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self._stop_begun = False
        self.spawning = threading.Lock()
        self.thread = threading.Thread(target=self._watch, name="ftui-runner-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self.thread.start()

    def _command(self, warm: bool) -> list[str]:
        return ([sys.executable, "-m", "ftui.server.executors.runner", str(self.data_dir), str(os.getpid())]
                + (["--warm"] if warm else [])
                + (["--executor", json.dumps(self.executor)] if self.executor else []))

    def _spawn(self, warm: bool = False) -> None:
        """A new runner, told who its parent is (one started as the server goes would otherwise take init for its
        parent and never notice it is orphaned); never once stopping has begun. ``warm``: it replaces a runner that
        died, so jobs are likely: it imports torch while it waits (4–8 s here) instead of when the next job comes.
        The first runner of a server stays light until someone trains (then it imports once, for every job)."""
        with self.spawning:
            if not self.stopping.is_set():
                self.proc = subprocess.Popen(self._command(warm))

    def begin_stop(self) -> None:
        """The server is stopping (its first SIGTERM or SIGINT): no new runner, and a runner that dies now is no
        crash; :meth:`stop` then ends the runner. Called from a signal handler too, which another signal can
        interrupt: only the first call takes the lock (marked before it, so a nested call never waits on it)."""
        if self._stop_begun:
            return
        self._stop_begun = True
        with self.spawning:
            self.stopping.set()

    def _watch(self) -> None:
        """A runner that dies fails the job it was on (validating or training) and is replaced after a delay that
        doubles while runners keep dying young (0.5 s … 30 s): a crash loop never spins."""
        store = Store(self.data_dir)
        delay = 0.5
        while not self.stopping.is_set():
            started = time.monotonic()
            code = self.proc.wait()
            if code in (-signal.SIGTERM, -signal.SIGINT):  # perhaps the group's signal that is stopping us too
                self.stopping.wait(self.STOP_SIGNAL_GRACE)
            if self.stopping.is_set():
                break
            if code == 0:  # a runner that ended cleanly (none does today but one orphaned): the next one
                self._spawn(warm=True)
                continue
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
            hint = " (out of memory?)" if code in (-9, 137) else ""
            current = _read(self.data_dir / CURRENT)
            log.error("the trainer process died (%s)%s on job %s; starting a new one", why, hint, current or "—")
            for job in store.list_jobs(1000, None):
                if job["status"] == "running" or (job["id"] == current and job["status"] == "validating_files"):
                    msg = f"The trainer process died ({why}){hint}"
                    if store.set_status_if(job["id"], ("running", "validating_files"), "failed", finished_at=now(),
                                           error={"code": "trainer_crashed", "message": msg, "param": None}):
                        store.add_event(job["id"], msg, level="error")
            store.release_pauses()  # a pause the dead trainer never took: held, so a resume restarts it
            (self.data_dir / CURRENT).unlink(missing_ok=True)
            delay = 0.5 if time.monotonic() - started > 60 else min(30.0, delay * 2)
            self.stopping.wait(delay)
            if not self.stopping.is_set():
                self._spawn(warm=True)
        store.close()

    def stop(self) -> None:
        self.begin_stop()
        proc = self.proc
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the runner passes it on to a trainer it forked
        if proc:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _log_to(path: Path) -> None:
    """Requests, errors (with tracebacks) and the runner's story go to <data dir>/serve.log too, rotated (1 MB × 3).
    Never a key or a body: request lines carry method, path, status, duration and the request id."""
    from logging.handlers import RotatingFileHandler

    handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def gc(data_dir: Path) -> list[tuple[Path, int]]:
    """Free what no job, model or checkpoint needs any more: saved state of ended jobs, folders of deleted models
    and checkpoints, folders of jobs that no longer exist, interrupted uploads. Returns (path, bytes) removed.
    Call it with the data dir's lock held (no server running on it)."""
    import shutil

    store = Store(data_dir)
    try:
        jobs = {j["id"]: j for j in store.list_jobs(10**9, None)}
        models = {m["path"] for m in store.list_models()}
        ckpts = {c["path"] for jid in jobs for c in store.list_checkpoints(jid)}
    finally:
        store.close()
    doomed: list[Path] = []
    for d in sorted((data_dir / "jobs").iterdir()) if (data_dir / "jobs").is_dir() else []:
        job = jobs.get(d.name)
        if job is None:
            doomed.append(d)
            continue
        if job["status"] in ("succeeded", "failed", "cancelled"):
            doomed += [p for p in d.iterdir() if p.name == "state" or p.name.startswith(".state")]
        if (d / "checkpoints").is_dir():
            doomed += [p for p in (d / "checkpoints").iterdir() if str(p) not in ckpts]
        if (d / "model").exists() and str(d / "model") not in models:
            doomed.append(d / "model")
    if (data_dir / "files").is_dir():
        doomed += list((data_dir / "files").glob(".incoming-*"))
    from ftui.server.http.routes.uploads import ended_uploads

    doomed += ended_uploads(data_dir)  # Uploads completed, cancelled or expired (their parts and state)
    freed = []
    for p in doomed:
        size = _size(p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        freed.append((p, size))
    return freed


def run_gc(data_dir: Path) -> int:
    try:
        lock = lock_data_dir(data_dir)
    except DataDirBusy as e:
        print(f"ftui serve --gc: {e}: stop it first", file=sys.stderr)
        return 3
    try:
        freed = gc(data_dir)
    finally:
        lock.close()
    for path, size in freed:
        print(f"  {size / 2**20:8.1f} MB  {path.relative_to(data_dir)}")
    print(f"ftui serve --gc: freed {sum(s for _, s in freed) / 2**20:.1f} MB in {len(freed)} item(s) "
          f"from {data_dir}")
    return 0


class IdleWatch:
    """``--idle-exit N``: stop the server once no job is live and no request came for N seconds (the app starts its
    backend this way, so a dropped SSH session never leaves a server behind for ever, while training survives it)."""

    def __init__(self, data_dir: Path, seconds: float) -> None:
        self.data_dir = data_dir
        self.seconds = seconds
        self.last_request = time.monotonic()

    def touch(self) -> None:
        self.last_request = time.monotonic()

    def idle(self, store: Store) -> bool:
        if time.monotonic() - self.last_request < self.seconds:
            return False
        return not any(j["status"] in LIVE for j in store.list_jobs(1000, None))

    def watch(self, server) -> None:
        store = Store(self.data_dir)
        try:
            while not server.should_exit:
                time.sleep(min(1.0, self.seconds / 4))
                if self.idle(store):
                    log.info("idle for %.0f s with no live job: stopping", self.seconds)
                    server.should_exit = True
        finally:
            store.close()


PRELOAD_AFTER = 0.5  # seconds


SPIN = "10000"  # GNU OpenMP's spin count before a waiting thread sleeps (its default is 300,000)


def share_the_cpu() -> None:
    """Share a busy machine in proportion. PyTorch's OpenMP threads spin at every barrier before they sleep; on a
    machine with more runnable threads than cores the thread they wait for is often descheduled, and the spinning
    burns the slices it needed. bench/contention.py (2 cores, 4 busy-looping processes beside streamed chat):
    default 25.2 tok/s alone, 6.3 beside them — 0.76 of a fair share; spin count 10,000: 24.6 alone, 8.8 beside
    — 1.07 of it; OMP_WAIT_POLICY=PASSIVE: 15.1 alone. Set before torch loads (the runner inherits it), and never
    over a choice the user made in the environment."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPIN
    if "torch" in sys.modules:  # too late for this process's OpenMP runtime (its runner still gets it)
        logging.getLogger("ftui.serve").warning("torch was loaded before the OpenMP spin count was set")


EXIT_PORT_TAKEN = 4  # (2: refused set-up, 3: the data dir is another server's)
SHUTDOWN_GRACE = 5.0  # seconds open requests get after SIGTERM before they are cancelled


def bind(host: str, port: int):
    """The listening socket, bound before anything says "listening" (0 picks a free port)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's, with a shutdown that ends: the first SIGTERM or SIGINT stops listening and halts every
        generation (as a client's disconnect does), so open streams end within a token; requests still open after
        SHUTDOWN_GRACE are cancelled; a second signal of either kind exits at once."""

        on_exit = staticmethod(lambda: None)

        def handle_exit(self, sig, frame) -> None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            self.on_exit()

    return Server


def serve(host: str, port: int, data_dir: Path, api_key: str | None, base_models: list[str],
          test_hooks: bool = False, idle_exit: float | None = None, allow_hosts: list[str] | None = None,
          allow_origins: list[str] | None = None, deployments: dict[str, str] | None = None,
          python_graders: bool = False, executor: dict | None = None) -> int:
    import uvicorn

    from ftui.server.http.app import create_app

    if not is_loopback(host) and not api_key:
        print(f"ftui serve: refusing to listen on {host} without an API key (--api-key or ${API_KEY_ENV})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    share_the_cpu()
    mkl.without_its_memory_manager()  # before torch loads; the runner inherits it
    stacks_on_sigusr1()
    os.umask(0o077)  # the datasets, models and keys it writes (and its runner writes) are the user's alone
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    _log_to(data_dir / "serve.log")
    try:
        lock = lock_data_dir(data_dir)  # held until this process ends: one server per data dir
    except DataDirBusy as e:
        print(f"ftui serve: {e}", file=sys.stderr)
        return 3
    if base_models:
        from ftui.server.models.basemodels import DEFAULT_BASE, BaseModelError, resolve_source

        extra = {}
        for spec in base_models:
            name, _, source = spec.partition("=")
            if not name.strip() or not source.strip() or name.strip() == DEFAULT_BASE:
                print(f"ftui serve: --base-model wants NAME=SOURCE (a folder, a .gguf file or a Hub id; NAME not "
                      f"{DEFAULT_BASE!r}), got {spec!r}", file=sys.stderr)
                return 2
            try:
                extra[name.strip()] = resolve_source(source.strip())
            except BaseModelError as e:
                print(f"ftui serve: --base-model {name.strip()}: {e}", file=sys.stderr)
                return 2
        atomic_write(data_dir / "base_models.json", json.dumps(extra, indent=2).encode())
    try:
        sock = bind(host, port)
    except OSError as e:
        print(f"ftui serve: cannot listen on {host}:{port}: {e.strerror or e}"
              + (" (another program has that port: choose another with --port, or --port 0 for a free one)"
                 if e.errno == errno.EADDRINUSE else ""), file=sys.stderr)
        lock.close()
        return EXIT_PORT_TAKEN
    port = sock.getsockname()[1]
    idle = IdleWatch(data_dir, idle_exit) if idle_exit else None
    app = create_app(data_dir, api_key, test_hooks=test_hooks, on_request=idle.touch if idle else None, bind=host,
                     allow_hosts=allow_hosts, allow_origins=allow_origins, deployments=deployments,
                     python_graders=python_graders or None, executor_name=(executor or {}).get("name", "local"))
    sup = Supervisor(data_dir, executor)
    sup.start()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=SHUTDOWN_GRACE)
    server = _server_class()(config)
    ctx = app.state.ctx

    def on_exit() -> None:  # uvicorn's handle_exit, at every SIGTERM or SIGINT
        sup.begin_stop()
        ctx.halt_all()

    server.on_exit = on_exit
    if idle:
        threading.Thread(target=idle.watch, args=(server,), name="ftui-idle-exit", daemon=True).start()
    print(f"ftui serve: listening on http://{host}:{port}/v1 (data in {data_dir})", flush=True)
    log.info("listening on http://%s:%s/v1 (data in %s)", host, port, data_dir)
    marker = data_dir / "serve.json"  # lets the TUI reuse a server already running on this data dir
    atomic_write(marker, json.dumps({"pid": os.getpid(), "host": host, "port": port,
                                     "auth": bool(api_key)}).encode())
    from ftui.server.models.inference import preload

    # torch and transformers load in the background a moment after the server listens (not competing with a TUI
    # that is drawing its first screen), so the first chat request after a start pays only for its model
    # (FTUI_SERVE_PRELOAD=0 turns it off: the test suite starts dozens of servers that never chat)
    warm = threading.Timer(PRELOAD_AFTER, preload, args=(data_dir,))
    warm.daemon = True
    if os.environ.get("FTUI_SERVE_PRELOAD", "1") != "0":
        warm.start()
    try:
        server.run(sockets=[sock])
    finally:
        warm.cancel()
        sup.stop()
        lock.close()
        if (running_server(data_dir) or {}).get("pid") == os.getpid():
            marker.unlink(missing_ok=True)
    return 0
