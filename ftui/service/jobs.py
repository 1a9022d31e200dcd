"""What a live view of one job needs, kept between polls: events de-duplicated by id (oldest first), the cursor,
metric series from ``metrics`` events and the results CSV, checkpoints. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass, field

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SERIES = ("train_loss", "valid_loss", "full_valid_loss", "train_mean_token_accuracy", "valid_mean_token_accuracy",
          "full_valid_mean_token_accuracy", "train_mean_reward_accuracy", "valid_mean_reward_accuracy",
          "full_valid_mean_reward_accuracy", "train_mean_reward", "full_valid_mean_reward", "frac_reward_zero_std")
GRADER_SERIES = "grader:"  # + a multi grader's sub-grader: its training reward by step (RFT)


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL


@dataclass
class JobTrack:
    job: dict
    events: list[dict] = field(default_factory=list)  # oldest first
    seen: set[str] = field(default_factory=set)
    metrics: dict[str, dict[int, float]] = field(default_factory=dict)  # series -> {step: value}
    step: int | None = None
    total_steps: int | None = None
    checkpoints: list[dict] = field(default_factory=list)
    events_complete: bool = False  # the whole backlog is loaded (terminal jobs need no more event requests)
    results_loaded: bool = False
    checkpoints_loaded_at: str | None = None  # the status when checkpoints were last fetched

    @property
    def id(self) -> str:
        return self.job["id"]

    @property
    def terminal(self) -> bool:
        return is_terminal(self.job.get("status"))

    def add_events(self, newest_first: list[dict], older: bool = False) -> list[dict]:
        """Merge a page (newest first, as the API lists them). ``older``: a backfill page, from before every event
        held so far. Returns the new events, oldest first."""
        fresh = [e for e in newest_first if e["id"] not in self.seen]
        fresh.reverse()
        if not fresh:
            return []
        self.seen.update(e["id"] for e in fresh)
        self.events = fresh + self.events if older else self.events + fresh
        for e in fresh:
            self._metrics(e)
        return fresh

    def _metrics(self, e: dict) -> None:
        data = e.get("data") or {}
        if e.get("type") != "metrics" or not isinstance(data, dict) or "step" not in data:
            return
        try:
            step = int(data["step"])
        except (TypeError, ValueError):
            return
        for name in SERIES:
            v = data.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.metrics.setdefault(name, {})[step] = float(v)
        scores = data.get("scores")
        subs = scores.get("graders") if isinstance(scores, dict) else None
        for g in (subs or [])[1:] if isinstance(subs, list) else []:  # the first is the whole grader
            v = g.get("train_reward_mean") if isinstance(g, dict) else None
            if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(g.get("name"), str):
                self.metrics.setdefault(GRADER_SERIES + g["name"], {})[step] = float(v)
        if self.step is None or step > self.step:
            self.step = step
        total = data.get("total_steps")
        if isinstance(total, int):
            self.total_steps = total

    def add_results(self, series: dict[str, list[tuple[int, float]]]) -> None:
        for name, points in series.items():
            target = self.metrics.setdefault(name, {})
            for step, value in points:
                target.setdefault(step, value)
            if points:
                self.step = max(self.step or 0, max(s for s, _ in points))
        self.results_loaded = True

    def series(self, name: str) -> list[tuple[int, float]]:
        return sorted(self.metrics.get(name, {}).items())


# -- what a poll tick fetches (dolphie's self-rescheduling poll, decided here, not in the screen) ---------------------
LIST_EVERY = 60.0
CHECKPOINT_STATUSES = ("running", "paused", "succeeded", "cancelled", "failed")


@dataclass
class Tick:
    """What one tick brought: the jobs whose row changed, their new events (oldest first), the jobs that ended during
    this tick (each announced once, ever), whether the list was read, and what was loaded for the detail."""
    changed: list[str] = field(default_factory=list)
    new_events: dict[str, list[dict]] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    listed: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # job id -> "checkpoints" | "results"
    notes: list[str] = field(default_factory=list)  # things worth a toast that did not stop the tick


class JobPoller:
    """The poll policy of the Jobs workspace, pure: which requests a tick makes, what counts as a change, when a job
    has *just* ended (announced exactly once), and how long until the next tick. ``tick(service)`` runs one tick
    through any object with the ``Service`` methods; the screen only schedules ticks and renders their ``Tick``.

    Cost per tick: one request per live job and one for its new events; a terminal job costs nothing once its
    events, checkpoints and results are loaded; the list is read every ``list_every`` seconds or when asked. While
    the pane is hidden only live jobs' status is read, 4x less often (the end-of-job toast still comes)."""

    def __init__(self, interval: float, list_every: float = LIST_EVERY) -> None:
        self.interval = interval
        self.list_every = list_every
        self.tracks: dict[str, JobTrack] = {}
        self.listed_at: float | None = None
        self.list_asked = True
        self.failures = 0
        self.announced: set[str] = set()  # jobs whose end was reported (or that had ended when first seen)

    # -- decisions ---------------------------------------------------------------------------------------------
    def wants_list(self, now: float, hidden: bool) -> bool:
        if hidden:
            return False
        return self.list_asked or self.listed_at is None or now - self.listed_at >= self.list_every

    def observe(self, job: dict, tick: Tick) -> None:
        """Merge a job as the backend returned it. A terminal status is final: a stale answer read before the job
        ended (or before a cancel) never moves it back."""
        track = self.tracks.get(job["id"])
        if track is None:
            self.tracks[job["id"]] = JobTrack(job)
            if is_terminal(job["status"]):
                self.announced.add(job["id"])  # it had ended before we watched: nothing to announce
            tick.changed.append(job["id"])
            return
        if track.job == job or (track.terminal and not is_terminal(job["status"])):
            return
        track.job = job
        tick.changed.append(job["id"])
        if track.terminal and job["id"] not in self.announced:
            self.announced.add(job["id"])
            tick.finished.append(job["id"])

    def live(self, exclude=()) -> list[JobTrack]:
        return [t for t in self.tracks.values() if not t.terminal and t.id not in exclude]

    def wants_events(self, track: JobTrack, tick: Tick, selected: str | None) -> bool:
        """Live jobs follow their events; a terminal one loads its backlog once (when it ends, or when selected)."""
        return (not track.terminal or track.id in tick.finished
                or (track.id == selected and not track.events_complete))

    @staticmethod
    def wants_checkpoints(track: JobTrack, new_events: list[dict]) -> bool:
        status = track.job["status"]
        return status in CHECKPOINT_STATUSES and (
            track.checkpoints_loaded_at != status or any("heckpoint" in str(e.get("message", "")) for e in new_events))

    @staticmethod
    def wants_results(track: JobTrack) -> bool:
        return track.job["status"] == "succeeded" and not track.results_loaded

    def next_delay(self, problem=None, hidden: bool = False) -> float:
        """Seconds to the next tick: the interval (4x while hidden); after a failure Retry-After when the backend
        gave one, else exponential backoff for transient problems (capped at 30 s), else at least 10 s."""
        if problem is None:
            self.failures = 0
            return self.interval * (4 if hidden else 1)
        self.failures += 1
        if problem.retry_after is not None:
            return problem.retry_after
        if problem.transient:
            return min(30.0, self.interval * 2 ** min(self.failures, 5))
        return max(self.interval, 10.0)

    # -- one tick ----------------------------------------------------------------------------------------------
    async def tick(self, svc, tick: Tick, *, now: float, hidden: bool, selected: str | None) -> None:
        """Run one tick against ``svc``, filling ``tick`` as it goes; raises what ``svc`` raises (ServiceError) with
        ``tick`` holding every change made so far, so the caller renders it all the same (a job that ended is
        announced by the tick that saw it, whatever happened after)."""
        if self.wants_list(now, hidden):
            for job in await svc.jobs():
                self.observe(job, tick)
            self.listed_at, self.list_asked, tick.listed = now, False, True
        for track in self.live(exclude=tick.changed):
            self.observe(await svc.job(track.id), tick)
        if hidden:
            return
        for track in list(self.tracks.values()):
            if self.wants_events(track, tick, selected):
                fresh = await svc.new_events(track)
                if fresh:
                    tick.new_events[track.id] = fresh
                if track.terminal:
                    track.events_complete = True
        chosen = self.tracks.get(selected or "")
        if chosen is not None:
            if self.wants_checkpoints(chosen, tick.new_events.get(chosen.id, [])):
                chosen.checkpoints = await svc.checkpoints(chosen.id)
                chosen.checkpoints_loaded_at = chosen.job["status"]
                tick.extra[chosen.id] = "checkpoints"
            if self.wants_results(chosen):
                from .results import ResultsError

                try:
                    await svc.load_results(chosen)
                except ResultsError as e:
                    chosen.results_loaded = True
                    tick.notes.append(f"Results file of {chosen.id}: {e}")
                tick.extra[chosen.id] = "results"
