"""Python graders run in a process of their own (``python_worker.py``) with OpenAI's limits: source under 256 kB,
2 minutes per sample, 2 GB of memory, 1 GB of files, no network where the OS allows. A sample that loops is killed
at its time limit and the process started again for the next; one that exhausts memory gets a MemoryError (or, if
the process dies, a fresh process); either way only that sample has the error, never the server."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

WORKER = Path(__file__).with_name("python_worker.py")
MAX_SOURCE = 256 * 1024
TIMEOUT_S = 120.0
MEMORY = 2 * 1024 ** 3
FILES = 1024 ** 3


@dataclass
class Outcome:
    score: float | None = None
    error: str | None = None  # the sample's python_grader_runtime_error details
    server_error: str | None = None  # the grader could not run at all (python_grader_server_error)


@dataclass
class PythonRunner:
    """One grader's process, kept for many samples (an RFT step grades dozens)."""

    source: str
    timeout: float = TIMEOUT_S
    memory: int = MEMORY
    proc: subprocess.Popen | None = field(default=None, init=False)
    network_isolated: bool = field(default=False, init=False)

    def _start(self) -> str | None:
        """Start the process; returns why it cannot run (the source does not compile, has no grade…)."""
        self.proc = subprocess.Popen([sys.executable, "-I", str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                     start_new_session=True)
        assert self.proc.stdin is not None
        head = {"source": self.source, "memory": self.memory, "cpu": int(self.timeout) + 5, "files": FILES}
        self.proc.stdin.write(json.dumps(head) + "\n")
        self.proc.stdin.flush()
        reply = self._read(30.0)
        if reply is None or "fatal" in reply:
            self.close()
            return (reply or {}).get("fatal") or "the grader's process did not start"
        self.network_isolated = bool(reply.get("network_isolated"))
        return None

    def _read(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def grade(self, sample: dict, item: dict) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            why = self._start()
            if why is not None:
                return Outcome(server_error=why)
        assert self.proc is not None and self.proc.stdin is not None
        started = time.monotonic()
        try:
            self.proc.stdin.write(json.dumps({"sample": sample, "item": item}) + "\n")
            self.proc.stdin.flush()
            reply = self._read(self.timeout)
        except (BrokenPipeError, OSError, ValueError):
            reply = None
        if reply is None:
            late = time.monotonic() - started >= self.timeout
            self.close()
            return Outcome(error=f"grade() ran over its {self.timeout:g} s limit and was stopped" if late else
                           "the grader's process ended while grading (over its memory limit?)")
        return Outcome(score=reply.get("score"), error=reply.get("error"))

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
