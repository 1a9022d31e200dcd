"""Uploads are counted as they arrive and stop at the limit (no Content-Length needed), straight into the data dir;
an Upload takes parts only up to the bytes it was created for; names, empty files, MIME types and the SDK's
expires_after fields get the real reason; a client that leaves mid-upload is one INFO line."""
from __future__ import annotations

import http.client
import io
import json
import select
import socket
import time
import uuid

import openai
import pytest

from tests.backend import Server

LIMIT = 20 * 2**20
PART = 8 * 2**20
LINE = json.dumps({"messages": [{"role": "user", "content": "x" * 400},
                                {"role": "assistant", "content": "y" * 400}]}).encode() + b"\n"


@pytest.fixture(scope="module")
def small(tmp_path_factory, model_cache):
    s = Server(tmp_path_factory.mktemp("limits") / "data",
               env={"FTUI_SERVE_MAX_UPLOAD": str(LIMIT), "FTUI_SERVE_MAX_PART": str(PART)}).start()
    yield s
    s.stop()


def _chunked_multipart(server, path: str, field: str, total: int, fields: dict | None = None,
                       stop_after: int | None = None) -> tuple[int | None, dict | None, int]:
    """POST a multipart body chunked (no Content-Length) whose file part holds ``total`` bytes of JSONL, sent until
    the server answers (or ``stop_after`` bytes, then the client hangs up). -> (status, error, bytes sent)."""
    boundary = uuid.uuid4().hex
    head = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in (fields or {}).items())
    head += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"big.jsonl\"\r\n"
             "Content-Type: application/jsonl\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTransfer-Encoding: chunked\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode())

    def chunk(data: bytes) -> None:
        sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    block = LINE * (2**20 // len(LINE))
    sent = 0
    try:
        chunk(head)
        while sent < total:
            if select.select([sock], [], [], 0)[0]:  # the server answered: stop sending
                break
            if stop_after is not None and sent >= stop_after:
                sock.close()
                return None, None, sent
            chunk(block)
            sent += len(block)
        else:
            chunk(f"\r\n--{boundary}--\r\n".encode())
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # refused early: the answer is waiting
    sock.settimeout(30)
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw) < raw.index(b"\r\n\r\n") + 4 + _length(raw):
        more = sock.recv(65536)
        if not more:
            break
        raw += more
    sock.close()
    status = int(raw.split(b" ", 2)[1])
    body = json.loads(raw[raw.index(b"\r\n\r\n") + 4:] or b"{}")
    return status, body.get("error"), sent


def _length(raw: bytes) -> int:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _incoming(server) -> list:
    return [p for p in server.data_dir.rglob(".incoming-*")]


def test_a_chunked_upload_past_the_limit_stops_at_the_limit(small):
    status, err, sent = _chunked_multipart(small, "/v1/files", "file", 400 * 2**20, {"purpose": "fine-tune"})
    assert status == 413 and err["code"] == "file_too_large", err
    assert sent < 3 * LIMIT, f"{sent / 2**20:.0f} MB were taken before the 413 for a {LIMIT / 2**20:.0f} MB limit"
    assert not _incoming(small)


def test_an_upload_part_stops_at_64mb_or_at_what_the_upload_lacks(small):
    client = small.client()
    up = client.uploads.create(filename="d.jsonl", purpose="fine-tune", bytes=10 * 2**20, mime_type="text/jsonl")
    status, err, sent = _chunked_multipart(small, f"/v1/uploads/{up.id}/parts", "data", 300 * 2**20)
    assert status == 413 and err["code"] == "part_too_large" and sent < 3 * PART, err
    first = client.uploads.parts.create(up.id, data=io.BytesIO(b"a" * (6 * 2**20)))
    with pytest.raises(openai.APIStatusError) as e:  # 6 MB of 10 are there: a 6 MB part would pass the 10
        client.uploads.parts.create(up.id, data=io.BytesIO(b"b" * (6 * 2**20)))
    assert e.value.status_code == 413 and e.value.code == "upload_bytes_exceeded" and "4,194,304 left" in str(e.value)
    assert [p.name for p in (small.data_dir / "uploads" / up.id).iterdir() if p.name.startswith("part-")] == \
        [first.id]
    client.uploads.cancel(up.id)


@pytest.mark.parametrize("name, reason", [("a\x00b.jsonl", "control characters"), ("a\nb.jsonl", "control"),
                                          ("n" * 300 + ".jsonl", "306 characters long; at most 255")])
def test_a_bad_filename_is_refused_with_the_reason(small, name, reason):
    # raw bytes: the SDK escapes control characters in a multipart filename, a hand-made request need not
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").encode()
    body += LINE * 10 + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=30)
    conn.request("POST", "/v1/files", body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    resp = conn.getresponse()
    err = json.loads(resp.read())["error"]
    assert resp.status == 400 and reason in err["message"] and err["code"] == "invalid_filename", err
    with pytest.raises(openai.BadRequestError) as e:
        small.client().uploads.create(filename=name, purpose="fine-tune", bytes=10, mime_type="text/jsonl")
    assert reason in e.value.message and e.value.param == "filename"


def test_an_empty_fine_tune_file_and_a_non_jsonl_mime_type_are_refused(small):
    with pytest.raises(openai.BadRequestError) as e:
        small.client().files.create(file=("empty.jsonl", b""), purpose="fine-tune")
    assert e.value.code == "empty_file"
    with pytest.raises(openai.BadRequestError) as e:
        small.client().uploads.create(filename="d.jsonl", purpose="fine-tune", bytes=10, mime_type="image/png")
    assert e.value.param == "mime_type" and "image/png" in e.value.message
    assert small.client().uploads.create(filename="d.jsonl", purpose="fine-tune", bytes=10,
                                         mime_type="application/jsonl").status == "pending"


def test_the_sdks_multipart_expires_after_gets_the_intended_message(small):
    with pytest.raises(openai.BadRequestError) as e:
        small.client().files.create(file=("d.jsonl", LINE * 10), purpose="fine-tune",
                                    expires_after={"anchor": "created_at", "seconds": 7200})
    assert "expires_after is not supported by the local backend" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        small.client().files.create(file=("d.jsonl", LINE * 10), purpose="fine-tune",
                                    expires_after={"anchor": "created_at", "seconds": 5})
    assert e.value.param == "expires_after" and "3600 to 2592000" in e.value.message


def test_a_client_that_leaves_mid_upload_is_an_info_line(small):
    log = small.data_dir / "serve.log"
    before = log.stat().st_size
    status, _, sent = _chunked_multipart(small, "/v1/files", "file", 15 * 2**20, {"purpose": "fine-tune"},
                                         stop_after=4 * 2**20)
    assert status is None and sent >= 4 * 2**20
    deadline = time.time() + 10
    while time.time() < deadline and b" 499" not in log.read_bytes()[before:]:
        time.sleep(0.1)
    text = log.read_bytes()[before:].decode()
    assert "INFO" in text and "499" in text and "POST /v1/files" in text
    assert "ERROR" not in text and "Traceback" not in text
    assert not _incoming(small)
    assert small.client().models.list().data  # the server goes on
