"""Failures explained, never thrown: the backend killed and restarted while polling, a rejected key, 429 with
Retry-After, a stream that breaks midway; and what polling costs (a terminal job: nothing)."""
from __future__ import annotations

import pytest
from textual.widgets import Input, Select

from ftui.tui.chat_screen import ChatScreen
from ftui.tui.messages import BackendReady, ChatFailed, JobsPolled, PollProblem
from tests.backend import Server, start_job, wait_for
from tests.tui.helpers import Recorder, app_for, settle

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"


def polled(rec: Recorder) -> int:
    return len(rec.of(JobsPolled))


async def test_backend_killed_during_polling_then_back(tmp_path, model_cache):
    server = Server(tmp_path / "data", test_hooks=True).start()
    try:
        rec = Recorder()
        app = app_for(server)
        async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
            await rec.wait_for(BackendReady)
            await pilot.press("f3")
            jobs = app.screen
            jobs.list_every = 0.2  # read the list every tick, so a dead server is noticed at once
            await rec.until(lambda: polled(rec) >= 2 and app.online, what="polling")
            server.kill9()
            await rec.until(lambda: rec.of(PollProblem), what="the poll to fail")
            assert app.online is False and "offline" in app.sub_title and "○" in app.sub_title
            assert rec.of(PollProblem)[0].problem.kind == "offline"
            delays = []
            await rec.until(lambda: delays.append(rec.of(PollProblem)[-1].retry_in) or len(rec.of(PollProblem)) >= 3,
                            what="retries")
            backoff = [m.retry_in for m in rec.of(PollProblem)[:3]]
            assert backoff == sorted(backoff) and backoff[-1] > backoff[0], "retries back off"
            n = polled(rec)
            server.start()  # same port, same data
            await rec.until(lambda: polled(rec) > n and app.online, timeout=90, what="recovery")
            assert "● test" in app.sub_title and "offline" not in app.sub_title
            await settle(pilot)
    finally:
        server.stop()


async def test_rejected_key_is_explained(tmp_path, model_cache):
    server = Server(tmp_path / "data", api_key="the-right-key").start()
    try:
        rec = Recorder()
        app = app_for(server, key="sk-wrong-key-0000")
        async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
            await rec.wait_for(BackendReady)
            await settle(pilot)
            assert app.online is False and "key rejected" in app.sub_title
            assert "sk-wrong" not in app.sub_title
            await pilot.press("f3")
            await rec.until(lambda: rec.of(PollProblem), what="a poll")
            p = rec.of(PollProblem)[0]
            assert p.problem.kind == "auth" and "401" in p.problem.message and p.retry_in >= 10
            assert "sk-wrong" not in str(app.screen.query_one("#jobs-status").render())
    finally:
        server.stop()


async def test_429_waits_as_retry_after_says(server):
    rec = Recorder()
    app = app_for(server)
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3")
        jobs = app.screen
        await rec.until(lambda: polled(rec) >= 1, what="a first poll")
        jobs.list_every = 0.1
        server.fault("/v1/fine_tuning/jobs", status=429, retry_after=1.5, times=1, message="Slow down")
        await rec.until(lambda: rec.of(PollProblem), what="the 429")
        p = rec.of(PollProblem)[0]
        assert p.problem.kind == "rate_limited" and p.retry_in == 1.5 and "Retry-After" in p.problem.message
        assert "Slow down" in str(jobs.query_one("#jobs-status").render())
        n = polled(rec)
        await rec.until(lambda: polled(rec) > n, what="polling to resume")
        assert app.online
        jobs.list_every = 60
        await settle(pilot)


async def test_stream_breaking_midway_puts_the_prompt_back(server):
    rec = Recorder()
    app = app_for(server)
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f4")
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        await settle(pilot)
        chat.query_one("#model-a", Select).value = BASE
        server.stream_fault(after_chunks=2)
        chat.query_one("#prompt", Input).focus()
        await pilot.press(*"Tell me a story", "enter")
        await rec.until(lambda: rec.of(ChatFailed), what="the failure")
        await settle(pilot)
        assert chat.query_one("#prompt", Input).value == "Tell me a story"
        assert chat.columns[0].history == [] and not chat.query(".msg-user")
        assert "stream broke" in str(chat.query_one("#chat-status").render())


async def test_a_terminal_job_costs_no_requests(server):
    client = server.client()
    job = start_job(client, "idle", n_epochs=1)
    wait_for(client, job.id)
    rec = Recorder()
    app = app_for(server)
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3")
        jobs = app.screen
        await rec.until(lambda: job.id in jobs.tracks, what="the job")
        from textual.widgets import DataTable

        table = jobs.query_one("#jobs", DataTable)
        table.move_cursor(row=table.get_row_index(job.id))
        await rec.until(lambda: jobs.tracks[job.id].results_loaded and jobs.tracks[job.id].events_complete
                        and all(t.terminal for t in jobs.tracks.values()), what="the detail loaded")
        await settle(pilot)
        server.reset_requests()
        n = polled(rec)
        await rec.until(lambda: polled(rec) >= n + 10, what="ten more ticks")
        assert server.requests() == {}, "ticks with only terminal jobs cost no requests"
        # hidden: still nothing to ask; visible again: still nothing
        await pilot.press("f2")
        await pilot.press("f3")
        n = polled(rec)
        await rec.until(lambda: polled(rec) >= n + 3, what="three more ticks")
        assert server.requests() == {}
