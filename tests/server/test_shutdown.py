"""`ftui serve` starts and stops cleanly: a port already taken is reported before anything says "listening" (exit
code 4, no serve.json), and SIGTERM while a chat streams ends the process within seconds (the generation halts as
for a client that left)."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.backend import Server


def test_a_taken_port_is_reported_before_listening_with_its_own_exit_code(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        res = subprocess.run([sys.executable, "-m", "ftui.cli", "serve", "--port", str(port), "--data-dir",
                              str(tmp_path / "data")], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "FTUI_SERVE_PRELOAD": "0"})
    finally:
        holder.close()
    assert res.returncode == 4, res.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr and "--port 0" in res.stderr
    assert "listening" not in res.stdout
    assert not (tmp_path / "data" / "serve.json").exists()


@pytest.mark.slow
def test_sigterm_while_a_chat_streams_exits_within_seconds(tmp_path, model_cache):
    s = Server(tmp_path / "data").start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        conn.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"}, body=json.dumps({
            "model": "smollm2-135m-instruct", "stream": True, "max_tokens": 4000, "temperature": 0,
            "messages": [{"role": "user", "content": "Count from 1 to 5000, one number per line."}]}).encode())
        resp = conn.getresponse()
        assert resp.status == 200
        pieces = 0
        while pieces < 20:  # the answer is streaming
            line = resp.readline()
            pieces += line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line
        t0 = time.monotonic()
        os.kill(s.proc.pid, signal.SIGTERM)
        rest = resp.read()  # the stream ends: cut short, and saying so
        s.proc.wait(30)
        took = time.monotonic() - t0
        assert took < 10, f"ftui serve took {took:.1f} s to stop"
        assert b"shutting down" in rest and not rest.rstrip().endswith(b"[DONE]")
    finally:
        s.stop()
