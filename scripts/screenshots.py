#!/usr/bin/env python3
"""Render the real app on the bundled samples to SVG in screenshots/ (130x40 and 80x24; the README shows them).

Starts a real local backend (`ftui serve`) in a temporary data dir, fine-tunes SmolLM2 on the Marv sample through
the SDK (about a minute on 2 cores), then shoots the Data, Jobs and Chat (compare mode) workspaces.

    python scripts/screenshots.py          # every screenshot
    python scripts/screenshots.py --rft    # only reinforcement's: the reward charts, the rollouts, the workbench
    python scripts/screenshots.py --sweep  # only the README's "Comparing runs": a sweep of 4 on the reviews, compared

``--rft`` warm-starts a model on the bundled reviews (supervised, one epoch), then runs a reinforcement job from it
with a string_check grader on the star and a validation file (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "screenshots"
SAMPLES = ROOT / "ftui" / "data" / "samples"
SIZE = (130, 40)
SMALL = (80, 24)


async def until(pilot, predicate, timeout: float = 600, why=lambda: "") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise TimeoutError(why())
        await pilot.pause(0.1)


def train(base_url: str, api_key: str | None) -> str:
    """A finished job on the Marv sample (with validation), through the official SDK; returns its id."""
    import time

    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key or "local")  # the key LocalBackend made (never printed)
    train_f = client.files.create(file=open(SAMPLES / "marv.jsonl", "rb"), purpose="fine-tune")
    valid_f = client.files.create(file=open(SAMPLES / "marv_valid.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=train_f.id,
                                         validation_file=valid_f.id, suffix="marv", seed=7,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 4}}})
    while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        time.sleep(1)
    if job.status != "succeeded":
        raise SystemExit(f"the screenshot job {job.status}: {job.error}")
    return job.id


def train_stars(base_url: str, api_key: str | None) -> tuple[str, str]:
    """The seed-004 loop's model: `ftui prepare` the bundled reviews (160 train, 60 test), 2 epochs at batch 8.
    Returns (the tuned model, the test split's path)."""
    import time

    from openai import OpenAI

    from ftui.core.prepare import Recipe, plan, write

    out = Path(tempfile.mkdtemp()) / "reviews-prepared"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], system="Rate the app review from 1 to 5 stars. Answer with "
                      "the digit only.", split_counts=(160, 0, 60), seed=7)), out)
    client = OpenAI(base_url=base_url, api_key=api_key or "local")
    f = client.files.create(file=open(out / "train.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, suffix="stars", seed=7,
                                         method={"type": "supervised", "supervised": {"hyperparameters": {
                                             "n_epochs": 2, "batch_size": 8}}})
    while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        time.sleep(1)
    if job.status != "succeeded":
        raise SystemExit(f"the reviews job {job.status}: {job.error}")
    return job.fine_tuned_model, str(out / "test.jsonl")


STAR = {"type": "string_check", "name": "star", "operation": "eq", "input": "{{ sample.output_text }}",
        "reference": "{{ item.star }}"}


def train_rft(base_url: str, api_key: str | None) -> str:
    """Seed 004 by reinforcement: a supervised warm start on 160 prepared reviews, then RFT from it on 80 of their
    prompts (8 × 4 samples a step) with validation on 16 every 2 steps. Returns the RFT job's id."""
    import time

    from openai import OpenAI

    from ftui.core.prepare import Recipe, plan, write

    system = "Rate the app review from 1 to 5 stars. Answer with the digit only."
    chat, rft = Path(tempfile.mkdtemp()) / "chat", Path(tempfile.mkdtemp()) / "rft"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], system=system, split_counts=(160, 16, 60), seed=7)), chat)
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], system=system, split_counts=(160, 16, 60), seed=7,
                      rft_key="star")), rft)
    client = OpenAI(base_url=base_url, api_key=api_key or "local")

    def done(job):
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
            time.sleep(1)
        if job.status != "succeeded":
            raise SystemExit(f"the screenshot job {job.status}: {job.error}")
        return job

    f = client.files.create(file=open(chat / "train.jsonl", "rb"), purpose="fine-tune")
    warm = done(client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, suffix="warm",
                                               seed=7, method={"type": "supervised", "supervised": {
                                                   "hyperparameters": {"n_epochs": 1, "batch_size": 8,
                                                                       "learning_rate_multiplier": 3}}}))
    lines = (rft / "train.jsonl").read_text().splitlines(keepends=True)[:80]
    train_f = client.files.create(file=("rft-train.jsonl", "".join(lines).encode()), purpose="fine-tune")
    valid_f = client.files.create(file=open(rft / "valid.jsonl", "rb"), purpose="fine-tune")
    job = done(client.fine_tuning.jobs.create(
        model=warm.fine_tuned_model, training_file=train_f.id, validation_file=valid_f.id, suffix="rft", seed=7,
        method={"type": "reinforcement", "reinforcement": {"grader": STAR, "hyperparameters": {
            "n_epochs": 1, "batch_size": 8, "eval_interval": 2, "eval_samples": 2, "reasoning_effort": "low"}}}))
    return job.id


