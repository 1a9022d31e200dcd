"""A real `ftui serve` subprocess on a free loopback port (shared by the server, service and TUI tests)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ftui.serveinfo import free_port


def _die_with_parent() -> None:
    """In the child: SIGTERM when the process that started it is gone, however it went (a test run or a bench
    killed by a timeout, even SIGKILL): `ftui serve` then stops its runner and exits. Linux only (prctl); elsewhere
    the starter's own stop() is all there is."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_STARTED: dict[int, "Server"] = {}  # by port: the servers a test started, for wait_for's stack dump


class Server:
    def __init__(self, data_dir: Path, api_key: str | None = None, test_hooks: bool = False,
                 env: dict | None = None, args: list[str] | None = None) -> None:
        self.env = env
        self.args = list(args or [])
        self.data_dir = data_dir
        self.api_key = api_key
        self.test_hooks = test_hooks
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "Server":
        cmd = [sys.executable, "-m", "ftui.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.test_hooks:
            cmd += ["--test-hooks"]
        cmd += self.args
        log = open(self.data_dir.parent / f"serve-{self.port}.log", "ab")
        # no background preload of torch unless a test asks for it: most servers here never chat, and the
        # memory tests measure the API process's own growth
        env = {**os.environ, "FTUI_SERVE_PRELOAD": "0", **(self.env or {})}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                     preexec_fn=_die_with_parent)
        self.log = Path(log.name)
        _STARTED[self.port] = self
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ftui serve exited with {self.proc.returncode}")
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{self.port}/health", headers=self._auth())
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("ftui serve did not come up")

    def _auth(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, **kw):
        from openai import OpenAI

        kw.setdefault("api_key", self.api_key or "unused")
        return OpenAI(base_url=self.base_url, max_retries=0, **kw)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    # -- test hooks (ftui serve --test-hooks): real failures armed on the real server ---------------------------
    def _hook(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json", **self._auth()})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def fault(self, path: str = "/v1", status: int = 500, times: int = 1, retry_after: float | None = None,
              message: str | None = None, method: str | None = None, body: str | None = None,
              content_type: str | None = None, after: bool = False) -> None:
        """Arm a real failure for the next ``times`` requests under ``path`` (and ``method``): an error status with
        Retry-After, or a raw ``body`` (HTML, broken JSON, a job without a status); ``after``: the request is carried
        out first and then its answer replaced (a dropped response)."""
        self._hook("POST", "/_test/faults", {"path": path, "status": status, "times": times, "method": method,
                                             "retry_after": retry_after, "message": message, "body": body,
                                             "content_type": content_type, "after": after})

    def clear_faults(self) -> None:
        self._hook("DELETE", "/_test/faults")

    def stream_fault(self, after_chunks: int) -> None:
        self._hook("POST", "/_test/faults", {"stream_error_after": after_chunks})

    def requests(self) -> dict[str, int]:
        return self._hook("GET", "/_test/requests")

    def reset_requests(self) -> None:
        self._hook("DELETE", "/_test/requests")

    def generations(self) -> int:
        """Generations under way on the server now."""
        return self._hook("GET", "/_test/generations")["running"]

    def until_generations(self, predicate, timeout: float = 60, what: str = "") -> None:
        """Wait until ``predicate(generations under way)`` holds: positive evidence, never a fixed sleep."""
        deadline = time.monotonic() + timeout
        while not predicate(n := self.generations()):
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout} s, {n} generation(s) under way: {what}")
            time.sleep(0.05)


def wait_for(client, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 400,
             predicate=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses or (predicate and predicate(job)):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s{stacks_of(client)}")


def stacks_of(client) -> str:
    """What the server behind ``client`` (one a test started) and its runner and trainer are doing: on SIGUSR1 each
    writes every thread's Python stack to the server's log (``ftui serve`` registers it); one process at a time, so
    their lines never interleave. The log's tail, without the request lines, for a failure's message."""
    import psutil

    server = _STARTED.get(client.base_url.port)
    if server is None or server.proc is None or server.proc.poll() is not None:
        return ""
    try:
        procs = [psutil.Process(server.proc.pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return ""
    for proc in procs:
        before = server.log.stat().st_size
        try:
            proc.send_signal(signal.SIGUSR1)
        except psutil.Error:
            continue
        deadline = time.monotonic() + 3
        size = before
        while time.monotonic() < deadline:  # until its dump stops growing the log (bounded)
            time.sleep(0.2)
            now = server.log.stat().st_size
            if now == size and now > before:
                break
            size = now
    lines = [x for x in server.log.read_text(errors="replace").splitlines() if " ftui.server.http INFO " not in x]
    return "\n--- the server's log (its processes' stacks at the end):\n" + "\n".join(lines[-200:])


def start_job(client, suffix: str, n_epochs: int, model: str = "smollm2-135m-instruct"):
    """Upload the Marv sample and create a supervised job through the SDK (tests that do not go through the form)."""
    samples = Path(__file__).resolve().parent.parent / "ftui" / "data" / "samples"
    with open(samples / "marv.jsonl", "rb") as fh:
        f = client.files.create(file=fh, purpose="fine-tune")
    return client.fine_tuning.jobs.create(model=model, training_file=f.id, suffix=suffix,
                                          method={"type": "supervised",
                                                  "supervised": {"hyperparameters": {"n_epochs": n_epochs}}})
