"""The ftui Textual app: shell, config, themes, F1 help, command palette, one worker-error funnel."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from . import config as _config


def _model_commands():
    from .commands import ModelCommands  # textual.command costs ~20 ms: loaded when the palette first opens

    return ModelCommands


class FtuiApp(App):
    TITLE = "ftui"
    SUB_TITLE = "fine-tuning workbench"
    CSS_PATH = Path(__file__).resolve().parent / "ftui.tcss"  # absolute: subclasses may live elsewhere
    COMMANDS = App.COMMANDS | {_model_commands}
    BINDINGS = [
        Binding("f1", "help", "Help", id="ftui.help", tooltip="Help for what has focus, with its keys"),
        Binding("ctrl+q", "quit", "Quit", id="ftui.quit", priority=True),
    ]

    def __init__(self, path: str | Path | None = None, *, config: _config.Config | None = None) -> None:
        super().__init__()
        self.config_error: str | None = None
        if config is None:
            config, self.config_error = _config.load()
        self.config = config
        from ftui.core.catalog import DEFAULT_MODEL

        self.model_id = config.default_model or DEFAULT_MODEL
        self.analyses: dict = {}  # (realpath, size, mtime_ns, encoding) -> Analysis: re-opening is instant
        p = Path(path).expanduser() if path else Path.cwd()
        self.start_path = p
        if config.theme in self.available_themes:
            self.theme = config.theme
        elif config.theme:
            self.config_error = (self.config_error or "") + f" Unknown theme {config.theme!r}; using the default."

    def on_mount(self) -> None:
        from .data_screen import DataScreen

        self.set_keymap(self.config.keymap)
        p = self.start_path
        if p.is_dir():
            screen = DataScreen(p)
        else:
            screen = DataScreen(p.parent, open_file=p)
        self.push_screen(screen)
        if self.config_error:
            self.notify(self.config_error.strip(), title="Config", severity="warning", timeout=8)

    # -- help, commands --------------------------------------------------------------------------------------
    def action_help(self) -> None:
        from .help_screen import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen, self.focused))

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        if hasattr(screen, "action_open_path"):
            yield SystemCommand("Open file…", "Open a dataset by path", screen.action_open_path)
            yield SystemCommand("Choose model…", "The model whose limits and prices the figures use",
                                screen.action_choose_model)
            yield SystemCommand("Re-analyse", "Analyse the current file again", screen.action_reanalyse)
            yield SystemCommand("Toggle histogram scale", "Log or linear x axis", screen.action_toggle_log)
            yield SystemCommand("Copy finding", "Copy the selected finding to the clipboard", self._copy_finding)
            yield SystemCommand("Save defaults", "Save the model and theme to the config file", self.save_defaults)

    def _copy_finding(self) -> None:
        from .widgets.findings_list import FindingsList

        lists = self.screen.query(FindingsList)
        if lists:
            lists.first().action_copy()
        else:
            self.notify("No finding selected", severity="warning")

    def save_defaults(self) -> None:
        self.config.default_model = self.model_id
        self.config.theme = self.theme
        try:
            path = _config.save(self.config)
        except OSError as e:
            self.notify(f"Cannot write the config: {e}", severity="error")
            return
        self.notify(f"Saved model and theme to {path}", timeout=4)

    # -- one funnel for worker errors (harlequin) ------------------------------------------------------------
    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        self.worker_failed(event)

    def worker_failed(self, event: Worker.StateChanged) -> None:
        """Every screen forwards its workers' state changes here (they do not bubble): an error becomes a toast."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            what = event.worker.description or event.worker.name
            self.log.error(f"worker {event.worker.name} failed", error)
            self.notify(f"{type(error).__name__}: {error}", title=f"{what} failed", severity="error", timeout=10)
