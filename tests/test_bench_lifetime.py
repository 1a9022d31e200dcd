"""A bench stops the `ftui serve` it started however it ends: a timeout's SIGTERM (its ``finally`` runs) or SIGKILL
(the server dies with its parent). Driven with a stand-in bench: the pattern every bench/*.py uses."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{bench!r}, {root!r}]
    from _lifetime import ends_cleanly
    from tests.backend import Server
    ends_cleanly()
    s = Server(Path({data!r})).start()
    try:
        print(s.proc.pid, flush=True)
        time.sleep(600)
    finally:
        s.stop()
""")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:  # looks at least once
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_bench_leaves_no_server(tmp_path, model_cache, how):
    (tmp_path / "data").mkdir()
    script = tmp_path / "bench.py"
    script.write_text(BENCH.format(bench=str(ROOT / "bench"), root=str(ROOT), data=str(tmp_path / "data")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    server = None
    try:
        server = int(proc.stdout.readline())
        proc.send_signal(how)
        proc.wait(30)
        assert _gone(server, 20), "the bench's server outlived it"
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None and not _gone(server, 0):  # only after a failure above
            os.kill(server, signal.SIGKILL)
    assert proc.returncode == (128 + how if how == signal.SIGTERM else -how)
