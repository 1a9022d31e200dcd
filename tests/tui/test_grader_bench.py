"""The grader workbench against a real `ftui serve` (the session's, python graders allowed): every edit of the
sample, the item or the grader is graded again by the backend's graders API, with the reward, the sub-rewards and
the errors shown; a grader that does not parse is named by line, one the backend refuses by field; ctrl+s writes it;
from the create-job form, ctrl+g opens it on the form's grader file and the file comes back into the form checked."""
from __future__ import annotations

import json

from textual.widgets import Input, Select, Static, TextArea

from ftui.tui.app import FtuiApp
from ftui.tui.confirm import Confirm
from ftui.tui.create_job import CreateJobScreen
from ftui.tui.grader_bench import GraderBench
from ftui.tui.messages import BackendReady
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, profile_for, settle, test_config


def shown(bench: GraderBench) -> str:
    result = bench.query_one("#bench-result", Static)
    return f"{result.border_title}\n{result.render()}"


async def edit(bench: GraderBench, rec: Recorder, field: str, text: str) -> str:
    """Replace a text area's text as typing would, and wait for the backend's answer to that edit."""
    runs = bench.runs
    bench.query_one(field, TextArea).load_text(text)
    await rec.until(lambda: bench.runs > runs, what=f"{field} graded again")
    return shown(bench)


async def test_the_workbench_grades_every_edit_live(server, tmp_path):
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(server))
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        app.call_later(app.open_grader_bench)  # from the app's own loop, as the palette's command is run
        await settle(pilot)
        bench = app.screen
        assert isinstance(bench, GraderBench) and bench.has_class("-narrow")
        await rec.until(lambda: bench.runs == 1, what="the starter grader graded")

        # the starter grader (the review star, string_check eq) and the item {"star": "4"}
        assert "Reward 1.000" in await edit(bench, rec, "#bench-sample", "4")
        assert bench.result["reward"] == 1.0
        out = await edit(bench, rec, "#bench-item", '{"star": "5"}')
        assert "Reward 0.000" in out and "No errors." in out

        # a grader that is not JSON: its line and column, and no request was needed to say so
        out = await edit(bench, rec, "#bench-grader", '{"type": "string_check",\n "name" "x"}')
        assert "Cannot grade" in out and "Grader, line 2 column 9: Expecting ':' delimiter" in out
        # one the backend refuses: the field, in OpenAI's words
        bad = {"type": "string_check", "name": "x", "operation": "equals", "input": "a", "reference": "b"}
        out = await edit(bench, rec, "#bench-grader", json.dumps(bad))
        assert "The backend refused it" in out and "(grader.operation)" in out
        # an item that is not an object
        await edit(bench, rec, "#bench-grader", json.dumps({"grader": {**bad, "operation": "eq"}}))
        assert "Item: a JSON object is needed" in await edit(bench, rec, "#bench-item", "[1]")

        # a multi grader: each sub-grader's reward, the formula's result
        multi = {"type": "multi", "name": "both", "calculate_output": "0.5 * exact + 0.5 * near",
                 "graders": {"exact": {"type": "string_check", "name": "exact", "operation": "eq",
                                       "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"},
                             "near": {"type": "text_similarity", "name": "near", "evaluation_metric": "fuzzy_match",
                                      "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"}}}
        await edit(bench, rec, "#bench-item", '{"answer": "Paris"}')
        await edit(bench, rec, "#bench-sample", "Pariss")
        out = await edit(bench, rec, "#bench-grader", json.dumps(multi, indent=2))
        subs = bench.result["sub_rewards"]
        assert subs["exact"] == 0.0 and 0.7 < subs["near"] < 1.0
        assert bench.result["reward"] == 0.5 * subs["near"]
        assert f"Sub-rewards: exact 0.000 · near {subs['near']:.3f}" in out and "multi, string_check" in out

        # a python grader that raises: that sample's error, in OpenAI's category, with what it said
        py = {"type": "python", "name": "boom", "source": "def grade(sample, item):\n    raise ValueError('no')\n"}
        out = await edit(bench, rec, "#bench-grader", json.dumps(py))
        assert "Reward 0.000" in out and "✗ python_grader_runtime_error" in out and "ValueError" in out

        # a template that reads a key the item lacks
        out = await edit(bench, rec, "#bench-grader", json.dumps(multi["graders"]["exact"] | {"reference":
                                                                                         "{{ item.missing }}"}))
        assert "✗ invalid_variable_error" in out

        # ctrl+s writes the grader into the file named at the top; an existing other file is asked about first
        target = tmp_path / "grader.json"
        target.write_text("{}")
        bench.query_one("#bench-file", Input).value = str(target)
        await edit(bench, rec, "#bench-grader", json.dumps(multi, indent=2))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, Confirm) and target.read_text() == "{}"
        await pilot.press("y")
        await settle(pilot)
        assert json.loads(target.read_text()) == multi
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, GraderBench)


async def test_from_the_create_job_form_the_grader_file_comes_back_checked(server, tmp_path):
    grader = {"type": "string_check", "name": "star", "operation": "eq", "input": "{{ sample.output_text }}",
              "reference": "{{ item.star }}"}
    path = tmp_path / "star.json"
    path.write_text(json.dumps({"grader": grader}))
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(server))
    async with app.run_test(size=(160, 48), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f3", "n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, CreateJobScreen)
        await pilot.press("ctrl+g")  # supervised: a grader has no use, and the form says so
        await settle(pilot)
        assert not isinstance(app.screen, GraderBench)
        form.query_one("#method", Select).value = "reinforcement"
        form.query_one("#grader", Input).value = str(path)
        await settle(pilot)
        await pilot.press("ctrl+g")
        await settle(pilot)
        bench = app.screen
        assert isinstance(bench, GraderBench) and not bench.has_class("-narrow")
        assert json.loads(bench.query_one("#bench-grader", TextArea).text) == grader  # the grader, unwrapped
        await rec.until(lambda: bench.runs == 1, what="the loaded grader graded")
        assert "Reward 1.000" in await edit(bench, rec, "#bench-sample", "4")
        await pilot.press("escape")
        await rec.until(lambda: form.grader is not None, what="the form to check the grader that came back")
        assert app.screen is form and form.query_one("#grader", Input).value == str(path)
        assert form.grader == grader
        assert "accepted by the backend" in str(form.query_one("#grader-status", Static).render())
