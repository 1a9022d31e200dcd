"""The Eval workspace against a real `ftui serve`: a run shows its progress and scores, Esc stops it keeping what
came, ctrl+r goes on from the cache; bad data is named. Real server, real SDK, no sleeps."""
from __future__ import annotations

import json

from textual.widgets import DataTable, Input, SelectionList, Static

from ftui.service.profiles import Profile
from ftui.tui.app import FtuiApp
from ftui.tui.eval_screen import EvalScreen
from ftui.tui.messages import BackendReady, EvalDone, EvalFailed, EvalProgress
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, settle, test_config

BASE = "smollm2-135m-instruct"


def _data(tmp_path, n=12):
    p = tmp_path / "held-out.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Answer with one digit."},
                          {"role": "user", "content": f"Review {i}: {'great' if i % 2 else 'awful'}"},
                          {"role": "assistant", "content": "5" if i % 2 else "1"}]} for i in range(n)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    return p


async def test_run_stop_resume_and_scores(server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = _data(tmp_path)
    rec = Recorder()
    profile = Profile("test", "compatible", base_url=server.base_url, api_key="unused", poll_interval=0.3)
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile)
    async with app.run_test(size=(120, 40), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await rec.until(lambda: any(m.get("id") == BASE for m in app.models), what="the model list")
        await pilot.press("f7")
        await settle(pilot)
        ev = app.screen
        assert isinstance(ev, EvalScreen)
        ev.fill_models()
        ev.query_one("#ev-models", SelectionList).select(BASE)
        ev.query_one("#ev-data", Input).value = str(data)
        ev.query_one("#ev-conc", Input).value = "1"
        ev.query_one("#ev-out", Input).value = str(tmp_path / "out")
        await pilot.pause()
        # stop after the first answer: the run ends, the answers so far are kept
        await pilot.press("ctrl+r")
        await rec.until(lambda: any(m.progress.done >= 1 for m in rec.of(EvalProgress)), what="a first answer")
        await pilot.press("escape")
        await rec.until(lambda: rec.of(EvalDone), what="the stopped run")
        await settle(pilot)
        first = rec.of(EvalDone)[-1]
        assert first.run.stopped
        kept = sum(a is not None for a in first.run.answers[BASE])
        assert 1 <= kept < 12
        assert "Stopped" in str(ev.query_one("#ev-status", Static).render())
        # again: it goes on from the cache
        await pilot.press("ctrl+r")
        await rec.until(lambda: len(rec.of(EvalDone)) == 2, timeout=300, what="the finished run")
        await settle(pilot)
        second = rec.of(EvalDone)[-1]
        assert not second.run.stopped and second.run.complete
        assert sum(a.cached for a in second.run.answers[BASE]) >= kept
        assert second.doc["examples"] == 12 and second.doc["skipped_lines"] == 1
        table = ev.query_one("#ev-scores", DataTable)
        assert table.row_count == 1 and table.get_row_at(0)[0].plain == BASE
        assert "always answering the most common" in str(ev.query_one("#ev-compare", Static).render())
        doc = json.loads((tmp_path / "out" / "eval.json").read_text())
        assert doc["labels"] == ["1", "5"] and doc["models"][BASE]["answered"] == 12
        ev.query_one("#ev-tabs").active = "ev-tab-labels"
        await settle(pilot)
        assert "rows = reference" in str(ev.query_one("#ev-confusion", Static).render())
        # data that is not evaluation data is named, nothing runs
        ev.query_one("#ev-data", Input).value = str(SAMPLES / "reviews.csv")
        await pilot.pause()
        await pilot.press("ctrl+r")
        await rec.until(lambda: rec.of(EvalFailed), what="the refusal")
        await settle(pilot)
        assert "ftui prepare" in rec.of(EvalFailed)[-1].error
