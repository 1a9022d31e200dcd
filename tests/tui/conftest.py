"""Pilot tests of the real app on real files: no mocks, no sleeps (wait for workers and messages). The helpers
they share are in tests/tui/helpers.py."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """Never read the developer's own config; freeze the cursor blink (harlequin's fixture)."""
    monkeypatch.setenv("FTUI_CONFIG_FILE", str(tmp_path / "config.toml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the app's log file
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
