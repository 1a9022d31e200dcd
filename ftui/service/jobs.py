"""What a live view of one job needs, kept between polls: events de-duplicated by id (oldest first), the cursor,
metric series from ``metrics`` events and the results CSV, checkpoints. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass, field

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SERIES = ("train_loss", "valid_loss", "full_valid_loss", "train_mean_token_accuracy", "valid_mean_token_accuracy",
          "full_valid_mean_token_accuracy")


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
