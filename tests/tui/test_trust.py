"""The app can be trusted unattended and on a small terminal: nothing a backend, a file or a path throws at it is a
traceback or a crash; every failure is shown and logged; tables keep their place; the config is never destroyed.
These run without a backend (the ones that need one are in test_trust_backend.py)."""
from __future__ import annotations

import os

from textual.widgets import DataTable, Tree

from ftui.tui.app import FtuiApp
from ftui.tui.confirm import Confirm
from ftui.tui.example_screen import ExampleScreen
from ftui.tui.widgets.file_tree import DatasetTree
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, settle, test_config, toasts


async def test_a_failing_worker_is_shown_naming_what_it_did_and_logged(tmp_path):
    from ftui.tui.errors import log_path

    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
    async with app.run_test(size=(100, 30), message_hook=rec) as pilot:
        await settle(pilot)
        for key in ("f3", "f4", "f5", "f6", "f7", "f2"):  # every workspace forwards its workers to the one funnel
            await pilot.press(key)
            await settle(pilot)

            def explode():
                raise RuntimeError(f"nobody foresaw this in {key}")

            pilot.app.screen.run_worker(explode, thread=True, description=f"Doing the thing in {key}",
                                        exit_on_error=False)
            title = f"Doing the thing in {key} failed"
            await rec.until(lambda: any(t.title == title for t in toasts(rec)), what=title)
            [toast] = [t for t in toasts(rec) if t.title == title]
            assert f"RuntimeError: nobody foresaw this in {key}" in toast.message
            assert str(log_path()) in toast.message
        assert app.is_running
    log = log_path().read_text()
    assert log.count("Traceback (most recent call last)") == 6 and "nobody foresaw this in f7" in log
    assert (log_path().stat().st_mode & 0o777) == 0o600


async def test_help_and_palette_say_where_the_log_is():
    from ftui.tui.errors import log_path
    from ftui.tui.help_screen import HelpScreen

    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen) and str(log_path()) in app.screen.text
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Show the log file" in titles


async def test_markup_in_a_path_and_a_vanished_directory_are_explained(tmp_path):
    """A path holding `[/]` (a directory `a[` with a file `]b.jsonl`) is shown as written; a directory that vanishes
    before it is expanded is reported, not shown silently empty."""
    odd = tmp_path / "a["
    odd.mkdir()
    data = odd / "]b.jsonl"
    data.write_bytes((SAMPLES / "marv.jsonl").read_bytes())
    (tmp_path / "gone").mkdir()
    rec = Recorder()
    app = FtuiApp(data, config=test_config())
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.report is not None and screen.report.analysis.examples == 16
        assert str(screen.query_one("#path").render()) == str(data)
        await pilot.press("f1", "escape")
        screen.open(tmp_path)  # the directory: its first dataset is opened
        await settle(pilot)
        tree = screen.query_one(DatasetTree)
        tree.path = tmp_path
        await settle(pilot)
        (tmp_path / "gone").rmdir()
        node = next(n for n in _nodes(tree) if n.data and n.data.path.name == "gone")
        node.expand()  # no longer a directory: the tree offers it as a file, which cannot be read
        await settle(pilot)
        await rec.until(lambda: "gone" in screen.query_one("#summary").plain, what="the vanished entry explained")
        # a directory that cannot be listed (as root nothing is unreadable: one that is gone fails the same way)
        from textual.worker import get_current_worker

        tree.run_worker(lambda: list(tree._directory_content(tmp_path / "gone", get_current_worker())),
                        thread=True)
        await rec.until(lambda: any("Cannot list" in t.message and "gone" in t.message for t in toasts(rec)),
                        what="the unlistable directory reported")
        assert app.is_running


def _nodes(tree: Tree):
    stack = [tree.root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


async def test_example_of_a_file_truncated_or_deleted_while_open(tmp_path):
    path = tmp_path / "marv.jsonl"
    path.write_bytes((SAMPLES / "marv.jsonl").read_bytes())
    app = FtuiApp(path, config=test_config())
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.screen.open_example(3)
        await settle(pilot)
        example = app.screen
        assert isinstance(example, ExampleScreen)
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:3]))  # truncated under the open example
        await pilot.press("n")
        await settle(pilot)
        assert example.line == 4 and "has no line 4" in example.view.error
        assert "changed since it was analysed" in example.view.error
        os.unlink(path)
        await pilot.press("n")
        await settle(pilot)
        assert "cannot read line 5" in example.view.error and "file is gone" in example.view.error
        assert app.is_running


