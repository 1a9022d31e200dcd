"""Compare runs (a full-size dialog opened with **m** in the Jobs workspace on the jobs marked with space): their
training and validation curves on the same axes — loss, then accuracy (reward for reinforcement runs) — aligned by
step or by trained tokens, one colour per run named in the legend by its suffix or hyperparameters; below, a table
of the runs: method, hyperparameters, data, tokens, duration, final and best validation figure, and what their
models scored in the evaluations this user ran (``$XDG_DATA_HOME/ftui/evals.json``).

Each job's whole event history and results file are read once (its own ``JobTrack``: the Jobs workspace's poll is
not disturbed); live runs are read again every few seconds (a self-rescheduling poll). Below 120 columns one chart
shows at a time (**g** switches)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Static

from ftui.service.jobs import JobTrack
from ftui.service.runs import RunRow, curve, job_hyperparameters, run_row

from .base import FtuiModal
from .messages import RunsRead
from .widgets.plots import RUN_COLOURS, RunsChart
from .widgets.tables import set_columns, sync_rows

POLL = 5.0
WIDE = 120


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "—"


def _duration(s: int | None) -> str:
    if s is None:
        return "—"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


# (chart, method family) -> [(series, "train"|"valid")]: the first series a run has of each role is drawn
SERIES = {
    ("loss", "tuned"): (("train_loss",), ("valid_loss", "full_valid_loss")),
    ("acc", "tuned"): (("train_mean_token_accuracy", "train_mean_reward_accuracy"),
                       ("valid_mean_token_accuracy", "full_valid_mean_token_accuracy", "valid_mean_reward_accuracy",
                        "full_valid_mean_reward_accuracy")),
    ("loss", "rft"): (("train_mean_reward",), ("full_valid_mean_reward",)),
    ("acc", "rft"): (("frac_reward_zero_std",), ()),
}


def family(track: JobTrack) -> str:
    return "rft" if job_hyperparameters(track.job)[0] == "reinforcement" else "tuned"


class CompareScreen(FtuiModal[None]):
    HELP = """\
