from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import SAMPLES, TUNED_MODEL, chat, chats  # noqa: F401 (the fixtures' modules read them from here too)


def pytest_configure(config):
    """The user's data dir (the upload ledger, a local server's state) is never touched by a test: each session
    gets its own; a test that needs another sets its own."""
    import tempfile

    os.environ["XDG_DATA_HOME"] = config._ftui_data_home = tempfile.mkdtemp(prefix="ftui-test-data-")


def pytest_unconfigure(config):
    import shutil

    if hasattr(config, "_ftui_data_home"):
        shutil.rmtree(config._ftui_data_home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_fault_outlives_its_test(request):
    """The session's shared `ftui serve` starts every test with no fault armed: one a test armed and did not use up
    (an HTML answer armed for three requests, met once) would otherwise fail whichever test runs next on it."""
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").clear_faults()


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
    """One GGUF→safetensors conversion per test run, shared by every server and by every pytest-xdist process: the
    first process to need it converts (~10 s of CPU) while the others wait on a lock, then find it done."""
    import fcntl

    path = os.environ.get("FTUI_MODEL_CACHE")
    if not path:
        base = tmp_path_factory.getbasetemp()
        shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder, every worker's
        path = str(shared / "model-cache")
        Path(path).mkdir(parents=True, exist_ok=True)
        os.environ["FTUI_MODEL_CACHE"] = path  # ensure() converts into it
        with open(shared / "model-cache.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            from ftui.server.models.basemodels import DEFAULT_BASE, ensure

            ensure(DEFAULT_BASE, Path(path))
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_cache):
    """One real `ftui serve` (with --test-hooks) for the session; tests that kill a server start their own."""
    from tests.backend import Server

    s = Server(tmp_path_factory.mktemp("serve") / "data", test_hooks=True, args=["--python-graders"]).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tuned_data_dir(tmp_path_factory, model_cache):
    """A backend data dir holding one fine-tuned model: a real LoRA adapter (every linear layer, as the trainer's)
    whose weights move the model away from its base, registered in the store as a finished job's model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ftui.server.models import basemodels
    from ftui.server.store import Store, now

    data = tmp_path_factory.mktemp("export") / "data"
    store = Store(data)
    f = store.add_file("marv.jsonl", "fine-tune", (SAMPLES / "marv.jsonl").read_bytes())
    store.add_job(id="ftjob-0a1b2c3d4e", created_at=now(), model="smollm2-135m-instruct", training_file=f["id"],
                  validation_file=None, status="succeeded",
                  method={"type": "supervised", "supervised": {"hyperparameters": {}}}, suffix="marv", seed=0,
                  metadata=None)
    torch.manual_seed(0)
    model, _ = basemodels.load("smollm2-135m-instruct", data, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.3)  # a nudge, not noise: the answers stay language, and differ from the base
    adapter = data / "jobs" / "ftjob-0a1b2c3d4e" / "model"
    peft_model.save_pretrained(adapter)
    store.add_model(TUNED_MODEL, "org-local", "ftjob-0a1b2c3d4e", str(adapter), "smollm2-135m-instruct")
    store.close()
    return data


# -- the fast tier: `./dev fast` (pytest -m "not slow") leaves out whatever starts a server or loads a model ----------
# Every test file's measured seconds (tests/durations.json, written by scripts/test_durations.py from a whole-suite
# run's junit XML): the files run longest first, so that when the suite runs on several processes (./dev test) the
# shortest come last and neither process is left alone with a long one while the other has nothing to do. A file
# the list does not know yet counts as DEFAULT_SECONDS.
DURATIONS = json.loads((Path(__file__).resolve().parent / "durations.json").read_text())
DEFAULT_SECONDS = 10.0


def pytest_collection_modifyitems(config, items):
    """A test that uses the model cache (every real `ftui serve` and every in-process model does) is slow by
    definition, marked or not; the fast tier never depends on someone remembering the marker. The longest files
    go first (a stable sort: within a file, the order is the file's)."""
    for item in items:
        if "model_cache" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    def file_of(item) -> str:
        return item.nodeid.split("::")[0].removeprefix("tests/")

    # a file with a `forks` test goes first of all: a test that loads a model in this process leaves threads behind
    # (the server's torch thread, tqdm's monitor), and a process with another thread never forks (core/forking.py);
    # first in the queue, it is the first file its xdist process runs
    forking = {file_of(item) for item in items if item.get_closest_marker("forks")}

    def place(item) -> float:
        name = file_of(item)
        return float("-inf") if name in forking else -DURATIONS.get(name, DEFAULT_SECONDS)

    items.sort(key=place)


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
