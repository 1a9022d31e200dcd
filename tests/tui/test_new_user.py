"""What a new user hit (issue: the app does what the user means), driven through the real app at 80×24."""
from __future__ import annotations

import shutil

from textual.widgets import Input, Select

from ftui.core.prepare import Recipe, plan, write
from ftui.tui.app import FtuiApp
from ftui.tui.create_job import CreateJobScreen
from ftui.tui.messages import AnalysisDone, BackendReady, PreparePlanned
from ftui.tui.prepare_screen import PrepareScreen
from tests.conftest import SAMPLES
from tests.tui.conftest import Recorder, profile_for, settle, test_config


async def test_a_csv_named_on_the_command_line_opens_in_prepare_not_as_jsonl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "reviews.csv"
    shutil.copy(SAMPLES / "reviews.csv", csv)
    rec = Recorder()
    app = FtuiApp(csv, config=test_config())
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.until(lambda: rec.of(PreparePlanned), what="the preview of the CSV")
        await settle(pilot)
        assert app.current_mode == "prepare" and isinstance(app.screen, PrepareScreen)
        assert app.screen.query_one("#in-inputs", Input).value == str(csv)
        assert rec.of(PreparePlanned)[-1].plan.splits["train"].size > 100
        assert not [m for m in rec.of(AnalysisDone) if str(m.path).endswith(".csv")]  # never read as JSONL


async def test_the_create_form_preselects_the_prepared_validation_split_and_never_offers_prepare_json(
        server, tmp_path):
    out = tmp_path / "reviews-prepared"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], user="review", assistant="star")), out)
    rec = Recorder()
    app = FtuiApp(out / "train.jsonl", config=test_config(backend="test"), profile=profile_for(server))
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await rec.until(lambda: rec.of(AnalysisDone), what="train.jsonl analysed")
        await pilot.press("f3")
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, CreateJobScreen)
        valid = form.query_one("#valid", Select)
        assert valid.value == f"local:{out / 'valid.jsonl'}"
        offered = [str(v) for _, v in form.local_options["#valid"]]
        assert f"local:{out / 'test.jsonl'}" in offered and not any(v.endswith("prepare.json") for v in offered)


async def test_the_bundled_sample_gets_its_validation_file_preselected(server):
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(server))
    rec = Recorder()
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await rec.until(lambda: rec.of(AnalysisDone), what="marv.jsonl analysed")
        await pilot.press("f3")
        await pilot.press("n")
        await settle(pilot)
        assert app.screen.query_one("#valid", Select).value == f"local:{SAMPLES / 'marv_valid.jsonl'}"


async def test_compare_sends_both_models_the_same_conversation(server):
    from textual.widgets import Static

    from ftui.tui.chat_screen import ChatScreen
    from ftui.tui.messages import ChatDone

    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(server))
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f4")
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        await rec.until(lambda: chat._models()[0] is not None, what="the model list")
        chat.query_one("#prompt", Input).focus()
        await pilot.press(*"Name a colour.", "enter")
        await rec.until(lambda: len(rec.of(ChatDone)) == 1, what="the first answer")
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert "both models continue the same conversation (1 earlier turn)" in str(
            chat.query_one("#chat-status", Static).render())
        chat.query_one("#model-b", Select).value = chat._models()[0]
        await pilot.press(*"And another?", "enter")
        await rec.until(lambda: len(rec.of(ChatDone)) == 3, what="both answers")
        left, right = sorted(rec.of(ChatDone)[1:], key=lambda m: m.column)
        assert left.usage["prompt_tokens"] == right.usage["prompt_tokens"] > rec.of(ChatDone)[0].usage["prompt_tokens"]
        await pilot.press("ctrl+n")  # both start afresh
        assert chat.columns[0].history == [] and chat.columns[1].history == []
