"""A real `ftui serve` subprocess on a free loopback port, driven only through the official openai SDK."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import urllib.error
import urllib.request
import pytest
from jsonschema import Draft202012Validator

from ftui.server.serve import free_port

pytest.importorskip("torch")
SCHEMAS = json.loads((Path(__file__).resolve().parent.parent / "data" / "openapi_schemas.json").read_text())
def _to_2020(node):
    """The spec keeps a few OpenAPI 3.0-isms (boolean exclusiveMinimum); turn them into JSON Schema 2020-12."""
    if isinstance(node, dict):
        node = {k: _to_2020(v) for k, v in node.items()}
        if node.get("exclusiveMinimum") is True:
            node["exclusiveMinimum"] = node.pop("minimum", 0)
        if node.pop("nullable", False) is True:
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            if isinstance(node.get("enum"), list):
                node["enum"] = [*node["enum"], None]
        if node.get("exclusiveMaximum") is True:
            node["exclusiveMaximum"] = node.pop("maximum", 0)
        return node
    if isinstance(node, list):
        return [_to_2020(v) for v in node]
    return node


SCHEMAS = _to_2020(SCHEMAS)


def check_schema(name: str, obj) -> None:
    """Validate a response object against OpenAI's OpenAPI component schema ``name``."""
    doc = {"components": {"schemas": SCHEMAS}, "$ref": f"#/components/schemas/{name}"}
    Draft202012Validator(doc).validate(obj if isinstance(obj, dict) else obj.model_dump(mode="json",
                                                                                        exclude_unset=True))


class Server:
    def __init__(self, data_dir: Path, api_key: str | None = None) -> None:
        self.data_dir = data_dir
        self.api_key = api_key
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "Server":
        cmd = [sys.executable, "-m", "ftui.cli", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        log = open(self.data_dir.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ftui serve exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("ftui serve did not come up")

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


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One GGUF→safetensors conversion per test session, shared by every server."""
    path = os.environ.get("FTUI_MODEL_CACHE") or str(tmp_path_factory.mktemp("model-cache"))
    os.environ["FTUI_MODEL_CACHE"] = path
    return path


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_cache):
    s = Server(tmp_path_factory.mktemp("serve") / "data").start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server):
    return server.client()


def wait_for(client, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 400,
             predicate=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses or (predicate and predicate(job)):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")
