"""SVG snapshots of the Data workspace at a fixed size (cursor blink frozen, the user's config ignored).

Update after an intended layout change: pytest tests/tui/test_snapshots.py --snapshot-update
"""
from __future__ import annotations

import pytest

from ftui.tui.app import FtuiApp
from tests.tui.helpers import ROOT, settle, test_config

SIZE = (120, 36)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)  # relative paths in the header, the same on every machine
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)  # default output folders read ~/.local/share/ftui/… everywhere


def app(name: str) -> FtuiApp:
    return FtuiApp(f"ftui/data/samples/{name}", config=test_config())


def test_broken_findings(snap_compare):
    assert snap_compare(app("broken.jsonl"), terminal_size=SIZE, run_before=settle)


def test_example_view(snap_compare):
    async def open_line_3(pilot):
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(app("broken.jsonl"), terminal_size=SIZE, run_before=open_line_3)


def test_marv_histograms(snap_compare):
    async def histograms(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#tabs").active = "tab-histograms"
        await settle(pilot)

    assert snap_compare(app("marv.jsonl"), terminal_size=SIZE, run_before=histograms)
