"""The Eval workspace: held-out examples through one or more models, scored and compared.

Left: the data file (chat JSONL whose last assistant message is the reference), the models (the backend's, the
fine-tuned ones first; a fine-tuned model brings its base along), concurrency and a limit. **ctrl+r** runs (an async
worker on the app's loop; **Esc** stops, keeping what came — answers are cached, so running again goes on). Right:
the progress (rate, ETA, cached, a backend that is away), then the scores per model, the paired comparison
(McNemar), per-label F1 bars and the confusion matrix, and the examples where the first two models disagree (Enter
opens one as a conversation with both answers beside the reference).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Header,
    Input,
    Label,
    ProgressBar,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)

from ftui.core.files import output_near

from .base import FtuiModal, FtuiScreen
from .messages import EvalDone, EvalFailed, EvalProgress
from .widgets.footer import Footer
from .widgets.form_input import FormInput
from .widgets.names import short_model
from .widgets.tables import set_columns


def _f(x, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _near(folder: str) -> str:
    """A folder under the current directory is shown relative to it."""
    try:
        return os.path.relpath(folder) if not os.path.relpath(folder).startswith("..") else folder
    except ValueError:
        return folder


def _ticked_prompt(model: str, ticked: bool, width: int = 34) -> Text:
    """A model in the list: ✓ when ticked (not colour alone), the id shortened so the suffix stays visible."""
    return Text.assemble(("✓ " if ticked else "· ", "bold green" if ticked else "dim"), short_model(model, width))


class DisagreementScreen(FtuiModal[None]):
    """One example: its prompt as a conversation, then each model's answer beside the reference."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close", id="eval.example_close")]
    DEFAULT_CSS = """
    DisagreementScreen { align: center middle; }
    DisagreementScreen > Vertical { width: 95%; height: 90%; border: thick $primary; background: $surface;
                                    padding: 0 1; }
    DisagreementScreen #answers { height: auto; max-height: 50%; }
    DisagreementScreen .answer { width: 1fr; border: round $panel-lighten-2; padding: 0 1; height: auto; }
    DisagreementScreen .answer.right { border: round $success; }
    DisagreementScreen .answer.wrong { border: round $error; }
    DisagreementScreen.-narrow #answers { layout: vertical; }
    """

    def __init__(self, example, answers: list[tuple[str, str, bool]], encoding: str) -> None:
        super().__init__()
        self.example = example
        self.answers = answers
        self.encoding = encoding

    def compose(self) -> ComposeResult:
        from ftui.core.example import ExampleView, fill_view

        from .widgets.conversation import message_boxes

        ex = self.example
        with Vertical():
            yield Static(Text.assemble((f"line {ex.line}", "bold"), "   reference: ", (ex.reference, "bold green"),
                                       "   (Esc closes)"), markup=False)
            with Horizontal(id="answers"):
                for model, text, right in self.answers:
                    box = Static(Text(text or "(empty)"), classes="answer " + ("right" if right else "wrong"))
                    box.border_title = f"{model} · {'right' if right else 'wrong'}"
                    yield box
            with VerticalScroll():
                view = fill_view(ExampleView(ex.line, ""), {"messages": ex.messages}, self.encoding)
                yield from message_boxes(view)


