"""`ftui serve`: the API (uvicorn, this process) plus a supervised runner process that trains."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .store import Store, atomic_write, now

log = logging.getLogger("ftui.server")
API_KEY_ENV = "FTUI_SERVE_API_KEY"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ftui" / "server"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Supervisor:
    """Keeps one runner process alive; a runner that dies mid-job fails that job and is replaced."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="ftui-runner-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self.thread.start()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "ftui.server.runner", str(self.data_dir)])

    def _watch(self) -> None:
        store = Store(self.data_dir)
        while not self.stopping.is_set():
            code = self.proc.wait()
            if self.stopping.is_set():
                break
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
            hint = " (out of memory?)" if code in (-9, 137) else ""
            log.error("the trainer process died (%s)%s; starting a new one", why, hint)
            for job in store.list_jobs(1000, None):
                if job["status"] == "running":
                    msg = f"The trainer process died ({why}){hint}"
                    if store.set_status_if(job["id"], ("running",), "failed", finished_at=now(),
                                           error={"code": "trainer_crashed", "message": msg, "param": None}):
                        store.add_event(job["id"], msg, level="error")
            time.sleep(0.5)
            self._spawn()
        store.close()

    def stop(self) -> None:
        self.stopping.set()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def running_server(data_dir: Path) -> dict | None:
    """The ``ftui serve`` already serving ``data_dir`` ({"pid", "host", "port"}), if its process is alive."""
    try:
        info = json.loads((data_dir / "serve.json").read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def serve(host: str, port: int, data_dir: Path, api_key: str | None, base_models: list[str],
          test_hooks: bool = False) -> int:
    import uvicorn

    from .app import create_app

    if not is_loopback(host) and not api_key:
        print(f"ftui serve: refusing to listen on {host} without an API key (--api-key or ${API_KEY_ENV})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir.mkdir(parents=True, exist_ok=True)
    if base_models:
        extra = {}
        for spec in base_models:
            name, _, path = spec.partition("=")
            if not name or not path or not Path(path).is_dir():
                print(f"ftui serve: --base-model wants NAME=FOLDER, got {spec!r}", file=sys.stderr)
                return 2
            extra[name] = str(Path(path).resolve())
        atomic_write(data_dir / "base_models.json", json.dumps(extra, indent=2).encode())
    port = port or free_port(host)
    app = create_app(data_dir, api_key, test_hooks=test_hooks)
    sup = Supervisor(data_dir)
    sup.start()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    print(f"ftui serve: listening on http://{host}:{port}/v1 (data in {data_dir})", flush=True)
    marker = data_dir / "serve.json"  # lets the TUI reuse a server already running on this data dir
    atomic_write(marker, json.dumps({"pid": os.getpid(), "host": host, "port": port,
                                     "auth": bool(api_key)}).encode())
    try:
        server.run()
    finally:
        sup.stop()
        if (running_server(data_dir) or {}).get("pid") == os.getpid():
            marker.unlink(missing_ok=True)
    return 0
