"""The Data workspace: file browser, summary, findings and histograms of one dataset."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, Label, Select, Static
from textual.worker import Worker, WorkerState

from ftui.core import catalog

from .base import FtuiScreen
from .messages import AnalysisCancelled, AnalysisDone, AnalysisFailed, AnalysisProgress
from .widgets.file_tree import DatasetTree, is_dataset, is_raw
from .widgets.footer import Footer
from .widgets.summary import Summary, code_counts

if TYPE_CHECKING:
    from textual.widgets import ProgressBar, TabbedContent

    from ftui.core.report import Report

    from .widgets.findings_list import FindingsList


def file_key(path: str, encoding: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns, encoding)


class DataScreen(FtuiScreen):
    """Open a JSONL file, see every problem by line, its tokens and what it will cost."""

    HELP = """\
# Data workspace
Choose a dataset on the left (or start ftui with a path). While the progress bar runs the right side fills in:
the **summary** for the selected model, the **findings** (every problem by line) and the **histograms**.
Analysis runs in the background: the app never freezes, and **Esc** cancels it.
"""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="ftui.cancel", tooltip="Cancel the running analysis", show=False),
        Binding("m", "choose_model", "Model", id="ftui.model", tooltip="Choose the model for limits and cost",
                show=False),  # the model box is on screen
        Binding("ctrl+r", "reanalyse", "Re-analyse", id="ftui.reanalyse", tooltip="Analyse the file again", show=False),
        Binding("l", "toggle_log", "Log scale", id="ftui.histogram_log", tooltip="Histograms: log / linear x",
                show=False),
        Binding("f", "focus_findings", "Findings", id="ftui.findings", tooltip="Go to the findings", show=False),
        Binding("h", "histograms", "Histograms", id="ftui.histograms", show=False,
                tooltip="Show the histograms; again: the next one (a short terminal shows one at a time)"),
        Binding("t", "focus_tree", "Files", id="ftui.files", tooltip="Go to the file browser", show=False),
        Binding("b", "toggle_tree", "Browser", id="ftui.toggle_files",
                tooltip="Show or hide the file browser (hidden at first below 100 columns)"),
        Binding("ctrl+o", "open_path", "Open", id="ftui.open", tooltip="Open a file by path", show=False),
        Binding("j", "new_job", "New job", id="ftui.new_job", tooltip="Fine-tune on this file (Jobs workspace)"),
    ]

    # numpy, the analysis and plotext load after the first paint (the first analysis imports them)

    def __init__(self, root: Path, open_file: Path | None = None) -> None:
        super().__init__()
        self.root = root
        self.open_file = open_file
        self.analysis = None  # ftui.core.analysis.Analysis
        self.report: Report | None = None
        self.current: str | None = None
        self._cancel: threading.Event | None = None
        self._started = 0.0

    # -- layout ----------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield Vertical(id="sidebar")  # the file tree: right after the first paint (_mount_rest)
            with Vertical(id="main"):
                with Horizontal(id="toolbar"):
                    yield Label("no file open", id="path", markup=False)
                yield Summary("Choose a dataset on the left (Enter opens it).", id="summary")
        yield Footer()

    # the widgets built after the first paint, by their classes (their modules load with them)
    def _bar(self) -> ProgressBar:
        from textual.widgets import ProgressBar

        return self.query_one("#progress", ProgressBar)

    def _findings(self) -> FindingsList:
        from .widgets.findings_list import FindingsList

        return self.query_one("#findings", FindingsList)

    def _tabbed(self) -> TabbedContent:
        from textual.widgets import TabbedContent

        return self.query_one("#tabs", TabbedContent)

    def on_mount(self) -> None:
        self.app.after_first_paint(self._mount_rest)
        self.app.after_first_paint(self._start)

    def _mount_rest(self) -> None:
        """The file tree, the model list, the progress bar and the tabs, built once the first frame is drawn.

        The first frame shows the workspace's frame and its keys; Textual's Lazy would still build these widgets
        (and import their modules) before it, and mount them before the app is Ready: ~15 ms of a ~230 ms start.
        They are in the DOM as soon as this returns (mount registers them at once), before ``_start`` opens a file.
        """
        from textual.widgets import ProgressBar, TabbedContent, TabPane

        from .widgets.findings_list import FindingsList

        if not self.is_attached:  # the app quit before its first frame was done
            return
        models = [(m.id, m.id) for m in catalog.catalog()]
        model = self.app.model_id
        if model not in {v for _, v in models}:
            models.insert(0, (model, model))
        tree = DatasetTree(self.root, id="tree")
        self.query_one("#sidebar").mount(tree)
        if self.focused is None:  # the browser has the focus until a file's findings take it (``_show``, later)
            tree.focus()
        self.query_one("#toolbar").mount(Select(models, value=model, allow_blank=False, id="model", compact=True))
        bar = ProgressBar(id="progress", show_eta=False)
        bar.display = False
        findings = TabPane("Findings", Static("", id="counts"), Label("", id="filter", markup=False),
                           FindingsList(id="findings"), id="tab-findings")
        histograms = TabPane("Histograms", Static("Histograms appear once a file is analysed.", id="hist-empty"),
                             id="tab-histograms")
        tabs = TabbedContent(id="tabs")
        tabs.compose_add_child(findings)  # what `with TabbedContent():` does in compose()
        tabs.compose_add_child(histograms)
        main = self.query_one("#main")
        main.mount(bar, before="#summary")
        main.mount(tabs)

    def _start(self) -> None:
        """After the first frame is on screen: open the file, or load the tokenizer so opening one is instant.
        (Both build quicktok's tables in C holding the GIL for ~0.3 s: never before the first paint.)"""
        if self.open_file is not None:
            self.open(self.open_file)
        else:
            self._warm(catalog.resolve(self.app.model_id).encoding)

    @work(thread=True, group="warm", exit_on_error=False, description="Loading the tokenizer")
    def _warm(self, encoding: str) -> None:
        """Load the encoding once, right after the first paint, so opening a file starts counting at once.

        quicktok builds its tables in C without releasing the GIL (~0.3 s for o200k): doing it before the user
        picks a file keeps that pause out of the analysis.
        """
        from ftui.core.tokens import counter

        counter(encoding)

    # -- opening and analysing -------------------------------------------------------------------------------
    def open(self, path: Path | str, force: bool = False) -> None:
        path = str(path)
        self.current = path
        self.query_one("#path", Label).update(path)
        if os.path.isdir(path):
            datasets = [p for p in sorted(Path(path).iterdir()) if p.is_file() and is_dataset(p)]
            if not datasets:
                self._failed(f"{path}: no dataset files (.jsonl, .json) in this directory")
                return
            path = str(datasets[0])
            self.current = path
            self.query_one("#path", Label).update(path)
        model = catalog.resolve(self.app.model_id)
        key = file_key(path, model.encoding)
        cached = self.app.analyses.get(key) if key and not force else None
        if cached is not None:
            self._show(cached)
            self.post_message(AnalysisDone(path, cached, cached=True))
            return
        if self._cancel is not None:
            self._cancel.set()
        self._cancel = threading.Event()
        bar = self._bar()
        bar.display = True
        bar.update(total=max(1, os.path.getsize(path) if os.path.exists(path) else 1), progress=0)
        self.query_one(Summary).show_message(f"Analysing {os.path.basename(path)}…  (Esc cancels)")
        self._started = time.perf_counter()
        self._analyse(path, model.id, model.encoding, self._cancel)

    @work(thread=True, exclusive=True, group="analysis", exit_on_error=False, description="Analysing dataset")
    def _analyse(self, path: str, model_id: str, encoding: str, cancel: threading.Event) -> None:
        from ftui.core.analysis import Cancelled, DatasetError, analyze
        from ftui.core.report import Report

        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.05 or done >= total:
                last[0] = now
                self.post_message(AnalysisProgress(path, done, total))

        try:
            analysis = analyze(path, encoding=encoding, progress=progress, cancel=cancel)
        except Cancelled:
            self.post_message(AnalysisCancelled(path))
            return
        except DatasetError as e:
            self.post_message(AnalysisFailed(path, str(e)))
            return
        except OSError as e:
            self.post_message(AnalysisFailed(path, f"{path}: {e.strerror or e}"))
            return
        if not cancel.is_set():  # the report and its statistics too: off the UI thread (≈ 50 ms for 400,000)
            report = Report(analysis, catalog.resolve(model_id))
            report.stats()
            self.post_message(AnalysisDone(path, analysis, report=report))

    @on(AnalysisProgress)
    def _progress(self, message: AnalysisProgress) -> None:
        if message.path == self.current:
            self._bar().update(total=max(1, message.total), progress=message.done)

    @on(AnalysisDone)
    def _done(self, message: AnalysisDone) -> None:
        if message.path != self.current or message.cached:
            return
        a = message.analysis
        key = file_key(a.path, a.encoding)
        if key is not None:
            self.app.analyses[key] = a
        self._show(a, message.report)

    @on(AnalysisFailed)
    def _failed_msg(self, message: AnalysisFailed) -> None:
        if message.path == self.current:
            self._failed(message.error)

    @on(AnalysisCancelled)
    def _cancelled(self, message: AnalysisCancelled) -> None:
        if message.path == self.current:
            self.query_one("#progress").display = False
            self.query_one(Summary).show_message(f"Analysis of {os.path.basename(message.path)} cancelled. "
                                                 "ctrl+r analyses it again.")
            self.notify("Analysis cancelled", timeout=3)

    def _failed(self, error: str) -> None:
        self.query_one("#progress").display = False
        self.analysis = self.report = None
        self.query_one(Summary).show_message(error, error=True)
        self._findings().set_findings([], "")
        self.query_one("#counts", Static).update("")
        self.notify(error, title="Cannot analyse", severity="error", timeout=6)

    def _show(self, analysis, report=None) -> None:
        self.query_one("#progress").display = False
        self.analysis = analysis
        self.refresh_report(report)
        if self.report is not None and self.report.findings:
            self._findings().focus()

    def refresh_report(self, report=None) -> None:
        """(Re)build the report for the selected model; re-analyse if the model uses another encoding."""
        a = self.analysis
        if a is None:
            return
        model = catalog.resolve(self.app.model_id)
        if model.encoding != a.encoding:
            self.open(a.path)
            return
        if report is None or report.model.id != model.id:
            from ftui.core.report import Report

            report = Report(a, model)
        self.report = report
        self.query_one(Summary).show_report(report)
        self.query_one("#counts", Static).update(code_counts(report))
        self._findings().set_findings(report.findings, a.path)
        self.draw_histograms()

    def draw_histograms(self) -> None:
        """Drawn when the Histograms tab is shown (plotext and three plots cost the UI ~50 ms: not for nothing)."""
        from textual.widgets import TabbedContent, TabPane

        report = self.report
        tabs = self.query(TabbedContent)
        if report is None or not tabs or tabs.first().active != "tab-histograms":
            return
        from .widgets.plots import Histogram

        pane = self.query_one("#tab-histograms", TabPane)
        if not pane.query(Histogram):
            pane.query_one("#hist-empty").remove()
            pane.mount_all([Histogram("Tokens per example", "tokens", id="hist-tokens", classes="-current"),
                            Histogram("Trainable tokens per example", "trainable tokens", id="hist-trainable"),
                            Histogram("Messages per example", "messages", id="hist-messages")])
        log = self.app.config.histogram_log
        ctx = report.model.training_context
        marker = (float(ctx), f"{report.model.id} context {ctx:,}") if ctx else None
        self.query_one("#hist-tokens", Histogram).show(report.tokens, log=log, marker=marker)
        self.query_one("#hist-trainable", Histogram).show(report.trainable, log=log)
        self.query_one("#hist-messages", Histogram).show(report.messages, log=False,
                                                         bins=max(1, min(30, int(report.messages.max(initial=1)))))

    # -- events ----------------------------------------------------------------------------------------------
    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        """(The app's funnel reports the error itself: FtuiScreen forwards every worker's state.)"""
        if event.state == WorkerState.ERROR and event.worker.group == "analysis":
            self.query_one("#progress").display = False
            self.query_one(Summary).show_message("The analysis stopped on an internal error (see the message).",
                                                 error=True)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-histograms":
            self.draw_histograms()

    @on(DatasetTree.Unreadable)
    def _unreadable_dir(self, event: DatasetTree.Unreadable) -> None:
        self.notify(f"Cannot list {event.path}: {event.error}", title="Files", severity="warning", timeout=6)

    @on(DatasetTree.FileSelected)
    def _file_selected(self, event: DatasetTree.FileSelected) -> None:
        if self.has_class("-narrow"):  # a small terminal: the browser makes room for the findings again
            self.remove_class("-tree-shown")
        if is_raw(event.path):  # CSV, TSV, Parquet: raw data to prepare, not a training file
            self.app.open_prepare(event.path)
            return
        self.open(event.path)

    def show_file(self, path: Path) -> None:
        """Open ``path`` and move the browser to its folder (the Prepare workspace's outputs)."""
        for tree in self.query(DatasetTree):
            if Path(tree.path) != path.parent:
                tree.path = path.parent
        self.open(path)

    @on(Select.Changed, "#model")
    def _model_changed(self, event: Select.Changed) -> None:
        if event.value != self.app.model_id and isinstance(event.value, str):
            self.app.model_id = event.value
            self.refresh_report()
            if self.report is not None:
                self.notify(f"Model: {event.value}", timeout=2)

    def on_findings_list_filter_changed(self, event: FindingsList.FilterChanged) -> None:
        parts = []
        if event.severity:
            parts.append(f"{event.severity}s")
        if event.code:
            parts.append(event.code)
        what = " · ".join(parts) or "all"
        self.query_one("#filter", Label).update(
            f"showing {event.shown:,} of {event.total:,} ({what})   e errors · w warnings · a all · c next code · "
            "Enter open")

    def on_findings_list_selected(self, event: FindingsList.Selected) -> None:
        if self.analysis is not None and event.finding.line is not None:
            self.open_example(event.finding.line, event.finding.path)

    def open_example(self, line: int, focus_path: str = "") -> None:
        from .example_screen import ExampleScreen

        self.app.push_screen(ExampleScreen(self.analysis, self.report.findings, line, focus_path))

    # -- actions ---------------------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self._cancel is not None and not self._cancel.is_set() and self.query_one("#progress").display:
            self._cancel.set()

    def action_reanalyse(self) -> None:
        if self.current:
            self.open(self.current, force=True)

    def action_choose_model(self) -> None:
        self.query_one("#model", Select).focus()
        self.query_one("#model", Select).action_show_overlay()

    def set_model(self, model_id: str) -> None:
        self.query_one("#model", Select).value = model_id

    def action_toggle_log(self) -> None:
        self.app.config.histogram_log = not self.app.config.histogram_log
        self.draw_histograms()
        self.notify("Histograms: " + ("log" if self.app.config.histogram_log else "linear") + " scale", timeout=2)

    HISTOGRAMS = ("hist-tokens", "hist-trainable", "hist-messages")

    def action_histograms(self) -> None:
        """The Histograms tab; pressed again, the next histogram (a short terminal has room for one at a time)."""
        tabs = self._tabbed()
        if tabs.active != "tab-histograms":
            tabs.active = "tab-histograms"
            return
        from .widgets.plots import Histogram

        shown = [h for h in self.query(Histogram) if h.has_class("-current")]
        if not shown:
            return
        i = self.HISTOGRAMS.index(shown[0].id)
        shown[0].remove_class("-current")
        nxt = self.query_one(f"#{self.HISTOGRAMS[(i + 1) % 3]}", Histogram)
        nxt.add_class("-current")
        if self.has_class("-short"):
            self.notify(f"{nxt.plot_title} ({(i + 1) % 3 + 1} of 3) · h: the next one", timeout=2)

    def action_focus_findings(self) -> None:
        self._tabbed().active = "tab-findings"
        self._findings().focus()

    def action_focus_tree(self) -> None:
        if not self.query_one("#sidebar").display:
            self.action_toggle_tree()
        self.query_one(DatasetTree).focus()

    def action_toggle_tree(self) -> None:
        shown = self.query_one("#sidebar").display
        self.set_class(shown, "-tree-hidden")
        self.set_class(not shown, "-tree-shown")
        if not shown:
            self.query_one(DatasetTree).focus()
        elif self.report is not None:
            self._findings().focus()

    def action_new_job(self) -> None:
        if self.app.service is None:
            self.notify("No backend connected (yet)", severity="warning")
            return
        self.app.switch_mode("jobs")
        self.app.call_after_refresh(lambda: self.app.screen.action_new_job())

    def action_open_path(self) -> None:
        from .prompt import PathPrompt

        def done(value: str | None) -> None:
            if value:
                self.open(Path(value).expanduser())

        self.app.push_screen(PathPrompt("Open a dataset (file or directory)", self.current or str(self.root)),
                             done)
