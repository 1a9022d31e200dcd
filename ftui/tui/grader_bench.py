"""The grader workbench (a full-size dialog): an OpenAI grader, a sample (the model's answer) and an item (the data
line's keys) in; the reward, each sub-grader's reward and the errors out, live — every edit is graded again by the
backend's own ``/fine_tuning/alpha/graders/run`` (the engine RFT jobs and ``ftui eval --grader`` use), a moment after
typing stops. A grader that does not parse or that the backend refuses is named by line or by field.

Opened from the palette (*Grader workbench*) or from the create-job form (**ctrl+g** beside the grader file); ctrl+s
writes the grader to the file named at the top (atomically; an existing file other than the one loaded is replaced
only once confirmed). Dismisses with the path of the grader file written or loaded, or None."""

from __future__ import annotations

import json
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static, TextArea

from ftui.core.graders import GraderError, walk

from .base import FtuiModal
from .messages import GraderGraded
from .widgets.form_input import FormInput

DEBOUNCE = 0.35  # seconds after the last key before the sample is graded again
WIDE = 110  # columns from which the grader sits beside the sample and item

STARTER = {"type": "string_check", "name": "star", "operation": "eq", "input": "{{ sample.output_text }}",
           "reference": "{{ item.star }}"}
ERROR_WORDS = {
    "formula_parse_error": "the multi grader's formula does not parse",
    "sample_parse_error": "the sample is not the JSON the grader reads",
    "truncated_observation_error": "the sample was cut short",
    "unresponsive_reward_error": "the grader gave no reward",
    "invalid_variable_error": "a template names a key the sample or item lacks",
    "other_error": "another error",
    "python_grader_server_error": "the python grader could not be run",
    "python_grader_runtime_error": "the python grader raised or returned a non-number",
    "model_grader_server_error": "the judge model could not answer",
    "model_grader_refusal_error": "the judge model refused",
    "model_grader_parse_error": "the judge's answer did not parse",
}


def parse_grader(text: str) -> dict:
    """The grader typed in the workbench ({"grader": …} or the grader itself); a GraderError naming the line."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise GraderError(f"Grader, line {e.lineno} column {e.colno}: {e.msg}", "grader") from None
    grader = doc.get("grader", doc) if isinstance(doc, dict) else doc
    if not isinstance(grader, dict):
        raise GraderError("Grader: a JSON object is needed (OpenAI's grader, or {\"grader\": …})", "grader")
    return grader


def parse_item(text: str) -> dict:
    if not text.strip():
        return {}
    try:
        item = json.loads(text)
    except json.JSONDecodeError as e:
        raise GraderError(f"Item, line {e.lineno} column {e.colno}: {e.msg}", "item") from None
    if not isinstance(item, dict):
        raise GraderError("Item: a JSON object is needed (the data line's keys the templates read as item.KEY)",
                          "item")
    return item


def render_result(res: dict) -> Text:
    """The graders API's answer in words: reward, sub-rewards, the errors that were raised and what they mean."""
    meta = res.get("metadata") or {}
    out = Text()
    out.append("Reward ", style="bold")
    reward = res.get("reward")
    out.append(f"{reward:.3f}" if isinstance(reward, (int, float)) else "—", style="bold green"
               if isinstance(reward, (int, float)) and reward > 0 else "bold yellow")
    seconds = meta.get("execution_time")
    out.append(f"   {meta.get('name', '')} ({meta.get('type', '')})", style="dim")
    if isinstance(seconds, (int, float)):
        out.append(f" · {seconds * 1000:.0f} ms", style="dim")
    subs = res.get("sub_rewards") or {}
    if subs:
        out.append("\nSub-rewards: ", style="bold")
        out.append(" · ".join(f"{k} {v:.3f}" if isinstance(v, (int, float)) else f"{k} {v}"
                              for k, v in subs.items()))
    usage = res.get("model_grader_token_usage_per_model") or {}
    if usage:
        out.append("\nJudge tokens: " + ", ".join(f"{m} {n}" for m, n in usage.items()), style="dim")
    errors = meta.get("errors") or {}
    details = meta.get("ftui_error_details") or {}
    raised = [k for k, v in errors.items() if v is True]
    if raised:
        for k in raised:
            out.append(f"\n✗ {k}", style="bold red")
            why = details.get(k) or errors.get(f"{k}_details") or ERROR_WORDS.get(k, "")
            if why:
                out.append(f": {why}", style="red")
    else:
        out.append("\nNo errors.", style="green")
    return out


