"""The Jobs workspace: the backend's jobs kept live, the selected job's detail, events, metrics and checkpoints.

Polling follows dolphie: one async worker per tick, and the next tick is scheduled only when it has finished
(``set_timer``, never ``set_interval``), with backoff when the backend is away and Retry-After when it says so.
A tick costs: one request per live job (the job) plus one for its new events; a terminal job costs nothing once its
events, checkpoints and results are loaded; the job list itself is re-read every ``LIST_EVERY`` seconds. While the
pane is hidden only the live jobs' status is read (4× slower), so the toast and bell still come when one ends.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Header, Log, Static
from textual.widgets.data_table import ColumnKey

from ftui.service.jobs import LIST_EVERY, JobPoller, JobTrack, Tick

from .base import FtuiScreen
from .errors import guarded
from .messages import JobLineage, JobsPolled, PollProblem
from .widgets.footer import Footer
from .widgets.tables import set_columns, sync_rows

STATUS_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "paused": "magenta",
                "queued": "blue", "validating_files": "blue"}


def ts(t: int | None, with_date: bool = True) -> str:
    if not t:
        return "—"
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def method_of(job: dict) -> tuple[str, dict]:
    m = job.get("method") or {}
    kind = m.get("type") or "supervised"
    hp = ((m.get(kind) or {}).get("hyperparameters") or job.get("hyperparameters") or {})
    return kind, {k: v for k, v in hp.items() if v is not None}


class JobsScreen(FtuiScreen):
    CSS_PATH = Path(__file__).resolve().parent / "jobs.tcss"  # parsed when the workspace first opens
    HELP = """\
