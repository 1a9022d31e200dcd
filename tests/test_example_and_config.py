"""ftui.core.example (one example read back by line) and the TUI's typed config (pure, no Textual)."""
from __future__ import annotations

import pytest

from ftui import config as cfg
from ftui.core.analysis import analyze
from ftui.core.example import example_view, read_line
from tests.helpers import SAMPLES


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


def test_save_keeps_comments_order_and_unknown_keys(tmp_path):
    path = tmp_path / "config.toml"
    original = ('# my settings\ntheme = "nord"   # the dark one\nfuture_setting = 3\n\n[keymap]\n'
                '"ftui.reanalyse" = "ctrl+y"  # mine\n\n[profiles.box]\nkind = "compatible"\nbase_url = "http://b/v1"\n')
    path.write_text(original)
    path.chmod(0o644)
    cfg.save(cfg.Config(default_model="gpt-4o-mini-2024-07-18", theme="dracula"), path,
             only=("default_model", "theme"))
    text = path.read_text()
    assert text.startswith("# my settings\ntheme = \"dracula\"   # the dark one\nfuture_setting = 3\n")
    assert '"ftui.reanalyse" = "ctrl+y"  # mine' in text and "[profiles.box]" in text
    assert 'default_model = "gpt-4o-mini-2024-07-18"' in text
    assert text.index("default_model") < text.index("[keymap]")  # a top-level key, not inside a table
    assert (path.stat().st_mode & 0o777) == 0o600


def test_save_refuses_a_config_that_does_not_parse(tmp_path):
    path = tmp_path / "config.toml"
    broken = 'theme = "nord"\nthis is not toml\n'
    path.write_text(broken)
    with pytest.raises(cfg.ConfigError, match="not valid TOML.*not overwritten"):
        cfg.save(cfg.Config(theme="dracula"), path)
    assert path.read_text() == broken


def test_new_config_is_written_0600(tmp_path):
    path = cfg.save(cfg.Config(theme="nord"), tmp_path / "new" / "config.toml")
    assert (path.stat().st_mode & 0o777) == 0o600 and cfg.load(path) == (cfg.Config(theme="nord"), None)


def test_short_model_ids_keep_what_tells_them_apart():
    from ftui.tui.widgets.names import short_model

    a, b = "ft:smollm2-135m-instruct:local:pilot:ab12cd34", "ft:smollm2-135m-instruct:local:other:ee99ff00"
    assert short_model(a, 30) == "ft:…:pilot:ab12cd34" and short_model(b, 30) == "ft:…:other:ee99ff00"
    assert short_model(a, 44) == "ft:…:pilot:ab12cd34 (smollm2-135m-instruct)"
    assert short_model(a + ":ckpt-step-12", 34) == "ft:…:pilot:ab12cd34:ckpt-step-12"
    assert short_model(a + ":ckpt-step-12", 30).endswith("ab12cd34:ckpt-step-12")
    assert short_model("smollm2-135m-instruct", 30) == "smollm2-135m-instruct"
    long = "x" * 20 + "middle" + "y" * 20
    assert short_model(long, 20) == "xxxxxx…yyyyyyyyyyyyy" and len(short_model(long, 20)) == 20
