"""A virtualised list of findings: renders only the visible rows (Line API), so 500,000 findings scroll like 50."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ftui.core.findings import ERROR, Finding

LINE_W, SEV_W, CODE_W = 9, 8, 26


class FindingsList(ScrollView, can_focus=True):
    """Every finding with line, severity, code and message; filterable by severity and code."""

    HELP = """\
## Findings
Every problem in the file, one row each: **line**, **severity**, **code**, **message** (and the JSON path).

- `↑` `↓` `PgUp` `PgDn` `Home` `End` move; **Enter** opens the example as a conversation.
- `e` shows errors only, `w` warnings only, `a` everything again; `c` cycles through the codes present.
- `y` copies the finding (file:line: severity code: message).
"""

    BINDINGS = [
        # e/w/a/c are on screen in the filter line above the list; the footer keeps room for the workspace keys
        Binding("up", "move(-1)", "Up", show=False, id="findings.up"),
        Binding("down", "move(1)", "Down", show=False, id="findings.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="findings.pageup"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="findings.pagedown"),
        Binding("home", "jump(0)", "First", show=False, id="findings.first"),
        Binding("end", "jump(-1)", "Last", show=False, id="findings.last"),
        Binding("enter", "open", "Open example", id="findings.open", tooltip="Open the example as a conversation"),
        Binding("e", "severity('error')", "Errors", id="findings.errors", tooltip="Show errors only", show=False),
        Binding("w", "severity('warning')", "Warnings", id="findings.warnings", tooltip="Show warnings only",
                show=False),
        Binding("a", "severity(None)", "All", id="findings.all", tooltip="Show every finding", show=False),
        Binding("c", "cycle_code", "Code", id="findings.code", tooltip="Filter by the next code present", show=False),
        Binding("y", "copy", "Copy", id="findings.copy", tooltip="Copy the finding to the clipboard", show=False),
    ]

    COMPONENT_CLASSES = {"findings--cursor", "findings--error", "findings--warning", "findings--dim",
                         "findings--header"}

    DEFAULT_CSS = """
    FindingsList { height: 1fr; }
    FindingsList > .findings--cursor { background: $accent 40%; }
    FindingsList:focus > .findings--cursor { background: $accent; color: $text; }
    FindingsList > .findings--error { color: $error; text-style: bold; }
    FindingsList > .findings--warning { color: $warning; }
    FindingsList > .findings--dim { color: $text-muted; }
    """

    cursor = reactive(0, always_update=True, init=False)

    @dataclass
    class Selected(Message):
        """Enter (or a double click) on a finding."""
        finding_list: "FindingsList"
        finding: Finding

        @property
        def control(self) -> "FindingsList":
            return self.finding_list

    @dataclass
    class FilterChanged(Message):
        finding_list: "FindingsList"
        shown: int
        total: int
        severity: str | None
        code: str | None

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._all: list[Finding] = []
        self._rows: list[Finding] = []
        self.severity: str | None = None
        self.code: str | None = None
        self.path = ""

    # -- data ------------------------------------------------------------------------------------------------
    def set_findings(self, findings: list[Finding], path: str = "") -> None:
        self._all = findings
        self.path = path
        if self.code and not any(f.code == self.code for f in findings):
            self.code = None
        self._apply()

    def set_filter(self, severity: str | None = ..., code: str | None = ...) -> None:
        if severity is not ...:
            self.severity = severity
        if code is not ...:
            self.code = code
        self._apply()

    def _apply(self) -> None:
        sev, code = self.severity, self.code
        if sev is None and code is None:
            self._rows = self._all
        else:
            self._rows = [f for f in self._all
                          if (sev is None or f.severity == sev) and (code is None or f.code == code)]
        self.virtual_size = Size(self.size.width, len(self._rows))
        self.cursor = min(self.cursor, max(0, len(self._rows) - 1))
        if self.cursor == 0:
            self.scroll_to(y=0, animate=False)
        else:
            self._scroll_cursor()
        self.refresh()
        self.post_message(self.FilterChanged(self, len(self._rows), len(self._all), sev, code))

    @property
    def rows(self) -> list[Finding]:
        return self._rows

    @property
    def codes(self) -> list[str]:
        return sorted({f.code for f in self._all})

    @property
    def current(self) -> Finding | None:
        return self._rows[self.cursor] if 0 <= self.cursor < len(self._rows) else None

    # -- rendering -------------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = round(self.scroll_offset.y) + y
        if index >= len(self._rows):
            if index == 0 and y == 0:
                text = " no findings" if not self._all else " nothing matches the filter"
                return Strip([Segment(text.ljust(width), self.get_component_rich_style("findings--dim"))])
            return Strip.blank(width, self.rich_style)
        f = self._rows[index]
        sev_style = self.get_component_rich_style("findings--error" if f.severity == ERROR else "findings--warning")
        dim = self.get_component_rich_style("findings--dim")
        line = "file" if f.line is None else str(f.line)
        msg = f.message + (f"  ({f.path})" if f.path else "")
        segments = [
            Segment(line.rjust(LINE_W - 1) + " ", dim),
            Segment(f.severity.ljust(SEV_W), sev_style),
            Segment(f.code[: CODE_W - 1].ljust(CODE_W), Style(bold=True)),
            Segment(msg),
        ]
        strip = Strip(segments).crop_extend(0, width, self.rich_style)
        if index == self.cursor:
            strip = strip.apply_style(self.get_component_rich_style("findings--cursor"))
        return strip.apply_style(self.rich_style) if index != self.cursor else strip

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self._rows))

    # -- cursor ----------------------------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor()
        self.refresh()

    def _scroll_cursor(self) -> None:
        top = round(self.scroll_offset.y)
        h = max(1, self.scrollable_content_region.height)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False)

    def action_move(self, delta: int) -> None:
        if self._rows:
            self.cursor = max(0, min(len(self._rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - 1))

    def action_jump(self, where: int) -> None:
        if self._rows:
            self.cursor = 0 if where == 0 else len(self._rows) - 1

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self, self.current))

    def action_severity(self, severity: str | None) -> None:
        self.set_filter(severity=severity, code=None if severity is None else self.code)

    def action_cycle_code(self) -> None:
        codes = [c for c in self.codes if self.severity is None or any(
            f.code == c and f.severity == self.severity for f in self._all)]
        if not codes:
            return
        nxt = codes[0] if self.code not in codes else (codes[codes.index(self.code) + 1]
                                                        if codes.index(self.code) + 1 < len(codes) else None)
        self.set_filter(code=nxt)

    def action_copy(self) -> None:
        f = self.current
        if f is not None:
            where = f"{self.path}:{f.line}" if f.line is not None else self.path
            self.app.copy_to_clipboard(f"{where}: {f.severity} {f.code}: {f.message}")
            self.app.notify(f"Copied line {f.line}: {f.code}", timeout=2)

    def on_click(self, event: events.Click) -> None:
        index = round(self.scroll_offset.y) + event.y
        if 0 <= index < len(self._rows):
            self.cursor = index
            if event.chain >= 2:
                self.action_open()
