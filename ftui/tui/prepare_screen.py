"""The Prepare workspace: raw labelled data → clean train / validation / test files, step by step in view.

The form on the left is a :class:`ftui.core.prepare.Recipe`; **ctrl+r** previews it (every step runs in a worker
thread and nothing is written): the steps with before/after counts, the first converted examples as
conversations, the answer's distribution per split and the near-duplicate pairs (Enter opens one). **ctrl+s**
writes the files (refusing to overwrite unless *Overwrite* is ticked) and opens them in the Data workspace.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, DataTable, Header, Input, Label, Select, Static, TabbedContent, TabPane

from ..core.recipe import MAX_LABELS, PrepareError, Recipe, default, format_split, parse_split
from .base import FtuiModal, FtuiScreen
from .messages import PrepareColumns, PrepareFailed, PreparePlanned, PrepareProgress
from .widgets.footer import Footer
from .widgets.form_input import FormInput
from .widgets.tables import set_columns

RAW_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
PREVIEW_EXAMPLES = 3
STEP_TITLES = {"read": "read rows", "map": "map to examples", "errors": "drop errors",
               "exact_dedup": "exact duplicates", "near_dedup": "near duplicates", "shuffle": "shuffle",
               "balance": "balance", "cap": "cap", "split": "split", "leakage": "leakage"}


def default_input(start: Path) -> str:
    """A raw data file to start from: the first CSV/TSV/Parquet next to where the app was opened, else the open
    dataset."""
    folder = start if start.is_dir() else start.parent
    try:
        raw = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RAW_SUFFIXES)
    except OSError:
        raw = []
    if raw:
        return str(raw[0])
    return str(start) if start.is_file() else ""


def default_out(inp: str) -> str:
    """``<input name>-prepared`` beside the input (the user's data folder for the bundled samples)."""
    from ftui.core.files import output_near, shown

    first = inp.split(",")[0].strip()
    if not first:
        return "data-prepared"
    return shown(output_near(first, f"{Path(first).stem}-prepared"))


class PairScreen(FtuiModal[None]):
    """A near-duplicate pair: the removed example beside the one it matched."""

    BINDINGS = [Binding("escape,q,enter", "app.pop_screen", "Close", id="prepare.pair_close")]
    DEFAULT_CSS = """
    PairScreen { align: center middle; }
    PairScreen > Vertical { width: 95%; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    PairScreen Horizontal { height: 1fr; }
    PairScreen VerticalScroll { width: 1fr; border: round $panel-lighten-2; padding: 0 1; }
    PairScreen.-narrow Horizontal { layout: vertical; }
    PairScreen.-narrow VerticalScroll { width: 1fr; height: 1fr; }
    """

    def __init__(self, pair) -> None:
        super().__init__()
        self.pair = pair

    def compose(self) -> ComposeResult:
        p = self.pair
        what = "leaked into validation/test from train" if p.step == "leakage" else "removed as a near duplicate"
        with Vertical():
            yield Static(Text.assemble((p.removed, "bold"), f" {what}: ~{p.similarity:.2f} Jaccard like ",
                                       (p.kept, "bold"), "   (Esc closes)"), markup=False)
            with Horizontal():
                left = VerticalScroll(Static(Text(p.removed_text)))
                left.border_title = f"removed · {p.removed}"
                yield left
                right = VerticalScroll(Static(Text(p.kept_text)))
                right.border_title = f"kept · {p.kept}"
                yield right


# `ftui prepare`'s messages name its flags; here the form's fields do the same jobs, so the messages name those
FIELDS = {"--user/--assistant": "the User/Assistant fields", "--user": "the User field",
          "--assistant": "the Assistant field", "--system": "the System prompt field",
          "--split-counts": "the Split field", "--split": "the Split field", "--group-by": "the Group by field",
          "--dedup none": "Exact duplicates by: off", "--dedup": "Exact duplicates by",
          "--near-threshold": "the Jaccard field", "--keep-errors": "keep examples with errors",
          "--force overwrites": "tick overwrite existing outputs", "--force": "overwrite existing outputs",
          "--out": "the Output folder", "--max-per-label": "the max/label field",
          "--max-examples": "the max field", "--seed": "the seed field",
          "--delimiter": "the CSV separator choice"}
_FLAG = re.compile("|".join(re.escape(k) for k in sorted(FIELDS, key=len, reverse=True)))


def in_form_words(text: str) -> str:
    """A message of the prepare pipeline with each command-line flag replaced by the form field that does its job."""
    return _FLAG.sub(lambda m: FIELDS[m.group(0)], text)


class PrepareScreen(FtuiScreen):
    CSS_PATH = Path(__file__).resolve().parent / "prepare.tcss"  # parsed when the workspace first opens
    HELP = """\
# Prepare workspace
Turn raw labelled data (CSV, TSV, JSON, JSON Lines, Parquet) into `train.jsonl`, `valid.jsonl`, `test.jsonl` and
`prepare.json`, like `ftui prepare` does. Fill the recipe on the left: **User** and **Assistant** take a column
(`review`) or a template over columns (`{title}\\n{review}`); left empty, chat JSONL passes through and tabular
columns are guessed from their names. **ctrl+r** previews: every step with its counts, the first examples as
conversations, the answer's share per split and the near-duplicate pairs (Enter on one shows both texts). Nothing
is written until **ctrl+s**, which refuses to overwrite files unless *Overwrite* is ticked, then opens the
outputs in the Data workspace. **Esc** stops a running preview.
"""
    BINDINGS = [
        Binding("ctrl+r", "preview", "Preview", id="prepare.preview", priority=True,
                tooltip="Run every step without writing"),
        Binding("ctrl+s", "write", "Write", id="prepare.write", priority=True,
                tooltip="Write train/valid/test and prepare.json"),
        Binding("escape", "cancel", "Stop", id="prepare.cancel", show=False, tooltip="Stop the running preview"),
        Binding("ctrl+b", "toggle_form", "Form", id="prepare.form", priority=True,
                tooltip="Show or hide the recipe (more room for the results on a small terminal)"),
    ]

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self.start = start or Path.cwd()
        self.plan = None  # the last preview (ftui.core.prepare.Plan)
        self.plan_recipe = None  # the Recipe it ran
        self._cancel: threading.Event | None = None
        self.running = False
        self.columns_of: str | None = None

    # -- layout ----------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        inp = default_input(self.start)
        yield Header()
        with Horizontal(id="prep-body"):
            with VerticalScroll(id="recipe"):
                yield Label("Input file(s), comma-separated", classes="prep-label")
                yield FormInput(inp, id="in-inputs", compact=True, placeholder="reviews.csv")
                yield Static("", id="prep-columns", markup=False)
                yield Select([("CSV separator: sniffed", "auto"), ("comma ,", ","), ("semicolon ;", ";"),
                              ("tab", "\t"), ("pipe |", "|")], value="auto", allow_blank=False, id="sel-delimiter",
                             compact=True)
                yield Label("Output folder", classes="prep-label")
                yield FormInput(default_out(inp), id="in-out", compact=True)
                yield Label("User ← column or {template}", classes="prep-label")
                yield FormInput("", id="in-user", compact=True, placeholder="empty: guessed / chat as is")
                yield Label("Assistant ← column or {template}", classes="prep-label")
                yield FormInput("", id="in-assistant", compact=True, placeholder="empty: guessed / chat as is")
                yield Label("System prompt", classes="prep-label")
                yield FormInput("", id="in-system", compact=True, placeholder="none")
                yield Label("Exact duplicates by", classes="prep-label")
                yield Select([("the prompt", "prompt"), ("the whole example", "example"), ("off", "none")],
                             value=default("dedup"), allow_blank=False, id="sel-dedup", compact=True)
                yield Checkbox("ignore case and spacing", default("normalize"), id="cb-normalize", compact=True)
                yield Checkbox("remove near duplicates", default("near"), id="cb-near", compact=True)
                with Horizontal(classes="prep-pair"):
                    yield Label("Jaccard ≥", classes="prep-inline")
                    yield FormInput(f"{default('near_threshold'):g}", id="in-threshold",
                                    name_for_errors="Jaccard threshold", compact=True,
                                    restrict=r"[0-9.]*")
                    yield Label("shingle", classes="prep-inline")
                    yield FormInput(str(default("shingle")), id="in-shingle", name_for_errors="Shingle", compact=True,
                                    restrict=r"[0-9]*")
                with Horizontal(classes="prep-pair"):
                    yield Label("Split", classes="prep-inline")
                    yield FormInput(format_split(default("split")), id="in-split", name_for_errors="Split",
                                    compact=True)
                    yield Label("seed", classes="prep-inline")
                    yield FormInput(str(default("seed")), id="in-seed", name_for_errors="Seed", compact=True,
                                    restrict=r"-?[0-9]*")
                yield Label("Stratify by the answer", classes="prep-label")
                yield Select([(f"auto (≤ {MAX_LABELS} labels)", "auto"), ("on", "on"), ("off", "off")],
                             value=default("stratify"),
                             allow_blank=False, id="sel-stratify", compact=True)
                yield Label("Group by (a column kept in one split)", classes="prep-label")
                yield FormInput("", id="in-group", compact=True, placeholder="none")
                with Horizontal(classes="prep-pair"):
                    yield Label("max/label", classes="prep-inline")
                    yield FormInput("", id="in-max-label", name_for_errors="Max per label", compact=True,
                                    restrict=r"[0-9]*", placeholder="all")
                    yield Label("max", classes="prep-inline")
                    yield FormInput("", id="in-max-examples", name_for_errors="Max examples", compact=True,
                                    restrict=r"[0-9]*", placeholder="all")
                yield Checkbox("keep examples with errors", default("keep_errors"), id="cb-keep-errors", compact=True)
                yield Checkbox("remove leakage into valid/test", default("leakage"), id="cb-leakage", compact=True)
                yield Checkbox("sort train by the answer", default("sort_train_by_label"), id="cb-sort", compact=True)
                yield Checkbox("overwrite existing outputs", False, id="cb-force", compact=True)
                with Horizontal(id="prep-buttons"):
                    yield Button("Preview", id="btn-preview", compact=True, variant="primary")
                    yield Button("Write", id="btn-write", compact=True, variant="success")
            with Vertical(id="prep-results"):
                yield Static("ctrl+r previews the recipe; nothing is written until ctrl+s.", id="prep-status",
                             markup=False)
                with TabbedContent(id="prep-tabs"):
                    with TabPane("Steps", id="tab-steps"):
                        yield self._table("prep-steps", [("step", "step"), ("before", "before"), ("after", "after"),
                                                         ("removed", "removed"), ("note", "note")])
                        yield Static("", id="prep-notes", markup=False)
                        from .widgets.plots import LabelBars

                        yield LabelBars(id="prep-labels-inline")  # a tall terminal shows the shares under the steps
                    with TabPane("Examples", id="tab-examples"):
                        yield VerticalScroll(id="prep-examples")
                    with TabPane("Labels", id="tab-labels"):
                        yield LabelBars(id="prep-labels")
                    with TabPane("Near duplicates", id="tab-pairs"):
                        yield self._table("prep-pairs", [("sim", "≈J"), ("why", "step"), ("removed", "removed"),
                                                         ("kept", "kept like"), ("text", "text")])
        yield Footer()

    @staticmethod
    def _table(ident: str, columns: list[tuple[str, str]]) -> DataTable:
        """A table with its columns set before it is mounted: a TabbedContent may mount its panes' contents after the
        screen's on_mount runs."""
        table = DataTable(id=ident, cursor_type="row", zebra_stripes=True)
        set_columns(table, columns)
        return table

    def on_mount(self) -> None:
        self.app.after_first_paint(self._first)

    def _first(self) -> None:
        self._read_columns(self.query_one("#in-inputs", Input).value, self._delimiter())
        if self.query_one("#in-inputs", Input).value.strip():
            self.action_preview()

    # -- the form --------------------------------------------------------------------------------------------
    def set_input(self, path: str) -> None:
        """Start from this file (the Data workspace's browser hands raw files over)."""
        self.query_one("#in-inputs", Input).value = path
        self.query_one("#in-out", Input).value = default_out(path)
        self._read_columns(path, self._delimiter())
        self.action_preview()

    def _inputs(self) -> list[str]:
        return [os.path.expanduser(p.strip()) for p in self.query_one("#in-inputs", Input).value.split(",")
                if p.strip()]

    def recipe(self):
        """The form as a Recipe; a field that does not parse raises PrepareError naming it."""

        def text(id_: str) -> str:
            return self.query_one(f"#{id_}", Input).value

        def number(id_: str, name: str, kind=int, default=None):
            raw = text(id_).strip()
            if not raw:
                if default is None:
                    return None
                return default
            try:
                return kind(raw)
            except ValueError:
                raise PrepareError(f"{name}: {raw!r} is not a number") from None

        def check(id_: str) -> bool:
            return self.query_one(f"#{id_}", Checkbox).value

        inputs = self._inputs()
        if not inputs:
            raise PrepareError("Input: name at least one file")
        return Recipe(
            inputs=inputs, delimiter=self._delimiter(), user=text("in-user").strip() or None,
            assistant=text("in-assistant").strip() or None,
            system=text("in-system") or None, keep_errors=check("cb-keep-errors"),
            dedup=str(self.query_one("#sel-dedup", Select).value), normalize=check("cb-normalize"),
            near=check("cb-near"), near_threshold=number("in-threshold", "Jaccard", float, default("near_threshold")),
            shingle=number("in-shingle", "shingle", int, default("shingle")),
            seed=number("in-seed", "seed", int, default("seed")),
            split=parse_split(text("in-split") or format_split(default("split"))),
            stratify=str(self.query_one("#sel-stratify", Select).value),
            group_by=text("in-group").strip() or None,
            max_per_label=number("in-max-label", "max per label"),
            max_examples=number("in-max-examples", "max examples"),
            leakage=check("cb-leakage"), sort_train_by_label=check("cb-sort"), model=self.app.model_id)

    def _delimiter(self) -> str | None:
        value = self.query_one("#sel-delimiter", Select).value
        return None if value == "auto" else str(value)

    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(Select.Changed)
    def _form_changed(self, event) -> None:
        if self.plan is not None and not self.running and event.control.id not in ("in-out", "cb-force"):
            self._status("The recipe changed: ctrl+r previews it again (ctrl+s previews and writes).", stale=True)
        if event.control.id == "in-inputs":
            self._read_columns(event.value, self._delimiter())
        elif event.control.id == "sel-delimiter":
            self._read_columns(self.query_one("#in-inputs", Input).value, self._delimiter())

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_preview()

    @on(Button.Pressed, "#btn-preview")
    def _preview_pressed(self) -> None:
        self.action_preview()

    @on(Button.Pressed, "#btn-write")
    def _write_pressed(self) -> None:
        self.action_write()

    @work(thread=True, exclusive=True, group="prepare-columns", exit_on_error=False,
          description="Reading the input's columns")
    def _read_columns(self, value: str, delimiter: str | None = None) -> None:
        from ftui.core.sources import SourceError, open_source

        first = value.split(",")[0].strip()
        if not first:
            self.post_message(PrepareColumns("", []))
            return
        path = os.path.expanduser(first)
        try:
            src = open_source(path, delimiter=delimiter)
            columns = list(src.columns)
            if not columns:  # JSON / JSONL: the keys of the first row
                row = next(iter(src), None)
                columns = list(row.values) if row is not None else []
            self.post_message(PrepareColumns(path, columns, src.format + (f" ({src.note})" if src.note else "")))
        except (SourceError, OSError) as e:
            self.post_message(PrepareColumns(path, [], "", str(e)))

    def on_prepare_columns(self, message: PrepareColumns) -> None:
        hint = self.query_one("#prep-columns", Static)
        if message.error:
            hint.update(Text(message.error, style="red"))
        elif message.columns:
            hint.update(Text(f"{message.format}: " + ", ".join(message.columns), style="dim"))
        else:
            hint.update("")

    # -- running ---------------------------------------------------------------------------------------------
    def _status(self, text: str, stale: bool = False, error: bool = False) -> None:
        style = "bold red" if error else "yellow" if stale else ""
        self.query_one("#prep-status", Static).update(Text(text, style=style))

    def _start(self, write: bool) -> None:
        if self.running:
            self.notify("A preview is running (Esc stops it)", severity="warning")
            return
        try:
            recipe = self.recipe()
            recipe.check()
        except PrepareError as e:
            self._status(str(e), error=True)
            self.notify(str(e), title="Recipe", severity="error")
            return
        out = self.query_one("#in-out", Input).value.strip()
        if write and not out:
            self._status("Output folder: name one", error=True)
            return
        self.running = True
        self._cancel = threading.Event()
        self._status("Writing…" if write else "Previewing…  (Esc stops)")
        reuse = self.plan if (write and self.plan is not None and self.plan_recipe == recipe) else None
        self._run(recipe, self._cancel, str(Path(out).expanduser().absolute()) if write else None,
                  self.query_one("#cb-force", Checkbox).value, reuse)

    def action_preview(self) -> None:
        self._start(write=False)

    def action_write(self) -> None:
        self._start(write=True)

    def action_toggle_form(self) -> None:
        self.toggle_class("-form-hidden")

    def action_cancel(self) -> None:
        if self._cancel is not None and self.running:
            self._cancel.set()

    @work(thread=True, exclusive=True, group="prepare", exit_on_error=False, description="Preparing the data")
    def _run(self, recipe, cancel: threading.Event, out: str | None, force: bool, reuse) -> None:
        from ftui.core.prepare import plan, write
        from ftui.errors import Cancelled

        def progress(step: str, done: int) -> None:
            self.post_message(PrepareProgress(step, done))

        try:
            p = reuse or plan(recipe, progress, cancel)
            files = write(p, out, force=force) if out else None
        except Cancelled:
            self.post_message(PrepareFailed("Stopped: nothing was written.", cancelled=True))
            return
        except PrepareError as e:
            self.post_message(PrepareFailed(str(e)))
            return
        except OSError as e:
            self.post_message(PrepareFailed(f"Cannot write {out}: {e.strerror or e}"))
            return
        self.post_message(PreparePlanned(p, files))

    def on_prepare_progress(self, message: PrepareProgress) -> None:
        what = STEP_TITLES.get(message.step, message.step)
        self._status(f"{what}… {message.done:,} rows  (Esc stops)" if message.done else f"{what}…  (Esc stops)")

    def on_prepare_failed(self, message: PrepareFailed) -> None:
        self.running = False
        error = in_form_words(message.error)
        self._status(error, error=not message.cancelled)
        if not message.cancelled:
            self.notify(error, title="Prepare", severity="error", timeout=10)
            self._clear_results()  # the previous file's steps must not stand beside this file's error

    @on(DataTable.RowHighlighted, "#prep-steps")
    def _whole_note(self, event: DataTable.RowHighlighted) -> None:
        """The highlighted step's whole note, where its column cuts it (while the person moves in the table)."""
        if self.plan is None or self.focused is not event.data_table or event.row_key is None:
            return
        step = next((x for x in self.plan.steps if x.name == event.row_key.value), None)
        if step is not None and step.note:
            self._status(f"{STEP_TITLES.get(step.name, step.name)}: {in_form_words(step.note)}")

    def _clear_results(self) -> None:
        self.plan = self.plan_recipe = None
        for table in ("#prep-steps", "#prep-pairs"):
            self.query_one(table, DataTable).clear()
        self.query_one("#prep-notes", Static).update("")
        for chart in self.query("#prep-labels, #prep-labels-inline"):
            chart.show({}, "no preview")

    def on_prepare_planned(self, message: PreparePlanned) -> None:
        self.running = False
        p = message.plan
        self.plan = p
        self.plan_recipe = p.recipe
        self._show(p)
        counts = " · ".join(f"{k} {v.size:,}" for k, v in p.splits.items())
        if message.files:
            names = ", ".join(Path(v).name for v in message.files.values())
            folder = Path(next(iter(message.files.values()))).parent
            self._status(f"Wrote {names} in {folder}  ({counts})")
            self.notify(f"Wrote {names} in {folder}; opening train.jsonl in the Data workspace", title="Prepared",
                        timeout=6)
            self.app.last_prepared = folder
            train = message.files.get("train")
            if train is not None:
                self.app.open_dataset(Path(train))
        else:
            self._status(f"Preview: {counts} — nothing written yet; ctrl+s writes")

    # -- showing a plan --------------------------------------------------------------------------------------
    def _show(self, p) -> None:
        # a new plan is a new table (steps come and go with the recipe): rebuilt, not synced
        steps = self.query_one("#prep-steps", DataTable)
        steps.clear()
        for s in p.steps:
            removed = s.before - s.after
            steps.add_row(*map(Text, (STEP_TITLES.get(s.name, s.name), f"{s.before:,}", f"{s.after:,}",
                                      f"−{removed:,}" if removed else "", in_form_words(s.note))), key=s.name)
        notes = list(p.notes)
        for s in p.steps:
            for key in ("issues", "dropped", "examples"):
                for item in (s.detail.get(key) or [])[:3]:
                    notes.append(f"{STEP_TITLES.get(s.name, s.name)}: {item}")
        self.query_one("#prep-notes", Static).update(Text(in_form_words("\n".join(notes)), style="dim"))
        self._show_examples(p)
        labels = p.label_counts()
        for chart in self.query("#prep-labels, #prep-labels-inline"):
            chart.show(labels, "" if labels else "no label set: the answers are free text")
        pairs = self.query_one("#prep-pairs", DataTable)
        pairs.clear()
        for i, x in enumerate(p.pairs):
            text = " ".join(x.removed_text.split())
            pairs.add_row(*map(Text, (f"{x.similarity:.2f}", "leak" if x.step == "leakage" else "near",
                                      x.removed.rsplit("/", 1)[-1], x.kept.rsplit("/", 1)[-1], text[:200])),
                          key=str(i))

    def _show_examples(self, p) -> None:
        from ftui.core.catalog import resolve
        from ftui.core.example import ExampleView, fill_view

        from .widgets.conversation import message_boxes

        box = self.query_one("#prep-examples", VerticalScroll)
        box.remove_children()
        encoding = resolve(self.app.model_id).encoding
        widgets = []
        for n, (where, ex) in enumerate(p.examples("train", PREVIEW_EXAMPLES), 1):
            view = fill_view(ExampleView(0, ""), ex, encoding)
            widgets.append(Static(Text(f"train example {n} · from {where}", style="bold"), markup=False))
            widgets.extend(message_boxes(view))
        if not widgets:
            widgets.append(Static("No examples in train.", markup=False))
        box.mount_all(widgets)

    def on_worker_state_changed(self, event) -> None:
        # (the app's funnel runs too: Textual calls FtuiScreen's handler of its own, so no super() call here)
        from textual.worker import WorkerState

        if event.worker.group == "prepare" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.running = False
            self._status(f"{event.worker.description} failed: see the notification (F1 names the log file)",
                         error=True)

    @on(DataTable.RowSelected, "#prep-pairs")
    def _pair_selected(self, event: DataTable.RowSelected) -> None:
        if self.plan is None:
            return
        i = int(event.row_key.value)
        if 0 <= i < len(self.plan.pairs):
            self.app.push_screen(PairScreen(self.plan.pairs[i]))
