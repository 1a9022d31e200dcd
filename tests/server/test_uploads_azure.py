"""Large files through the Uploads API, and the Azure data-plane shape, against a real `ftui serve`:

- the SDK's uploads.create / parts.create / complete / cancel answer OpenAI's objects (schema-checked); wrong byte
  counts and md5s get OpenAI-style errors; a cancelled or expired Upload takes nothing more;
- the app's Service sends a file over its (lowered) threshold in ≥ 3 parts, in parallel, one part failing once and
  retried, then trains on it; a cancelled chunked upload cancels the Upload on the backend;
- the real ``AzureOpenAI`` client (the app's Azure profile) runs the loop through ``/openai/...?api-version=`` with
  an ``api-key`` header: chunked upload, job, events, results, chat through a deployment.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.error
import urllib.request

import pytest

from ftui.service.errors import ServiceError
from ftui.service.jobs import JobTrack
from ftui.service.profiles import Profile
from tests.backend import Server, wait_for
from tests.helpers import SAMPLES
from tests.server.conftest import check_schema

BASE = "smollm2-135m-instruct"


def _big_jsonl(tmp_path, copies: int = 6):
    """The Marv sample repeated (distinct lines: an index in the system prompt), a few KB."""
    rows = [json.loads(x) for x in (SAMPLES / "marv.jsonl").read_text().splitlines()]
    out = []
    for c in range(copies):
        for r in rows:
            msgs = [dict(m) for m in r["messages"]]
            msgs[0]["content"] += f" ({c})"
            out.append(json.dumps({"messages": msgs}))
    p = tmp_path / "big.jsonl"
    p.write_text("\n".join(out) + "\n")
    return p


def test_the_uploads_api_objects_and_errors(server, tmp_path):
    client = server.client()
    data = _big_jsonl(tmp_path).read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    up = client.uploads.create(bytes=len(data), filename="big.jsonl", mime_type="application/jsonl",
                               purpose="fine-tune")
    check_schema("Upload", up)
    assert up.status == "pending" and up.expires_at - up.created_at == 3600 and up.file is None
    parts = [client.uploads.parts.create(up.id, data=data[a:b]) for a, b in zip(cuts, cuts[1:])]
    for p in parts:
        check_schema("UploadPart", p)
        assert p.upload_id == up.id
    # a wrong md5 is refused and the Upload stays pending; the right one completes it
    with pytest.raises(Exception) as e:
        client.uploads.complete(up.id, part_ids=[p.id for p in parts], md5="0" * 32)
    assert e.value.status_code == 400 and e.value.body["code"] == "upload_md5_mismatch"
    assert e.value.body["param"] == "md5"
    done = client.uploads.complete(up.id, part_ids=[p.id for p in parts], md5=hashlib.md5(data).hexdigest())
    check_schema("Upload", done)
    assert done.status == "completed" and done.file.bytes == len(data) and done.file.filename == "big.jsonl"
    assert client.files.content(done.file.id).read() == data
    # the byte count must match the Upload's; parts out of order make another (invalid) file
    up2 = client.uploads.create(bytes=len(data) + 5, filename="b.jsonl", mime_type="application/jsonl",
                                purpose="fine-tune")
    p2 = client.uploads.parts.create(up2.id, data=data)
    with pytest.raises(Exception) as e:
        client.uploads.complete(up2.id, part_ids=[p2.id])
    assert e.value.status_code == 400 and e.value.body["code"] == "upload_bytes_mismatch"
    with pytest.raises(Exception) as e:
        client.uploads.complete(up2.id, part_ids=["part-" + "0" * 24])
    assert e.value.status_code == 400 and e.value.body["param"] == "part_ids[0]"
    # cancelled: no more parts, no completion
    cancelled = client.uploads.cancel(up2.id)
    check_schema("Upload", cancelled)
    assert cancelled.status == "cancelled"
    with pytest.raises(Exception) as e:
        client.uploads.parts.create(up2.id, data=b"{}\n")
    assert e.value.status_code == 400 and e.value.body["code"] == "upload_cancelled"
    with pytest.raises(Exception) as e:
        client.uploads.cancel("upload-" + "f" * 24)
    assert e.value.status_code == 404
    # an hour later it has expired (the clock moved on: its state file says when it was made)
    up3 = client.uploads.create(bytes=3, filename="c.jsonl", mime_type="application/jsonl", purpose="fine-tune")
    state = server.data_dir / "uploads" / up3.id / "upload.json"
    doc = json.loads(state.read_text())
    doc["expires_at"] = int(time.time()) - 1
    state.write_text(json.dumps(doc))
    with pytest.raises(Exception) as e:
        client.uploads.parts.create(up3.id, data=b"{}\n")
    assert e.value.status_code == 400 and e.value.body["code"] == "upload_expired"
    # what `ftui serve --gc` frees: the ended Uploads (completed, cancelled, expired), never a pending one
    from ftui.server.http.routes.uploads import ended_uploads

    ended = {p.name for p in ended_uploads(server.data_dir)}
    assert {up.id, up2.id, up3.id} <= ended
    pending = client.uploads.create(bytes=3, filename="d.jsonl", mime_type="application/jsonl", purpose="fine-tune")
    assert pending.id not in {p.name for p in ended_uploads(server.data_dir)}
    # bad requests name the parameter
    with pytest.raises(Exception) as e:
        client.uploads.create(bytes=0, filename="x.jsonl", mime_type="application/jsonl", purpose="fine-tune")
    assert e.value.status_code == 400 and e.value.body["param"] == "bytes"
    with pytest.raises(Exception) as e:
        client.uploads.create(bytes=10, filename="x.txt", mime_type="text/plain", purpose="fine-tune")
    assert e.value.status_code == 400 and "jsonl" in e.value.body["message"]


@pytest.mark.slow
async def test_a_file_over_the_threshold_goes_in_parts_survives_a_failed_part_and_trains(server, tmp_path):
    from ftui.service.client import Service

    path = _big_jsonl(tmp_path)
    size = path.stat().st_size
    svc = Service(Profile("local", "local"), base_url=server.base_url)
    svc.upload_threshold = 4096  # lowered: a few KB count as "large"
    svc.part_size = size // 4 + 1  # four parts
    try:
        server.clear_faults()  # nothing left armed by an earlier test on this shared server
        server.reset_requests()
        server.fault("/v1/uploads/", status=503, times=1, method="POST")  # the first part fails once
        seen = []
        f = await svc.upload(path, progress=lambda done, total: seen.append((done, total)))
        assert f["bytes"] == size and f["filename"] == "big.jsonl"
        counts = server.requests()
        parts = sum(v for k, v in counts.items() if k.startswith("POST /v1/uploads/") and k.endswith("/parts"))
        assert parts == 4 + 1  # four parts, one of them sent twice
        assert counts.get("POST /v1/files", 0) == 0
        assert seen[-1] == (size, size) and all(d <= t for d, t in seen)
        [state] = svc.uploads.values()
        assert state.status == "completed" and state.parts == 4 and state.parts_done == 4
        job = await svc.create_job(training_file=f["id"], model=BASE, suffix="parts", seed=1,
                                   hyperparameters={"n_epochs": 1})
        done = wait_for(server.client(), job["id"])
        assert done.status == "succeeded", done.error
        # cancelling a chunked upload cancels the Upload on the backend
        stop = asyncio.Event()

        def first_bytes(d, t) -> None:
            if d:
                stop.set()

        svc.parallel_parts = 1
        with pytest.raises(asyncio.CancelledError):
            await svc.upload_parts(path, progress=first_bytes, cancel=stop)
        cancelled = [s for s in svc.uploads.values() if s.status == "cancelled"]
        assert len(cancelled) == 1
        with pytest.raises(Exception) as e:
            server.client().uploads.complete(cancelled[0].id, part_ids=["part-" + "0" * 24])
        assert e.value.body["code"] == "upload_cancelled"
    finally:
        await svc.close()


@pytest.mark.slow
async def test_the_azure_profile_runs_the_loop(tmp_path, model_cache):
    from openai import AzureOpenAI

    from ftui.service.client import Service

    key = "azure-test-key-0123456789"
    server = Server(tmp_path / "data", api_key=key, test_hooks=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        # the raw shape: api-version is required, the api-key header authenticates
        req = urllib.request.Request(f"{endpoint}/openai/models", headers={"api-key": key})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 404 and "api-version" in json.loads(e.value.read())["error"]["message"]
        bad = AzureOpenAI(azure_endpoint=endpoint, api_version="2025-04-01-preview", api_key="wrong", max_retries=0)
        with pytest.raises(Exception) as e:
            bad.models.list()
        assert e.value.status_code == 401
        # the app's Azure profile through the service layer: chunked upload, job, events, results, chat
        profile = Profile("azure", "azure", base_url=endpoint, api_key=key, api_version="2025-04-01-preview")
        svc = Service(profile)
        svc.upload_threshold = 4096
        svc.part_size = 3000
        server.fault("/v1/uploads/", status=500, times=1, method="POST")  # seen after the rewrite: /v1/...
        path = _big_jsonl(tmp_path, copies=2)
        f = await svc.upload(path)
        assert f["bytes"] == path.stat().st_size
        [state] = svc.uploads.values()
        assert state.parts >= 3 and state.status == "completed"
        job = await svc.create_job(training_file=f["id"], model=BASE, suffix="azure", seed=2,
                                   hyperparameters={"n_epochs": 1})
        assert job["status"] in ("validating_files", "queued", "running")
        plain = AzureOpenAI(azure_endpoint=endpoint, api_version="2025-04-01-preview", api_key=key)
        done = wait_for(plain, job["id"])
        assert done.status == "succeeded", done.error
        track = JobTrack(await svc.job(job["id"]))
        await svc.new_events(track)
        await svc.load_results(track)
        assert track.events and track.series("train_loss")
        assert any(m["id"] == done.fine_tuned_model for m in await svc.models())
        # chat goes through /openai/deployments/<deployment>/chat/completions: a deployment named like the model
        parts = []
        usage = await svc.chat(done.fine_tuned_model, [{"role": "user", "content": "Hi"}], parts.append,
                               max_tokens=8)
        assert "".join(parts) and usage["completion_tokens"] >= 1
        text, _ = await svc.complete(done.fine_tuned_model, [{"role": "user", "content": "Hi"}], max_tokens=4)
        assert isinstance(text, str)
        with pytest.raises(ServiceError) as e:
            await svc.chat("no-such-deployment", [{"role": "user", "content": "Hi"}], parts.append, max_tokens=2)
        assert e.value.problem.status == 404 and e.value.problem.code == "DeploymentNotFound"
        await svc.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_azures_v1_surface_needs_no_api_version_and_a_clients_internal_header_is_ignored(tmp_path, model_cache):
    """``OpenAI(base_url=".../openai/v1/")``, Azure's GA shape: no api-version, the deployment is the body's model.
    A client that sends the server's internal deployment marker as a header gets nothing from it."""
    from openai import OpenAI

    key = "azure-test-key-0123456789"
    server = Server(tmp_path / "data", api_key=key, args=["--deployment", f"chatdep={BASE}"]).start()
    try:
        v1 = OpenAI(base_url=f"http://127.0.0.1:{server.port}/openai/v1/", api_key=key, max_retries=0)
        assert BASE in [m.id for m in v1.models.list().data]
        f = v1.files.create(file=("d.jsonl", (SAMPLES / "marv.jsonl").read_bytes()), purpose="fine-tune")
        assert v1.files.retrieve(f.id).bytes == f.bytes
        answer = v1.chat.completions.create(model="chatdep", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.role == "assistant" and answer.model == BASE
        # the internal marker as a client header: ignored (it used to pick the "deployment" and 404)
        plain = server.client(default_headers={"x-ftui-deployment": "no-such-deployment"})
        answer = plain.chat.completions.create(model=BASE, max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
        assert answer.model == BASE
    finally:
        server.stop()
