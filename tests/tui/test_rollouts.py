"""The rollout view against a real `ftui serve` whose data dir holds a finished reinforcement job with the rollouts
of two validation steps (written by the store's own writer, as the trainer writes them; the training that produces
them is tests/server/test_reinforcement.py): **o** in Jobs opens it on the latest step; the prompts, their samples
and rewards are shown; **s** sorts worst first; another step is read when picked; a supervised job has none."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from ftui.server.store import Store, now
from ftui.tui.app import FtuiApp
from ftui.tui.messages import BackendReady, JobsPolled
from ftui.tui.rollout_screen import RolloutScreen
from tests.backend import Server
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, profile_for, settle, test_config, toasts

pytestmark = pytest.mark.slow  # it starts a server
RFT_JOB, SFT_JOB = "ftjob-rft0000001", "ftjob-sft0000001"
GRADER = {"type": "string_check", "name": "star", "operation": "eq", "input": "{{ sample.output_text }}",
          "reference": "{{ item.star }}"}


def prompts(step: int) -> list[dict]:
    out = []
    for i, (review, star) in enumerate([("Great app, works offline.", "5"), ("Crashes on start.", "1"),
                                        ("Fine, a few ads.", "3")]):
        right = i < step // 2  # later steps get more right
        samples = [{"text": star if right else "4", "reward": 1.0 if right else 0.0, "sub_rewards": {},
                    "errors": []},
                   {"text": "I think 4 stars", "reward": 0.0, "sub_rewards": {}, "errors": []}]
        out.append({"index": i, "prompt": review, "item": {"star": star}, "samples": samples,
                    "mean_reward": sum(s["reward"] for s in samples) / 2})
    return out


@pytest.fixture(scope="module")
def rft_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("rollouts") / "data"
    store = Store(data)
    f = store.add_file("rft.jsonl", "fine-tune", (SAMPLES / "marv.jsonl").read_bytes())
    for job_id, method in ((SFT_JOB, {"type": "supervised", "supervised": {"hyperparameters": {}}}),
                           (RFT_JOB, {"type": "reinforcement", "reinforcement": {"grader": GRADER,
                                                                                  "hyperparameters": {}}})):
        store.add_job(id=job_id, created_at=now(), model="smollm2-135m-instruct", training_file=f["id"],
                      validation_file=f["id"], status="succeeded", method=method, suffix=None, seed=0,
                      metadata=None)
    for step in (2, 4):
        ps = prompts(step)
        store.add_rollouts(RFT_JOB, step, {"mean_reward": sum(p["mean_reward"] for p in ps) / len(ps)}, ps)
    store.close()
    s = Server(data).start()
    yield s
    s.stop()


def text_of(screen: RolloutScreen) -> str:
    return str(screen.query_one("#rollout-text", Static).render())


async def test_o_opens_the_rollouts_of_each_validation_step(rft_server):
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(rft_server))
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3")
        await rec.wait_for(JobsPolled)
        jobs = app.screen
        table = jobs.query_one("#jobs", DataTable)
        await rec.until(lambda: table.row_count == 2, what="both jobs listed")
        await settle(pilot)
        # created in the same second: the detail is the highlighted row's job (it was another row's once)
        assert jobs.selected == table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

        table.move_cursor(row=table.get_row_index(SFT_JOB))
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert not isinstance(app.screen, RolloutScreen)
        assert "Rollouts are kept for reinforcement jobs: this one is supervised" in toasts(rec)[-1].message

        table.move_cursor(row=table.get_row_index(RFT_JOB))
        await settle(pilot)
        await pilot.press("o")
        view = app.screen
        assert isinstance(view, RolloutScreen)
        prompts_table = view.query_one("#rollout-prompts", DataTable)
        await rec.until(lambda: view.step is not None and prompts_table.row_count == 3, what="step 4 read")
        steps = view.query_one("#rollout-steps", DataTable)
        assert [str(steps.get_row_at(i)[0]) for i in range(steps.row_count)] == ["2", "4"]
        assert str(steps.get_row_at(1)[1]) == "0.333" and steps.cursor_row == 1  # the latest step first
        assert view.step["step"] == 4
        assert [str(prompts_table.get_row_at(i)[3]) for i in range(3)] == [
            "Great app, works offline.", "Crashes on start.", "Fine, a few ads."]
        shown = text_of(view)
        assert "Prompt 1" in shown and "Great app, works offline." in shown and "Item: star=5" in shown
        assert "Sample 1 · reward 1.000" in shown and "Sample 2 · reward 0.000" in shown and "I think 4 stars" in shown

        await pilot.press("s")  # worst first: the prompts it still gets wrong lead
        await settle(pilot)
        assert [str(prompts_table.get_row_at(i)[3]) for i in range(3)] == [
            "Fine, a few ads.", "Great app, works offline.", "Crashes on start."]
        assert "Fine, a few ads." in text_of(view) and "Sample 1 · reward 0.000" in text_of(view)

        steps.focus()
        await pilot.press("up")  # step 2: read when picked
        await rec.until(lambda: view.step["step"] == 2, what="step 2 read")
        assert str(steps.get_row_at(0)[1]) == "0.167"
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is jobs
