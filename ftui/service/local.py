"""The local backend as the TUI uses it: reuse a running ``ftui serve`` on the data dir, or start one on a free
loopback port, wait until it answers. Standard library only; the data dir, free port and ``serve.json`` marker come
from ``ftui.serveinfo`` (shared with the server, which this package never imports).

The server is started with ``--idle-exit``: when the app goes (ctrl+q, a dropped SSH connection, SIGHUP, even
SIGKILL) a job in training keeps going and the next ``ftui`` reconnects to it; once nothing is live the server stops
by itself after ``IDLE_EXIT`` seconds. ``ftui serve`` takes a lock on its data dir, so there is never more than one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ftui.serveinfo import API_KEY_ENV, LIVE, default_data_dir, free_port, running_server

from ..errors import FtuiError

PORT_TAKEN = 4  # ftui serve's exit code when its port is taken (server/serve.py EXIT_PORT_TAKEN)
PORT_RETRIES = 3
IDLE_EXIT = float(os.environ.get("FTUI_SERVE_IDLE_EXIT", "300"))


class LocalBackendError(FtuiError, RuntimeError):
    pass


KEY_FILE = "serve.key"


def _get(url: str, key: str | None, timeout: float):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    return urllib.request.urlopen(req, timeout=timeout)


def _healthy(port: int, key: str | None = None, timeout: float = 1.0) -> bool:
    try:
        with _get(f"http://127.0.0.1:{port}/health", key, timeout) as r:
            return r.status == 200
    except OSError:
        return False


class LocalBackend:
    """One ``ftui serve`` for the app. ``start()`` blocks until it is reachable (call it from a thread)."""

    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.owned = False
        self.api_key: str | None = None  # the key the server requires (made here, handed over in a 0600 file)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _running(self) -> int | None:
        """The port of a healthy server already on this data dir, with its key (from the key file) if it has one."""
        info = running_server(self.data_dir)
        if not info or info.get("host") not in ("127.0.0.1", "localhost"):
            return None
        key = None
        if info.get("auth"):
            try:
                key = (self.data_dir / KEY_FILE).read_text().strip()
            except OSError:
                return None  # somebody else's key: not ours to use
        port = int(info["port"])
        if not _healthy(port, key):
            return None
        self.api_key = key
        return port

    def start(self, timeout: float = 120.0, cancel=None) -> str:
        """Reuse or start the server; ``cancel`` (a threading.Event) aborts the wait and stops what was started."""
        port = self._running()
        if port:
            self.port, self.owned = port, False
            return self.base_url
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port = free_port()
        # a fresh random key, handed over in a 0600 file: never on the command line, where `ps` shows it to all
        import secrets

        self.api_key = secrets.token_urlsafe(32)
        key_file = self.data_dir / KEY_FILE
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.api_key)
        os.chmod(key_file, 0o600)
        # what it prints before its own log (serve.log) is set up: 0600 like everything in the data dir (an existing
        # file from an older version is tightened too)
        out = self.data_dir / "serve.out"
        log = os.fdopen(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        os.chmod(out, 0o600)
        env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}

        def launch() -> subprocess.Popen:
            cmd = [sys.executable, "-m", "ftui.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--idle-exit", f"{IDLE_EXIT:g}", "--api-key-file",
                   str(key_file)]
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env)

        try:
            return self._wait(launch, timeout, cancel)
        finally:
            log.close()

    def _wait(self, launch, timeout: float, cancel) -> str:
        self.proc = proc = launch()
        self.owned = True
        retries = PORT_RETRIES
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                self.stop()
                raise LocalBackendError("cancelled: the app is closing")
            code = proc.poll()
            if code == 3:  # another app started one on this data dir a moment ago: use that one
                port = self._running()
                if port:
                    self.proc, self.port, self.owned = None, port, False
                    return self.base_url
                time.sleep(0.1)
                continue
            if code == PORT_TAKEN and retries:  # the free port was taken before the server bound it: take another
                retries -= 1
                self.port = free_port()
                self.proc = proc = launch()
                continue
            if code is not None:
                raise LocalBackendError(f"ftui serve exited with code {code}: {self._log_tail()}")
            if self.port is not None and _healthy(self.port, self.api_key, 0.5):
                return self.base_url
            time.sleep(0.1)
        self.stop()
        raise LocalBackendError(f"ftui serve did not answer within {timeout:.0f} s (see {self.data_dir}/serve.out "
                                "and serve.log)")

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / "serve.out").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"

    def live_jobs(self) -> int | None:
        """How many jobs the server is training or about to (None: it did not answer)."""
        import json

        try:
            with _get(f"{self.base_url}/fine_tuning/jobs?limit=100", self.api_key, 2) as r:
                jobs = json.loads(r.read()).get("data") or []
        except (OSError, ValueError):
            return None
        return sum(1 for j in jobs if j.get("status") in LIVE)

    def release(self) -> bool:
        """The app is going: stop the server it started unless a job is live (training survives the app; the
        server's ``--idle-exit`` stops it later). Returns True when it was stopped."""
        if not self.owned or self.proc is None:
            return False
        if self.live_jobs():
            return False
        self.stop()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it (the runner goes with it: same process group)."""
        proc, self.proc = self.proc, None
        if not proc or proc.poll() is not None:
            return
        try:
            proc.terminate()  # `ftui serve` stops its runner itself (a SIGTERM to the group looks like a crash to it)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