class EvalScreen(FtuiScreen):
    CSS_PATH = Path(__file__).resolve().parent / "eval.tcss"  # parsed when the workspace first opens
    HELP = """\
# Eval workspace
Measure models on held-out examples (the prepared `test.jsonl`, a validation file — any JSONL whose last
assistant message is the reference). Tick the models (a fine-tuned model brings its base along), **ctrl+r** runs:
answers come at temperature 0 with a seed, several at a time; **Esc** stops and keeps what came (answers are
cached: running again asks only for the rest). Scores: exact match and contains after normalising case, spaces
and surrounding punctuation; when the references are a small label set (star ratings), accuracy, per-label F1,
macro-F1 and the confusion matrix; on the local backend also the teacher-forced loss of the references (what the
training curves show). Two models are compared on the same examples (wins, losses, McNemar's exact test); Enter on
a disagreement shows the example with both answers. Results are written to `eval.jsonl` and `eval.json`.

**ctrl+l** ticks **every model trained on this data**: the fine-tuned models of the backend's finished jobs whose
training file is the train split prepared with the data file (the `prepare.json` beside it). With three models or
more the results are a **leaderboard**: best first, each with McNemar's exact test against the best.
"""
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="eval.run", priority=True, tooltip="Evaluate the ticked models"),
        Binding("escape", "stop", "Stop", id="eval.stop", show=False, tooltip="Stop (what came is kept)"),
        Binding("ctrl+b", "toggle_form", "Form", id="eval.form", priority=True,
                tooltip="Show or hide the form (hidden after a run below 100 columns: the results need the room)"),
        Binding("ctrl+l", "trained_on", "Trained on it", id="eval.trained_on", priority=True,
                tooltip="Tick every model trained on the data this file was prepared with (a leaderboard)"),
    ]

    def __init__(self, data: str = "", models: list[str] | None = None) -> None:
        super().__init__()
        self.initial_data = data
        self.initial_models = list(models or [])
        self.stop_event: asyncio.Event | None = None
        self.running = False
        self.run_result = None
        self.doc: dict | None = None
        self.rows: list[int] = []

    def compose(self) -> ComposeResult:
        # the tables get their columns here, not from on_mount: a TabbedContent may mount its panes' contents after
        # the screen's on_mount runs (seen under load: '#ev-scores' not found)
        self.scores_table = DataTable(id="ev-scores", cursor_type="row", zebra_stripes=True)
        set_columns(self.scores_table,
                    [("model", "model"), ("exact", "exact"), ("contains", "contains"), ("accuracy", "accuracy"),
                     ("f1", "macro-F1"), ("loss", "loss"), ("tokacc", "tok-acc"), ("outside", "no label"),
                     ("errors", "errors")])
        self.dis_table = DataTable(id="ev-dis", cursor_type="row", zebra_stripes=True)
        set_columns(self.dis_table, [("line", "line"), ("ref", "reference"), ("a", "first model"),
                                     ("b", "second model")])
        yield Header()
        with Horizontal(id="eval-body"):
            with VerticalScroll(id="eval-form"):
                yield Label("Data: JSONL with reference answers", classes="prep-label")
                yield FormInput(self.initial_data, id="ev-data", compact=True, placeholder="test.jsonl")
                yield Label("Models", classes="prep-label")
                yield SelectionList(id="ev-models", compact=True)
                yield Checkbox("add each fine-tuned model's base", True, id="ev-base", compact=True)
                with Horizontal(classes="prep-pair"):
                    yield Label("at once", classes="prep-inline")
                    yield FormInput("4", id="ev-conc", name_for_errors="Concurrency", compact=True, restrict=r"[0-9]*")
                    yield Label("limit", classes="prep-inline")
                    yield FormInput("", id="ev-limit", name_for_errors="Limit", compact=True, restrict=r"[0-9]*",
                                    placeholder="all")
                yield Label("Output folder (empty: eval-<data>-<time> beside the data)", classes="prep-label")
                yield FormInput("", id="ev-out", compact=True, placeholder="eval-…")
                with Horizontal(id="ev-buttons"):
                    yield Button("Run", id="ev-run", compact=True, variant="primary")
                    yield Button("Stop", id="ev-stop", compact=True, variant="warning")
            with Vertical(id="eval-results"):
                yield Static("Tick models and ctrl+r to evaluate.", id="ev-status", markup=False)
                yield ProgressBar(id="ev-progress", show_eta=False)
                with TabbedContent(id="ev-tabs"):
                    with TabPane("Scores", id="ev-tab-scores"):
                        yield self.scores_table
                        yield Static("", id="ev-compare", markup=False)
                        from .widgets.plots import LabelF1

                        yield LabelF1(id="ev-f1-inline")  # a tall terminal shows the bars under the scores
                    with TabPane("Labels", id="ev-tab-labels"):
                        yield LabelF1(id="ev-f1")
                        yield Static("", id="ev-confusion", markup=False)
                    with TabPane("Disagreements", id="ev-tab-dis"):
                        yield self.dis_table
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ev-progress").display = False
        self.fill_models()

    def backend_ready(self) -> None:
        self.fill_models()

    def on_screen_resume(self) -> None:
        self.fill_models()

    def fill_models(self) -> None:
        """The backend's models, fine-tuned and checkpoints first; the ones asked for ticked."""
        sel = self.query_one("#ev-models", SelectionList)
        have = {str(o.value) for o in sel._options}
        ticked = set(sel.selected) | set(self.initial_models)
        ids = [m.get("id") for m in self.app.models if isinstance(m.get("id"), str)]
        ids = sorted(ids, key=lambda i: (not i.startswith("ft:"), i))
        for m in self.initial_models:
            if m not in ids:
                ids.insert(0, m)
        if set(ids) == have:
            return
        sel.clear_options()
        sel.add_options([(_ticked_prompt(i, i in ticked), i, i in ticked) for i in ids])

    @on(SelectionList.SelectedChanged, "#ev-models")
    def _marks(self, event: SelectionList.SelectedChanged) -> None:
        sel = event.selection_list
        chosen = set(sel.selected)
        for index in range(sel.option_count):
            value = sel.get_option_at_index(index).value
            sel.replace_option_prompt_at_index(index, _ticked_prompt(value, value in chosen))

    @on(SelectionList.SelectionHighlighted, "#ev-models")
    def _whole_name(self, event: SelectionList.SelectionHighlighted) -> None:
        """The highlighted model's whole id, where the list has to cut it (while the person moves in the list)."""
        if self.focused is not event.selection_list:
            return
        self._status(f"{event.selection.value}" + ("  (ticked)" if event.selection.value in
                                                     event.selection_list.selected else ""), style="dim")

    def prefill(self, data: str, models: list[str], why: str = "") -> None:
        """From the Jobs workspace: a finished job's model and its own held-out data (``why`` says which)."""
        self.initial_models = list(models)
        self.query_one("#ev-data", Input).value = data
        sel = self.query_one("#ev-models", SelectionList)
        sel.deselect_all()
        self.fill_models()
        for m in models:
            try:
                sel.select(m)
            except Exception:  # noqa: BLE001 — not in the list yet (the next fill ticks it)
                pass
        if not data:
            self._status(why or "Data: name a JSONL file with reference answers.", error=True)
            self.query_one("#ev-data", Input).focus()
            return
        self._status(f"Ready: {', '.join(models)} on {why or data} — ctrl+r runs")

    # -- running ---------------------------------------------------------------------------------------------
    def _status(self, text: str, error: bool = False, style: str = "") -> None:
        self.query_one("#ev-status", Static).update(Text(text, style="bold red" if error else style))

    def models(self) -> list[str]:
        from ftui.service.evaluate import with_bases

        chosen = list(self.query_one("#ev-models", SelectionList).selected)
        return with_bases(chosen) if self.query_one("#ev-base", Checkbox).value else chosen

    def action_run(self) -> None:
        if self.running:
            self.notify("An evaluation is running (Esc stops it)", severity="warning")
            return
        if self.app.service is None:
            self._status("No backend connected (yet).", error=True)
            return
        data = os.path.expanduser(self.query_one("#ev-data", Input).value.strip())
        models = self.models()
        if not data:
            self._status("Data: name a JSONL file with reference answers.", error=True)
            return
        if not models:
            self._status("Models: tick at least one.", error=True)
            return
        conc = int(self.query_one("#ev-conc", Input).value or 4)
        limit = self.query_one("#ev-limit", Input).value
        out = self.query_one("#ev-out", Input).value.strip() or str(output_near(
            data, f"eval-{Path(data).stem}-{time.strftime('%Y%m%d-%H%M%S')}"))
        self.running = True
        self.stop_event = asyncio.Event()
        self._status(f"Reading {os.path.basename(data)}…")
        self._run(data, models, max(1, conc), int(limit) if limit else None,
                  str(Path(os.path.expanduser(out)).absolute()), self.stop_event)

    def action_trained_on(self) -> None:
        data = os.path.expanduser(self.query_one("#ev-data", Input).value.strip())
        if not data:
            self._status("Data: name the test split of a prepared data set first.", error=True)
            return
        if self.app.service is None:
            self._status("No backend connected (yet).", error=True)
            return
        self._find_trained_on(data)

    @work(exclusive=True, group="eval-trained-on", exit_on_error=False, description="Finding the models trained on it")
    async def _find_trained_on(self, data: str) -> None:
        from ftui.service.errors import ServiceError
        from ftui.service.lineage import models_trained_on

        try:
            found = await models_trained_on(self.app.service, Path(data))
        except ServiceError as e:
            self._status(e.problem.message, error=True)
            return
        if not found.models:
            self._status(found.why, error=True)
            return
        await self.app.fetch_models()
        self.prefill(data, found.models, found.why)

    def action_toggle_form(self) -> None:
        self.toggle_class("-form-hidden")

    def action_stop(self) -> None:
        if self.running and self.stop_event is not None:
            self.stop_event.set()
            self._status("Stopping… (answers so far are kept)")

    @on(Button.Pressed, "#ev-run")
    def _run_pressed(self) -> None:
        self.action_run()

    @on(Button.Pressed, "#ev-stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @work(exclusive=True, group="eval", exit_on_error=False, description="Evaluating models")
    async def _run(self, data: str, models: list[str], conc: int, limit: int | None, out: str,
                   stop: asyncio.Event) -> None:
        from ftui.core.evalset import EvalDataError, load
        from ftui.service.errors import ServiceError
        from ftui.service.evaluate import EvalParams, run, write

        try:
            try:
                evalset = await asyncio.to_thread(load, data, limit)
            except EvalDataError as e:
                self.post_message(EvalFailed(str(e)))
                return
            if not evalset.examples:
                self.post_message(EvalFailed(f"{data}: no example to evaluate"
                                             + (f" ({evalset.issues[0]})" if evalset.issues else "")))
                return
            r = await run(self.app.service, evalset, models, EvalParams(concurrency=conc),
                          progress=lambda p: self.post_message(EvalProgress(p)), stop=stop)
            files = await asyncio.to_thread(write, r, out)
        except ServiceError as e:
            self.post_message(EvalFailed(str(e)))
            return
        except OSError as e:
            self.post_message(EvalFailed(f"Cannot write {out}: {e.strerror or e}"))
            return
        finally:
            self.running = False
        self.post_message(EvalDone(r, files[2], str(files[0].parent)))

    def on_eval_progress(self, message: EvalProgress) -> None:
        p = message.progress
        bar = self.query_one("#ev-progress", ProgressBar)
        bar.display = True
        bar.update(total=max(1, p.total), progress=p.done)
        eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
        text = f"{p.done:,} of {p.total:,} answers ({p.cached:,} cached, {p.rate:.1f}/s{eta}); Esc stops"
        if p.cost_usd is not None:
            text += f"; ${p.cost_usd:,.4f} so far"
        if p.errors:
            text += f"; {p.errors} refused"
        if p.waiting:
            self._status(f"{text}\nWaiting: {p.waiting}", style="yellow")
        else:
            self._status(text)

    def on_eval_failed(self, message: EvalFailed) -> None:
        self.running = False
        self.query_one("#ev-progress").display = False
        self._status(message.error, error=True)
        self.notify(message.error, title="Eval", severity="error", timeout=10)

    def on_eval_done(self, message: EvalDone) -> None:
        self.running = False
        self.query_one("#ev-progress").display = False
        self.show(message.run, message.doc)
        if self.has_class("-narrow"):
            self.add_class("-form-hidden")  # 80 columns: the scores need the width (ctrl+b brings the form back)
        r = message.run
        if r.stopped:
            self._status(f"Stopped: {sum(a is not None for v in r.answers.values() for a in v):,} answers kept "
                         f"(cached; ctrl+r goes on). Partial results in {_near(message.folder)}", style="yellow")
        else:
            self._status(f"{message.doc['examples']:,} examples × {len(r.models)} models in "
                         f"{message.doc['seconds']:.1f} s — eval.jsonl and eval.json in {_near(message.folder)}")

    # -- results ---------------------------------------------------------------------------------------------
    def show(self, r, doc: dict) -> None:
        self.run_result, self.doc = r, doc
        labels = doc.get("labels")
        table = self.query_one("#ev-scores", DataTable)
        table.clear()
        width = 30 if self.app.size.width < 100 else 44  # 80 columns: the scores must stay in view
        for m, s in doc["models"].items():
            table.add_row(*map(Text, (short_model(m, width), _f(s["exact_match"]), _f(s["contains"]), _f(s["accuracy"]),
                                      _f(s["macro_f1"]), _f(s.get("mean_loss"), 3), _f(s.get("mean_token_accuracy")),
                                      f"{s['outside_label_set']:,}" if labels else "—", f"{s['errors']:,}")), key=m)
        lines = []
        if labels:
            lines.append(f"{len(labels)} labels; always answering the most common scores "
                         f"{doc['majority_rate']:.2f}")
        comparisons = doc.get("comparisons", [])
        if len(doc["models"]) >= 3:  # a leaderboard: best first, each against the best
            from ftui.service.evaluate import headline

            ranked = sorted(doc["models"], key=lambda m: -(headline(doc, m) or 0.0))
            best = ranked[0]
            lines.append(f"Leaderboard by {doc.get('metric')}: 1. {best} {_f(headline(doc, best))}")
            for n, m in enumerate(ranked[1:], 2):
                c = next((c for c in comparisons if {c["a"], c["b"]} == {best, m}), None)
                vs = ""
                if c is not None:
                    wins, losses = (c["wins"], c["losses"]) if c["a"] == m else (c["losses"], c["wins"])
                    pv = c["mcnemar_exact_p"]
                    vs = (f" — against the best: {wins} wins, {losses} losses, McNemar exact p = {pv:.3g}"
                          + (" (significantly worse)" if pv < 0.05 and losses > wins else ""))
                lines.append(f"{n}. {m} {_f(headline(doc, m))}{vs}")
            comparisons = []
        for c in comparisons:
            pv = c["mcnemar_exact_p"]
            lines.append(f"{c['a']} vs {c['b']}: {c['wins']} wins, {c['losses']} losses, {c['ties_both_right']} "
                         f"both right, {c['ties_both_wrong']} both wrong — McNemar exact p = {pv:.3g}"
                         + (" (significant at 0.05)" if pv < 0.05 else " (not significant at 0.05)"))
        self.query_one("#ev-compare", Static).update(Text("\n".join(lines), style="dim"))
        for chart in self.query("#ev-f1, #ev-f1-inline"):
            chart.show(doc if labels else None)
        self.query_one("#ev-f1-inline").set_class(not labels, "-empty")  # free-text answers: no bars to draw
        conf = []
        if labels:
            first, s = next(iter(doc["models"].items()))
            conf.append(f"{short_model(first, 44)}: rows = reference, columns = the label answered ('none': no label)")
            conf.append(" " * 6 + "".join(f"{lab[:5]:>6}" for lab in labels) + f"{'none':>6}")
            for lab, row in zip(labels, s["confusion"]):
                conf.append(f"{lab[:6]:>6}" + "".join(f"{v:>6,}" for v in row))
        self.query_one("#ev-confusion", Static).update(Text("\n".join(conf)))
        dis = self.query_one("#ev-dis", DataTable)
        dis.clear()
        self.rows = []
        if len(r.models) >= 2:
            from ftui.service.evaluate import disagreements

            a, b = r.models[0], r.models[1]
            self.rows = disagreements(r, a, b)
            dis.columns["a"].label = Text(a[:28])
            dis.columns["b"].label = Text(b[:28])
            for i in self.rows:
                ex = r.data.examples[i]
                dis.add_row(*map(Text, (str(ex.line), ex.reference[:30], " ".join(r.answers[a][i].text.split())[:60],
                                        " ".join(r.answers[b][i].text.split())[:60])), key=str(i))

    @on(DataTable.RowSelected, "#ev-dis")
    def _open_disagreement(self, event: DataTable.RowSelected) -> None:
        r = self.run_result
        if r is None:
            return
        from ftui.core import scoring
        from ftui.core.catalog import resolve

        i = int(event.row_key.value)
        ex = r.data.examples[i]
        labels = self.doc.get("labels") if self.doc else None
        answers = []
        for m in r.models:
            a = r.answers[m][i]
            text = a.text if a is not None else ""
            right = (scoring.predicted_label(text, labels) == scoring.normalise(ex.reference)) if labels else \
                scoring.exact(text, ex.reference)
            answers.append((m, text, right))
        self.app.push_screen(DisagreementScreen(ex, answers, resolve(self.app.model_id).encoding))

    def on_worker_state_changed(self, event) -> None:
        # (the app's funnel runs too: Textual calls FtuiScreen's handler of its own, so no super() call here)
        from textual.worker import WorkerState

        if event.worker.group == "eval" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.running = False
            self._status(f"{event.worker.description} failed: see the notification (F1 names the log file)",
                         error=True)
