"""What a new user hit (issue: the app does what the user means), driven through the real app at 80×24."""
from __future__ import annotations

import shutil

from textual.widgets import Input, Select

from ftui.core.prepare import Recipe, plan, write
from ftui.tui.app import FtuiApp
from ftui.tui.create_job import CreateJobScreen
from ftui.tui.messages import AnalysisDone, BackendReady, PreparePlanned
from ftui.tui.prepare_screen import STEP_TITLES, PrepareScreen, in_form_words
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, profile_for, settle, test_config


def _online(server, path):
    """The app on the shared test server, with faults an earlier test may have left armed cleared, and a recorder."""
    server.clear_faults()
    return FtuiApp(path, config=test_config(backend="test"), profile=profile_for(server)), Recorder()


def _offline_on_a_csv(tmp_path, monkeypatch):
    """The app (no backend) started on a copy of the bundled reviews CSV, from its folder; and a recorder."""
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "reviews.csv"
    shutil.copy(SAMPLES / "reviews.csv", csv)
    return FtuiApp(csv, config=test_config()), Recorder(), csv


async def test_a_csv_named_on_the_command_line_opens_in_prepare_not_as_jsonl(tmp_path, monkeypatch):
    app, rec, csv = _offline_on_a_csv(tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.until(lambda: rec.of(PreparePlanned), what="the preview of the CSV")
        await settle(pilot)
        assert app.current_mode == "prepare" and isinstance(app.screen, PrepareScreen)
        assert app.screen.query_one("#in-inputs", Input).value == str(csv)
        assert rec.of(PreparePlanned)[-1].plan.splits["train"].size > 100
        assert not [m for m in rec.of(AnalysisDone) if str(m.path).endswith(".csv")]  # never read as JSONL


async def _workspace(app, rec, pilot, key: str, kind):
    """Once the backend answers, the workspace behind ``key`` (F3 Jobs, F4 Chat), checked to be a ``kind``."""
    await rec.wait_for(BackendReady)
    await pilot.press(key)
    assert isinstance(app.screen, kind)
    return app.screen


async def _create_form(app, rec, pilot) -> CreateJobScreen:
    """Jobs → n once the backend answers and the open file is analysed: the create-job form."""
    await rec.wait_for(BackendReady)
    await rec.until(lambda: rec.of(AnalysisDone), what="the open file analysed")
    await pilot.press("f3")
    await pilot.press("n")
    await settle(pilot)
    assert isinstance(app.screen, CreateJobScreen)
    return app.screen


async def test_the_create_form_preselects_the_prepared_validation_split_and_never_offers_prepare_json(
        server, tmp_path):
    out = tmp_path / "reviews-prepared"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], user="review", assistant="star")), out)
    app, rec = _online(server, out / "train.jsonl")
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        form = await _create_form(app, rec, pilot)
        valid = form.query_one("#valid", Select)
        assert valid.value == f"local:{out / 'valid.jsonl'}"
        offered = [str(v) for _, v in form.local_options["#valid"]]
        assert f"local:{out / 'test.jsonl'}" in offered and not any(v.endswith("prepare.json") for v in offered)


async def test_the_bundled_sample_gets_its_validation_file_preselected(server):
    app, rec = _online(server, SAMPLES / "marv.jsonl")
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        form = await _create_form(app, rec, pilot)
        assert form.query_one("#valid", Select).value == f"local:{SAMPLES / 'marv_valid.jsonl'}"


async def test_compare_sends_both_models_the_same_conversation(server):
    from textual.widgets import Static

    from ftui.tui.chat_screen import ChatScreen
    from ftui.tui.messages import ChatDone

    app, rec = _online(server, SAMPLES / "marv.jsonl")
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        chat = await _workspace(app, rec, pilot, "f4", ChatScreen)
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
        await settle(pilot)
        for pane in chat.query(".transcript"):  # each answer scrolled into view, to its end
            assert pane.max_scroll_y > 0 and pane.scroll_y == pane.max_scroll_y
        # saving the exchange offers the user's data folder, not the folder ftui was started in
        from ftui.core.files import user_data_dir
        from ftui.tui.prompt import PathPrompt

        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, PathPrompt)
        assert app.screen.query_one(Input).value == str(user_data_dir() / "chat-examples.jsonl")
        await pilot.press("escape")
        await pilot.press("ctrl+n")  # both start afresh
        assert chat.columns[0].history == [] and chat.columns[1].history == []