async def open_job(pilot, app, job_id: str):
    """F3, the job highlighted, its results and checkpoints read and its charts drawn: the Jobs screen."""
    from ftui.tui.pilot import settle

    await until(pilot, lambda: app.service is not None)
    await pilot.press("f3")
    jobs = app.screen
    await until(pilot, lambda: job_id in jobs.tracks)
    table = jobs.query_one("#jobs")
    table.move_cursor(row=table.get_row_index(job_id))
    await until(pilot, lambda: jobs.tracks[job_id].results_loaded and jobs.tracks[job_id].checkpoints)
    await pilot.pause(0.5)  # the chart's coalesced redraw
    await settle(pilot)
    return jobs


async def compare(pilot, app, jobs, tracks, name: str) -> None:
    """Mark ``tracks`` in Jobs (space on each row), open the compare view (m) once their results are read, shoot."""
    from ftui.tui.pilot import settle

    table = jobs.query_one("#jobs")
    for t in tracks:
        table.move_cursor(row=table.get_row_index(t.id))
        await settle(pilot)
        await pilot.press("space")
    await pilot.press("m")
    view = app.screen
    await until(pilot, lambda: all(t.results_loaded for t in view.tracks))
    await settle(pilot)
    app.save_screenshot(name, str(OUT))


async def shoot_rft() -> None:
    """Reinforcement's screenshots: Jobs with the reward charts, the rollout view, the grader workbench."""
    os.environ["FTUI_CONFIG_FILE"] = str(Path(tempfile.mkdtemp()) / "none.toml")
    from ftui.config import Config
    from ftui.service.local import LocalBackend
    from ftui.service.profiles import Profile
    from ftui.tui.app import FtuiApp
    from ftui.tui.pilot import settle

    OUT.mkdir(exist_ok=True)
    os.chdir(ROOT)
    data_dir = Path(tempfile.mkdtemp()) / "server"
    local = LocalBackend(data_dir)
    base_url = local.start()
    try:
        job_id = await asyncio.to_thread(train_rft, base_url, local.api_key)
        for size, suffix in ((SIZE, ""), (SMALL, "-80x24")):
            app = FtuiApp(SAMPLES.relative_to(ROOT) / "marv.jsonl", config=Config(cursor_blink=False),
                          profile=Profile("local", "local", data_dir=str(data_dir)))
            async with app.run_test(size=size) as pilot:
                await open_job(pilot, app, job_id)
                app.save_screenshot(f"jobs-rft{suffix}.svg", str(OUT))
                await pilot.press("o")
                view = app.screen
                await until(pilot, lambda: getattr(view, "step", None) is not None)
                await pilot.press("s")  # worst first
                await settle(pilot)
                app.save_screenshot(f"rollouts{suffix}.svg", str(OUT))
                await pilot.press("escape")
                await settle(pilot)
                if size == SMALL:
                    continue
                from ftui.tui.grader_bench import GraderBench

                multi = {"type": "multi", "name": "star and format", "calculate_output": "0.8 * star + 0.2 * short",
                         "graders": {"star": STAR, "short": {
                             "type": "python", "name": "short",
                             "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) <= 2 "
                                       "else 0.0\n"}}}
                app.push_screen(GraderBench(sample="4 stars", item={"star": "4"}, grader=multi))
                bench = app.screen
                await until(pilot, lambda: bench.runs >= 1)
                await settle(pilot)
                app.save_screenshot("grader-bench.svg", str(OUT))
    finally:
        local.stop()
    for f in sorted(OUT.glob("*rft*.svg")) + sorted(OUT.glob("rollouts*.svg")) + [OUT / "grader-bench.svg"]:
        print(f.relative_to(ROOT), f.stat().st_size, "bytes")


