"""A reinforcement job's rollouts (a full-size dialog opened with **o** in the Jobs workspace): each validation step
with its mean reward; the step's prompts with the rewards of their samples (worst first with **s**, to see what the
model still gets wrong); the highlighted prompt in full with every sample, its reward, sub-rewards and errors.
Read from the local backend's ``/v1/ftui/fine_tuning/jobs/{id}/rollouts``; while the job runs, new validation steps
are read as they come (a self-rescheduling poll). Other backends keep no rollouts, and the view says so."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Static

from .base import FtuiModal
from .messages import RolloutsRead
from .widgets.tables import set_columns, sync_rows

POLL = 5.0  # seconds between reads of a live job's steps
LIVE = ("validating_files", "queued", "running", "paused")
WIDE = 120


def reward_text(r: float | None) -> Text:
    if r is None:
        return Text("—", style="dim")
    return Text(f"{r:.3f}", style="green" if r >= 0.5 else "yellow" if r > 0 else "red")


def one_line(text: str, width: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def render_prompt(p: dict) -> Text:
    """A prompt in full, its item, and each sample with its reward, sub-rewards and errors."""
    out = Text()
    out.append(f"Prompt {p.get('index', 0) + 1}", style="bold")
    out.append(f"  mean reward {p.get('mean_reward', 0):.3f}\n", style="dim")
    out.append(str(p.get("prompt", "")) + "\n")
    item = p.get("item") or {}
    if item:
        out.append("Item: ", style="bold")
        out.append(", ".join(f"{k}={one_line(v if isinstance(v, str) else repr(v), 60)}" for k, v in item.items())
                   + "\n", style="dim")
    for n, sample in enumerate(p.get("samples") or [], 1):
        out.append(f"\nSample {n} · reward ", style="bold")
        out.append_text(reward_text(sample.get("reward")))
        subs = sample.get("sub_rewards") or {}
        if subs:
            out.append("  (" + ", ".join(f"{k} {v:.2f}" for k, v in subs.items()) + ")", style="dim")
        for e in sample.get("errors") or []:
            out.append(f"  ✗ {e}", style="red")
        text = sample.get("text") or "(empty answer)"
        short = len(text) <= 40 and "\n" not in text
        out.append((" → " if short else "\n") + text + ("" if short else "\n"))
    return out


class RolloutScreen(FtuiModal[None]):
    HELP = """\
