"""The Data workspace, driven through Pilot on the bundled samples and real files."""
from __future__ import annotations

import os

import pytest

from ftui.core import catalog
from ftui.tui.app import FtuiApp
from ftui.tui.data_screen import DataScreen
from ftui.tui.example_screen import ExampleScreen, MessageBox
from ftui.tui.help_screen import HelpScreen
from ftui.tui.messages import AnalysisCancelled, AnalysisDone, AnalysisFailed, AnalysisProgress
from ftui.tui.widgets.findings_list import FindingsList
from ftui.tui.widgets.summary import Summary
from tests.helpers import SAMPLES, chats
from tests.tui.helpers import Recorder, settle, test_config

BROKEN_ERRORS = {2, 3, 4, 5, 7, 8, 10, 11, 13, 15, 16}
BROKEN_WARNINGS = {6, 9, 12}


def summary_text(app) -> str:
    return app.screen.query_one(Summary).plain


async def test_broken_sample_shows_every_finding_by_line():
    rec = Recorder()
    app = FtuiApp(SAMPLES / "broken.jsonl", config=test_config())
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await settle(pilot)
        [done] = rec.of(AnalysisDone)
        assert done.path.endswith("broken.jsonl")
        findings = app.screen.query_one(FindingsList)
        assert app.focused is findings
        assert {f.line for f in findings.rows if f.severity == "error"} == BROKEN_ERRORS
        assert {f.line for f in findings.rows if f.severity == "warning"} == BROKEN_WARNINGS
        assert [f.code for f in findings.rows if f.line == 3] == ["unrecognized_role"]
        # filters: errors only, then warnings only, then a single code, then everything
        await pilot.press("e")
        assert {f.line for f in findings.rows} == BROKEN_ERRORS
        await pilot.press("w")
        assert {f.line for f in findings.rows} == BROKEN_WARNINGS
        await pilot.press("a", "c")
        assert len({f.code for f in findings.rows}) == 1
        await pilot.press("a")
        assert len(findings.rows) == len(BROKEN_ERRORS | BROKEN_WARNINGS)
        assert "11 / 3" in summary_text(app)


async def test_enter_on_a_finding_opens_the_example_and_walks():
    app = FtuiApp(SAMPLES / "broken.jsonl", config=test_config())
    async with app.run_test(size=(130, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")  # line 3: message 2 has role "robot"
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExampleScreen) and screen.line == 3
        boxes = list(screen.query(MessageBox))
        assert [b.has_class("offending") for b in boxes] == [False, False, True, False]
        assert "messages[2]" in str(boxes[2].border_title) and "tokens" in str(boxes[2].border_title)
        await pilot.press("n")
        assert screen.line == 4
        await pilot.press("p", "p")
        assert screen.line == 2  # the unreadable line: its raw text is shown
        assert screen.view.error and "not valid JSON" in screen.view.error
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert screen.line == 4
        await pilot.press("r")
        assert screen.query_one("#raw").display and not screen.query_one("#conversation").display
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("1", "4", "enter")
        await pilot.pause()
        assert app.screen is screen and screen.line == 14
        await pilot.press("escape")
        assert isinstance(app.screen, DataScreen)


async def test_switching_the_model_changes_the_estimate_and_limits():
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(default_model="gpt-4.1-mini-2025-04-14"))
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await settle(pilot)
        screen = app.screen
        before = screen.report.estimate
        screen.set_model("gpt-4.1-2025-04-14")  # same encoding: no re-analysis, 5× the price
        await settle(pilot)
        after = screen.report.estimate
        assert screen.report.model.id == "gpt-4.1-2025-04-14" and app.model_id == "gpt-4.1-2025-04-14"
        assert after.billed_tokens == before.billed_tokens and after.usd == pytest.approx(before.usd * 5)
        assert "gpt-4.1-2025-04-14" in summary_text(app)
        assert len(rec.of(AnalysisDone)) == 1
        screen.set_model("gpt-3.5-turbo-0125")  # another encoding: analysed again, token counts differ
        await settle(pilot)
        assert screen.analysis.encoding == "cl100k_base"
        assert len(rec.of(AnalysisDone)) == 2
        assert screen.report.estimate.billed_tokens != before.billed_tokens
        assert f"{catalog.resolve('gpt-3.5-turbo-0125').training_context:,}" in summary_text(app)