async def shoot() -> None:
    os.environ["FTUI_CONFIG_FILE"] = str(Path(tempfile.mkdtemp()) / "none.toml")  # the defaults, not the user's
    from ftui.config import Config
    from ftui.service.local import LocalBackend
    from ftui.service.profiles import Profile
    from ftui.tui.app import FtuiApp
    from ftui.tui.pilot import settle

    data_dir = Path(tempfile.mkdtemp()) / "server"
    local = LocalBackend(data_dir)
    base_url = local.start()
    try:
        job_id = await asyncio.to_thread(train, base_url, local.api_key)
        await _shoot(lambda: Profile("local", "local", data_dir=str(data_dir)), job_id, FtuiApp, Config, settle,
                     base_url, local)
    finally:
        local.stop()
    for f in sorted(OUT.glob("*.svg")):
        print(f.relative_to(ROOT), f.stat().st_size, "bytes")


async def _shoot(profile, job_id, FtuiApp, Config, settle, base_url, local) -> None:  # noqa: N803
    OUT.mkdir(exist_ok=True)
    os.chdir(ROOT)  # relative paths in the header, as a user in the repository sees them
    app = FtuiApp(SAMPLES.relative_to(ROOT) / "broken.jsonl", config=Config(cursor_blink=False), profile=profile())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.save_screenshot("data-findings.svg", str(OUT))
        await pilot.press("down", "down", "enter")  # line 4: a conversation without an answer
        await settle(pilot)
        await pilot.press("]")  # the next example with a problem (line 5)
        await settle(pilot)
        app.save_screenshot("data-example.svg", str(OUT))
    app = FtuiApp(SAMPLES.relative_to(ROOT) / "marv.jsonl", config=Config(cursor_blink=False), profile=profile())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#tabs").active = "tab-histograms"
        await settle(pilot)
        app.save_screenshot("data-histograms.svg", str(OUT))
        await until(pilot, lambda: app.service is not None)
        await pilot.press("f3")
        jobs = app.screen
        await until(pilot, lambda: job_id in jobs.tracks and jobs.tracks[job_id].results_loaded
                    and jobs.tracks[job_id].checkpoints)
        await pilot.pause(0.5)  # the chart's coalesced redraw
        await settle(pilot)
        app.save_screenshot("jobs.svg", str(OUT))
        tuned = jobs.tracks[job_id].job["fine_tuned_model"]
        app.open_chat(tuned)
        await settle(pilot)
        chat = app.screen
        await until(pilot, lambda: chat.query_one("#model-a").value == tuned)
        await pilot.press("ctrl+t")
        chat.query_one("#model-b").value = "smollm2-135m-instruct"
        chat.query_one("#system").text = "Marv is a factual chatbot that is also sarcastic."
        chat.query_one("#prompt").focus()
        await pilot.press(*"What is the capital of France?", "enter")
        await until(pilot, lambda: all(c.history and c.history[-1]["role"] == "assistant" and not c.busy
                                       for c in chat.columns), timeout=300,
                    why=lambda: f"{[c.busy for c in chat.columns]} {chat.query_one('#chat-status').render()}")
        await settle(pilot)
        app.save_screenshot("chat-compare.svg", str(OUT))
        # Eval: seed 004 — a model tuned on 160 prepared reviews against its base on 60 held-out ones
        stars, test = await asyncio.to_thread(train_stars, base_url, local.api_key)
        app.open_eval(test, [stars])
        await settle(pilot)
        ev = app.screen
        ev.query_one("#ev-out").value = tempfile.mkdtemp()
        await pilot.press("ctrl+r")
        await until(pilot, lambda: ev.doc is not None and not ev.running, timeout=300)
        await settle(pilot)
        app.save_screenshot("eval.svg", str(OUT))
    # the Prepare workspace on the bundled reviews (seed 004, small): the preview of the default recipe
    for size, name in ((SIZE, "prepare.svg"), (SMALL, "prepare-80x24.svg")):
        app = FtuiApp(SAMPLES.relative_to(ROOT) / "broken.jsonl", config=Config(cursor_blink=False),
                      profile=profile())
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await pilot.press("f6")
            await until(pilot, lambda: getattr(app.screen, "plan", None) is not None)
            app.screen.query_one("#in-system").value = "Rate the review from 1 to 5. Answer with the digit only."
            await pilot.pause()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: not app.screen.running and app.screen.plan.recipe.system)
            await settle(pilot)
            if size == SMALL:
                app.screen.query_one("#prep-tabs").active = "tab-examples"
                await settle(pilot)
            app.save_screenshot(name, str(OUT))
    # the same app in an 80x24 terminal (many SSH sessions open with it): the tree collapses, the summary is
    # compact, the findings and the event log keep their rows
    app = FtuiApp(SAMPLES.relative_to(ROOT) / "broken.jsonl", config=Config(cursor_blink=False), profile=profile())
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.save_screenshot("data-80x24.svg", str(OUT))
        jobs = await open_job(pilot, app, job_id)
        app.save_screenshot("jobs-80x24.svg", str(OUT))
        # Files & models: the base's size, context and origin; x on the tuned model opens the export dialog
        tuned = jobs.tracks[job_id].job["fine_tuned_model"]
        await pilot.press("f5")
        models = app.screen.query_one("#models")
        await until(pilot, lambda: tuned in [k.value for k in models.rows])
        models.focus()
        models.move_cursor(row=models.get_row_index(tuned))
        await settle(pilot)
        app.save_screenshot("files-80x24.svg", str(OUT))
        await pilot.press("x")
        await settle(pilot)
        app.save_screenshot("export-80x24.svg", str(OUT))


