"""The whole loop through the real app against a real `ftui serve` on loopback (real SDK, real training):
create a job from the Marv sample through the form, watch it succeed (events and loss chart growing), open a
checkpoint in the chat, stream an answer, compare two models, save the exchange; cancel a running job."""
from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, Input, Log, Markdown, Select, TextArea

from ftui.tui.app import FtuiApp
from ftui.tui.chat_screen import ChatScreen
from ftui.tui.create_job import CreateJobScreen
from ftui.tui.jobs_screen import JobsScreen
from ftui.tui.messages import BackendReady, ChatDone, EvalDone, JobsPolled, UploadProgress
from ftui.tui.prompt import PathPrompt
from tests.backend import start_job, wait_for
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, profile_for, settle, test_config

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"


async def test_create_watch_chat_compare_save(server, tmp_path):
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(server))
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await settle(pilot)
        assert app.online and "● test · 127.0.0.1" in app.sub_title
        await pilot.press("f3")
        jobs = app.screen
        assert isinstance(jobs, JobsScreen)
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, CreateJobScreen)
        await settle(pilot)
        assert form.query_one("#base", Select).value == BASE
        estimate = str(form.query_one("#estimate").render())
        assert "examples" in estimate and "no charge (local backend)" in estimate
        form.query_one("#valid", Select).value = f"local:{SAMPLES / 'marv_valid.jsonl'}"
        form.query_one("#epochs", Input).value = "2"
        form.query_one("#suffix", Input).value = "pilot"
        await pilot.press("ctrl+s")
        await rec.until(lambda: app.screen is jobs, what="the form to close with a job")
        assert rec.of(UploadProgress)[-1].done == (SAMPLES / "marv.jsonl").stat().st_size or \
            rec.of(UploadProgress)[-1].done == (SAMPLES / "marv_valid.jsonl").stat().st_size

        def pilots() -> list[str]:
            return [t.id for t in jobs.tracks.values() if t.job.get("user_provided_suffix") == "pilot"
                    and not t.terminal]

        # the form's result reaches Jobs just after the form closes: wait for the job to be tracked and selected
        await rec.until(lambda: len(pilots()) == 1 and jobs.selected == pilots()[0], what="the new job selected")
        [job_id] = pilots()
        chart = jobs.query_one("#chart-loss")
        growth = []  # (events shown, chart points) at every tick

        def progress():
            growth.append((len(jobs.tracks[job_id].events), chart.points))
            return jobs.tracks[job_id].job["status"] == "succeeded" and jobs.tracks[job_id].results_loaded

        await rec.until(progress, timeout=300, what="the job to succeed")
        await settle(pilot)
        job = jobs.tracks[job_id].job
        assert job["fine_tuned_model"].startswith(f"ft:{BASE}:local:pilot:")
        events = [e for e, _ in growth]
        points = [p for _, p in growth]
        assert len(set(events)) >= 3 and events == sorted(events), "the event log grew in steps"
        assert len(set(points)) >= 2 and points[-1] > 0, "the loss chart gained points while training"
        log = jobs.query_one("#events", Log)
        assert log.line_count == len(jobs.tracks[job_id].events) and "successfully completed" in log.lines[-1]
        detail = str(jobs.query_one("#job-detail").render())
        assert "succeeded" in detail and job["fine_tuned_model"] in detail
        assert any(j.finished == [job_id] for j in rec.of(JobsPolled))
        # download the results CSV (served base64; saved decoded)
        await pilot.press("s")
        assert isinstance(app.screen, PathPrompt)
        csv_path = tmp_path / "results.csv"
        app.screen.query_one(Input).value = str(csv_path)
        await pilot.press("enter")
        await settle(pilot)
        rows = csv_path.read_text().splitlines()
        assert rows[0].startswith("step,train_loss") and len(rows) == 1 + jobs.tracks[job_id].total_steps
        # open a checkpoint: Enter on it chats with it
        ck = jobs.query_one("#checkpoints", DataTable)
        assert ck.row_count >= 1
        ck.focus()
        await pilot.press("enter")
        await settle(pilot)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        ckpt = chat.query_one("#model-a", Select).value
        assert ":ckpt-step-" in ckpt
        chat.query_one("#model-a", Select).value = job["fine_tuned_model"]
        # the model was trained with Marv's system prompt: the chat offers it, visibly
        await rec.until(lambda: chat.system_default, what="the training data's system prompt")
        await settle(pilot)
        assert chat.query_one("#system", TextArea).text == "Marv is a factual chatbot that is also sarcastic."
        assert "training data (100% of marv.jsonl)" in chat.query_one("#system", TextArea).border_title
        await pilot.click("#prompt")
        await pilot.press(*"Who are you?", "enter")
        await rec.until(lambda: len(rec.of(ChatDone)) == 1, what="the answer")
        await settle(pilot)
        answer = chat.columns[0].history[-1]["content"]
        assert answer and chat.query(Markdown).first().source == answer
        assert "completion tokens" in str(chat.columns[0].usage_widget.render())
        # compare: the same prompt to the tuned model and the base model at once
        await pilot.press("ctrl+t")
        chat.query_one("#model-b", Select).value = BASE
        await pilot.press(*"Hi", "enter")
        await rec.until(lambda: len(rec.of(ChatDone)) == 3, what="both answers")
        await settle(pilot)
        assert {m.column for m in rec.of(ChatDone)[1:]} == {0, 1}
        # the same prompt: the right side continued the left's conversation (system, first turn, "Hi")
        left, right = sorted(rec.of(ChatDone)[1:], key=lambda m: m.column)
        assert left.usage["prompt_tokens"] == right.usage["prompt_tokens"]
        assert [m["content"] for m in chat.columns[1].history[:3]] == \
            [m["content"] for m in chat.columns[0].history[:3]]
        assert chat.columns[1].history[-1]["role"] == "assistant"
        # save the last exchange (left) as a training example, appended atomically
        target = tmp_path / "saved.jsonl"
        target.write_text('{"messages": [{"role": "user", "content": "old"}, {"role": "assistant", "content": "x"}]}')
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, PathPrompt)
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        lines = target.read_text().splitlines()
        assert len(lines) == 2 and json.loads(lines[0])["messages"][0]["content"] == "old"
        saved = json.loads(lines[1])["messages"]
        # the example is what the model saw: the training data's system prompt, the prompt, the answer
        assert [m["role"] for m in saved] == ["system", "user", "assistant"]
        assert saved[0]["content"] == "Marv is a factual chatbot that is also sarcastic."
        assert saved[1]["content"] == "Hi"
        assert saved[2]["content"] == chat.columns[0].history[-1]["content"]
        # measure it: `e` on the finished job opens Eval on its validation file (no test split was prepared with
        # marv.jsonl), the tuned model and its base, and says which file and why
        await pilot.press("f3")
        await settle(pilot)
        jobs.query_one("#jobs", DataTable).focus()
        await pilot.press("e")
        await rec.until(lambda: app.current_mode == "eval" and any(  # query(): the screen may still be composing
            "Ready" in str(w.render()) for w in app.screen.query("#ev-status")), what="Eval, filled in")
        ev = app.screen
        assert ev.query_one("#ev-data", Input).value.endswith(f"marv_valid-{job['validation_file']}.jsonl")
        status = str(ev.query_one("#ev-status").render())
        assert f"the job's validation file marv_valid.jsonl ({job['validation_file']})" in status
        assert "no test split prepared with its training file marv.jsonl" in status
        assert ev.models() == [job["fine_tuned_model"], BASE]
        ev.query_one("#ev-out", Input).value = str(tmp_path / "eval")
        await pilot.press("ctrl+r")
        await rec.until(lambda: rec.of(EvalDone), timeout=300, what="the evaluation")
        await settle(pilot)
        done = rec.of(EvalDone)[-1]
        assert done.doc["examples"] == 3 and list(done.doc["models"]) == [job["fine_tuned_model"], BASE]
        assert ev.query_one("#ev-scores", DataTable).row_count == 2
        assert json.loads((tmp_path / "eval" / "eval.json").read_text())["metric"] == "exact_match"