# Jobs workspace
The backend's fine-tuning jobs, live. Pick one in the list: its **detail**, **event log** (follows live),
**loss and accuracy charts** (from metrics events; from the results CSV once finished) and **checkpoints**.
Press **n** to create a job from the Data workspace's file. Enter on a checkpoint chats with it. For a
reinforcement job, **o** opens its **rollouts**: each validation step's prompts with the samples and their rewards.
**Space** marks jobs (✓) and **m** compares them: their curves on one axis, their figures and scores in a table.
A queued job's step column gives its place in the backend's queue (the local backend trains one job at a time).
"""

    # the footer shows the everyday keys; F1 lists them all (pause, resume, delete, save CSV, copy, refresh)
    BINDINGS = [
        Binding("n", "new_job", "New job", id="jobs.new", tooltip="Create a job from the open dataset"),
        Binding("c", "cancel_job", "Cancel", id="jobs.cancel", tooltip="Cancel the selected job (asks first)"),
        Binding("p", "pause_job", "Pause", id="jobs.pause", tooltip="Pause the selected running job", show=False),
        Binding("u", "resume_job", "Resume", id="jobs.resume", tooltip="Resume the selected paused job", show=False),
        Binding("d", "delete_model", "Delete model", id="jobs.delete_model",
                tooltip="Delete the job's fine-tuned model (asks first)", show=False),
        Binding("s", "save_results", "Save CSV", id="jobs.save_results", tooltip="Download the results CSV",
                show=False),
        Binding("y", "copy_model", "Copy id", id="jobs.copy_model", tooltip="Copy the fine-tuned model id", show=False),
        Binding("t", "chat", "Chat", id="jobs.chat", tooltip="Chat with the fine-tuned model (or checkpoint)"),
        Binding("e", "eval", "Eval", id="jobs.eval",
                tooltip="Measure the fine-tuned model (or checkpoint) against its base on held-out data"),
        Binding("ctrl+r", "refresh", "Refresh", id="jobs.refresh", tooltip="Read the job list again now", show=False),
        Binding("v", "view_events", "Events in full", id="jobs.events", show=False,
                tooltip="The selected job's events, every line whole (the log cuts them at its width)"),
        Binding("o", "rollouts", "Rollouts", id="jobs.rollouts", show=False,
                tooltip="A reinforcement job's validation samples with their rewards, step by step"),
        Binding("g", "toggle_chart", "Loss/accuracy", id="jobs.chart",
                tooltip="Below 100 columns one chart fits: switch between loss and accuracy"),
        Binding("space", "mark", "Mark", id="jobs.mark", show=False,
                tooltip="Mark the selected job (or unmark it) for a comparison"),
        Binding("m", "compare", "Compare", id="jobs.compare",
                tooltip="Compare the marked jobs: their curves on one axis and their figures side by side"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.poller: JobPoller | None = None  # made when the backend is ready (its interval depends on it)
        self.selected: str | None = None
        self._focus_pending: str | None = None  # a job just created, selected when its row arrives
        self.hidden = False
        self._timer = None
        self._in_flight = False  # a tick is running: an early tick asked now waits for it (never cancels it)
        self._early = False
        self._shown_events = 0  # how many of the selected track's events are in the log
        self._problem_shown = False
        self.marked: list[str] = []  # jobs marked for a comparison, in the order they were marked
        self._queue: dict[str, int] = {}  # queued job -> its place in the backend's queue (1: next)
        self._lineage: dict[str, tuple[str, str]] = {}  # job id -> (its status then, source → … → evaluations)
        self._lineage_asked: dict[str, str] = {}  # job id -> the status its lineage was last asked for

    @property
    def tracks(self) -> dict[str, JobTrack]:
        return self.poller.tracks if self.poller is not None else {}

    @property
    def list_every(self) -> float:
        return self.poller.list_every if self.poller is not None else LIST_EVERY

    @list_every.setter
    def list_every(self, seconds: float) -> None:
        self.poller.list_every = seconds

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="jobs-main"):
            yield Static("", id="jobs-status", markup=False)
            table = DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
            yield table
            with Horizontal(id="jobs-bottom"):
                with Vertical(id="job-left"):
                    yield Static("Select a job.", id="job-detail", markup=False)
                    yield Log(id="events", max_lines=5000)
                with Vertical(id="job-right"):
                    from .widgets.plots import ACCURACY, LOSS, MetricsChart

                    with Horizontal(id="charts"):
                        yield MetricsChart("Loss", LOSS, id="chart-loss")
                        yield MetricsChart("Token accuracy", ACCURACY, id="chart-acc")
                    yield DataTable(id="checkpoints", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        set_columns(self.query_one("#jobs", DataTable),
                    [("id", "job"), ("model", "base model"), ("method", "method"), ("status", "status"),
                     ("step", "step"), ("created", "created"), ("ft", "fine-tuned model")])
        c = self.query_one("#checkpoints", DataTable)
        set_columns(c, [("step", "step"), ("model", "checkpoint model"), ("train", "train loss"),
                        ("valid", "valid loss"), ("acc", "accuracy")])
        c.border_title = "Checkpoints (Enter: chat with it)"
        self.query_one("#events", Log).border_title = "Events (v: in full)"
        self.backend_ready()

    def backend_ready(self) -> None:
        if self.app.service is None:
            msg = "No backend (config: backend = \"off\")." if self.app.profile.kind == "off" else "Connecting…"
            self.query_one("#jobs-status", Static).update(msg)
            return
        if self.poller is None:
            self.poller = JobPoller(self.app.profile.interval)
        self.query_one("#jobs-status", Static).update("Reading the jobs…")
        self.request_tick()

    # -- polling ---------------------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        return self.app.profile.interval

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        # never 0: a zero-interval Timer that fires late divides by zero (textual 8.2.8 timer.py)
        self._timer = self.set_timer(max(delay, 0.01), self._tick)

    def request_tick(self) -> None:
        """A tick as soon as possible. One already running is never cancelled (it may have read a job's new state):
        the early tick is coalesced and runs right after it."""
        if self._in_flight:
            self._early = True
        else:
            self._schedule(0)

    def _tick(self) -> None:
        self._timer = None
        if self.app.service is None or self.poller is None or not self.is_attached:
            return
        if self._in_flight:
            self._early = True
            return
        self._in_flight = True
        self.poll(self.hidden, self.selected)

    @work(group="jobs-poll", exit_on_error=False, description="Polling jobs")
    async def poll(self, hidden: bool, selected: str | None) -> None:
        """One tick. Whatever happens in it, what it read is rendered and the next tick is scheduled."""
        from ftui.service.errors import Problem, ServiceError

        tick, problem = Tick(), None
        try:
            await self.poller.tick(self.app.service, tick, now=time.monotonic(), hidden=hidden, selected=selected)
        except asyncio.CancelledError:
            self._in_flight = False
            raise
        except ServiceError as e:
            problem = e.problem
        except Exception as e:  # noqa: BLE001 — nobody foresaw it: logged and explained, polling goes on
            from .errors import report

            problem = Problem("bug", f"Polling jobs failed: {report('Polling jobs', e)}")
        self._in_flight = False
        self.post_message(JobsPolled(tick.changed, tick.new_events, tick.finished, listed=tick.listed,
                                     extra=tick.extra, notes=tick.notes, ok=problem is None))
        delay = self.poller.next_delay(problem, hidden)
        if problem is not None:
            self.post_message(PollProblem(problem, delay))
        if self._early:
            self._early, delay = False, 0
        if self.is_attached:
            self._schedule(delay)

    def on_screen_suspend(self) -> None:
        self.hidden = True

    def on_screen_resume(self) -> None:
        self._lineage.clear()  # read again when shown: an evaluation run meanwhile is a new link
        self._lineage_asked.clear()
        was, self.hidden = self.hidden, False
        if was and self.poller is not None:
            self.request_tick()  # catch up at once

    # -- rendering -------------------------------------------------------------------------------------------
    @on(PollProblem)
    def _problem(self, message: PollProblem) -> None:
        self.app.set_online(message.problem)
        self._problem_shown = True
        self.query_one("#jobs-status", Static).update(
            Text(f"{message.problem.message}  (next try in {message.retry_in:.0f} s)", style="yellow"))

    @on(JobsPolled)
    @guarded("Showing the jobs")
    def _polled(self, message: JobsPolled) -> None:
        if message.ok:
            self.app.set_online(None)
            self._problem_shown = False
        if not self._problem_shown:
            n_live = sum(1 for t in self.tracks.values() if not t.terminal)
            self.query_one("#jobs-status", Static).update(
                f"{len(self.tracks)} jobs · {n_live} live · polling every {self.interval:g} s")
        table = self.query_one("#jobs", DataTable)
        ids = set(message.changed) | set(message.new_events)
        from ftui.service.runs import queue_positions

        self._queue = queue_positions([t.job for t in self.tracks.values()]) if self.app.is_ftui_serve else {}
        if message.changed:  # one job leaving the queue moves every other queued job up
            ids |= set(self._queue)
        order = sorted(self.tracks.values(), key=lambda t: t.job.get("created_at") or 0, reverse=True)
        added = any(t.id not in table.rows for t in order)
        sync_rows(table, [(t.id, self._row(t)) for t in order if t.id in ids or t.id not in table.rows],
                  remove_missing=False)
        if added:  # newest first, as after a restart; the cursor stays on the job it was on
            created = {t.id: t.job.get("created_at") or 0 for t in order}
            table.sort("id", key=lambda job_id: (created.get(str(job_id), 0), str(job_id)), reverse=True)
            if self.selected in table.rows:
                table.move_cursor(row=table.get_row_index(self.selected), animate=False)
        if self._focus_pending is not None and self._focus_pending in table.rows:
            self._focus_job(self._focus_pending)
        elif self.selected is None and table.row_count:
            self._select(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
        elif self.selected in ids or (message.extra or {}).get(self.selected):
            self._render_detail()
        for note in message.notes or ():
            self.notify(note, severity="warning")
        for job_id in message.finished:
            job = self.tracks[job_id].job
            sev = "information" if job["status"] == "succeeded" else "warning"
            model = f": {job['fine_tuned_model']}" if job.get("fine_tuned_model") else ""
            self.app.notify(f"Job {job_id} {job['status']}{model}", title="Job finished", severity=sev, timeout=10)
            self.app.bell()

    def _row(self, track: JobTrack) -> dict:
        job = track.job
        kind, _ = method_of(job)
        st = job["status"]
        place = self._queue.get(job["id"])
        if place is not None:
            step = "starting" if place == 0 else "next" if place == 1 else f"#{place} in queue"
        elif track.total_steps:
            step = f"{track.step or 0}/{track.total_steps}"
        else:  # not known yet: a job's steps come with its events, which a finished job loads when it is selected
            step = {"running": "…", "succeeded": "done"}.get(st, "—")
        return {"id": ("✓ " if job["id"] in self.marked else "") + job["id"], "model": job.get("model") or "",
                "method": kind,
                "status": Text(st, style=STATUS_STYLE.get(st, "")), "step": step,
                "created": ts(job.get("created_at")), "ft": job.get("fine_tuned_model") or ""}

    @on(DataTable.RowHighlighted, "#jobs")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        # the row under the cursor now, not the event's: a highlight posted before the list was sorted names the
        # row that was there then (jobs created in the same second came out with the detail of another row)
        table = event.data_table
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        if key is not None and key != self.selected:
            self._select(key)

    def _select(self, job_id: str) -> None:
        self.selected = job_id
        self._shown_events = 0
        self.query_one("#events", Log).clear()
        self.query_one("#checkpoints", DataTable).clear()  # another job's checkpoints
        self._render_detail()
        track = self.tracks.get(job_id)
        if track and (not track.events_complete or not track.results_loaded) and self.app.service is not None:
            self.request_tick()  # load what the detail needs now

    # not exclusive: a read for another job (the selection moved on) must not cancel this one, which was its job's
    # only read for that status (a succeeded job's detail then lacked its model for good); a result that comes for a
    # status the job has left is dropped in _lineage_read, the read for the new one being on its way
    @work(group="jobs-lineage", exit_on_error=False, description="Reading a job's lineage")
    async def _read_lineage(self, job: dict) -> None:
        from ftui.service.errors import ServiceError
        from ftui.service.lineage import lineage_of, lineage_text

        try:
            links = await lineage_of(self.app.service, job)
        except ServiceError:
            return
        self.post_message(JobLineage(job["id"], job["status"], lineage_text(links)))

    @on(JobLineage)
    def _lineage_read(self, message: JobLineage) -> None:
        track = self.tracks.get(message.job_id)
        if track is not None and track.job["status"] != message.status:
            return
        self._lineage[message.job_id] = (message.status, message.text)
        if message.job_id == self.selected:
            self._render_detail()

    def _render_detail(self) -> None:
        track = self.tracks.get(self.selected or "")
        if track is None:
            return
        if self.app.service is not None and self._lineage_asked.get(track.id) != track.job["status"]:
            self._lineage_asked[track.id] = track.job["status"]
            self._read_lineage(dict(track.job))  # once per job and status: its model and evaluations come later
        self.query_one("#job-detail", Static).update(self.detail_text(track))
        log = self.query_one("#events", Log)
        fresh = track.events[self._shown_events:]
        if fresh:
            log.write_lines([self._event_line(e) for e in fresh])
            self._shown_events = len(track.events)
            if log.auto_scroll:  # also when the lines came before the log had its size (a job just selected)
                self.call_after_refresh(log.scroll_end, animate=False)
        metrics = {name: track.series(name) for name in track.metrics}
        kind = method_of(track.job)[0]
        dpo, rft = kind == "dpo", kind == "reinforcement"
        from .widgets.plots import ACCURACY, LOSS, NO_SIGNAL, REWARD_ACCURACY, reward_lines

        loss = self.query_one("#chart-loss")
        loss.set_lines(*(("Reward", reward_lines(metrics)) if rft else ("Loss", LOSS)))
        loss.show(metrics, track.total_steps)
        acc = self.query_one("#chart-acc")
        acc.set_lines(*(("This step taught nothing (share of groups)", NO_SIGNAL) if rft else
                        ("Reward accuracy", REWARD_ACCURACY) if dpo else ("Token accuracy", ACCURACY)))
        acc.show(metrics, track.total_steps)
        fmt = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "—"  # noqa: E731
        rows = []
        for ck in track.checkpoints:
            m = ck.get("metrics") or {}
            if rft:  # an RFT checkpoint: its training and validation reward
                cells = {"train": fmt(m.get("train_mean_reward")), "valid": fmt(m.get("full_valid_mean_reward")),
                         "acc": "—"}
            else:
                cells = {"train": fmt(m.get("train_loss")), "valid": fmt(m.get("valid_loss")),
                         "acc": fmt(m.get("train_mean_token_accuracy", m.get("train_mean_reward_accuracy")))}
            rows.append((ck["fine_tuned_model_checkpoint"],
                         {"step": str(ck.get("step_number")), "model": ck["fine_tuned_model_checkpoint"], **cells}))
        table = self.query_one("#checkpoints", DataTable)
        labels = {"train": "reward", "valid": "val reward"} if rft else {"train": "train loss",
                                                                                 "valid": "valid loss"}
        for key, label in labels.items():
            column = table.columns.get(ColumnKey(key))
            if column is not None and str(column.label) != label:
                column.label = Text(label)
                table.refresh()
        sync_rows(table, rows)

    def detail_text(self, track: JobTrack) -> Text:
        job = track.job
        kind, hp = method_of(job)
        st = job["status"]
        t = Text()
        t.append(f"{job['id']}  ", style="bold")
        t.append(st, style=f"bold {STATUS_STYLE.get(st, '')}")
        if track.total_steps:
            t.append(f"  step {track.step or 0}/{track.total_steps}")
        t.append("\n")
        created, finished = job.get("created_at"), job.get("finished_at")
        t.append(f"created {ts(created)}")
        if finished:
            t.append(f" · finished {ts(finished, False)} ({duration(finished - created)}")
            guess = (job.get("metadata") or {}).get("ftui_estimate_s")
            began = next((e.get("created_at") for e in track.events
                          if str(e.get("message", "")).startswith("Fine-tuning job started")), None)
            if guess and str(guess).isdigit() and st == "succeeded" and began:  # the form's estimate, against
                t.append(f"; trained in {duration(finished - began)}, estimated {duration(int(guess))}")  # the real
            t.append(")")
        elif job.get("estimated_finish"):
            t.append(f" · estimated finish {ts(job['estimated_finish'], False)}")
        t.append(f"\n{job.get('model')} · {kind} · " + ", ".join(f"{k}={v}" for k, v in hp.items()))
        where = job.get("executor")  # ftui serve's extension: a job trained elsewhere says where, on how many
        n = (where.get("workers") or 1) if isinstance(where, dict) else 1
        if isinstance(where, dict) and (where.get("name") not in (None, "local") or n > 1):
            t.append(f"\non {where.get('where') or where.get('name')} · {n} worker{'s' if n != 1 else ''}")
        grader = ((job.get("method") or {}).get("reinforcement") or {}).get("grader")
        if isinstance(grader, dict):
            t.append(f"\ngrader {grader.get('name')} ({grader.get('type')})")
            if grader.get("type") == "multi" and isinstance(grader.get("graders"), dict):
                t.append(f": {grader.get('calculate_output')} over " + ", ".join(grader["graders"]))
        t.append(f"\ntraining {job.get('training_file')}")
        if job.get("validation_file"):
            t.append(f" · validation {job['validation_file']}")
        if job.get("trained_tokens"):
            t.append(f" · {job['trained_tokens']:,} trained tokens")
        if job.get("fine_tuned_model"):
            t.append("\n→ ")
            t.append(job["fine_tuned_model"], style="bold green")
        lineage = self._lineage.get(job["id"], ("", ""))[1]
        if lineage:
            t.append("\nlineage ", style="bold")
            t.append(lineage, style="dim")
        err = job.get("error") or {}
        if err.get("message") or err.get("code"):
            t.append(f"\nerror {err.get('code') or ''}" + (f" [{err['param']}]" if err.get("param") else "") + ": ",
                     style="bold red")
            t.append(err.get("message") or "", style="red")
        return t

    # -- actions ---------------------------------------------------------------------------------------------
    def _track(self) -> JobTrack | None:
        track = self.tracks.get(self.selected or "")
        if track is None:
            self.notify("No job selected", severity="warning")
        return track

    def action_toggle_chart(self) -> None:
        self.toggle_class("-show-acc")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """**m** shows in the footer once two jobs are marked (at 80 columns the footer has no room for a key that
        cannot do anything yet; F1 lists it, and marking says it)."""
        if action == "compare":
            return len(self.marked) >= 2
        return True

    def action_mark(self) -> None:
        """Mark the row under the cursor: the one the person sees highlighted (the selection follows it a message
        later, and a key pressed right after moving must not mark the row before)."""
        table = self.query_one("#jobs", DataTable)
        if table.row_count and table.cursor_row >= 0:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            if key in self.tracks and key != self.selected:
                self._select(key)
        track = self._track()
        if track is None:
            return
        if track.id in self.marked:
            self.marked.remove(track.id)
        else:
            self.marked.append(track.id)
        sync_rows(self.query_one("#jobs", DataTable), [(track.id, self._row(track))], remove_missing=False)
        n = len(self.marked)
        self.refresh_bindings()
        self.notify(f"{n} job{'s' if n != 1 else ''} marked" + (" · m compares them" if n >= 2 else ""), timeout=3)

    def action_compare(self) -> None:
        jobs = [self.tracks[j].job for j in self.marked if j in self.tracks]
        if len(jobs) < 2:
            self.notify("Mark two jobs or more with space, then m compares them", severity="warning")
            return
        from .compare_screen import CompareScreen

        self.app.push_screen(CompareScreen(jobs))

    def action_refresh(self) -> None:
        if self.poller is not None:
            self.poller.list_asked = True
            self.request_tick()

    def action_new_job(self) -> None:
        from .create_job import CreateJobScreen

        data = self.app.data_screen()
        path = data.current if data is not None else None
        report = data.report if data is not None else None
        if self.app.service is None:
            self.notify("No backend yet", severity="warning")
            return
        self.app.push_screen(CreateJobScreen(path, report), self._created)

    def _created(self, jobs: list[dict] | None) -> None:
        """The form's jobs (a sweep's several; the ones already there after the new): each goes through the poller,
        and the first is selected."""
        if jobs and self.poller is not None:
            for job in jobs:
                self._observed(job)
            self.call_after_refresh(self._focus_job, jobs[0]["id"])
            self.request_tick()

    def _observed(self, job: dict) -> None:
        """A job an action returned goes through the poller like a polled one (so its end is announced once)."""
        tick = Tick()
        self.poller.observe(job, tick)
        self.post_message(JobsPolled(tick.changed, {}, tick.finished))

    def _focus_job(self, job_id: str) -> None:
        """Select the job just created: now if its row is there, else as soon as a JobsPolled brings it (under load
        the row can come after this runs; the selection used to stay on another job)."""
        table = self.query_one("#jobs", DataTable)
        if job_id in table.rows:
            self._focus_pending = None
            table.move_cursor(row=table.get_row_index(job_id))
            self._select(job_id)
        else:
            self._focus_pending = job_id

    def _confirm(self, question: str, then) -> None:
        from .confirm import Confirm

        self.app.push_screen(Confirm(question), lambda ok: then() if ok else None)

    def action_cancel_job(self) -> None:
        track = self._track()
        if track is None:
            return
        if track.terminal:
            self.notify(f"{track.id} is already {track.job['status']}", severity="warning")
            return
        self._confirm(f"Cancel job {track.id}?", lambda: self._act("cancel", track.id))

    def action_pause_job(self) -> None:
        if (track := self._track()) is not None:
            self._act("pause", track.id)

    def action_resume_job(self) -> None:
        if (track := self._track()) is not None:
            self._act("resume", track.id)

    @work(group="jobs-action", exit_on_error=False, description="Job action")
    async def _act(self, verb: str, job_id: str) -> None:
        ok, job = await self.call_service(f"Could not {verb} {job_id}", getattr(self.app.service, verb)(job_id))
        if not ok:
            return
        self._observed(job)
        self.notify(f"{job_id}: {job['status']}", timeout=3)
        self.request_tick()

    def action_delete_model(self) -> None:
        track = self._track()
        if track is None:
            return
        model = track.job.get("fine_tuned_model")
        if not model:
            self.notify("This job has no fine-tuned model", severity="warning")
            return
        self._confirm(f"Delete the fine-tuned model {model}? It cannot be undone.", lambda: self._delete(model))

    @work(group="jobs-action", exit_on_error=False, description="Deleting a model")
    async def _delete(self, model: str) -> None:
        ok, _ = await self.call_service("Delete failed", self.app.service.delete_model(model))
        if not ok:
            return
        self.notify(f"Deleted {model}", timeout=4)
        self.app.refresh_models()

    def action_save_results(self) -> None:
        track = self._track()
        if track is None:
            return
        if not track.job.get("result_files"):
            self.notify("No results file yet (it comes when the job succeeds)", severity="warning")
            return
        from ftui.core.files import user_data_dir

        from .prompt import PathPrompt

        default = str(user_data_dir() / "results" / f"{track.id}-results.csv")
        self.app.push_screen(PathPrompt("Save the results CSV to", default),
                             lambda p: self._download(track.job, p) if p else None)

    @work(group="jobs-action", exit_on_error=False, description="Downloading results")
    async def _download(self, job: dict, path: str) -> None:
        from ftui.service.errors import ServiceError
        from ftui.service.results import ResultsError

        try:
            dest = await self.app.service.download_results(job, path)
        except (ServiceError, ResultsError, OSError) as e:
            self.notify(str(e), title="Download failed", severity="error", timeout=8)
            return
        self.notify(f"Saved {dest}", timeout=5)

    @staticmethod
    def _event_line(e: dict) -> str:
        return f"{ts(e.get('created_at'), False)} {e.get('level', 'info'):5} {e.get('message', '')}"

    def action_view_events(self) -> None:
        track = self.tracks.get(self.selected or "")
        if track is None or not track.events:
            self.notify("No events for this job yet", severity="warning")
            return
        from .text_screen import TextScreen

        self.app.push_screen(TextScreen(f"Events of {track.id}", "\n".join(map(self._event_line, track.events))))

    def _model_choice(self) -> str | None:
        ck = self.query_one("#checkpoints", DataTable)
        if self.focused is ck and ck.row_count:
            return ck.coordinate_to_cell_key((ck.cursor_row, 0)).row_key.value
        track = self._track()
        return track.job.get("fine_tuned_model") if track else None

    def action_rollouts(self) -> None:
        track = self._track()
        if track is None:
            return
        if method_of(track.job)[0] != "reinforcement":
            self.notify("Rollouts are kept for reinforcement jobs: this one is "
                        f"{method_of(track.job)[0]}", severity="warning")
            return
        from .rollout_screen import RolloutScreen

        self.app.push_screen(RolloutScreen(dict(track.job)))

    def action_copy_model(self) -> None:
        model = self._model_choice()
        if not model:
            self.notify("No fine-tuned model yet", severity="warning")
            return
        self.app.copy_to_clipboard(model)
        self.notify(f"Copied {model}", timeout=3)

    def action_chat(self) -> None:
        model = self._model_choice()
        if not model:
            self.notify("No fine-tuned model yet", severity="warning")
            return
        self.app.open_chat(model)

    def action_eval(self) -> None:
        model = self._model_choice()
        if not model:
            self.notify("No fine-tuned model yet", severity="warning")
            return
        track = self._track()
        self._eval_on_heldout(model, dict(track.job) if track else {})

    @work(group="jobs-eval", exit_on_error=False, description="Finding the job's held-out data")
    async def _eval_on_heldout(self, model: str, job: dict) -> None:
        """The job's own held-out data (``ftui.service.heldout``): the test split prepared with its training file,
        else its validation file, else ask — and the Eval workspace says which and why."""
        from ftui.service.errors import ServiceError
        from ftui.service.evaluate import cache_dir
        from ftui.service.heldout import heldout_for

        folders = []
        if self.app.last_prepared is not None:
            folders.append(self.app.last_prepared)
        data = self.app.data_screen()
        if data is not None and data.current:
            folders.append(Path(data.current).parent)
        try:
            found = await heldout_for(self.app.service, job, folders, cache_dir().parent / "eval-data")
        except ServiceError as e:
            self.notify(f"Cannot read the job's files: {e}", severity="error")
            return
        self.app.open_eval(str(found.path or ""), [model], why=found.why)

    @on(DataTable.RowSelected, "#checkpoints")
    def _checkpoint_chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_chat(event.row_key.value)
