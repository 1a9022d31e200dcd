"""Where a local ``ftui serve`` lives and how to find it: the data dir, a free loopback port, the ``serve.json`` marker
and the one-server-per-data-dir lock. Standard library only: both ``ftui.server`` (which writes these) and
``ftui.service`` (which reads them to reuse a running server) import it, and neither imports the other."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

API_KEY_ENV = "FTUI_SERVE_API_KEY"
MARKER = "serve.json"
LOCK = "serve.lock"
# job statuses that keep a server busy: it never stops by itself (idle exit) while one of its jobs is in them
LIVE = ("validating_files", "queued", "running", "pausing")


def export_name(model_id: str) -> str:
    """A model id as a file or Ollama name (what ``ftui export`` names its files and the app's default folder):
    ``ft:base:local:marv:1a2b`` → ``ft-base-local-marv-1a2b``."""
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_id)
    return "-".join(p for p in keep.split("-") if p)[:120]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ftui" / "server"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def running_server(data_dir: Path) -> dict | None:
    """The ``ftui serve`` already serving ``data_dir`` ({"pid", "host", "port", "auth"}), if its process is alive."""
    try:
        info = json.loads((Path(data_dir) / MARKER).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


class DataDirBusy(RuntimeError):
    """Another ``ftui serve`` holds this data dir."""


def lock_data_dir(data_dir: Path):
    """Take the data dir's lock for the life of this process (an open file with ``flock``); raises DataDirBusy when
    another server holds it. Returns the open file: keep a reference, the lock goes with it."""
    import fcntl

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / LOCK, "a+")  # noqa: SIM115 — held open on purpose
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        info = running_server(data_dir) or {}
        where = f" (pid {info['pid']}, port {info.get('port')})" if info.get("pid") else ""
        raise DataDirBusy(f"another ftui serve already uses {data_dir}{where}") from None
    return fh
