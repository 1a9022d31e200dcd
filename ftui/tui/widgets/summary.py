"""The dataset summary: format, counts, tokens, epochs and the cost estimate for the selected model."""

from __future__ import annotations

import os

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ftui.core.findings import CODES, ERROR


def _n(x) -> str:
    return f"{x:,}" if isinstance(x, int) else (f"{x:,.1f}" if isinstance(x, float) else str(x))


class Summary(Static):
    """What the file holds and what training on it would cost, as the selected model sees it."""

    DEFAULT_CSS = """
    Summary { height: auto; padding: 0 1; }
    """

    HELP = """\
## Summary
Format, examples, errors and warnings, total and trainable tokens (the model's own encoding), the epochs `auto`
would pick, the billing tokens (each example capped at the model's training context) and the estimated cost.
Change the model (`m`, or the command palette) and every figure follows.
"""

    COMPACT_BELOW = (80, 30)  # the summary's width, the terminal's height: below either, three lines, not a grid

    _report = None
    _compact: bool | None = None

    def on_resize(self) -> None:
        if self._report is not None and self._want_compact() != self._compact:
            self.show_report(self._report)

    def _want_compact(self) -> bool:
        width = self.size.width or self.app.size.width
        return width < self.COMPACT_BELOW[0] or self.app.size.height < self.COMPACT_BELOW[1]

    def show_report(self, report) -> None:
        self._report = report
        self._compact = self._want_compact()
        if self._compact:
            self._shown = compact(report)
            self.update(self._shown)
            return
        a, est, model = report.analysis, report.estimate, report.model
        grid = Table.grid(padding=(0, 2))
        for _ in range(4):
            grid.add_column()
        stats = report.stats()
        tok = stats["tokens_per_example"]
        errors = Text(_n(report.n_errors), style="bold red" if report.n_errors else "green")
        warnings = Text(_n(report.n_warnings), style="bold yellow" if report.n_warnings else "green")
        fmt = a.format or "unknown"
        grid.add_row(Text("file", style="dim"), Text(os.path.basename(a.path), style="bold"),
                     Text("format", style="dim"), Text(fmt, style="bold"))
        grid.add_row(Text("examples", style="dim"), _n(a.examples) + f"  ({_n(a.lines)} lines)",
                     Text("errors / warnings", style="dim"), Text.assemble(errors, " / ", warnings))
        grid.add_row(Text("tokens", style="dim"), _n(int(report.tokens.sum())),
                     Text("trainable", style="dim"), _n(int(report.trainable.sum())))
        if tok is not None:
            grid.add_row(Text("per example", style="dim"),
                         f"min {_n(tok.min)} · median {_n(tok.median)} · p90 {_n(tok.p90)} · max {_n(tok.max)}",
                         Text("encoding", style="dim"), f"{a.encoding} ({a.tokenizer})")
        ctx = f"{model.training_context:,}" if model.training_context else "unknown"
        grid.add_row(Text("model", style="dim"), Text(model.id, style="bold cyan"),
                     Text("training context", style="dim"),
                     ctx + (f"  ({est.over_context:,} over)" if est.over_context else ""))
        cost = _cost(report, est.note)
        grid.add_row(Text("epochs", style="dim"), f"{est.n_epochs}" + (" (auto)" if est.n_epochs_auto else ""),
                     Text("billed tokens", style="dim"), _n(est.billed_tokens))
        grid.add_row(Text("estimated cost", style="dim"), Text(cost, style="bold"),
                     Text("notes", style="dim"), "; ".join(model.notes) or "—")
        self._shown = grid
        self.update(grid)

    def show_message(self, text: str, error: bool = False) -> None:
        self._report = None
        self._shown = text
        self.update(Text(text, style="bold red" if error else "dim"))

    _shown: object = ""

    @property
    def plain(self) -> str:
        """What the summary says, as plain text (rendered only when asked)."""
        return self._shown if isinstance(self._shown, str) else _plain(self._shown)


def _cost(report, unpriced: str) -> str:
    """The estimate's cost as shown: dollars, or why there are none (validation data is never billed)."""
    if report.role == "validation":
        return "not billed: validation data"
    return f"${report.estimate.usd:,.2f}" if report.estimate.usd is not None else unpriced


def compact(report) -> Text:
    """The same figures in three short lines (80-column terminals): file and problems; tokens; model and cost."""
    a, est, model = report.analysis, report.estimate, report.model
    tok = report.stats()["tokens_per_example"]
    t = Text(no_wrap=False, overflow="ellipsis")
    t.append(os.path.basename(a.path), style="bold")
    t.append(f" · {a.format or 'unknown'} · {_n(a.examples)} examples · ")
    t.append(f"{_n(report.n_errors)} errors", style="bold red" if report.n_errors else "green").append(" · ")
    t.append(f"{_n(report.n_warnings)} warnings", style="bold yellow" if report.n_warnings else "green")
    t.append(f"\n{_n(int(report.tokens.sum()))} tokens ({_n(int(report.trainable.sum()))} trainable)")
    if tok is not None:
        t.append(f" · per example {_n(tok.min)}–{_n(tok.max)}, median {_n(tok.median)}", style="dim")
    cost = _cost(report, est.note or "price unknown")
    t.append("\n").append(model.id, style="bold cyan")
    t.append(f" · {est.n_epochs} epochs{' (auto)' if est.n_epochs_auto else ''} · {_n(est.billed_tokens)} billed · ")
    t.append(cost, style="bold")
    if est.over_context:
        t.append(f" · {est.over_context:,} over context", style="yellow")
    return t


def _plain(renderable) -> str:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def code_counts(report) -> Text:
    """'12 errors in 5 codes' style line with the per-code counts, errors first."""
    out = Text()
    items = sorted(report.counts.items(), key=lambda kv: (CODES[kv[0]][0] != ERROR, -kv[1], kv[0]))
    for code, n in items:
        style = "red" if CODES[code][0] == ERROR else "yellow"
        out.append(f"{code}", style=style).append(f" {n:,}  ")
    return out