class GraderBench(FtuiModal[str | None]):
    HELP = """\
# Grader workbench
Try an OpenAI grader before a reinforcement job or an evaluation uses it. Edit the **grader** (JSON), the
**sample** (the model's answer: `{{ sample.output_text }}`, or `{{ sample.output_json.KEY }}` when it is JSON) and
the **item** (the data line's keys: `{{ item.KEY }}`); the backend grades the sample again a moment after each edit:
**reward**, each sub-grader's reward, and the errors in OpenAI's categories. **Enter** in the file field loads it,
**ctrl+s** writes the grader there, **Esc** closes.
"""
    BINDINGS = [Binding("escape", "close", "Close", id="bench.close"),
                Binding("ctrl+s", "save", "Save grader", id="bench.save", priority=True)]
    DEFAULT_CSS = """
    GraderBench { align: center middle; }
    GraderBench > Vertical { width: 100%; height: 100%; border: thick $accent; background: $surface; padding: 0 1; }
    GraderBench #bench-file-row { height: auto; }
    GraderBench #bench-file-row > Label { width: auto; padding: 0 1 0 0; }
    GraderBench #bench-file { width: 1fr; }
    GraderBench #bench-file-status { height: auto; max-height: 2; }
    GraderBench #bench-body { height: 1fr; }
    GraderBench #bench-keys { height: 1; color: $text-muted; }
    GraderBench #bench-grader { width: 1fr; height: 100%; }
    GraderBench #bench-right { width: 1fr; height: 100%; }
    GraderBench #bench-inputs { height: 1fr; min-height: 5; }
    GraderBench #bench-inputs > TextArea { width: 1fr; height: 100%; }
    GraderBench #bench-result { height: auto; min-height: 3; max-height: 10; border: round $primary;
                                padding: 0 1; }
    GraderBench.-narrow #bench-body { layout: vertical; }
    GraderBench.-narrow #bench-grader { width: 100%; height: 1fr; }
    GraderBench.-narrow #bench-right { width: 100%; height: auto; }
    GraderBench.-narrow #bench-inputs { height: 6; }
    """

    def __init__(self, path: str | None = None, sample: str = "", item: dict | None = None,
                 grader: dict | None = None) -> None:
        super().__init__()
        self.path = path or ""
        self.grader = grader if grader is not None else STARTER
        self.sample = sample
        self.item = item
        self.loaded: Path | None = None  # the file the grader text came from (saving back to it needs no question)
        self.written: str | None = None  # the file this workbench loaded or wrote, valid: the dialog's result
        self.result: dict | None = None  # the backend's last answer
        self.problem: str | None = None  # why the last edit could not be graded
        self.runs = 0  # answers received (tests wait on it)
        self._timer = None

    def compose(self) -> ComposeResult:
        grader_text = json.dumps(self.grader, indent=2, ensure_ascii=False)
        with Vertical():
            with Horizontal(id="bench-file-row"):
                yield Label("Grader file")
                yield FormInput(self.path, id="bench-file", compact=True, name_for_errors="Grader file",
                                placeholder="GRADER.json — Enter loads it, ctrl+s writes the grader below there")
            yield Static("", id="bench-file-status", markup=False)
            with Horizontal(id="bench-body"):
                grader = TextArea(grader_text, id="bench-grader", show_line_numbers=True)
                grader.border_title = "Grader (JSON)"
                yield grader
                with Vertical(id="bench-right"):
                    with Horizontal(id="bench-inputs"):
                        sample = TextArea(self.sample, id="bench-sample")
                        sample.border_title = "Sample: the model's answer"
                        yield sample
                        item = TextArea(json.dumps(self.item if self.item is not None else {"star": "4"},
                                                   ensure_ascii=False, indent=1), id="bench-item")
                        item.border_title = "Item (JSON)"
                        yield item
                    result = Static("", id="bench-result")
                    result.border_title = "Result"
                    yield result
            yield Static("Tab next · Enter in the file field loads it · ctrl+s saves · F1 help · Esc closes",
                         id="bench-keys", markup=False)

    def on_mount(self) -> None:
        self.query_one("#bench-file-status").display = False
        self._layout(self.app.size.width)
        if self.path:
            self.load(self.path)
        else:
            self._schedule()
        self.query_one("#bench-sample" if self.path else "#bench-grader", TextArea).focus()

    def on_resize(self) -> None:
        self._layout(self.app.size.width)

    def _layout(self, width: int) -> None:
        self.set_class(width < WIDE, "-narrow")

    # -- loading and saving ----------------------------------------------------------------------------------
    def _file_status(self, text: str | Text) -> None:
        status = self.query_one("#bench-file-status", Static)
        status.update(text)
        status.display = bool(str(text))

    @on(Input.Submitted, "#bench-file")
    def _file_entered(self) -> None:
        self.load(self.query_one("#bench-file", Input).value.strip())

    def load(self, path: str) -> None:
        if not path:
            self._file_status(Text("Name a grader file to load.", style="yellow"))
            return
        p = Path(path).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self._file_status(Text(f"{p}: {getattr(e, 'strerror', None) or e}", style="red"))
            return
        try:
            grader = parse_grader(text)
            text = json.dumps(grader, indent=2, ensure_ascii=False)  # the grader alone, readable
        except GraderError:
            pass  # shown as it is: the result pane names the line
        self.loaded = p.resolve()
        self.query_one("#bench-grader", TextArea).load_text(text)
        self._file_status(Text(f"Loaded {p}", style="dim"))
        self._schedule()

    def action_save(self) -> None:
        path = self.query_one("#bench-file", Input).value.strip()
        if not path:
            self._file_status(Text("Name the file to write the grader to (the field above).", style="yellow"))
            self.query_one("#bench-file", Input).focus()
            return
        try:
            grader = parse_grader(self.query_one("#bench-grader", TextArea).text)
        except GraderError as e:
            self._file_status(Text(f"Not written: {e}", style="red"))
            return
        p = Path(path).expanduser()
        if p.exists() and (self.loaded is None or p.resolve() != self.loaded):
            from .confirm import Confirm

            self.app.push_screen(Confirm(f"{p} exists. Replace it with this grader?"),
                                 lambda yes: self._write(p, grader) if yes else None)
            return
        self._write(p, grader)

    def _write(self, p: Path, grader: dict) -> None:
        from ftui.core.files import atomic_write

        try:
            atomic_write(p, (json.dumps(grader, indent=2, ensure_ascii=False) + "\n").encode())
        except OSError as e:
            self._file_status(Text(f"Not written: {p}: {e.strerror or e}", style="red"))
            return
        self.loaded = p.resolve()
        self.written = str(p)
        self._file_status(Text(f"Written {p}", style="green"))

    def action_close(self) -> None:
        if self.written is None and self.loaded is not None and self.problem is None:
            self.written = str(self.loaded)
        self.dismiss(self.written)

    # -- grading, live ---------------------------------------------------------------------------------------
    @on(TextArea.Changed)
    def _edited(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE, self.grade_now)

    def _show(self, text: str | Text, title: str = "Result") -> None:
        result = self.query_one("#bench-result", Static)
        result.border_title = title
        result.update(text)

    @work(exclusive=True, group="bench-grade", exit_on_error=False, description="Running the grader")
    async def grade_now(self) -> None:
        """Parse what is typed, have the backend grade it; the answer comes back as a GraderGraded message."""
        from ftui.service.errors import ServiceError

        try:
            grader = parse_grader(self.query_one("#bench-grader", TextArea).text)
            item = parse_item(self.query_one("#bench-item", TextArea).text)
        except GraderError as e:
            self.post_message(GraderGraded(None, str(e), "Cannot grade"))
            return
        svc = self.app.service
        if svc is None:
            self.post_message(GraderGraded(None, "No backend is connected: the grader runs on the backend (F5 "
                                           "shows its state).", "Cannot grade"))
            return
        sample = self.query_one("#bench-sample", TextArea).text
        try:
            res = await svc.run_grader(grader, sample, item)
        except ServiceError as e:
            where = f" ({e.problem.param})" if e.problem.param else ""
            self.post_message(GraderGraded(None, e.problem.message + where, "The backend refused it"))
            return
        kinds = ", ".join(sorted({g["type"] for _, g in walk(grader)}))
        self.post_message(GraderGraded(res, None, f"Result · {kinds}"))

    @on(GraderGraded)
    def _graded(self, message: GraderGraded) -> None:
        self.problem = message.problem
        if message.result is not None:
            self.result = message.result
            self._show(render_result(message.result), message.title)
        else:
            self._show(Text(message.problem or "", style="red"), message.title)
        self.runs += 1
