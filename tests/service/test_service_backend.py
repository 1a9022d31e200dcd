"""ftui.service against a real `ftui serve` through the real SDK: uploads with progress, the event cursor, results,
chat streams, and failures armed on the server (429 with Retry-After, 5xx, a broken stream, a dead port)."""
from __future__ import annotations

import pytest

from ftui.service.errors import ServiceError
from ftui.service.jobs import JobTrack
from ftui.service.profiles import Profile
from tests.backend import wait_for
from tests.helpers import SAMPLES


@pytest.fixture
async def svc(server):
    from ftui.service.client import Service

    s = Service(Profile("local", "local"), base_url=server.base_url)
    yield s
    await s.close()


async def test_upload_reports_progress_and_a_job_is_followed_by_cursor(svc, server):
    seen = []
    f = await svc.upload(SAMPLES / "marv.jsonl", progress=lambda done, total: seen.append((done, total)))
    size = (SAMPLES / "marv.jsonl").stat().st_size
    assert f["bytes"] == size and f["purpose"] == "fine-tune"
    assert seen and seen[-1] == (size, size)
    job = await svc.create_job(training_file=f["id"], model="smollm2-135m-instruct", suffix="svc", seed=3,
                               hyperparameters={"n_epochs": 2, "batch_size": "auto"})
    assert job["method"]["supervised"]["hyperparameters"]["n_epochs"] == 2
    wait_for(server.client(), job["id"])
    track = JobTrack(await svc.job(job["id"]))
    # small pages force the `after` cursor to walk back through the whole backlog
    new = await svc.new_events(track, page_size=3)
    assert len(new) == len(track.events) > 10 and len({e["id"] for e in track.events}) == len(track.events)
    assert track.events[0]["message"].startswith("Created fine-tuning job")
    assert track.series("train_loss") and track.step == track.total_steps
    server.reset_requests()
    assert await svc.new_events(track, page_size=3) == []  # nothing new: one small request, nothing added
    assert sum(server.requests().values()) == 1
    track2 = JobTrack(track.job)
    await svc.load_results(track2)
    assert [s for s, _ in track2.series("train_loss")] == [s for s, _ in track.series("train_loss")]
    ckpts = await svc.checkpoints(job["id"])
    assert ckpts and all(c["fine_tuned_model_checkpoint"].startswith("ft:") for c in ckpts)


async def test_failures_become_problems(svc, server):
    server.fault("/v1/fine_tuning/jobs", status=429, retry_after=2, times=1)
    with pytest.raises(ServiceError) as e:
        await svc.jobs()
    p = e.value.problem
    assert (p.kind, p.status, p.retry_after, p.transient) == ("rate_limited", 429, 2.0, True)
    assert "Retry-After" in p.message
    server.fault("/v1/models", status=503, times=1)
    with pytest.raises(ServiceError) as e:
        await svc.models()
    assert e.value.problem.kind == "server"
    assert await svc.models()  # the fault was one request only
    with pytest.raises(ServiceError) as e:
        await svc.job("ftjob-nope")
    assert e.value.problem.kind == "not_found"


async def test_a_stream_that_breaks_midway(svc, server):
    server.stream_fault(after_chunks=2)
    got = []
    with pytest.raises(ServiceError) as e:
        await svc.chat("smollm2-135m-instruct", [{"role": "user", "content": "Count to ten."}], got.append,
                       max_tokens=40)
    assert e.value.problem.kind == "stream" and "stream broke" in e.value.problem.message
    assert len(got) == 2
    text = []
    usage = await svc.chat("smollm2-135m-instruct", [{"role": "user", "content": "Hi"}], text.append, max_tokens=8)
    assert text and usage["completion_tokens"] >= 1


async def test_nobody_listening_is_offline():
    from ftui.serveinfo import free_port
    from ftui.service.client import Service

    s = Service(Profile("local", "local"), base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ServiceError) as e:
        await s.models()
    assert e.value.problem.kind == "offline" and e.value.problem.transient
    await s.close()