async def test_quitting_with_a_live_job_says_training_goes_on_and_where_to_see_it(server):
    from textual.widgets import Label

    from ftui.tui.confirm import Confirm
    from tests.backend import start_job, wait_for

    client = server.client()
    job = start_job(client, "quitter", n_epochs=20)
    wait_for(client, job.id, statuses=("queued", "running"))
    try:
        app, rec = _online(server, SAMPLES / "marv.jsonl")
        async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
            await rec.wait_for(BackendReady)
            await pilot.press("ctrl+q")
            await rec.until(lambda: isinstance(app.screen, Confirm), what="the question")
            text = str(app.screen.query_one(Label).render())
            assert f"1 job still training ({job.id})" in text and "press F3 (Jobs) to follow them" in text
            await pilot.press("n")  # stays
            await settle(pilot)
            assert app.is_running and not isinstance(app.screen, Confirm)
            await pilot.press("ctrl+q")
            await rec.until(lambda: isinstance(app.screen, Confirm), what="the question again")
            await pilot.press("ctrl+q")  # twice quits
            await rec.until(lambda: not app.is_running, what="the app to quit")
        assert client.fine_tuning.jobs.retrieve(job.id).status in ("queued", "running")  # training went on
    finally:
        client.fine_tuning.jobs.cancel(job.id)


async def test_quitting_with_no_live_job_asks_nothing(server):
    app, rec = _online(server, SAMPLES / "marv.jsonl")
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        for j in server.client().fine_tuning.jobs.list(limit=100).data:  # whatever other tests left running
            if j.status in ("queued", "running", "validating_files", "pausing"):
                server.client().fine_tuning.jobs.cancel(j.id)
        await pilot.press("ctrl+q")
        await rec.until(lambda: not app.is_running, what="the app to quit")


async def test_prepare_sniffs_semicolons_names_its_fields_and_a_failed_preview_drops_the_old_one(tmp_path,
                                                                                                monkeypatch):
    from textual.widgets import DataTable, Static

    from ftui.tui.messages import PrepareFailed

    monkeypatch.chdir(tmp_path)
    semi = tmp_path / "semi.csv"
    rows = [("review", "star")] + [(f"Review number {i}; {'great' if i % 2 else 'bad'} app", str(1 + i % 5))
                                   for i in range(40)]
    semi.write_text("".join(f'"{r}";{s}\n' if i else f"{r};{s}\n" for i, (r, s) in enumerate(rows)))
    rec = Recorder()
    app = FtuiApp(semi, config=test_config())
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.until(lambda: rec.of(PreparePlanned), what="the preview")
        await settle(pilot)
        screen = app.screen
        assert str(screen.query_one("#prep-columns", Static).render()) == "csv (semicolon-separated): review, star"
        plan_ = rec.of(PreparePlanned)[-1].plan
        assert sum(v.size for v in plan_.splits.values()) == 40
        notes = str(screen.query_one("#prep-notes", Static).render())
        assert "the User/Assistant fields choose others" in notes and "--user" not in notes
        steps = screen.query_one("#prep-steps", DataTable)
        assert steps.row_count > 0
        steps.focus()  # moving in the steps shows the highlighted step's whole note, which its column may cut
        longest = max(range(len(plan_.steps)), key=lambda i: len(plan_.steps[i].note))
        steps.move_cursor(row=longest)
        await settle(pilot)
        step = plan_.steps[longest]
        assert str(screen.query_one("#prep-status", Static).render()) == (
            f"{STEP_TITLES.get(step.name, step.name)}: {in_form_words(step.note)}")
        # a recipe that cannot work: the error, and no steps of the earlier preview beside it
        screen.query_one("#in-user", Input).value = "nope"
        screen.query_one("#in-assistant", Input).value = "star"
        await pilot.press("ctrl+r")
        await rec.until(lambda: rec.of(PrepareFailed), what="the failed preview")
        await settle(pilot)
        assert "nope" in str(screen.query_one("#prep-status", Static).render())
        assert screen.query_one("#prep-steps", DataTable).row_count == 0 and screen.plan is None