# Compare runs
The jobs you marked with **space** in the Jobs workspace, side by side. The charts overlay each run's **training**
curve (a line) and **validation** curve (dots) in the run's colour; **a** aligns them by step or by trained tokens
(a job's tokens over its steps, known once it has reported them). When a run's first steps lose several times what
the rest does, the y axis is cut above the rest so the curves are told apart (the title says where); **l** shows the
whole range and back. **g** switches between loss and accuracy below
120 columns (reward and "taught nothing" for reinforcement runs). The table gives each run's method,
hyperparameters, training file, tokens, duration, final and best validation figure (the full validation loss at
epoch ends where there is one) and its model's evaluation scores. **e** measures the **best two** runs by that
figure, and their base, in the Eval workspace, on the held-out data prepared with their training file (the
`test.jsonl` beside it, else their validation file). **Esc** closes.
"""
    BINDINGS = [Binding("escape", "close", "Close", id="compare.close"),
                Binding("a", "align", "Step/tokens", id="compare.align",
                        tooltip="Align the curves by step or by trained tokens"),
                Binding("g", "toggle_chart", "Loss/accuracy", id="compare.chart",
                        tooltip="Below 120 columns one chart fits: switch between loss and accuracy"),
                Binding("l", "whole_range", "Zoom/all", id="compare.range",
                        tooltip="The whole y range, or cut where a run's first steps would squash the rest"),
                Binding("e", "eval_best", "Eval best two", id="compare.eval",
                        tooltip="Measure the two runs with the best validation figure (and their base) on the "
                                "held-out data prepared with their training file")]
    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen > Vertical { width: 100%; height: 100%; border: thick $accent; background: $surface; padding: 0 1; }
    CompareScreen #compare-title { height: 1; }
    CompareScreen #compare-legend { height: auto; max-height: 3; }
    CompareScreen #compare-charts { height: 1fr; min-height: 10; }
    CompareScreen #compare-runs { height: auto; max-height: 45%; }
    CompareScreen #compare-keys { height: 1; color: $text-muted; }
    CompareScreen.-narrow #compare-acc { display: none; }
    CompareScreen.-narrow.-show-acc #compare-acc { display: block; }
    CompareScreen.-narrow.-show-acc #compare-loss { display: none; }
    """

    def __init__(self, jobs: list[dict]) -> None:
        super().__init__()
        self.jobs = jobs
        self.tracks: list[JobTrack] = [JobTrack(dict(j)) for j in jobs]
        self.evals: dict[str, list[dict]] = {}
        self.file_names: dict[str, str] = {}  # file id -> the file's name where this user uploaded it
        self.by = "step"
        self._timer = None
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Comparing {len(self.jobs)} runs", style="bold"), id="compare-title")
            yield Static("", id="compare-legend")
            with Horizontal(id="compare-charts"):
                yield RunsChart("Loss", id="compare-loss")
                yield RunsChart("Accuracy", id="compare-acc")
            yield DataTable(id="compare-runs", cursor_type="row", zebra_stripes=True)
            yield Static("a steps/tokens · l zoom · g loss/acc · e eval best two · F1 help · Esc close",
                         id="compare-keys", markup=False)

    def on_mount(self) -> None:
        set_columns(self.query_one("#compare-runs", DataTable),
                    [("run", "run"), ("method", "method"), ("hp", "hyperparameters"), ("final", "final"),
                     ("best", "best (step)"), ("eval", "evaluation"), ("tokens", "tokens"), ("time", "duration"),
                     ("data", "training file"), ("id", "job")])
        self.set_class(self.app.size.width < WIDE, "-narrow")
        self.query_one("#compare-runs", DataTable).focus()
        self._show()
        self.read()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < WIDE, "-narrow")

    # -- reading ---------------------------------------------------------------------------------------------
    @work(exclusive=True, group="compare-read", exit_on_error=False, description="Reading the runs to compare")
    async def read(self) -> None:
        import asyncio

        from ftui.service.errors import ServiceError
        from ftui.service.evaluate import evaluations
        from ftui.service.results import ResultsError

        svc = self.app.service
        if svc is None:
            self.post_message(RunsRead(self.tracks, self.evals, problem="No backend is connected."))
            return
        problem = None
        for track in self.tracks:
            try:
                if not track.terminal or not track.events_complete:
                    if not track.terminal:
                        track.job = await svc.job(track.id)
                    await svc.new_events(track)
                    track.events_complete = track.terminal
                if track.job.get("status") == "succeeded" and not track.results_loaded:
                    try:
                        await svc.load_results(track)
                    except ResultsError as e:
                        track.results_loaded = True
                        problem = f"Results file of {track.id}: {e}"
            except ServiceError as e:
                problem = f"{track.id}: {e.problem.message}"
            model = track.job.get("fine_tuned_model")
            if model:
                self.evals[track.id] = await asyncio.to_thread(evaluations, model)
        from pathlib import Path

        from ftui.service.ledger import Ledger

        uploads = await asyncio.to_thread(Ledger().entries, svc.identity)
        self.file_names = {u.file_id: Path(u.path).name for u in uploads}
        live = any(not t.terminal for t in self.tracks)
        self.post_message(RunsRead(self.tracks, self.evals, problem=problem, live=live))

    @on(RunsRead)
    def _read(self, message: RunsRead) -> None:
        self.tracks, self.evals, self.problem = message.tracks, message.evals, message.problem
        title = Text(f"Comparing {len(self.tracks)} runs", style="bold")
        if message.problem:
            title.append(f" · {message.problem}", style="yellow")
        self.query_one("#compare-title", Label).update(title)
        self._show()
        if message.live and self.is_attached:
            self._timer = self.set_timer(POLL, self.read)

    # -- drawing ---------------------------------------------------------------------------------------------
    def rows(self) -> list[RunRow]:
        return [run_row(t, self.evals.get(t.id), self.file_names) for t in self.tracks]

    def _show(self) -> None:
        families = {family(t) for t in self.tracks}
        fam = "tuned" if "tuned" in families else "rft"
        legend = Text()
        for i, t in enumerate(self.tracks):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)]
            legend.append("■ ", style=colour[1])
            legend.append(run_row(t).label, style="bold" if family(t) == fam else "dim")
            legend.append("   ")
        if len(families) > 1:
            legend.append("(reinforcement runs are in the table: a reward is not drawn on a loss axis)", style="dim")
        self.query_one("#compare-legend", Static).update(legend)
        x = "trained tokens" if self.by == "tokens" else "step"
        dpo = all(job_hyperparameters(t.job)[0] == "dpo" for t in self.tracks)
        titles = {("loss", "tuned"): "Loss", ("acc", "tuned"): "Reward accuracy" if dpo else "Accuracy",
                  ("loss", "rft"): "Reward", ("acc", "rft"): "Taught nothing (share)"}
        for chart in ("loss", "acc"):
            train_names, valid_names = SERIES[(chart, fam)]
            runs = []
            for i, t in enumerate(self.tracks):
                if family(t) != fam:
                    continue
                train = next((n for n in train_names if t.metrics.get(n)), None)
                valid = next((n for n in valid_names if t.metrics.get(n)), None)
                runs.append((RUN_COLOURS[i % len(RUN_COLOURS)][0],
                             curve(t, train, self.by) if train else [], curve(t, valid, self.by) if valid else []))
            title = titles[(chart, fam)] + " — lines: training, dots: validation"
            self.query_one(f"#compare-{chart}", RunsChart).show(title, runs, x)
        rows = self.rows()
        table = self.query_one("#compare-runs", DataTable)
        table.border_title = f"Runs: final and best = {rows[0].measure if rows else 'valid loss'}"
        cells = []
        for i, r in enumerate(rows):
            colour = RUN_COLOURS[i % len(RUN_COLOURS)][1]
            best = f"{_fmt(r.best)} ({r.best_step})" if r.best is not None else "—"
            cells.append((r.id, {"run": Text(f"■ {r.label}", style=colour), "method": r.method,
                                 "hp": r.hyperparameters, "final": _fmt(r.final), "best": best,
                                 "eval": "; ".join(r.evals) or "—",
                                 "tokens": f"{r.trained_tokens:,}" if r.trained_tokens else "—",
                                 "time": _duration(r.duration_s), "data": r.data, "id": r.id}))
        sync_rows(table, cells)

    # -- keys ------------------------------------------------------------------------------------------------
    def action_align(self) -> None:
        self.by = "tokens" if self.by == "step" else "step"
        if self.by == "tokens" and not any(t.job.get("trained_tokens") for t in self.tracks):
            self.notify("No run has reported its trained tokens yet (they come when a job ends)", severity="warning")
        self._show()

    def action_whole_range(self) -> None:
        for chart in self.query(RunsChart):
            chart.whole = not chart.whole
            chart.draw()

    def action_toggle_chart(self) -> None:
        self.toggle_class("-show-acc")

    def best(self, n: int = 2) -> list[JobTrack]:
        """The ``n`` runs with a model and the best validation figure (lowest loss; highest reward for RFT)."""
        scored = [(r, t) for r, t in zip(self.rows(), self.tracks)
                  if r.best is not None and t.job.get("fine_tuned_model")]
        scored.sort(key=lambda rt: -rt[0].best if rt[0].method == "reinforcement" else rt[0].best)
        return [t for _, t in scored[:n]]

    def action_eval_best(self) -> None:
        best = self.best()
        if not best:
            self.notify("No run has a model and a validation figure yet", severity="warning")
            return
        self._eval(best)

    @work(group="compare-eval", exit_on_error=False, description="Finding the runs' held-out data")
    async def _eval(self, best: list[JobTrack]) -> None:
        from ftui.service.errors import ServiceError
        from ftui.service.evaluate import cache_dir
        from ftui.service.heldout import heldout_for

        folders = [self.app.last_prepared] if self.app.last_prepared is not None else []
        data = self.app.data_screen()
        if data is not None and data.current:
            from pathlib import Path

            folders.append(Path(data.current).parent)
        try:
            found = await heldout_for(self.app.service, dict(best[0].job), folders, cache_dir().parent / "eval-data")
        except ServiceError as e:
            self.notify(f"Cannot read the runs' files: {e.problem.message}", severity="error")
            return
        if self._timer is not None:
            self._timer.stop()
        self.dismiss(None)
        self.app.open_eval(str(found.path or ""), [t.job["fine_tuned_model"] for t in best], why=found.why)

    def action_close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.dismiss(None)
