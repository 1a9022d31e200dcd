from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import SAMPLES, chat, chats  # noqa: F401 (the fixtures' modules read them from here too)


def pytest_configure(config):
    """The user's data dir (the upload ledger, a local server's state) is never touched by a test: each session
    gets its own; a test that needs another sets its own."""
    import tempfile

    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="ftui-test-data-")


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl(rows, name=…) -> Path; rows are objects (dumped) or raw str/bytes lines."""

    def write(rows, name: str = "data.jsonl", newline: bytes = b"\n") -> Path:
        parts = []
        for r in rows:
            if isinstance(r, bytes):
                parts.append(r)
            elif isinstance(r, str):
                parts.append(r.encode())
            else:
                parts.append(json.dumps(r, ensure_ascii=False).encode())
        path = tmp_path / name
        path.write_bytes(b"".join(p + newline for p in parts))
        return path

    return write


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One GGUF→safetensors conversion per test session, shared by every server."""
    path = os.environ.get("FTUI_MODEL_CACHE") or str(tmp_path_factory.mktemp("model-cache"))
    os.environ["FTUI_MODEL_CACHE"] = path
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_cache):
    """One real `ftui serve` (with --test-hooks) for the session; tests that kill a server start their own."""
    from tests.backend import Server

    s = Server(tmp_path_factory.mktemp("serve") / "data", test_hooks=True).start()
    yield s
    s.stop()


# -- the fast tier: `./dev fast` (pytest -m "not slow") leaves out whatever starts a server or loads a model ----------
def pytest_collection_modifyitems(config, items):
    """A test that uses the model cache (every real `ftui serve` and every in-process model does) is slow by
    definition, marked or not; the fast tier never depends on someone remembering the marker."""
    for item in items:
        if "model_cache" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


# -- a broken set-up fails the suite: nothing is skipped silently -----------------------------------------------------
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """The README's test command installs everything: a skipped test means a missing dependency or a broken
    install, and must not pass as green (pytest's exit 5, no tests, is turned into a failure by ./dev)."""
    if _skipped and exitstatus == 0:
        session.exitstatus = 1
        import sys

        print(f"\nftui: {len(_skipped)} test(s) skipped — the set-up is incomplete: {', '.join(_skipped[:5])}",
              file=sys.stderr)
