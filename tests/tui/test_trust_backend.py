"""Trust against a real `ftui serve` (real SDK): answers nobody expects are shown and polling goes on; a job's end is
announced exactly once however the selection jumps; tables keep their place while a job runs; creating POSTs are
retried by the SDK without making a second job or file; the form never sticks; backend text is never markup."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable

from ftui.service.client import Service
from ftui.service.profiles import Profile
from ftui.tui.create_job import CreateJobScreen
from ftui.tui.messages import BackendReady, JobsPolled, PollProblem
from tests.backend import start_job
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, app_for, settle, toasts

pytestmark = pytest.mark.slow


def polls(rec):
    return rec.of(JobsPolled)


async def test_unexpected_answers_are_shown_and_polling_goes_on(server):
    rec = Recorder()
    app = app_for(server)
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3")
        jobs = app.screen
        await rec.until(lambda: any(p.ok for p in polls(rec)), what="a first good tick")
        jobs.list_every = 0  # every tick reads the list, where the faults are armed
        bad = [("<html><body>Sign in to the proxy</body></html>", "text/html"),
               ('{"object": "list", "data": [{"id": "ftjob-x"', "application/json"),
               ('{"object": "list", "data": [{"id": "ftjob-x", "object": "fine_tuning.job"}], "has_more": false}',
                "application/json")]
        for body, ctype in bad:
            n = len(rec.of(PollProblem))
            server.fault("/v1/fine_tuning/jobs", status=200, method="GET", body=body, content_type=ctype)
            await rec.until(lambda: len(rec.of(PollProblem)) > n, what=f"the answer {body[:20]!r} explained")
            problem = rec.of(PollProblem)[-1].problem
            assert problem.kind == "bad_response" and "list jobs" in problem.message
            assert "answer to list jobs" in str(jobs.query_one("#jobs-status").render())
            good = len([p for p in polls(rec) if p.ok])
            await rec.until(lambda: len([p for p in polls(rec) if p.ok]) > good, what="polling to go on")
        assert "ftjob-x" not in jobs.tracks and app.is_running and app.online
        jobs.list_every = 60
        await settle(pilot)


async def test_a_job_ends_once_whatever_the_selection_and_tables_keep_their_place(server):
    client = server.client()
    other = start_job(client, "other", n_epochs=1)
    client.fine_tuning.jobs.cancel(other.id)
    watched = start_job(client, "watched", n_epochs=4)  # a checkpoint per epoch: two while two epochs remain
    total = len(client.fine_tuning.jobs.list(limit=100).data)
    rec = Recorder()
    app = app_for(server)
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3")
        jobs = app.screen
        await rec.until(lambda: polls(rec), what="the first tick")
        assert str(jobs.query_one("#jobs-status").render()).startswith(f"{total} jobs · "), \
            "the job count is right from the first tick"
        table = jobs.query_one("#jobs", DataTable)
        table.move_cursor(row=table.get_row_index(watched.id))
        await rec.until(lambda: len(jobs.tracks[watched.id].checkpoints) >= 2 or jobs.tracks[watched.id].terminal,
                        timeout=300, what="two checkpoints")
        assert not jobs.tracks[watched.id].terminal, "the run was too short to watch its checkpoints"
        ck = jobs.query_one("#checkpoints", DataTable)
        await settle(pilot)
        ck.move_cursor(row=1)
        key = ck.coordinate_to_cell_key((1, 0)).row_key.value
        n = len(polls(rec))
        await rec.until(lambda: any(watched.id in p.new_events for p in polls(rec)[n:]), what="new events")
        await pilot.pause()
        assert ck.cursor_row == 1 and ck.coordinate_to_cell_key((1, 0)).row_key.value == key, \
            "the checkpoint table keeps its cursor while the job runs"
        # now jump the selection around on every tick until the job has ended, and a few ticks after
        table.focus()
        ends = 0
        while ends < 5:
            n = len(polls(rec))
            await rec.until(lambda: len(polls(rec)) > n, what="a tick")
            await pilot.press("down", "up", "down")
            table.move_cursor(row=table.get_row_index(watched.id))
            ends += jobs.tracks[watched.id].terminal
        await settle(pilot)
        job = jobs.tracks[watched.id].job
        assert job["status"] == "succeeded"
        finished = [t for t in toasts(rec) if t.title == "Job finished" and watched.id in t.message]
        assert len(finished) == 1, "one toast (and one bell) per finished job"
        assert sum(watched.id in p.finished for p in polls(rec)) == 1
        assert str(table.get_cell(watched.id, "status")) == "succeeded"


async def test_creating_posts_are_retried_without_a_second_job_or_file(server):
    client = server.client()
    svc = Service(Profile("t", "compatible", base_url=server.base_url, api_key="unused"))
    try:
        files_before = {f.id for f in client.files.list().data}
        server.fault("/v1/files", status=503, method="POST", after=True)  # uploaded, then the answer is lost
        f = await svc.upload(SAMPLES / "marv.jsonl", reuse=False)  # a real POST, not an identical file reused
        new_files = {x.id for x in client.files.list().data} - files_before
        assert new_files == {f["id"]}, "the retry got the first upload's answer, not a second file"
        jobs_before = {j.id for j in client.fine_tuning.jobs.list(limit=100).data}
        server.fault("/v1/fine_tuning/jobs", status=500, method="POST", after=True)
        job = await svc.create_job(training_file=f["id"], model="smollm2-135m-instruct",
                                   hyperparameters={"n_epochs": 1}, suffix="retried")
        new_jobs = {j.id for j in client.fine_tuning.jobs.list(limit=100).data} - jobs_before
        assert new_jobs == {job["id"]}
        server.fault(f"/v1/fine_tuning/jobs/{job['id']}/cancel", status=429, retry_after=0.2, method="POST")
        assert (await svc.cancel(job["id"]))["status"] == "cancelled"
        server.fault("/v1/chat/completions", status=502, method="POST")
        text = []
        await svc.chat("smollm2-135m-instruct", [{"role": "user", "content": "Hi"}], text.append, max_tokens=4)
        assert "".join(text)
    finally:
        server.clear_faults()  # nothing left armed for the next test on this shared server
        await svc.close()


async def test_a_failed_creation_never_leaves_the_form_stuck(server):
    rec = Recorder()
    app = app_for(server, path=SAMPLES / "marv.jsonl")
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await settle(pilot)
        await pilot.press("f3")
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, CreateJobScreen)
        await settle(pilot)
        server.fault("/v1/fine_tuning/jobs", status=200, method="POST", body="<html>gateway</html>", times=3)
        await pilot.press("ctrl+s")
        await rec.until(lambda: not form.submitting, what="the failure")
        assert "not an API response" in str(form.query_one("#problems").render())
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, CreateJobScreen)


async def test_backend_text_with_markup_is_shown_as_written(server):
    client = server.client()
    with open(SAMPLES / "marv_valid.jsonl", "rb") as fh:
        f = client.files.create(file=fh, purpose="fine-tune")
    rec = Recorder()
    app = app_for(server)
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f5")
        files = app.screen
        table = files.query_one("#files", DataTable)
        await rec.until(lambda: f.id in table.rows, what="the file listed")
        table.focus()
        table.move_cursor(row=table.get_row_index(f.id))
        server.fault(f"/v1/files/{f.id}", status=400, method="DELETE", message="[/] not [bold]today", times=3)
        await pilot.press("d", "y")
        await rec.until(lambda: any(t.title == "Delete failed" for t in toasts(rec)), what="the refusal")
        [toast] = [t for t in toasts(rec) if t.title == "Delete failed"]
        assert "[/] not [bold]today" in toast.message
        await settle(pilot)
        assert app.is_running
