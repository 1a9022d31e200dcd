"""Many runs through the real app against a real `ftui serve`, on reviews prepared by `ftui prepare`: a sweep of four
small jobs from the create-job form (its preview, suffixes that name each point, queue positions in the Jobs list),
the same sweep again refused as a duplicate, the four compared (curves on one axis, the table of figures), an
early-stopped job with its best checkpoint set from the form (its duration estimated from the sweep's measured
speed), the lineage in the job detail, and every model trained on that data measured as a leaderboard."""
from __future__ import annotations

import json

import pytest
from textual.widgets import Checkbox, DataTable, Input, Select

from ftui.core.prepare import Recipe, plan, write
from ftui.service.runs import SHA_KEY
from ftui.tui.compare_screen import CompareScreen
from ftui.tui.create_job import CreateJobScreen
from ftui.tui.eval_screen import EvalScreen
from ftui.tui.jobs_screen import JobsScreen
from ftui.tui.messages import AnalysisDone, BackendReady, RunsRead
from ftui.tui.widgets.plots import RunsChart
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, app_for, settle, toasts

pytestmark = pytest.mark.slow


async def _form(app, rec, pilot, jobs) -> CreateJobScreen:
    await pilot.press("n")
    await settle(pilot)
    form = app.screen
    assert isinstance(form, CreateJobScreen)
    assert str(form.query_one("#valid", Select).value).endswith("valid.jsonl")  # the split prepared beside it
    return form