async def test_save_defaults_refuses_a_config_that_does_not_parse(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    broken = '# mine\ntheme = "nord"\ndefault_model = \n'
    cfg.write_text(broken)
    monkeypatch.setenv("FTUI_CONFIG_FILE", str(cfg))
    rec = Recorder()
    app = FtuiApp(SAMPLES / "marv.jsonl")
    async with app.run_test(size=(120, 36), message_hook=rec) as pilot:
        await settle(pilot)
        app.save_defaults()
        await settle(pilot)
        [refusal] = [t for t in toasts(rec) if t.title == "Defaults not saved"]
        assert "not valid TOML" in refusal.message and "not overwritten" in refusal.message
    assert cfg.read_text() == broken


async def test_confirm_says_what_enter_does_and_does_it():
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
    answers = []
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.push_screen(Confirm("Delete the model ft:x[/]y?"), answers.append)
        await settle(pilot)
        hint = str(app.screen.query_one("#confirm-hint").render())
        assert "Enter" in hint and "(No" in hint
        assert app.screen.focused.id == "no"
        assert "ft:x[/]y" in str(app.screen.query_one("Label").render())
        await pilot.press("enter")
        await settle(pilot)
        app.push_screen(Confirm("Again?"), answers.append)
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert answers == [False, True]


async def test_80_columns_collapse_the_file_tree_and_b_brings_it_back():
    app = FtuiApp(SAMPLES / "broken.jsonl", config=test_config())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        sidebar = screen.query_one("#sidebar")
        assert not sidebar.display and screen.has_class("-narrow")
        findings = screen.query_one("#findings")
        assert findings.size.height >= 8, "the findings keep rows at 80x24"
        await pilot.press("b")
        await settle(pilot)
        assert sidebar.display and screen.query_one(DatasetTree).has_focus
        await pilot.press("b")
        await settle(pilot)
        assert not sidebar.display
    wide = FtuiApp(SAMPLES / "broken.jsonl", config=test_config())
    async with wide.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert wide.screen.query_one("#sidebar").display


async def test_dpo_accuracy_is_labelled_reward_accuracy():
    from tests.tui.test_layout_snapshots import finished_job, show_job

    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config())
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        jobs = app.screen
        show_job(jobs)
        await settle(pilot)
        assert jobs.query_one("#chart-acc").plot_title == "Token accuracy"
        job, _, _ = finished_job()
        job = {**job, "id": "ftjob-dpo", "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}}
        from ftui.service.jobs import Tick
        from ftui.tui.messages import JobsPolled

        tick = Tick()
        jobs.poller.observe(job, tick)
        jobs.post_message(JobsPolled(tick.changed, {}, []))
        await settle(pilot)
        table = jobs.query_one("#jobs", DataTable)
        table.move_cursor(row=table.get_row_index("ftjob-dpo"))
        await settle(pilot)
        assert jobs.selected == "ftjob-dpo" and jobs.query_one("#chart-acc").plot_title == "Reward accuracy"


def test_every_screen_reports_to_the_funnel():
    """Worker.StateChanged does not bubble: each screen class forwards it (FtuiScreen / FtuiModal)."""
    import importlib
    import inspect
    import pkgutil

    from textual.screen import Screen

    import ftui.tui
    from ftui.tui.base import Funnel

    screens = []
    for mod in pkgutil.iter_modules(ftui.tui.__path__):
        m = importlib.import_module(f"ftui.tui.{mod.name}")
        screens += [c for _, c in inspect.getmembers(m, inspect.isclass)
                    if issubclass(c, Screen) and c.__module__ == m.__name__]
    assert len(screens) >= 8
    assert [s.__name__ for s in screens if not issubclass(s, Funnel)] == []