async def test_reopening_an_unchanged_file_is_instant_and_a_changed_one_is_analysed(tmp_path, write_jsonl):
    path = write_jsonl(chats(12), name="d.jsonl")
    rec = Recorder()
    app = FtuiApp(tmp_path, config=test_config())
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.open(path)
        await settle(pilot)
        screen.open(SAMPLES / "marv.jsonl")
        await settle(pilot)
        screen.open(path)
        await settle(pilot)
        assert [m.cached for m in rec.of(AnalysisDone)] == [False, False, True]
        write_jsonl(chats(11), name="d.jsonl")
        os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
        screen.open(path)
        await settle(pilot)
        assert [m.cached for m in rec.of(AnalysisDone)][-1] is False
        assert screen.analysis.examples == 11


async def test_escape_cancels_a_running_analysis(tmp_path):
    line = (b'{"messages": [{"role": "user", "content": "' + b"word " * 200 + b'"}, '
            b'{"role": "assistant", "content": "ok"}]}\n')
    big = tmp_path / "big.jsonl"
    big.write_bytes(line * 60_000)  # ~62 MB: seconds of work, so Esc lands mid-way
    rec = Recorder()
    app = FtuiApp(tmp_path, config=test_config())
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await settle(pilot)
        app.screen.open(big)
        await rec.wait_for(AnalysisProgress)
        await pilot.press("escape")
        await settle(pilot)
        assert rec.of(AnalysisCancelled) and not rec.of(AnalysisDone)
        assert "cancelled" in summary_text(app)
        assert app.screen.query_one("#progress").display is False


async def test_unreadable_inputs_are_explained_and_the_app_keeps_running(tmp_path):
    (tmp_path / "empty-dir").mkdir()
    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(bytes(range(256)) * 64)
    gone = tmp_path / "gone.jsonl"
    rec = Recorder()
    app = FtuiApp(tmp_path, config=test_config())
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.open(tmp_path / "empty-dir")
        await settle(pilot)
        assert "no dataset files" in summary_text(app)
        screen.open(binary)
        await settle(pilot)
        [failed] = rec.of(AnalysisFailed)
        assert "blob.jsonl" in failed.error and "binary" in failed.error.lower()
        assert "blob.jsonl" in summary_text(app)
        screen.open(gone)
        await settle(pilot)
        assert "gone.jsonl" in rec.of(AnalysisFailed)[-1].error
        assert app.is_running and isinstance(app.screen, DataScreen)
        assert any(n.severity == "error" for n in app._notifications)


async def test_f1_shows_help_for_the_focused_widget_with_binding_ids():
    app = FtuiApp(SAMPLES / "broken.jsonl", config=test_config())
    async with app.run_test(size=(130, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert "## Findings" in app.screen.text and "findings.open" in app.screen.text
        await pilot.press("escape")
        assert isinstance(app.screen, DataScreen)


async def test_keymap_from_the_config_rebinds_by_id():
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(keymap={"ftui.reanalyse": "ctrl+y"}))
    async with app.run_test(size=(130, 40), message_hook=rec) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert [m.cached for m in rec.of(AnalysisDone)] == [False, False]


async def test_palette_model_command_switches_the_model():
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
    async with app.run_test(size=(130, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Model: gpt-4o-mini")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.model_id == "gpt-4o-mini-2024-07-18"
        assert app.screen.report.model.id == "gpt-4o-mini-2024-07-18"
