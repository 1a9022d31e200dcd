"""The Prepare workspace, driven like a person would: a CSV in the Data browser → the recipe → a preview →
three files written and opened in the Data workspace. Real files, real workers, no mocks, no sleeps."""
from __future__ import annotations

import json
import shutil

from textual.widgets import DataTable, Input, Static

from ftui.tui.app import FtuiApp
from ftui.tui.messages import AnalysisDone, PrepareFailed, PreparePlanned
from ftui.tui.prepare_screen import PairScreen, PrepareScreen
from ftui.tui.widgets.file_tree import DatasetTree
from tests.tui.helpers import ROOT, Recorder, settle, test_config

SAMPLE = ROOT / "ftui" / "data" / "samples" / "reviews.csv"


async def _plans(rec: Recorder, n: int, pilot) -> PreparePlanned:
    await rec.until(lambda: len(rec.of(PreparePlanned)) + len(rec.of(PrepareFailed)) >= n, what=f"plan #{n}")
    await settle(pilot)
    return (rec.of(PreparePlanned) + rec.of(PrepareFailed))[-1]


async def test_from_a_csv_in_the_browser_to_three_files_open_in_the_data_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "raw"
    data.mkdir()
    shutil.copy(SAMPLE, data / "reviews.csv")
    (data / "notes.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "yo"}]}) + "\n")
    rec = Recorder()
    app = FtuiApp(data, config=test_config())
    async with app.run_test(size=(120, 40), message_hook=rec) as pilot:
        await settle(pilot)
        # the Data browser lists the CSV; choosing it opens the Prepare workspace on it
        tree = app.screen.query_one(DatasetTree)
        await rec.until(lambda: any(str(n.data.path).endswith("reviews.csv") for n in tree.root.children),
                        what="the tree lists reviews.csv")
        node = next(n for n in tree.root.children if str(n.data.path).endswith("reviews.csv"))
        tree.select_node(node)
        tree.action_select_cursor()
        first = await _plans(rec, 1, pilot)
        screen = app.screen
        assert isinstance(screen, PrepareScreen) and app.current_mode == "prepare"
        assert screen.query_one("#in-inputs", Input).value == str(data / "reviews.csv")
        assert isinstance(first, PreparePlanned) and first.files is None  # a preview: nothing written
        assert screen.query_one("#in-out", Input).value == "raw/reviews-prepared"  # beside the input, not in cwd
        assert not (data / "reviews-prepared").exists()
        steps = screen.query_one("#prep-steps", DataTable)
        assert [steps.get_row_at(i)[0].plain for i in range(steps.row_count)] == [
            "read rows", "map to examples", "drop errors", "exact duplicates", "near duplicates", "shuffle",
            "split", "leakage"]
        assert "csv: package_name, review, date, star" in str(screen.query_one("#prep-columns", Static).render())

        # the recipe: explicit columns, a system prompt, 70/15/15; a changed form says the preview is stale
        screen.query_one("#in-user", Input).value = "review"
        screen.query_one("#in-assistant", Input).value = "star"
        screen.query_one("#in-system", Input).value = "Rate the review from 1 to 5. Answer with the digit only."
        screen.query_one("#in-split", Input).value = "70/15/15"
        await pilot.pause()
        assert "recipe changed" in str(screen.query_one("#prep-status", Static).render())
        await pilot.press("ctrl+r")
        second = await _plans(rec, 2, pilot)
        counts = {k: int(v.size) for k, v in second.plan.splits.items()}
        assert counts["valid"] == counts["test"] and counts["train"] > 4 * counts["valid"]
        # the preview's first example is a conversation with the system prompt
        boxes = screen.query("#prep-examples MessageBox")
        assert boxes and "Rate the review" in str(boxes.first().render())

        # a near-duplicate pair opens with both texts
        screen.query_one("#prep-tabs").active = "tab-pairs"
        await settle(pilot)
        pairs = screen.query_one("#prep-pairs", DataTable)
        assert pairs.row_count == len(second.plan.pairs) > 0
        pairs.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen)
        await pilot.press("escape")
        await settle(pilot)

        # write: the files appear and the Data workspace opens train.jsonl
        await pilot.press("ctrl+s")
        written = await _plans(rec, 3, pilot)
        assert isinstance(written, PreparePlanned) and written.plan is second.plan  # the previewed plan, reused
        out = data / "reviews-prepared"
        assert not (tmp_path / "reviews-prepared").exists()
        assert sorted(p.name for p in out.iterdir()) == ["prepare.json", "test.jsonl", "train.jsonl",
                                                          "valid.jsonl"]
        await rec.until(lambda: any(m.path.endswith("train.jsonl") for m in rec.of(AnalysisDone)),
                        what="train.jsonl analysed")
        await settle(pilot)
        assert app.current_mode == "data" and app.screen.current == str(out / "train.jsonl")
        lines = (out / "train.jsonl").read_text().splitlines()
        assert len(lines) == counts["train"]
        assert json.loads(lines[0])["messages"][0]["role"] == "system"

        # writing again refuses and leaves the files as they are
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        app.switch_mode("prepare")
        await settle(pilot)
        await pilot.press("ctrl+s")
        refused = await _plans(rec, 4, pilot)
        assert isinstance(refused, PrepareFailed) and "already exist" in refused.error
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert "already exist" in str(app.screen.query_one("#prep-status", Static).render())


async def test_a_field_that_does_not_parse_is_named_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = Recorder()
    app = FtuiApp(SAMPLE.parent / "broken.jsonl", config=test_config())
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await settle(pilot)
        await pilot.press("f6")
        await _plans(rec, 1, pilot)
        screen = app.screen
        screen.query_one("#in-split", Input).value = "80/10"
        await pilot.pause()  # the change is handled, as it is for keys typed before ctrl+r
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "add up to 90" in str(screen.query_one("#prep-status", Static).render())
        screen.query_one("#in-split", Input).value = "80/10/10"
        screen.query_one("#in-user", Input).value = "{title}"
        screen.query_one("#in-assistant", Input).value = "star"
        await pilot.pause()
        await pilot.press("ctrl+r")
        failed = await _plans(rec, 2, pilot)
        assert isinstance(failed, PrepareFailed) and "'title'" in failed.error and "reviews.csv" in failed.error
        assert len(rec.of(PreparePlanned)) == 1