# Rollouts
What a reinforcement job's model answered at each **validation step**, and the reward its grader gave each answer.
Pick a step (its mean reward is the validation reward of the charts), then a prompt: its samples are shown in full
with their rewards, sub-rewards and errors. **s** sorts the prompts worst first (or back in file order); **ctrl+r**
reads the steps again (a live job's new steps come by themselves). **Esc** closes.
"""
    BINDINGS = [Binding("escape", "close", "Close", id="rollouts.close"),
                Binding("s", "sort", "Worst first", id="rollouts.sort"),
                Binding("ctrl+r", "refresh", "Refresh", id="rollouts.refresh")]
    DEFAULT_CSS = """
    RolloutScreen { align: center middle; }
    RolloutScreen > Vertical { width: 100%; height: 100%; border: thick $accent; background: $surface; padding: 0 1; }
    RolloutScreen #rollouts-title { height: 1; }
    RolloutScreen #rollouts-body { height: 1fr; }
    RolloutScreen #rollouts-left { width: 1fr; }
    RolloutScreen #rollout-steps { height: 7; }
    RolloutScreen #rollout-prompts { height: 1fr; }
    RolloutScreen #rollout-detail { width: 1fr; border: round $primary; padding: 0 1; }
    RolloutScreen #rollouts-keys { height: 1; color: $text-muted; }
    RolloutScreen.-narrow #rollouts-body { layout: vertical; }
    RolloutScreen.-narrow #rollouts-left { width: 100%; height: 1fr; }
    RolloutScreen.-narrow #rollout-steps { height: 5; }
    RolloutScreen.-narrow #rollout-detail { width: 100%; height: 1fr; }
    """

    def __init__(self, job: dict) -> None:
        super().__init__()
        self.job = job
        self.job_id = job["id"]
        self.steps: list[dict] = []
        self.step: dict | None = None  # the step whose prompts are shown
        self.worst_first = False
        self.problem: str | None = None
        self._timer = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("Rollouts of ", "bold"), (self.job_id, "bold"),
                                      (f" · {self.job.get('fine_tuned_model') or self.job.get('model', '')}", "dim")),
                        id="rollouts-title")
            with Horizontal(id="rollouts-body"):
                with Vertical(id="rollouts-left"):
                    steps = DataTable(id="rollout-steps", cursor_type="row")
                    steps.border_title = "Validation steps"
                    yield steps
                    yield DataTable(id="rollout-prompts", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="rollout-detail"):
                    yield Static("Reading the rollouts…", id="rollout-text", markup=False)
            yield Static("↑↓ pick · Tab next · s worst first · ctrl+r refresh · F1 help · Esc closes",
                         id="rollouts-keys", markup=False)

    def on_mount(self) -> None:
        set_columns(self.query_one("#rollout-steps", DataTable),
                    [("step", "Step"), ("reward", "Mean reward"), ("prompts", "Prompts"), ("samples", "Samples")])
        set_columns(self.query_one("#rollout-prompts", DataTable),
                    [("n", "#"), ("mean", "Mean"), ("best", "Best"), ("prompt", "Prompt")])
        self.set_class(self.app.size.width < WIDE, "-narrow")
        self.query_one("#rollout-steps", DataTable).focus()
        self.read_steps()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < WIDE, "-narrow")

    # -- reading ---------------------------------------------------------------------------------------------
    @work(exclusive=True, group="rollout-steps", exit_on_error=False, description="Reading the rollouts")
    async def read_steps(self) -> None:
        from ftui.service.errors import ServiceError

        svc = self.app.service
        if svc is None:
            self.post_message(RolloutsRead(self.job_id, problem="No backend is connected."))
            return
        try:
            steps = await svc.rollout_steps(self.job_id)
            status = (await svc.job(self.job_id)).get("status")
        except ServiceError as e:
            problem = e.problem.message
            if e.problem.status == 404:
                problem = ("This backend keeps no rollouts: they are an ftui endpoint of the local backend "
                           "(ftui serve).")
            self.post_message(RolloutsRead(self.job_id, problem=problem))
            return
        self.post_message(RolloutsRead(self.job_id, steps=steps, live=status in LIVE))

    @work(exclusive=True, group="rollout-step", exit_on_error=False, description="Reading a step's rollouts")
    async def read_step(self, step: int) -> None:
        from ftui.service.errors import ServiceError

        svc = self.app.service
        if svc is None:
            self.post_message(RolloutsRead(self.job_id, problem="No backend is connected."))
            return
        try:
            doc = await svc.rollouts(self.job_id, step)
        except ServiceError as e:
            self.post_message(RolloutsRead(self.job_id, problem=e.problem.message))
            return
        self.post_message(RolloutsRead(self.job_id, step=doc))

    @on(RolloutsRead)
    def _read(self, message: RolloutsRead) -> None:
        if message.problem is not None:
            self.problem = message.problem
            self.query_one("#rollout-text", Static).update(Text(message.problem, style="yellow"))
            return
        self.problem = None
        if message.steps is not None:
            self._show_steps(message.steps)
            if message.live:  # dolphie's poll: the next read is scheduled once this one has been shown
                self._timer = self.set_timer(POLL, self.read_steps)
        if message.step is not None:
            self.step = message.step
            self._show_prompts()

    def _show_steps(self, steps: list[dict]) -> None:
        table = self.query_one("#rollout-steps", DataTable)
        first = not self.steps
        self.steps = steps
        sync_rows(table, [(str(s["step"]), {"step": f"{s['step']}", "reward": reward_text(s.get("mean_reward")),
                                            "prompts": str(s.get("prompts", "")),
                                            "samples": str(s.get("samples", ""))}) for s in steps])
        if not steps:
            why = ("It has no validation file: rollouts are kept at validation steps."
                   if not self.job.get("validation_file") else "No validation step has run yet.")
            if (self.job.get("method") or {}).get("type") != "reinforcement":
                why = "Rollouts are kept for reinforcement jobs only."
            self.query_one("#rollout-text", Static).update(Text(why, style="dim"))
            return
        if first:  # the latest step, the one the charts end on
            table.move_cursor(row=len(steps) - 1)
            self.read_step(steps[-1]["step"])

    @on(DataTable.RowHighlighted, "#rollout-steps")
    def _step_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and (self.step is None or str(self.step.get("step")) != key):
            self.read_step(int(key))

    def _ordered(self) -> list[dict]:
        prompts = list((self.step or {}).get("data") or [])
        if self.worst_first:
            prompts.sort(key=lambda p: (p.get("mean_reward", 0), p.get("index", 0)))
        return prompts

    def _show_prompts(self) -> None:
        table = self.query_one("#rollout-prompts", DataTable)
        table.border_title = f"Step {self.step['step']}: {len(self.step['data'])} prompts" + (
            " · worst first" if self.worst_first else "")
        table.clear()
        for p in self._ordered():
            best = max((s.get("reward", 0) for s in p.get("samples") or []), default=None)
            table.add_row(Text(str(p.get("index", 0) + 1)), reward_text(p.get("mean_reward")), reward_text(best),
                          Text(one_line(p.get("prompt", ""), 120)), key=str(p.get("index", 0)))
        if table.row_count:
            table.move_cursor(row=0)
            self._show_detail(0)

    @on(DataTable.RowHighlighted, "#rollout-prompts")
    def _prompt_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def _show_detail(self, row: int) -> None:
        prompts = self._ordered()
        if 0 <= row < len(prompts):
            self.query_one("#rollout-text", Static).update(render_prompt(prompts[row]))
            self.query_one("#rollout-detail", VerticalScroll).scroll_home(animate=False)

    # -- keys ------------------------------------------------------------------------------------------------
    def action_sort(self) -> None:
        self.worst_first = not self.worst_first
        if self.step is not None:
            self._show_prompts()

    def action_refresh(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.read_steps()

    def action_close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.dismiss(None)
