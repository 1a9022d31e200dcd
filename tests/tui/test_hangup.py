"""Disconnects: over SSH the terminal goes away without ctrl+q. The real app (a process on a pseudo-terminal, the
local backend it starts) exits cleanly on SIGHUP and releases its backend; a backend with a live job survives the
app and stops by itself once idle; never two servers on one data dir."""
from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backend import Server, start_job, wait_for
from tests.helpers import SAMPLES

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {what}")
        time.sleep(0.1)


class Terminal:
    """The other end of the app's pty: drained all the time (a full pty buffer would block the app), kept. Never
    blocked in a read, so that ``close()`` really closes the terminal: a descriptor closed while another thread
    reads it stays open until that read returns, and the app would never see its terminal go."""

    def __init__(self, master: int) -> None:
        import threading

        self.master = master
        self.screen = bytearray()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.screen += chunk

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        try:
            os.close(self.master)
        except OSError:
            pass


def start_app(tmp_path: Path, idle_exit: str = "300") -> tuple[subprocess.Popen, Terminal, Path]:
    """`ftui` on a pty, as a terminal would run it (no key: it starts the local backend in its XDG data dir)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "FTUI_CONFIG_FILE")}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), FTUI_SERVE_IDLE_EXIT=idle_exit, TERM="xterm-256color",
               COLUMNS="80", LINES="24")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ftui.cli", str(SAMPLES)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, start_new_session=True, close_fds=True)
    os.close(slave)
    return proc, Terminal(master), tmp_path / "data" / "ftui" / "server"


def server_of(data_dir: Path, timeout: float = 120) -> dict:
    marker = data_dir / "serve.json"
    _wait(marker.exists, timeout, "the app's backend to start")
    return json.loads(marker.read_text())


def test_sighup_exits_the_app_cleanly_and_releases_its_idle_backend(tmp_path, model_cache):
    proc, term, data_dir = start_app(tmp_path)
    try:
        info = server_of(data_dir)
        _wait(lambda: (data_dir / "serve.out").exists() and b"listening" in (data_dir / "serve.out").read_bytes(),
              60, "the server to listen")
        out = data_dir / "serve.out"  # the server's access log: the app's connect worker has listed its models
        _wait(lambda: b"GET /v1/models 200" in out.read_bytes(), 60, "the app to reach its backend")
        proc.send_signal(signal.SIGHUP)
        code = proc.wait(30)
        term.thread.join(5)
        screen = bytes(term.screen)
    finally:
        term.close()
        if proc.poll() is None:
            proc.kill()
    assert code == 128 + signal.SIGHUP
    assert b"Traceback" not in screen, screen[-2000:]
    _wait(lambda: not _alive(int(info["pid"])), 15, "the backend to stop with the app (no job was live)")
    log = (tmp_path / "state" / "ftui" / "ftui.log").read_text()
    assert "signal 1: exiting" in log


def test_a_live_job_keeps_its_server_after_the_app_is_gone_then_it_idles_out(tmp_path, model_cache):
    proc, term, data_dir = start_app(tmp_path, idle_exit="3")
    try:
        info = server_of(data_dir)
        server = Server(data_dir, api_key=(data_dir / "serve.key").read_text().strip())  # the app's random key
        server.port = int(info["port"])
        _wait(lambda: _healthy(server), 60, "the server to answer")
        client = server.client()
        job = start_job(client, "survivor", n_epochs=2)
        wait_for(client, job.id, statuses=("running",))
        proc.send_signal(signal.SIGHUP)
        proc.wait(30)
    finally:
        term.close()
        if proc.poll() is None:
            proc.kill()
    assert _alive(int(info["pid"])), "training survives the dropped terminal"
    assert wait_for(client, job.id).status == "succeeded"
    _wait(lambda: not _alive(int(info["pid"])), 30, "the server to stop by itself once idle")
    assert not (data_dir / "serve.json").exists()


def _healthy(server: Server) -> bool:
    import urllib.request

    try:
        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/health", headers=server._auth())
        with urllib.request.urlopen(req, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_never_two_servers_on_one_data_dir(tmp_path, model_cache):
    first = Server(tmp_path / "data").start()
    try:
        second = subprocess.run([sys.executable, "-m", "ftui.cli", "serve", "--port", "0", "--data-dir",
                                 str(tmp_path / "data")], capture_output=True, text=True, timeout=60)
        assert second.returncode == 3
        assert "another ftui serve already uses" in second.stderr and str(first.proc.pid) in second.stderr
    finally:
        first.stop()


def _controlling_tty() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (stdin), as under sshd or tmux."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class HangUp:
    """The app on a pty that is its controlling terminal; ``drop()`` closes the terminal's side as a dropped SSH
    connection or `tmux kill-session` does: the kernel sends SIGHUP and SIGCONT, and the pty reads and writes fail."""

    def __init__(self, tmp_path: Path) -> None:

        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "FTUI_CONFIG_FILE")}
        env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_STATE_HOME=str(tmp_path / "state"),
                   XDG_CONFIG_HOME=str(tmp_path / "config"), TERM="xterm-256color", COLUMNS="80", LINES="24")
        master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "ftui.cli", str(SAMPLES / "broken.jsonl")], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, preexec_fn=_controlling_tty,
                                     close_fds=True)
        os.close(slave)
        self.term = Terminal(master)
        self.data_dir = tmp_path / "data" / "ftui" / "server"

    @property
    def screen(self) -> bytearray:
        return self.term.screen

    def drop(self) -> float:
        """Close the terminal; -> seconds until the app exited."""
        self.term.close()
        t0 = time.monotonic()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the app did not exit within 20 s of the hang-up") from None
        return time.monotonic() - t0


# the moments of start-up a drop can come at: the first bytes drawn, the findings on screen, the backend up, later
MOMENTS = {
    "first bytes": lambda h: len(h.screen) > 0,
    "findings shown": lambda h: b"invalid" in h.screen,
    "backend marker": lambda h: (h.data_dir / "serve.json").exists(),
    "backend listening": lambda h: (h.data_dir / "serve.out").exists() and b"listening" in (
        h.data_dir / "serve.out").read_bytes(),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("attempt", range(3))
def test_a_dropped_terminal_at_any_moment_of_start_up_ends_the_app_promptly(tmp_path, model_cache, moment, attempt):
    h = HangUp(tmp_path)
    try:
        _wait(lambda: MOMENTS[moment](h), 90, moment)
        took = h.drop()
    finally:
        if h.proc.poll() is None:
            h.proc.kill()
    assert took < 5 + 3, took  # the clean exit; at worst the EXIT_GRACE watchdog
    assert h.proc.returncode == 128 + signal.SIGHUP  # by the hang-up, whenever it came
    if (h.data_dir / "serve.json").exists():  # a backend the app started is released with it (no job was live)
        info = json.loads((h.data_dir / "serve.json").read_text())
        _wait(lambda: not _alive(int(info["pid"])), 20, "the backend to stop with the app")
