"""The ftui Textual app: shell, config, themes, F1 help, command palette, one worker-error funnel, and the backend.

Six workspaces are Textual modes (each keeps its own screen stack): Data (F2), Jobs (F3), Chat (F4), Files & models
(F5), Prepare (F6), Eval (F7). The backend is chosen by ``ftui.service.profiles`` and connected after the first
paint (``openai`` and the local server start then); the header's subtitle shows which backend is active and whether
it answers, never the key.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from ftui.core.files import raw_table
from ftui.service import profiles as _profiles

from .. import config as _config
from .messages import BackendFailed, BackendReady

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.screen import Screen

    from .data_screen import DataScreen

WORKSPACES = {"data": "Data", "jobs": "Jobs", "chat": "Chat", "files": "Files & models", "prepare": "Prepare",
              "eval": "Eval"}


def _model_commands():
    from .commands import ModelCommands  # textual.command costs ~20 ms: loaded when the palette first opens

    return ModelCommands


def _export_commands():
    from .commands import ExportCommands

    return ExportCommands


class FtuiApp(App):
    TITLE = "ftui"
    SUB_TITLE = "fine-tuning workbench"
    CSS_PATH = Path(__file__).resolve().parent / "ftui.tcss"  # absolute: subclasses may live elsewhere
    COMMANDS = App.COMMANDS | {_model_commands, _export_commands}
    DEFAULT_MODE = "data"
    # every screen gets these classes by the terminal's size (ftui.tcss lays 80x24 and 200x60 out from them)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (150, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("f1", "help", "Help", id="ftui.help", tooltip="Help for what has focus, with its keys"),
        Binding("f2", "workspace('data')", "Data", id="ftui.data", tooltip="The Data workspace"),
        Binding("f3", "workspace('jobs')", "Jobs", id="ftui.jobs", tooltip="The Jobs workspace"),
        Binding("f4", "workspace('chat')", "Chat", id="ftui.chat", tooltip="The Chat workspace"),
        Binding("f5", "workspace('files')", "Files", id="ftui.files_models",
                tooltip="The backend's files and fine-tuned models"),
        Binding("f6", "workspace('prepare')", "Prepare", id="ftui.prepare",
                tooltip="Raw labelled data → train / validation / test files"),
        Binding("f7", "workspace('eval')", "Eval", id="ftui.eval",
                tooltip="Measure models on held-out examples and compare them"),
        Binding("ctrl+q", "quit", "Quit", id="ftui.quit", priority=True),  # last: the footer shows F1–F5 first
    ]

    def __init__(self, path: str | Path | None = None, *, config: _config.Config | None = None,
                 profile: _profiles.Profile | None = None) -> None:
        super().__init__()
        self.config_error: str | None = None
        if config is None:
            config, self.config_error = _config.load()
        self.config = config
        if profile is None:
            try:
                profile = _profiles.resolve(config.backend, config.profiles)
            except _profiles.ProfileError as e:
                self.config_error = (self.config_error or "") + f" {e}; no backend."
                profile = _profiles.Profile("off", "off")
        self.profile = profile
        self._quitting = threading.Event()
        self._painted = False
        self.started = asyncio.Event()  # set once the first frame is drawn and the work waiting for it has run
        self._after_paint: list = []
        self.service = None  # ftui.service.client.Service once connected
        self.local = None  # ftui.service.local.LocalBackend when this app started or reuses one
        self.online: bool | None = None  # None: not known yet
        self.backend_note = "connecting…" if profile.kind != "off" else ""
        self.models: list[dict] = []  # the backend's /v1/models
        self.checkpoints: dict[str, dict] = {}  # checkpoint model id -> checkpoint (from the Jobs workspace)
        from ftui.core.catalog import DEFAULT_MODEL

        self.model_id = config.default_model or DEFAULT_MODEL
        self.analyses: dict = {}  # (realpath, size, mtime_ns, encoding) -> Analysis: re-opening is instant
        p = Path(path).expanduser() if path else Path.cwd()
        self.start_path = p
        # Data is the mode the app starts in (DEFAULT_MODE): no blank default screen to switch away from, which
        # would restyle everything twice before the first paint
        self._styled = self._css_update_count  # the stylesheet was parsed for this CSS state (see refresh_css)
        for mode, make in (("data", self._data_screen), ("jobs", self._jobs_screen), ("chat", self._chat_screen),
                           ("files", self._files_screen), ("prepare", self._prepare_screen),
                           ("eval", self._eval_screen)):
            self.add_mode(mode, self._workspace(make))
        self.last_prepared: Path | None = None  # the Prepare workspace's last output folder (Eval starts there)
        if config.theme in self.available_themes:
            if config.theme != self.theme:  # setting it re-parses every stylesheet: only when it changes
                self.theme = config.theme
        elif config.theme:
            self.config_error = (self.config_error or "") + f" Unknown theme {config.theme!r}; using the default."

    def _workspace(self, make: Callable[[], Screen]) -> Callable[[], Screen]:
        """A workspace's screen factory for add_mode.

        Textual marks a new screen's styles stale (its CSS update count starts at -1), so opening a workspace the
        first time called refresh_css twice (in _init_mode and switch_mode), and each call parsed every stylesheet
        again from scratch, twice (its fresh stylesheet has no parse cache, and new variables empty the app's):
        ~5 ms a parse before the first paint; opening Jobs, Chat, Prepare or Eval the first time spent 59–129 ms
        parsing CSS, 17–26 ms without the redundant parses (tests/tui/test_styles.py). A screen built now is
        styled from the current rules when it mounts, so it starts current — unless the CSS changed since the
        stylesheet was last parsed (Textual can invalidate without re-parsing), which keeps Textual's refresh."""

        def build() -> Screen:
            screen = make()
            if self._styled == self._css_update_count:
                # what the skipped refresh_css did that matters: style the app itself before its first screen
                # (widgets cache their colours from their ancestors' styles; Textual styles the app after it)
                self.stylesheet.apply(self)
                screen._css_update_count = self._css_update_count
            return screen

        return build

    def refresh_css(self, animate: bool = True) -> None:
        count = self._css_update_count
        super().refresh_css(animate)
        self._styled = count

    def _data_screen(self):
        from .data_screen import DataScreen

        p = self.start_path
        if p.is_dir() or raw_table(p):  # a raw table opens in Prepare (on_mount); Data browses its folder
            return DataScreen(p if p.is_dir() else p.parent)
        return DataScreen(p.parent, open_file=p)

    def on_mount(self) -> None:
        self.set_keymap(self.config.keymap)
        self.show_backend()
        self._on_hangup()
        if raw_table(self.start_path):  # `ftui reviews.csv`: raw rows to prepare, as from the file browser
            self.call_after_refresh(self.open_prepare, self.start_path)
        if self.config_error:
            self.notify(self.config_error.strip(), title="Config", severity="warning", timeout=8)

    EXIT_GRACE = 5.0  # seconds a hang-up may take to exit the clean way before the process exits anyway

    def _on_hangup(self) -> None:
        """Over SSH the terminal can go without ctrl+q (a dropped connection, a killed tmux window): SIGHUP and
        SIGTERM end the app the clean way, so the backend it started is released like on a normal quit.

        A hang-up is also a SIGCONT (the kernel sends both when the terminal goes), and Textual's SIGCONT handler
        restarts the terminal driver — re-entering its start-up when the drop comes in the first second, which left
        the shutdown putting into a writer queue no thread reads (every thread waiting, forever). So SIGHUP gets a
        plain handler, which Python runs before SIGCONT's (it runs pending handlers by signal number): it turns the
        SIGCONT resume off — there is no terminal to resume — then asks the loop to exit. And whatever a driver or a
        worker does on the way out, the process exits within ``EXIT_GRACE`` seconds."""
        if self.is_headless:
            return
        import asyncio
        import signal

        loop = asyncio.get_running_loop()

        def hung_up(sig, _frame) -> None:
            self.hung_up_by = int(sig)  # the exit code says so, however the exit goes (cli.tui.run)
            try:
                signal.signal(signal.SIGCONT, signal.SIG_DFL)  # no resume of a terminal that is gone
            except (ValueError, OSError):
                pass
            try:
                loop.call_soon_threadsafe(self._hang_up, sig)
            except RuntimeError:  # the loop already closed: the app is on its way out anyway
                pass

        try:
            signal.signal(signal.SIGHUP, hung_up)
        except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGHUP here
            pass
        try:
            loop.add_signal_handler(signal.SIGTERM, self._hang_up, signal.SIGTERM)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    hung_up_by: int | None = None  # the signal that ended the app (SIGHUP, SIGTERM), if one did

    def _hang_up(self, sig) -> None:
        from .errors import logger

        self.hung_up_by = int(sig)

        logger().info("signal %s: exiting", int(sig))
        self._quitting.set()
        watchdog = threading.Timer(self.EXIT_GRACE, self._exit_anyway, (int(sig),))
        watchdog.daemon = True
        watchdog.start()
        self.exit(return_code=128 + int(sig))

    def _exit_anyway(self, sig: int) -> None:
        """The clean exit did not finish in time (a terminal driver stuck on a terminal that is gone): release the
        backend as on_unmount would, and end the process."""
        import os

        from .errors import logger

        logger().warning("signal %s: the clean exit took over %.0f s; exiting now", sig, self.EXIT_GRACE)
        try:
            if self.local is not None and self.local.owned:
                self.local.release()
        except Exception:  # noqa: BLE001 — nothing may keep the process from ending now
            pass
        for h in logger().handlers:
            h.flush()
        os._exit(128 + sig)

    def after_first_paint(self, callback) -> None:
        """Run ``callback`` once the first screen is drawn (at once if it already is): heavy work waits for it."""
        if self._painted:
            self.call_later(callback)
        else:
            self._after_paint.append(callback)

    @on(events.Ready)
    def _first_paint_done(self) -> None:
        self._painted = True
        for callback in self._after_paint:
            self.call_later(callback)
        self._after_paint.clear()
        self.call_later(self.started.set)  # after those callbacks: call_later keeps the order
        if self.profile.kind != "off":
            self._connect()  # openai and the local server load only now, after the first screen is drawn

    @staticmethod
    def _jobs_screen():
        from .jobs_screen import JobsScreen

        return JobsScreen()

    @staticmethod
    def _chat_screen():
        from .chat_screen import ChatScreen

        return ChatScreen()

    def _prepare_screen(self):
        from .prepare_screen import PrepareScreen

        return PrepareScreen(self.start_path)

    def _eval_screen(self):
        from .eval_screen import EvalScreen

        test = self.last_prepared / "test.jsonl" if self.last_prepared else None
        return EvalScreen(str(test) if test is not None and test.exists() else "")

    @staticmethod
    def _files_screen():
        from .files_screen import FilesScreen

        return FilesScreen()

    async def action_quit(self) -> None:
        """Quit — but first say that jobs still training go on without the app, and where to follow them again.
        ctrl+q on that question quits at once."""
        from .confirm import Confirm

        if isinstance(self.screen, Confirm) and getattr(self.screen, "quitting", False):
            self.exit()
            return
        live = await self._live_jobs()
        if not live:
            self.exit()
            return
        names = ", ".join(j["id"] for j in live[:3]) + (f" and {len(live) - 3} more" if len(live) > 3 else "")
        if self.profile.kind == "local":
            where = ("the local backend keeps training after the app is gone and stops by itself once they end")
        else:
            where = f"they train on {self.profile.label()}"
        n = len(live)
        question = Confirm(f"{n} job{'s' * (n != 1)} still training ({names}): {where}. Run ftui again and press F3 "
                           "(Jobs) to follow them. Quit now?")
        question.quitting = True
        self.push_screen(question, lambda yes: self.exit() if yes else None)

    async def _live_jobs(self) -> list[dict]:
        """The jobs still training or queued, as far as the app can tell within a second or two."""
        import asyncio

        from ftui.serveinfo import LIVE

        if self.service is None:
            return []
        stack = self._screen_stacks.get("jobs") or []
        tracks = getattr(stack[0], "tracks", None) if stack else None
        if tracks:
            return [t.job for t in tracks.values() if t.job.get("status") in LIVE]
        try:
            jobs = await asyncio.wait_for(self.service.jobs(limit=100), 2)
        except Exception:  # noqa: BLE001 — a backend that does not answer must not keep the app from quitting
            return []
        return [j for j in jobs if j.get("status") in LIVE]

    def action_workspace(self, name: str) -> None:
        if self.current_mode != name and not isinstance(self.screen, _modal_types()):
            self.switch_mode(name)

    # -- the backend -----------------------------------------------------------------------------------------
    @work(thread=True, group="backend", exit_on_error=False, description="Connecting to the backend")
    def _connect(self) -> None:
        """Import the SDK, start (or reuse) the local backend if that is the profile, create the client."""
        try:
            from ftui.service.client import Service

            base_url = None
            if self.profile.kind == "local":
                from ftui.service.local import LocalBackend, LocalBackendError

                self.local = LocalBackend(self.profile.data_dir)
                try:
                    base_url = self.local.start(cancel=self._quitting)
                except LocalBackendError as e:
                    self.post_message(BackendFailed(f"The local backend did not start: {e}"))
                    return
                if self._quitting.is_set():  # the app quit while the server came up
                    self.local.stop()
                    return
                self.profile.base_url = base_url
                self.profile.api_key = self.local.api_key  # the random key it made (never shown, never logged)
            self.post_message(BackendReady(Service(self.profile, base_url=base_url)))
        except ImportError as e:
            self.post_message(BackendFailed(f"Cannot load the OpenAI SDK: {e}"))

    def on_backend_ready(self, message: BackendReady) -> None:
        self.service = message.service
        self.service.upload_threshold = max(1, self.config.upload_threshold_mb) * 2**20
        self.service.part_size = min(64, max(1, self.config.upload_part_mb)) * 2**20
        self.backend_note = ""
        self.show_backend()
        self.refresh_models()
        if self.local is not None:
            # the local server stops itself after its idle time: while the app is open it is not idle (and the
            # models list stays fresh)
            from ftui.service.local import IDLE_EXIT

            self.set_interval(max(1.0, IDLE_EXIT / 3), self.refresh_models)
        for screen in self._all_screens():
            hook = getattr(screen, "backend_ready", None)
            if hook:
                hook()

    def on_backend_failed(self, message: BackendFailed) -> None:
        self.online = False
        self.backend_note = "not started"
        self.show_backend()
        self.notify(message.error, title="Backend", severity="error", timeout=12)

    def _all_screens(self):
        for stack in self._screen_stacks.values():
            yield from stack

    @work(group="models", exclusive=True, exit_on_error=False, description="Listing models")
    async def refresh_models(self) -> None:
        await self.fetch_models()

    async def fetch_models(self):
        """Read the backend's models into ``self.models``; returns the Problem if that failed (else None)."""
        from ftui.service.errors import ServiceError

        try:
            self.models = await self.service.models()
        except ServiceError as e:
            self.set_online(e.problem)
            return e.problem
        self.set_online(None)
        return None

    def set_online(self, problem=None) -> None:
        """Every call's outcome lands here: the header follows reachability (offline, key rejected, …)."""
        if problem is None:
            was, self.online, self.backend_note = self.online, True, ""
            if was is False:
                self.notify("The backend answers again", title="Backend", timeout=4)
        elif problem.kind in ("offline", "timeout"):
            if self.online is not False:
                self.notify(problem.message, title="Backend offline", severity="warning", timeout=6)
            self.online, self.backend_note = False, "offline, retrying"
        elif problem.kind == "auth":
            if self.backend_note != "key rejected":
                self.notify(problem.message, title="Backend", severity="error", timeout=12)
            self.online, self.backend_note = False, "key rejected"
        elif problem.kind == "rate_limited":
            self.online, self.backend_note = True, "rate limited"
        else:
            self.online = True
        self.show_backend()

    def show_backend(self) -> None:
        label = self.profile.label()
        if self.profile.kind == "off":
            mark = "○"
        elif self.online is None:
            mark = "…"
        else:
            mark = "●" if self.online else "○"
        state = self.backend_note or ("online" if self.online and self.profile.kind != "off" else "")
        self.sub_title = f"{mark} {label}" + (f" · {state}" if state else "")

    async def on_unmount(self) -> None:
        self._quitting.set()
        if self.service is not None:
            try:
                await self.service.close()
            except Exception:  # noqa: BLE001 — closing a client must never block the exit
                pass
        if self.local is not None and self.local.owned:
            # a job in training keeps its server (the next ftui reconnects; it stops itself once idle)
            if not self.local.release():
                from .errors import logger

                logger().info("left the local backend on port %s running: a job is live", self.local.port)

    def data_screen(self) -> DataScreen | None:
        """The Data workspace's screen once it exists (its open file and report feed the create-job form)."""
        from .data_screen import DataScreen

        stack = self._screen_stacks.get("data") or [None]  # Textual has no public reader of another mode's stack
        return stack[0] if isinstance(stack[0], DataScreen) else None

    def open_dataset(self, path: Path) -> None:
        """Show a dataset in the Data workspace (the browser moves to its folder) and analyse it."""
        self.switch_mode("data")
        screen = self.data_screen()
        if screen is not None:
            self.call_after_refresh(screen.show_file, Path(path))

    def open_prepare(self, path: Path) -> None:
        """Start the Prepare workspace from a raw data file (the Data workspace's browser hands CSVs over)."""
        from .prepare_screen import PrepareScreen

        self.switch_mode("prepare")
        self.call_after_refresh(lambda: self.screen.set_input(str(path)) if isinstance(self.screen, PrepareScreen)
                                else None)

    @property
    def is_ftui_serve(self) -> bool:
        """The backend is ftui serve (started here or reached by URL): its models carry the ``ftui`` extension. It
        alone gets early stopping's keys and has one queue that trains one job at a time."""
        return self.profile.kind == "local" or any(isinstance(m.get("ftui"), dict) for m in self.models)

    def open_eval(self, data: str, models: list[str], why: str = "") -> None:
        """The Eval workspace, filled in (the Jobs workspace's `e` on a finished job); ``why`` says where the data
        came from."""
        from .eval_screen import EvalScreen

        self.switch_mode("eval")
        self.call_after_refresh(lambda: self.screen.prefill(data, models, why) if isinstance(self.screen, EvalScreen)
                                else None)

    def open_chat(self, model: str) -> None:
        """Chat with a model or checkpoint (from the Jobs workspace)."""
        from .chat_screen import ChatScreen

        self.switch_mode("chat")
        self.call_after_refresh(lambda: self.screen.choose_model(model) if isinstance(self.screen, ChatScreen)
                                else None)

    def open_export(self, model_id: str) -> None:
        """The export dialog for a fine-tuned model or checkpoint of the local backend (its files are on this
        machine; a hosted backend's weights never leave it)."""
        if not model_id.startswith("ft:"):
            self.notify(f"{model_id} is a base model: export a fine-tuned model or checkpoint", severity="warning")
            return
        if self.profile.kind != "local":
            self.notify("Export takes the local backend's models; a hosted backend's weights cannot be downloaded",
                        severity="warning")
            return
        from ftui.service.local import LocalBackend

        from .export_dialog import ExportDialog

        self.push_screen(ExportDialog(model_id, LocalBackend(self.profile.data_dir).data_dir))

    def open_grader_bench(self, path: str | None = None, callback=None) -> None:
        """The grader workbench (``grader_bench``): ``callback`` gets the grader file written or loaded there."""
        from .grader_bench import GraderBench

        self.push_screen(GraderBench(path), callback)

    # -- help, commands --------------------------------------------------------------------------------------
    def action_help(self) -> None:
        from .help_screen import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen, self.focused))

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        from .errors import log_path

        yield SystemCommand("Show the log file", f"Where unexpected errors are recorded: {log_path()}",
                            lambda: self.notify(str(log_path()), title="Log file", timeout=10))
        yield SystemCommand("Grader workbench", "Try an OpenAI grader on a sample and an item: reward, sub-rewards "
                            "and errors, live", self.open_grader_bench)
        for mode, title in WORKSPACES.items():
            yield SystemCommand(f"Workspace: {title}", f"Switch to the {title} workspace",
                                lambda m=mode: self.action_workspace(m))
        from .data_screen import DataScreen

        if isinstance(screen, DataScreen):
            yield SystemCommand("Open file…", "Open a dataset by path", screen.action_open_path)
            yield SystemCommand("Choose model…", "The model whose limits and prices the figures use",
                                screen.action_choose_model)
            yield SystemCommand("Re-analyse", "Analyse the current file again", screen.action_reanalyse)
            yield SystemCommand("Toggle histogram scale", "Log or linear x axis", screen.action_toggle_log)
            yield SystemCommand("Copy finding", "Copy the selected finding to the clipboard", self._copy_finding)
            yield SystemCommand("Save defaults", "Save the model and theme to the config file", self.save_defaults)
            yield SystemCommand("New fine-tuning job…", "Create a job from the open dataset", screen.action_new_job)

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
            path = _config.save(self.config, only=("default_model", "theme"))
        except _config.ConfigError as e:
            self.notify(str(e), title="Defaults not saved", severity="error", timeout=12)
            return
        except OSError as e:
            self.notify(f"Cannot write the config: {e}", severity="error")
            return
        self.notify(f"Saved model and theme to {path}", timeout=4)

    # -- one funnel for worker errors (harlequin) ------------------------------------------------------------
    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        self.worker_failed(event)

    def worker_failed(self, event: Worker.StateChanged) -> None:
        """Every screen forwards its workers' state changes here (they do not bubble): an error becomes a toast
        naming what was being done, and its traceback goes to the log file."""
        if event.state == WorkerState.ERROR:
            from .errors import report

            what = event.worker.description or event.worker.name or "A background task"
            self.notify(report(what, event.worker.error), title=f"{what} failed", severity="error", timeout=12)

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Notifications carry paths, file names and backend messages: never parsed as markup (a ``[/]`` in a name
        would otherwise raise). Widgets' and screens' ``notify`` come here too."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)


def _modal_types():
    from textual.screen import ModalScreen

    return (ModalScreen,)
