"""What a hostile web page or another local user can do to the local backend: nothing. Cross-site requests (any
Origin) and DNS-rebinding hosts are refused, JSON bodies must say so, the data dir and every file in it are the
user's alone, and the server the app starts requires a random key that never appears on a command line."""
from __future__ import annotations

import http.client
import json
import stat

from ftui.service.local import KEY_FILE, LocalBackend
from tests.helpers import SAMPLES


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers={**server._auth(), **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data.startswith(b"{") else data


def test_a_cross_site_post_is_refused(server):
    """A page's <form enctype=text/plain> or fetch(no-cors): simple requests, no preflight, but an Origin."""
    jobs_before = len(server.client().fine_tuning.jobs.list(limit=100).data)
    body = b'{"model": "smollm2-135m-instruct", "training_file": "file-x"}'
    status, doc = raw(server, "POST", "/v1/fine_tuning/jobs", body,
                      {"Origin": "https://evil.example", "Content-Type": "text/plain"})
    assert status == 403 and doc["error"]["code"] == "request_refused" and "Cross-origin" in doc["error"]["message"]
    status, _ = raw(server, "POST", "/v1/fine_tuning/jobs/ftjob-x/cancel", None, {"Origin": "null"})
    assert status == 403
    status, _ = raw(server, "DELETE", "/v1/models/ft:x", None, {"Origin": "http://localhost:3000"})
    assert status == 403
    assert len(server.client().fine_tuning.jobs.list(limit=100).data) == jobs_before


def test_json_must_be_sent_as_json(server):
    status, doc = raw(server, "POST", "/v1/chat/completions",
                      b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}]}',
                      {"Content-Type": "text/plain"})
    assert status == 400 and "application/json" in doc["error"]["message"]
    status, doc = raw(server, "POST", "/v1/files", b"{}", {"Content-Type": "application/json"})
    assert status == 400 and "multipart/form-data" in doc["error"]["message"]


def test_a_dns_rebinding_host_is_refused(server):
    status, doc = raw(server, "GET", "/v1/files", None, {"Host": f"attacker.example:{server.port}"})
    assert status == 403 and "Host" in doc["error"]["message"]
    status, _ = raw(server, "GET", "/health", None, {"Host": "attacker.example"})
    assert status == 403
    for ok in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert raw(server, "GET", "/v1/files", None, {"Host": ok})[0] == 200


def test_the_data_dir_and_its_files_are_private(server):
    client = server.client()
    with open(SAMPLES / "marv.jsonl", "rb") as fh:
        client.files.create(file=fh, purpose="fine-tune")
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    loose = [str(p) for p in server.data_dir.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == []


def test_the_backend_the_app_starts_requires_a_random_key_kept_off_the_command_line(tmp_path, model_cache):
    local = LocalBackend(tmp_path / "data")
    try:
        url = local.start()
        key = local.api_key
        assert key and len(key) >= 32
        key_file = tmp_path / "data" / KEY_FILE
        assert key_file.read_text() == key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        with open(f"/proc/{local.proc.pid}/cmdline", "rb") as fh:
            assert key.encode() not in fh.read()
        from openai import AuthenticationError, OpenAI

        assert OpenAI(base_url=url, api_key=key, max_retries=0).models.list().data
        try:
            OpenAI(base_url=url, api_key="guess", max_retries=0).models.list()
            raise AssertionError("a wrong key was accepted")
        except AuthenticationError:
            pass
        conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 401, "/health is behind the key too"
        again = LocalBackend(tmp_path / "data")  # a second app reuses it, with the key from the file
        assert again.start() == url and again.api_key == key and not again.owned
    finally:
        local.stop()


def test_every_request_is_logged_with_its_id_and_never_the_key(tmp_path, model_cache):
    from tests.backend import Server

    server = Server(tmp_path / "data", api_key="sk-local-secret-key-123").start()
    try:
        status, doc = raw(server, "GET", "/v1/files")
        assert status == 200
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/v1/fine_tuning/jobs/ftjob-nope", headers=server._auth())
        resp = conn.getresponse()
        resp.read()
        rid = resp.headers["x-request-id"]
        assert resp.status == 404 and rid.startswith("req_")
    finally:
        server.stop()
    log = (tmp_path / "data" / "serve.log").read_text()
    assert "GET /v1/fine_tuning/jobs/ftjob-nope 404" in log and rid in log
    assert "sk-local-secret-key-123" not in log


def test_sigterm_stops_the_server_within_seconds(tmp_path, model_cache):
    import signal
    import time

    from tests.backend import Server

    server = Server(tmp_path / "data").start()
    client = server.client()
    client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=2,
                                   messages=[{"role": "user", "content": "Hi"}])  # a model loaded, threads used
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(15)
    assert time.monotonic() - t0 < 10