async def test_sweep_compare_duplicate_early_stopping_lineage_and_leaderboard(server, tmp_path):
    prepared = tmp_path / "reviews-prepared"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], system="Rate the app review from 1 to 5 stars. Answer with "
                      "the digit only.", split_counts=(16, 4, 4), seed=5)), prepared)
    client = server.client()
    rec = Recorder()
    app = app_for(server, path=prepared / "train.jsonl")
    async with app.run_test(size=(160, 48), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await rec.until(lambda: rec.of(AnalysisDone), what="the open file analysed")
        await pilot.press("f3")
        jobs = app.screen
        assert isinstance(jobs, JobsScreen)
        form = await _form(app, rec, pilot, jobs)
        for field, value in (("epochs", "1, 2"), ("batch", "16"), ("lr", "0.5, 2"), ("seed", "3"), ("suffix", "sw")):
            form.query_one(f"#{field}", Input).value = value
        await settle(pilot)
        estimate = str(form.query_one("#estimate").render())
        assert "sweep of 4 jobs (ep1-lr0.5, ep1-lr2, ep2-lr0.5, ep2-lr2)" in estimate
        assert "billed tokens in all" in estimate and "no charge (local backend)" in estimate
        await pilot.press("ctrl+s")
        await rec.until(lambda: app.screen is jobs, what="the form to close with the sweep")
        sweep = {t.job["user_provided_suffix"]: t for t in jobs.tracks.values()
                 if (t.job.get("user_provided_suffix") or "").startswith("sw-")}
        assert set(sweep) == {"sw-ep1-lr0.5", "sw-ep1-lr2", "sw-ep2-lr0.5", "sw-ep2-lr2"}
        ids = {s: t.id for s, t in sweep.items()}
        made = client.fine_tuning.jobs.retrieve(ids["sw-ep2-lr0.5"])
        assert made.seed == 3 and made.method.supervised.hyperparameters.n_epochs == 2
        assert made.method.supervised.hyperparameters.learning_rate_multiplier == 0.5
        assert made.metadata[SHA_KEY] and len(made.metadata[SHA_KEY]) == 64
        # one job trains at a time: the others wait, each with its place in the queue
        table = jobs.query_one("#jobs", DataTable)

        def places() -> set[str]:
            return {str(table.get_cell(i, "step")) for i in ids.values() if i in table.rows}

        await rec.until(lambda: "#2 in queue" in places(), what="a job second in the queue")
        # the same sweep again: every point is on the backend already, nothing is created
        form = await _form(app, rec, pilot, jobs)
        for field, value in (("epochs", "2, 1"), ("batch", "16"), ("lr", "2, 0.5"), ("seed", "3")):
            form.query_one(f"#{field}", Input).value = value
        await pilot.press("ctrl+s")
        await rec.until(lambda: app.screen is jobs, what="the form to close")
        said = [str(n.message) for n in toasts(rec) if n.title == "Already there"]
        assert len(said) == 1 and all(i in said[0] for i in ids.values())
        assert len([j for j in client.fine_tuning.jobs.list(limit=100).data
                    if (j.user_provided_suffix or "").startswith("sw")]) == 4
        # the app keeps running meanwhile (a blocking wait here would leave it a backlog of polls to catch up on)
        await rec.until(lambda: all(jobs.tracks[i].job["status"] == "succeeded" for i in ids.values()), timeout=600,
                        what="the sweep's four jobs to succeed")
        # compare the four: mark them with space (the row under the cursor), m opens the view
        for i in ids.values():
            table.move_cursor(row=table.get_row_index(i))
            await pilot.press("space")
            await rec.until(lambda: i in jobs.marked, what="the job under the cursor marked")  # noqa: B023
        assert jobs.marked == list(ids.values())
        assert str(table.get_cell(ids["sw-ep1-lr2"], "id")).startswith("✓ ")
        await pilot.press("m")
        await settle(pilot)
        view = app.screen
        assert isinstance(view, CompareScreen)
        await rec.until(lambda: rec.of(RunsRead) and all(t.terminal for t in rec.of(RunsRead)[-1].tracks),
                        what="the runs read")
        await rec.until(lambda: all(s in str(view.query_one("#compare-legend").render()) for s in ids),
                        what="the legend naming the four")
        loss = view.query_one("#compare-loss", RunsChart)
        assert len(loss.runs) == 4 and all(len(train) == (2 if "ep2" in s else 1) and valid
                                           for s, (_, train, valid) in zip(ids, loss.runs))
        rows = {r.label: r for r in view.rows()}
        assert set(rows) == set(ids)
        assert all(r.final is not None and r.best is not None and r.trained_tokens for r in rows.values())
        # aligned by trained tokens: an epoch of the same data is the same number of tokens in every run
        await pilot.press("a")
        await settle(pilot)
        ends = {s: train[-1][0] for s, (_, train, _) in zip(ids, view.query_one("#compare-loss", RunsChart).runs)}
        assert ends["sw-ep2-lr2"] == pytest.approx(2 * ends["sw-ep1-lr2"])
        assert view.query_one("#compare-loss", RunsChart).xlabel == "trained tokens"
        await pilot.press("escape")
        await settle(pilot)
        # early stopping from the form: min Δ 10 makes the second epoch "no better", patience 1 stops there
        form = await _form(app, rec, pilot, jobs)
        for field, value in (("epochs", "4"), ("batch", "16"), ("suffix", "early"), ("patience", "1"),
                             ("min-delta", "10")):
            form.query_one(f"#{field}", Input).value = value
        form.query_one("#early", Checkbox).value = True
        form.query_one("#best", Checkbox).value = True
        # four jobs of this base and method trained here: the form estimates from their measured speed
        await rec.until(lambda: "measured on" in str(form.query_one("#estimate").render()), what="a time estimate")
        assert "≈ " in str(form.query_one("#estimate").render())
        await pilot.press("ctrl+s")
        await rec.until(lambda: app.screen is jobs, what="the form to close")
        [early] = [t.id for t in jobs.tracks.values() if t.job.get("user_provided_suffix") == "early"]
        await rec.until(lambda: jobs.tracks[early].terminal, timeout=600, what="the early-stopping job to end")
        done = client.fine_tuning.jobs.retrieve(early)
        assert done.status == "succeeded"
        hp = done.method.supervised.hyperparameters.model_extra
        assert hp["early_stopping_enabled"] is True and hp["patience"] == 1 and hp["best_checkpoint"] is True
        messages = [e.message for e in client.fine_tuning.jobs.list_events(early, limit=100).data]
        assert any(m.startswith("Early stopping at step 2/4 (epoch 2 of 4)") for m in messages)
        assert int(done.metadata["ftui_estimate_s"]) >= 1
        # the detail compares the estimate with the time it trained
        table.move_cursor(row=table.get_row_index(early))
        await rec.until(lambda: jobs.selected == early and jobs.tracks[early].terminal
                        and jobs.tracks[early].events_complete, what="the early job's events")
        await settle(pilot)
        detail = str(jobs.query_one("#job-detail").render())
        assert "estimated" in detail
        # its lineage: the raw reviews, the recipe, the uploaded split with its hash, the job, the model
        await rec.until(lambda: "lineage" in str(jobs.query_one("#job-detail").render()), what="the lineage")
        recipe = json.loads((prepared / "prepare.json").read_text())["recipe_id"]
        lineage = str(jobs.query_one("#job-detail").render()).split("lineage ", 1)[1].replace("\n", "")
        assert lineage.startswith(f"reviews.csv → {recipe} (") and "→ train.jsonl (file-" in lineage
        assert f"→ {early} → {done.fine_tuned_model}" in lineage
        # every model trained on this data, measured on its test split: a leaderboard of five, with their base
        app.open_eval(str(prepared / "test.jsonl"), [])
        await rec.until(lambda: isinstance(app.screen, EvalScreen), what="the Eval workspace")
        ev = app.screen
        await settle(pilot)
        await pilot.press("ctrl+l")
        models = {t.job["fine_tuned_model"] for t in jobs.tracks.values() if t.id in {*ids.values(), early}}
        await rec.until(lambda: set(ev.query_one("#ev-models").selected) == models, what="the five models ticked")
        assert str(ev.query_one("#ev-status").render()).startswith("Ready: ")
        ev.query_one("#ev-out", Input).value = str(tmp_path / "eval")
        await pilot.press("ctrl+r")
        await rec.until(lambda: ev.doc is not None and not ev.running, timeout=300, what="the evaluation")
        await settle(pilot)
        board = str(ev.query_one("#ev-compare").render())
        assert "Leaderboard by " in board and board.count(" — against the best: ") == 5  # 6 models: the base too
