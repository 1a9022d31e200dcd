"""The one file that knows about textual-plotext (pinned 1.0.1, plotext < 6): histograms whose bins come from core,
and the line charts of a job's metrics.

Moving to plotext 6 (a dolphie-style Static) would touch only this file.
"""

from __future__ import annotations

import numpy as np
from textual_plotext import PlotextPlot

from ftui.core.stats import histogram

from .names import short_model


class Histogram(PlotextPlot):
    """Bars from :func:`ftui.core.stats.histogram`; optional vertical marker (e.g. the model's context limit)."""

    DEFAULT_CSS = """
    Histogram { height: 1fr; min-height: 8; }
    """

    def __init__(self, title: str, xlabel: str, **kw) -> None:
        super().__init__(**kw)
        self.plot_title = title
        self.xlabel = xlabel
        self.values = np.zeros(0)
        self.log_x = False
        self.marker: tuple[float, str] | None = None
        self.bins = 30

    def show(self, values, *, log: bool = False, marker: tuple[float, str] | None = None, bins: int = 30) -> None:
        self.values = np.asarray(values)
        self.log_x = log
        self.marker = marker
        self.bins = bins
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        title = self.plot_title
        if self.values.size:
            h = histogram(self.values, bins=self.bins, log=self.log_x)
            centers = h.centers
            if self.log_x:
                plt.xscale("log")
                centers = np.sqrt(h.edges[:-1] * np.maximum(h.edges[1:], 1e-9))
            plt.bar(centers.tolist(), h.counts.tolist(), width=0.8, color="cyan")
            ticks = _ticks(h.edges, self.log_x)
            plt.xticks(ticks, [_label(t) for t in ticks])
            top = int(h.counts.max()) if h.counts.size else 1
            step = max(1, -(-top // 4))
            yt = list(range(0, top + step, step))
            plt.yticks(yt, [f"{y:,}" for y in yt])
            if self.marker is not None:
                x, label = self.marker
                if x <= float(h.edges[-1]) * 1.05:
                    plt.vline(x, color="red")
                title += f"   │ red: {label}" if x <= float(h.edges[-1]) * 1.05 else f"   (all below {label})"
            title += "   [log x]" if self.log_x else ""
        else:
            title += " — no data"
        plt.title(title)
        plt.xlabel(self.xlabel)
        self.refresh()


def _ticks(edges: np.ndarray, log: bool, n: int = 6) -> list[float]:
    lo, hi = float(edges[0]), float(edges[-1])
    if log and lo > 0:
        return [float(x) for x in np.unique(np.round(np.geomspace(lo, hi, n), 0))]
    if hi - lo <= 12 and np.allclose(edges - 0.5, np.round(edges - 0.5)):  # one bin per integer
        return [float(x) for x in range(int(np.ceil(lo)), int(np.floor(hi)) + 1)]
    return [float(x) for x in np.unique(np.round(np.linspace(lo, hi, n), 0))]


def _label(x: float) -> str:
    if abs(x) >= 10_000:
        return f"{x / 1000:,.0f}k"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:.3g}"


# series name -> (legend label, colour)
LOSS = (("train_loss", "training", "cyan"), ("valid_loss", "validation", "orange"),
        ("full_valid_loss", "full validation", "red"))
ACCURACY = (("train_mean_token_accuracy", "training", "cyan"), ("valid_mean_token_accuracy", "validation", "orange"),
            ("full_valid_mean_token_accuracy", "full validation", "red"))
REWARD_ACCURACY = (("train_mean_reward_accuracy", "training", "cyan"),
                   ("valid_mean_reward_accuracy", "validation", "orange"),
                   ("full_valid_mean_reward_accuracy", "full validation", "red"))


REWARD = (("train_mean_reward", "training", "cyan"), ("full_valid_mean_reward", "full validation", "red"))
NO_SIGNAL = (("frac_reward_zero_std", "groups whose samples all scored the same", "orange"),)
GRADER_COLOURS = ("green", "magenta", "yellow", "blue", "white")


def reward_lines(series_names) -> tuple:
    """The reward chart of an RFT job: training and validation reward, and each sub-grader's training reward."""
    subs = sorted(n for n in series_names if n.startswith("grader:"))
    return REWARD + tuple((n, n.split(":", 1)[1], GRADER_COLOURS[i % len(GRADER_COLOURS)]) for i, n in enumerate(subs))


class MetricsChart(PlotextPlot):
    """Lines by step for a set of series ({name: [(step, value)]}); redrawn at most a few times a second."""

    DEFAULT_CSS = """
    MetricsChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, title: str, lines=LOSS, **kw) -> None:
        super().__init__(**kw)
        self.plot_title = title
        self.lines = lines
        self.data: dict[str, list[tuple[int, float]]] = {}
        self.total_steps: int | None = None
        self._pending = False

    def set_lines(self, title: str, lines) -> None:
        """Draw these series under this title (a DPO job's accuracy is its reward accuracy, not token accuracy)."""
        if title != self.plot_title or lines != self.lines:
            self.plot_title, self.lines = title, lines

    @property
    def points(self) -> int:
        return sum(len(self.data.get(name, ())) for name, _, _ in self.lines)

    def show(self, series: dict[str, list[tuple[int, float]]], total_steps: int | None = None) -> None:
        self.data = {name: list(series.get(name, ())) for name, _, _ in self.lines}
        self.total_steps = total_steps
        if not self._pending:  # coalesce bursts: one redraw per 0.25 s at most
            self._pending = True
            self.set_timer(0.25, self._redraw)

    def _redraw(self) -> None:
        self._pending = False
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        drawn = False
        for name, label, color in self.lines:
            pts = self.data.get(name) or []
            if pts:
                plt.plot([s for s, _ in pts], [v for _, v in pts], label=label, color=color,
                         marker="braille")
                drawn = True
        title = self.plot_title if drawn else f"{self.plot_title} — no points yet"
        if drawn and self.total_steps:
            plt.xlim(0, self.total_steps)
        plt.title(title)
        plt.xlabel("step")
        self.refresh()


class _GroupedBars(PlotextPlot):
    """Bars per label, one series per split or model, side by side (redrawn on resize)."""

    COLORS = ("cyan", "orange", "magenta", "green")

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:  # pragma: no cover — each subclass draws
        raise NotImplementedError

    def _bars(self, labels: list[str], series: list[list[float]], names: list[str], title: str) -> None:
        self.plt.multiple_bar([lab if len(lab) <= 10 else lab[:9] + "…" for lab in labels], series, labels=names,
                              color=list(self.COLORS[:len(series)]))
        self.plt.title(title)
        self.refresh()

    def _empty(self, title: str) -> None:
        self.plt.title(title)
        self.refresh()


class LabelBars(_GroupedBars):
    """The answer's distribution in each split, as shares (%) side by side: a stratified split shows bars of one
    height per label."""

    DEFAULT_CSS = """
    LabelBars { height: 1fr; min-height: 8; }
    """
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.counts: dict[str, dict[str, int]] | None = None
        self.note = "Labels appear once a preview ran."

    def show(self, counts: dict[str, dict[str, int]] | None, note: str = "") -> None:
        self.counts = counts
        self.note = note
        self._draw()

    def _draw(self) -> None:
        self.plt.clear_figure()
        counts = {k: v for k, v in (self.counts or {}).items() if sum(v.values())}
        if not counts:
            self._empty(self.note or "No label set: the answers are free text")
            return
        labels = list(dict.fromkeys(lab for d in counts.values() for lab in d))
        series = [[100.0 * d.get(lab, 0) / sum(d.values()) for lab in labels] for d in counts.values()]
        names = [f"{split} ({sum(d.values()):,})" for split, d in counts.items()]
        self._bars(labels, series, names,
                   "the answer's share in each split (%)" + (f" — {self.note}" if self.note else ""))


class LabelF1(_GroupedBars):
    """Per-label F1 of each evaluated model, side by side (from eval.json's content)."""

    DEFAULT_CSS = """
    LabelF1 { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.doc: dict | None = None

    def show(self, doc: dict | None) -> None:
        self.doc = doc
        self._draw()

    def _draw(self) -> None:
        self.plt.clear_figure()
        doc = self.doc
        if not doc or not doc.get("labels"):
            self._empty("Per-label F1 appears for a label set (classification) once a run is done")
            return
        labels = doc["labels"]
        models = list(doc["models"].items())[: len(self.COLORS)]
        self.plt.ylim(0, 1)
        self._bars(labels, [[s["per_label"][lab]["f1"] for lab in labels] for _, s in models],
                   [short_model(m, 28) for m, _ in models], "F1 per label")


# a run's colour in a comparison: (plotext's name, rich's name) — the legend and the table use rich's
RUN_COLOURS = (("cyan", "cyan"), ("orange", "dark_orange"), ("magenta", "magenta"), ("green", "green"),
               ("yellow", "yellow"), ("blue", "blue"), ("red", "red"), ("white", "white"))


def focus_top(runs: list[tuple[str, list, list]], warmup: float = 0.1) -> float | None:
    """The top of a y-axis that shows where runs differ, or None when the whole range already does.

    A run's first steps often lose several times what the rest does (9.1 at step 1, then 0.02-1.5 for the other 59
    on the reviews sweep), and an axis drawn to that peak squashes every curve into its bottom rows. The first tenth
    of each run's training points (at least one, once it has four) and the validation points up to them are left
    out of the range; when what is left reaches less than two thirds of the peak, its top (with 5 % of room) is
    returned."""
    rest: list[float] = []
    every: list[float] = []
    for _, train, valid in runs:
        skip = max(1, int(len(train) * warmup)) if len(train) >= 4 else 0
        until = train[skip - 1][0] if skip else None
        rest += [v for _, v in train[skip:]]
        rest += [v for x, v in valid if until is None or x > until]
        every += [v for _, v in train] + [v for _, v in valid]
    if not rest:  # (every point is in ``every`` too)
        return None
    top, peak = max(rest), max(every)
    if peak <= 1.5 * top or top <= 0:
        return None
    return top + 0.05 * (top - min(0.0, min(every)))


class RunsChart(PlotextPlot):
    """Several runs on one axis: each run's training curve as a line and its validation curve as dots, in the
    run's colour (the legend is the screen's: one entry per run, not per line). ``whole``: False (the default)
    cuts the axis at :func:`focus_top` when the first steps would squash the rest, and says so in the title."""

    DEFAULT_CSS = """
    RunsChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, title: str, **kw) -> None:
        super().__init__(**kw)
        self.plot_title = title
        self.runs: list[tuple[str, list, list]] = []
        self.xlabel = "step"
        self.whole = False
        self.shown_title = title

    def show(self, title: str, runs: list[tuple[str, list, list]], xlabel: str) -> None:
        """``runs``: [(plotext colour, training points, validation points)], points being [(x, value)]."""
        self.plot_title, self.runs, self.xlabel = title, runs, xlabel
        self.draw()

    def on_resize(self) -> None:
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        top = None if self.whole else focus_top(self.runs)
        cut = (lambda v: min(v, top)) if top is not None else (lambda v: v)
        drawn = False
        for colour, train, valid in self.runs:
            if train:
                plt.plot([x for x, _ in train], [cut(v) for _, v in train], color=colour, marker="braille")
                drawn = True
            if valid:
                plt.scatter([x for x, _ in valid], [cut(v) for _, v in valid], color=colour, marker="dot")
                drawn = True
        title = self.plot_title if drawn else f"{self.plot_title} — no points yet"
        if top is not None:  # from just under the lowest point to the cut: the runs' differences fill the chart
            low = min(v for _, train, valid in self.runs for _, v in train + valid)
            bottom = low - 0.05 * (top - low)
            plt.ylim(max(0.0, bottom) if low >= 0 else bottom, top)
            title += f" · y cut at {top:.3g} (l)"
        self.shown_title = title
        plt.title(title)
        plt.xlabel(self.xlabel)
        self.refresh()