async def test_cancel_a_running_job_from_the_list(server):
    client = server.client()
    job = start_job(client, "tocancel", n_epochs=20)
    wait_for(client, job.id, statuses=("running",))
    rec = Recorder()
    app = FtuiApp(SAMPLES, config=test_config(backend="test"), profile=profile_for(server))
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3")
        jobs = app.screen
        await rec.until(lambda: job.id in jobs.tracks, what="the job in the list")
        table = jobs.query_one("#jobs", DataTable)
        table.move_cursor(row=table.get_row_index(job.id))
        await pilot.pause()
        assert jobs.selected == job.id
        await pilot.press("c")
        await pilot.press("y")
        await rec.until(lambda: jobs.tracks[job.id].job["status"] == "cancelled", what="cancelled")
        assert any(job.id in m.finished for m in rec.of(JobsPolled))
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"


async def test_no_key_starts_the_local_backend_and_stops_it_on_exit(tmp_path, model_cache, monkeypatch):
    import os

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    rec = Recorder()
    app = FtuiApp(SAMPLES, config=test_config(backend=None))
    assert app.profile.kind == "local"
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady, timeout=120)
        await settle(pilot)
        local = app.local
        assert local.owned and local.data_dir == tmp_path / "xdg" / "ftui" / "server"
        assert app.online and app.sub_title == f"● local · 127.0.0.1:{local.port} · online"
        assert any(m["id"] == BASE for m in app.models)
        pid = local.proc.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # everything in the data dir is the user's alone: files 0600, folders 0700 (serve.out was 0644)
    data_dir = tmp_path / "xdg" / "ftui" / "server"
    modes = {str(q.relative_to(data_dir)): q.stat().st_mode & 0o777 for q in [data_dir, *data_dir.rglob("*")]}
    assert "serve.out" in modes and "serve.key" in modes
    assert {k: m for k, m in modes.items() if m != (0o700 if (data_dir / k).is_dir() else 0o600)} == {}