async def test_form_fields_keep_their_value_on_focus_and_say_why_a_character_is_refused(tmp_path, monkeypatch):
    from ftui.tui.widgets.form_input import FormInput

    app, rec, csv = _offline_on_a_csv(tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.until(lambda: rec.of(PreparePlanned), what="the preview")
        screen = app.screen
        seed = screen.query_one("#in-shingle", FormInput)
        seed.focus()
        await settle(pilot)
        assert seed.selection.is_empty  # nothing selected: typing adds, it does not replace unseen
        await pilot.press("end", "x")
        assert seed.value == "3"
        assert any("Shingle: whole numbers only" in str(n.message) for n in app._notifications)
        await pilot.press("5")
        assert seed.value == "35"
        assert seed.has_class("-textual-compact") and seed.styles.border_left[0] == "outer"  # the focus bar


async def test_jobs_created_during_a_session_are_listed_newest_first_like_after_a_restart(server):
    import time

    from textual.widgets import DataTable

    from ftui.tui.jobs_screen import JobsScreen
    from tests.backend import start_job

    client = server.client()
    app, rec = _online(server, SAMPLES / "marv.jsonl")
    made = []
    try:
        async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
            await rec.wait_for(BackendReady)
            await pilot.press("f3")
            jobs = app.screen
            assert isinstance(jobs, JobsScreen)
            table = jobs.query_one("#jobs", DataTable)
            await rec.until(lambda: jobs.tracks is not None and table.row_count == len(jobs.tracks),
                            what="the list")
            for _ in range(2):
                if made:  # created_at counts seconds: the second job one second later
                    await rec.until(lambda: time.time() >= made[-1].created_at + 1.05, what="a second to pass")
                made.append(start_job(client, "order", n_epochs=1))
                client.fine_tuning.jobs.cancel(made[-1].id)
                await pilot.press("ctrl+r")  # made outside the app: the list is re-read now, not at the next minute
                await rec.until(lambda: made[-1].id in table.rows, what="the new job's row")
            await settle(pilot)
            rows = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]
            assert rows.index(made[1].id) < rows.index(made[0].id) and rows.index(made[1].id) == 0
    finally:
        for j in made:
            if client.fine_tuning.jobs.retrieve(j.id).status not in ("cancelled", "failed", "succeeded"):
                client.fine_tuning.jobs.cancel(j.id)


async def test_at_80x24_every_histogram_is_reachable_and_help_fits_in_few_screens():
    from textual.containers import VerticalScroll
    from textual.widgets import TabbedContent

    from ftui.tui.help_screen import HelpScreen
    from ftui.tui.widgets.plots import Histogram

    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.until(lambda: rec.of(AnalysisDone), what="marv.jsonl analysed")
        await settle(pilot)
        data = app.screen
        await pilot.press("h")  # a key for the Histograms tab
        await settle(pilot)
        assert data.query_one(TabbedContent).active == "tab-histograms"
        seen = []
        for _ in range(3):
            visible = [h.id for h in data.query(Histogram) if h.display and h.size.height >= 8]
            assert len(visible) == 1  # the one that fits, drawn whole
            seen += visible
            await pilot.press("h")
            await settle(pilot)
        assert seen == ["hist-tokens", "hist-trainable", "hist-messages"]
        await pilot.press("f")  # and back to the findings
        assert data.query_one(TabbedContent).active == "tab-findings"
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        scroll = app.screen.query_one(VerticalScroll)
        pages = scroll.virtual_size.height / max(1, scroll.size.height)
        assert pages < 3.5, pages  # was ~7 screens with a binding-id column
        assert "`ftui.histograms`" in app.screen.text


async def test_v_shows_the_selected_jobs_events_whole_where_the_log_cuts_them(server):
    from textual.widgets import DataTable, Static

    from ftui.tui.jobs_screen import JobsScreen
    from ftui.tui.text_screen import TextScreen
    from tests.backend import start_job, wait_for

    client = server.client()
    job = start_job(client, "events", n_epochs=1)
    client.fine_tuning.jobs.cancel(job.id)
    wait_for(client, job.id, statuses=("cancelled",))
    app, rec = _online(server, SAMPLES / "marv.jsonl")
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        jobs = await _workspace(app, rec, pilot, "f3", JobsScreen)
        table = jobs.query_one("#jobs", DataTable)
        await rec.until(lambda: job.id in table.rows, what="the job listed")
        table.move_cursor(row=table.get_row_index(job.id))
        await rec.until(lambda: jobs.tracks[job.id].events_complete, what="its events")
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, TextScreen)
        body = str(app.screen.query_one("#text-body", Static).render())
        for e in jobs.tracks[job.id].events:
            assert e["message"] in body  # every event, whole
        assert any(len(JobsScreen._event_line(e)) > 60 for e in jobs.tracks[job.id].events)  # wider than the log
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


async def test_the_palette_key_shows_only_where_the_keys_leave_room_for_it():
    """Keys that run under the palette key docked at the right mixed their cells with it ("^ppale tte")."""
    from ftui.tui.widgets.footer import Footer

    for size, key, shown in (((130, 40), "f4", False), ((130, 40), "f2", True), ((80, 24), "f2", False)):
        app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
        async with app.run_test(size=size) as pilot:
            await pilot.press(key)
            await settle(pilot)
            footer = app.screen.query_one(Footer)
            palette = [k for k in footer.children if k.has_class("-command-palette")]
            assert bool(palette) is shown, (size, key)
            keys = [k for k in footer.children if k not in palette]
            if palette:  # and where it shows, nothing runs under it
                assert max(k.region.right for k in keys) <= palette[0].region.x
