"""One example as a conversation: roles coloured, the offending message highlighted, tokens per message, raw JSON."""

from __future__ import annotations

import bisect
import os

import numpy as np
import orjson
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from ftui.core.example import ExampleView, example_view
from ftui.core.findings import ERROR

from .base import FtuiScreen
from .widgets.conversation import MessageBox, message_boxes  # noqa: F401 (MessageBox: tests query it)
from .widgets.footer import Footer


def _changed_since(analysis) -> str:
    """A note when the file on disk is no longer the one analysed (edited, truncated, deleted)."""
    try:
        st = os.stat(analysis.path)
    except OSError as e:
        return f"The file is gone ({e.strerror}): this view shows what the analysis knew"
    if st.st_size != analysis.size or st.st_mtime != analysis.mtime:
        return "The file changed since it was analysed: ctrl+r in the Data workspace analyses it again"
    return ""


class ExampleScreen(FtuiScreen):
    HELP = """\
# Example
The example at one line of the file, as a conversation. Each message shows its role, its tokens (the cookbook's
count: 3 + its strings) and its JSON path; a message a finding points at is framed in red. `weight: 0` answers
are dimmed (not trained).

`n`/`p` next / previous example, `]`/`[` next / previous example **with findings**, `g` go to a line, `r` raw
JSON, `Esc` back to the findings.
"""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="example.back"),
        Binding("n,right", "step(1)", "Next", id="example.next", tooltip="Next example"),
        Binding("p,left", "step(-1)", "Previous", id="example.previous", tooltip="Previous example"),
        Binding("right_square_bracket", "step_finding(1)", "Next problem", id="example.next_finding",
                tooltip="Next example with findings"),
        Binding("left_square_bracket", "step_finding(-1)", "Prev problem", id="example.previous_finding",
                tooltip="Previous example with findings"),
        Binding("g", "goto", "Go to line", id="example.goto"),
        Binding("r", "toggle_raw", "Raw JSON", id="example.raw", tooltip="Show the line as JSON"),
    ]

    DEFAULT_CSS = """
    ExampleScreen #where { height: auto; padding: 0 1; background: $boost; }
    ExampleScreen #problems { height: auto; max-height: 8; padding: 0 1; }
    ExampleScreen #conversation { padding: 0 1; }
    ExampleScreen #raw { padding: 0 1; }
    """

    def __init__(self, analysis, findings: list, line: int, focus_path: str = "") -> None:
        super().__init__()
        self.analysis = analysis
        self.findings = findings
        self.lines = analysis.line  # numpy array of the non-blank physical lines
        self.problem_lines = sorted({f.line for f in findings if f.line is not None})
        self.line = line
        self.focus_path = focus_path
        self.raw = False
        self.view: ExampleView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="where", markup=False)
        yield Static(id="problems", markup=False)
        with VerticalScroll(id="conversation"):
            pass
        with VerticalScroll(id="raw"):
            yield Static(id="raw-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#raw").display = False
        self.show_line(self.line, self.focus_path)

    # -- rendering -------------------------------------------------------------------------------------------
    def show_line(self, line: int, focus_path: str = "") -> None:
        a = self.analysis
        self.line = line
        self.view = v = example_view(a.path, line, a.encoding, a.line_offset(line), self.findings)
        changed = _changed_since(a)
        if changed:
            v.error = (v.error + ". " if v.error else "") + changed
        index = int(np.searchsorted(self.lines, line))
        where = Text.assemble((f"{os.path.basename(a.path)}:{line}", "bold"),
                              f"   example {index + 1:,} of {self.lines.size:,}", ("   ", ""),
                              (f"{sum(m.tokens for m in v.messages):,} tokens in {len(v.messages)} messages", "dim"))
        self.query_one("#where", Static).update(where)
        problems = Text()
        for f in v.findings:
            style = "bold red" if f.severity == ERROR else "yellow"
            problems.append(f"{f.severity:<8}", style=style).append(f"{f.code}  ", style="bold")
            problems.append(f.message + (f"  ({f.path})" if f.path else "") + "\n")
        if v.error:
            problems.append(v.error + "\n", style="bold red")
        if not v.findings and not v.error:
            problems.append("no findings on this line", style="green")
        self.query_one("#problems", Static).update(problems)
        conv = self.query_one("#conversation", VerticalScroll)
        conv.remove_children()
        offending = {v.message_for(f.path) for f in v.findings if f.path}
        focus = v.message_for(focus_path) if focus_path else None
        boxes = message_boxes(v, offending)
        conv.mount_all(boxes)
        if focus is not None and focus < len(boxes):
            self.call_after_refresh(boxes[focus].scroll_visible, animate=False)
        else:
            conv.scroll_home(animate=False)
        self._render_raw()

    def _render_raw(self) -> None:
        v = self.view
        if v is None or not self.raw:
            return
        try:
            pretty = orjson.dumps(orjson.loads(v.raw), option=orjson.OPT_INDENT_2).decode()
            self.query_one("#raw-text", Static).update(Syntax(pretty, "json", word_wrap=True,
                                                              background_color="default"))
        except orjson.JSONDecodeError:
            self.query_one("#raw-text", Static).update(Text(v.raw))

    # -- actions ---------------------------------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        lines = self.lines
        if lines.size == 0:
            return
        i = int(np.searchsorted(lines, self.line, side="right" if delta > 0 else "left"))
        j = i if delta > 0 else i - 1
        if 0 <= j < lines.size:
            self.show_line(int(lines[j]))
        else:
            self.notify("No more examples in this direction", timeout=2)

    def action_step_finding(self, delta: int) -> None:
        pl = self.problem_lines
        i = bisect.bisect_right(pl, self.line) if delta > 0 else bisect.bisect_left(pl, self.line) - 1
        if 0 <= i < len(pl):
            self.show_line(pl[i])
        else:
            self.notify("No more examples with findings in this direction", timeout=2)

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self.query_one("#raw").display = self.raw
        self.query_one("#conversation").display = not self.raw
        self._render_raw()

    def action_goto(self) -> None:
        from .prompt import PathPrompt

        def done(value: str | None) -> None:
            if not value:
                return
            line = int(value)
            if self.analysis.line_offset(line) is None:
                self.notify(f"Line {line} holds no example (blank or past the end: the file has "
                            f"{self.analysis.lines:,} lines)", severity="warning")
                return
            self.show_line(line)

        self.app.push_screen(PathPrompt("Go to line", "", "line number", restrict=r"[0-9]*"), done)