async def shoot_sweep() -> None:
    """The README's "Comparing runs": the bundled reviews prepared (70/10/20), a sweep of four
    from the create-job form (epochs 1, 2 × LR 1, 3), the four compared, the best two evaluated against their base."""
    os.environ["FTUI_CONFIG_FILE"] = str(Path(tempfile.mkdtemp()) / "none.toml")
    from ftui.config import Config
    from ftui.core.prepare import Recipe, plan, write
    from ftui.service.local import LocalBackend
    from ftui.service.profiles import Profile
    from ftui.tui.app import FtuiApp
    from ftui.tui.pilot import settle

    OUT.mkdir(exist_ok=True)
    prepared = Path(tempfile.mkdtemp()) / "reviews-prepared"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], system="Rate the app review from 1 to 5 stars. Answer with "
                      "the digit only.", split=(0.7, 0.1, 0.2), seed=7)), prepared)
    data_dir = Path(tempfile.mkdtemp()) / "server"
    local = LocalBackend(data_dir)
    local.start()
    try:
        app = FtuiApp(prepared / "train.jsonl", config=Config(cursor_blink=False),
                      profile=Profile("local", "local", data_dir=str(data_dir)))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.service is not None and app.models)
            await until(pilot, lambda: getattr(app.data_screen(), "report", None) is not None)
            await pilot.press("f3")
            jobs = app.screen
            await pilot.press("n")
            await settle(pilot)
            form = app.screen
            for field, value in (("epochs", "1, 2"), ("batch", "8"), ("lr", "1, 3"), ("seed", "7"),
                                 ("suffix", "stars")):
                form.query_one(f"#{field}").value = value
            await settle(pilot)
            app.save_screenshot("sweep-form.svg", str(OUT))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: app.screen is jobs)
            sweep = lambda: [t for t in jobs.tracks.values()  # noqa: E731
                             if (t.job.get("user_provided_suffix") or "").startswith("stars-")]
            await until(pilot, lambda: len(sweep()) == 4)
            await until(pilot, lambda: all(t.terminal for t in sweep()), timeout=1200)
            await compare(pilot, app, jobs, sweep(), "compare.svg")
            await pilot.press("e")
            await until(pilot, lambda: type(app.screen).__name__ == "EvalScreen")
            ev = app.screen
            await settle(pilot)
            ev.query_one("#ev-out").value = tempfile.mkdtemp()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: ev.doc is not None and not ev.running, timeout=600)
            await settle(pilot)
            app.save_screenshot("eval-best-two.svg", str(OUT))
        app = FtuiApp(prepared / "train.jsonl", config=Config(cursor_blink=False),
                      profile=Profile("local", "local", data_dir=str(data_dir)))
        async with app.run_test(size=SMALL) as pilot:
            await until(pilot, lambda: app.service is not None)
            await pilot.press("f3")
            jobs = app.screen
            await until(pilot, lambda: len([t for t in jobs.tracks.values() if t.terminal]) >= 4)
            await compare(pilot, app, jobs, [t for t in jobs.tracks.values()
                                             if (t.job.get("user_provided_suffix") or "").startswith("stars")],
                          "compare-80x24.svg")
    finally:
        local.stop()


if __name__ == "__main__":
    import atexit
    import shutil

    # every folder the shots make (servers with their models, prepared sets) in one, removed after
    tempfile.tempdir = tempfile.mkdtemp(prefix="ftui-screenshots-")
    atexit.register(shutil.rmtree, tempfile.tempdir, True)
    if "--rft" in sys.argv[1:]:
        asyncio.run(shoot_rft())
    elif "--sweep" in sys.argv[1:]:
        asyncio.run(shoot_sweep())
    else:
        asyncio.run(shoot())
        asyncio.run(shoot_rft())
        asyncio.run(shoot_sweep())
