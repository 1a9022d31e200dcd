"""Evaluation runs against a real `ftui serve` through the real SDK: answers cached and resumed, a backend that
goes away midway (the run waits and goes on; what was answered stays), and the teacher-forced score endpoint."""
from __future__ import annotations

import asyncio
import json

import pytest

from ftui.core.evalset import load
from ftui.service.errors import ServiceError
from ftui.service.evaluate import EvalParams, run, summary, write
from ftui.service.profiles import Profile

BASE = "smollm2-135m-instruct"


@pytest.fixture
async def svc(server):
    from ftui.service.client import Service

    s = Service(Profile("local", "local"), base_url=server.base_url)
    yield s
    await s.close()


def _data(tmp_path, n=8):
    p = tmp_path / "test.jsonl"
    rows = []
    for i in range(n):
        rows.append({"messages": [{"role": "system", "content": "Answer with one digit."},
                                  {"role": "user", "content": f"Review {i}: {'great' if i % 2 else 'awful'} app"},
                                  {"role": "assistant", "content": "5" if i % 2 else "1"}]})
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load(p)


async def test_a_stopped_run_resumes_from_the_cache_and_waits_out_a_backend_that_is_away(svc, server, tmp_path):
    data = _data(tmp_path)
    params = EvalParams(max_tokens=3, concurrency=2)
    stop = asyncio.Event()

    def stop_after_three(p) -> None:
        if p.done >= 3:
            stop.set()

    first = await run(svc, data, [BASE], params, progress=stop_after_three, stop=stop, cache_folder=tmp_path / "c",
                      teacher_forced=False)
    assert first.stopped and not first.complete
    answered = {i: a.text for i, a in enumerate(first.answers[BASE]) if a is not None}
    assert len(answered) >= 3

    # the backend answers 503 for a while: the SDK's retries (2) run out, the run pauses and tries again
    server.reset_requests()
    server.fault("/v1/chat/completions", status=503, times=5, message="the backend is restarting")
    notes = []

    def watch(p) -> None:
        if p.waiting:
            notes.append(p.waiting)

    second = await run(svc, data, [BASE], params, progress=watch, cache_folder=tmp_path / "c", teacher_forced=False)
    assert second.complete and not second.stopped
    assert notes and "retrying" in notes[0]
    for i, text in answered.items():  # what the first run got is reused, not asked again
        assert second.answers[BASE][i].cached and second.answers[BASE][i].text == text
    asked = server.requests().get("POST /v1/chat/completions", 0)
    assert asked == len(data.examples) - len(answered) + 5  # the missing ones, plus the 5 refused attempts

    # a third run asks for nothing; the outputs are written whole
    server.reset_requests()
    third = await run(svc, data, [BASE], params, cache_folder=tmp_path / "c", teacher_forced=False)
    assert all(a.cached for a in third.answers[BASE])
    assert server.requests().get("POST /v1/chat/completions", 0) == 0
    jsonl, js, doc = write(third, tmp_path / "out")
    assert len(jsonl.read_text().splitlines()) == len(data.examples)
    assert json.loads(js.read_text())["models"][BASE]["answered"] == len(data.examples)
    assert doc["labels"] == ["1", "5"] and doc["metric"] == "accuracy"


async def test_teacher_forced_loss_of_the_references(svc, server, tmp_path):
    data = _data(tmp_path, 6)
    examples = [{"messages": ex.messages + [{"role": "assistant", "content": ex.reference}]} for ex in data.examples]
    scores = await svc.score(BASE, examples)
    assert len(scores) == 6
    for s in scores:
        assert s["loss"] > 0 and 0 <= s["token_accuracy"] <= 1
        assert s["tokens"] == 2  # the digit and the end of turn
    # every example scores the same alone as in the batch, whatever it is padded to (a longer one joins the batch):
    # a score never depends on what it was batched with (it did in bf16 on an AMX CPU: 8.7256 alone, 8.5616 in six)
    longer = {"messages": [{"role": "system", "content": "Answer with one digit. " * 12},
                           {"role": "user", "content": "Review: a long and rambling account of an app " * 6},
                           {"role": "assistant", "content": "3"}]}
    batched = await svc.score(BASE, examples + [longer])
    for i, ex in enumerate(examples + [longer]):
        alone = await svc.score(BASE, [ex])
        assert alone[0]["loss"] == pytest.approx(batched[i]["loss"], rel=1e-4, abs=1e-5), i
        assert alone[0]["token_accuracy"] == batched[i]["token_accuracy"]
    with pytest.raises(ServiceError) as e:
        await svc.score(BASE, [{"messages": [{"role": "user", "content": "no answer"}]}])
    assert e.value.problem.status == 400 and e.value.problem.param == "examples[0].messages"
    with pytest.raises(ServiceError) as e:
        await svc.score("no-such-model", examples[:1])
    assert e.value.problem.status == 404
    # and through a run, the summary carries the mean loss
    r = await run(svc, data, [BASE], EvalParams(max_tokens=2), cache_folder=tmp_path / "c")
    doc = summary(r)
    assert doc["models"][BASE]["mean_loss"] > 0 and doc["models"][BASE]["mean_token_accuracy"] is not None


@pytest.mark.slow
async def test_cached_answers_survive_a_local_server_restart_on_another_port(tmp_path, model_cache):
    """The cache is keyed by the backend's identity (the local backend's data dir), not its URL: a server that
    idled out and came back on another port answers nothing again."""
    from ftui.service.client import Service
    from tests.backend import Server

    data = _data(tmp_path, 4)
    first = Server(tmp_path / "data").start()
    try:
        svc = Service(Profile("local", "local", data_dir=str(first.data_dir)), base_url=first.base_url)
        r1 = await run(svc, data, [BASE], EvalParams(max_tokens=2), cache_folder=tmp_path / "c", teacher_forced=False)
        await svc.close()
    finally:
        first.stop()
    assert r1.complete and not any(a.cached for a in r1.answers[BASE])
    second = Server(tmp_path / "data").start()
    try:
        assert second.port != first.port
        svc = Service(Profile("local", "local", data_dir=str(second.data_dir)), base_url=second.base_url)
        r2 = await run(svc, data, [BASE], EvalParams(max_tokens=2), cache_folder=tmp_path / "c", teacher_forced=False)
        await svc.close()
    finally:
        second.stop()
    assert all(a.cached for a in r2.answers[BASE])
    assert [a.text for a in r2.answers[BASE]] == [a.text for a in r1.answers[BASE]]
