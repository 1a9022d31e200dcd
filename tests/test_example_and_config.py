"""ftui.core.example (one example read back by line) and the TUI's typed config (pure, no Textual)."""
from __future__ import annotations

import pytest

from ftui.core.analysis import analyze
from ftui.core.example import example_view, read_line
from ftui.tui import config as cfg
from tests.conftest import SAMPLES


def test_example_view_splits_messages_counts_tokens_and_points_findings():
    a = analyze(SAMPLES / "broken.jsonl")
    v = example_view(a.path, 3, a.encoding, a.line_offset(3), a.findings)
    assert [m.role for m in v.messages] == ["system", "user", "robot", "assistant"]
    assert [f.code for f in v.findings] == ["unrecognized_role"]
    assert v.message_for(v.findings[0].path) == 2
    # per-message tokens add up to the example's count minus the reply priming (3)
    i = int(a.line.searchsorted(3))
    assert sum(m.tokens for m in v.messages) + 3 == int(a.tokens[i])


def test_example_view_of_unreadable_and_preference_lines(tmp_path):
    a = analyze(SAMPLES / "broken.jsonl")
    v = example_view(a.path, 2, a.encoding, a.line_offset(2))
    assert v.error and "not valid JSON" in v.error and v.raw
    d = analyze(SAMPLES / "marv_dpo.jsonl")
    v = example_view(d.path, 1, d.encoding, d.line_offset(1))
    assert [m.section for m in v.messages][-2:] == ["preferred_output", "non_preferred_output"]
    assert read_line(SAMPLES / "marv.jsonl", 2) == read_line(SAMPLES / "marv.jsonl", 2, None)
    assert read_line(SAMPLES / "marv.jsonl", 10_000) is None


def test_config_round_trip_and_errors(tmp_path):
    c = cfg.Config(default_model="gpt-4o-mini-2024-07-18", theme="nord", keymap={"ftui.reanalyse": "ctrl+y"})
    path = cfg.save(c, tmp_path / "sub" / "config.toml")
    assert cfg.load(path) == (c, None)
    assert list((tmp_path / "sub").iterdir()) == [path]  # the temp file was renamed, nothing left behind
    path.write_text("theme = 3\n")
    c2, err = cfg.load(path)
    assert c2 == cfg.Config() and "theme must be str" in err and str(path) in err
    path.write_text("theme = \n")
    assert "line 1" in cfg.load(path)[1]
    path.write_text("colour = 'red'\n")
    assert "unknown setting 'colour'" in cfg.load(path)[1]
    assert cfg.load(tmp_path / "missing.toml") == (cfg.Config(), None)


def test_config_path_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FTUI_CONFIG_FILE", str(tmp_path / "x.toml"))
    assert cfg.config_path() == tmp_path / "x.toml"
    monkeypatch.delenv("FTUI_CONFIG_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert cfg.config_path() == tmp_path / "ftui" / "config.toml"


@pytest.mark.parametrize("bad", ["keymap = 'x'\n", "[keymap]\nfoo = 1\n", "default_model = 1\n"])
def test_config_rejects_bad_types(bad, tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(bad)
    assert cfg.load(p)[1]
