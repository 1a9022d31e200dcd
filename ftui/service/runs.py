"""Many runs of one task: a sweep's grid of jobs, the check that a point was not trained (or queued) already, the
submission of the points that are new, and the comparison of several jobs — their curves on one axis and their
figures side by side. Pure Python but ``submit`` (which talks to the backend through ``Service``): the Jobs
workspace and the create-job form draw what these functions decide.

Identity of a point: the training file's *content* (its sha256, which the app puts in the job's ``metadata`` as
``ftui_train_sha256`` and which the upload ledger knows for files this user uploaded), the validation file's
content, the base model, the method and every hyperparameter as the job reports it. ``ftui serve`` reports what was
asked ("auto" stays "auto"); OpenAI reports the values it chose, so an "auto" point never matches one of its jobs —
the check errs on the side of training again, never of skipping a point that differs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
from dataclasses import dataclass, field

from .jobs import JobTrack

# the form's sweepable fields: job hyperparameter -> (the form's label, its type, the suffix's short name)
SWEEPABLE = {"n_epochs": ("Epochs", int, "ep"), "batch_size": ("Batch size", int, "bs"),
             "learning_rate_multiplier": ("LR multiplier", float, "lr"), "seed": ("Seed", int, "s")}
MAX_POINTS = 64
SHA_KEY, VALID_SHA_KEY, SWEEP_KEY = "ftui_train_sha256", "ftui_valid_sha256", "ftui_sweep"
ESTIMATE_KEY = "ftui_estimate_s"  # the app's estimate of the job's duration when it was created (seconds)
DEAD = ("failed", "cancelled")


class SweepError(ValueError):
    """A field the form cannot read, named as the form names it."""


def values_of(text: str, key: str) -> list:
    """A field's values: ``""`` or ``auto`` → ["auto"] (None for the seed: the backend picks one); ``1, 2,3`` →
    [1, 2, 3] in the order given, repeats dropped."""
    label, kind, _ = SWEEPABLE[key]
    text = text.strip()
    if not text or text == "auto":
        return [None if key == "seed" else "auto"]
    out: list = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if part == "auto" and key != "seed":
            value: object = "auto"
        else:
            try:
                value = kind(part)
            except ValueError:
                raise SweepError(f"{label}: {part!r} is not a{'n integer' if kind is int else ' number'}") from None
            if not (isinstance(value, float) and math.isfinite(value) and value > 0 or isinstance(value, int)
                    and (value > 0 or key == "seed" and value >= 0)):
                raise SweepError(f"{label}: {part} must be above 0" + (" (or 0 for a seed)" if key == "seed" else ""))
        if value not in out:
            out.append(value)
    return out or [None if key == "seed" else "auto"]


@dataclass(frozen=True)
class Point:
    """One job of a sweep: the hyperparameters it sets (``auto`` where the backend chooses) and its seed."""
    hyperparameters: tuple[tuple[str, object], ...]
    seed: int | None
    name: str  # what tells it from the sweep's other points ("lr0.5-ep2"); "" for a single job

    @property
    def hp(self) -> dict:
        return dict(self.hyperparameters)

    def suffix(self, base: str) -> str:
        """The job's suffix: the user's, then the point's name (OpenAI allows 64 characters)."""
        return "-".join(s for s in (base, self.name) if s)[:64]


def grid(fields: dict[str, list], fixed: dict | None = None) -> list[Point]:
    """Every combination of the fields' values (``values_of`` for each of ``SWEEPABLE``), in the order the fields
    are given; ``fixed``: hyperparameters that do not vary (beta …). Raises ``SweepError`` past ``MAX_POINTS``."""
    keys = list(fields)
    n = math.prod(len(fields[k]) for k in keys)
    if n > MAX_POINTS:
        raise SweepError(f"The sweep has {n} jobs: at most {MAX_POINTS} at once (fewer values per field)")
    varied = [k for k in keys if len(fields[k]) > 1]
    points = []
    for combo in itertools.product(*(fields[k] for k in keys)):
        values = dict(zip(keys, combo))
        seed = values.pop("seed", None)
        hp = {**(fixed or {}), **values}
        name = "-".join(f"{SWEEPABLE[k][2]}{_short(dict(zip(keys, combo))[k])}" for k in varied)
        points.append(Point(tuple(hp.items()), seed, name))
    return points


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def job_hyperparameters(job: dict) -> tuple[str, dict]:
    m = job.get("method") or {}
    kind = m.get("type") or "supervised"
    hp = (m.get(kind) or {}).get("hyperparameters") or job.get("hyperparameters") or {}
    return kind, {k: v for k, v in hp.items() if v is not None}


def content_of(job: dict, key: str, file_sha: dict[str, str]) -> str | None:
    """The sha256 of a job's training (``SHA_KEY``) or validation file: from its metadata, else from the ledger's
    file id → sha256 (``file_sha``), else ``file:<id>`` (the same file on the backend is the same content)."""
    meta = job.get("metadata") or {}
    if isinstance(meta, dict) and isinstance(meta.get(key), str):
        return meta[key]
    fid = job.get("training_file" if key == SHA_KEY else "validation_file")
    return (file_sha.get(fid) or f"file:{fid}") if fid else None


def identical(job: dict, *, model: str, method: str, point: Point, train_sha: str, valid_sha: str | None,
              file_sha: dict[str, str]) -> bool:
    """Whether ``job`` already trains this point: same data content, base model, method, hyperparameters (each key
    the point sets, as the job reports it) and seed when the point sets one. Failed and cancelled jobs do not count."""
    if job.get("status") in DEAD or job.get("model") != model:
        return False
    kind, hp = job_hyperparameters(job)
    if kind != method or content_of(job, SHA_KEY, file_sha) != train_sha:
        return False
    theirs = content_of(job, VALID_SHA_KEY, file_sha) if job.get("validation_file") else None
    if theirs != valid_sha:
        return False
    if point.seed is not None and job.get("seed") != point.seed:
        return False
    return all(_same(hp.get(k, "auto"), v) for k, v in point.hyperparameters)


def existing_for(points: list[Point], jobs: list[dict], **same) -> dict[Point, dict]:
    """The points that a job of ``jobs`` already trains (or has queued), each with the newest such job."""
    found: dict[Point, dict] = {}
    for job in sorted(jobs, key=lambda j: j.get("created_at") or 0, reverse=True):
        for p in points:
            if p not in found and identical(job, point=p, **same):
                found[p] = job
    return found


@dataclass
class Submission:
    """What the create-job form sends: the grid's points and what every job of it shares."""
    points: list[Point]
    model: str
    method: str
    suffix: str
    grader: dict | None
    training_file: str
    validation_file: str | None
    train_sha: str  # the training file's content: its sha256, or "file:<id>" when unknown
    valid_sha: str | None
    estimate_s: float | None  # one job's estimated duration (the grid's mean), from measured throughput
    keeps_metadata: bool  # the backend keeps a job's metadata and filters by it (ftui serve, OpenAI)


async def submit(svc, sub: Submission) -> tuple[list[dict], dict[Point, dict]]:
    """Create a job for each point that no job on the backend trains already; returns (the jobs created, the points
    that were there already with their job). A job's metadata carries the data's content hashes, the sweep it
    belongs to and its estimated duration where the backend keeps metadata. The backend's newest 100 jobs are
    checked, and (with metadata) every job on this training content."""
    from .ledger import Ledger

    seen = await svc.jobs(limit=100)
    if sub.keeps_metadata and not sub.train_sha.startswith("file:"):
        known = {j["id"] for j in seen}
        seen += [j for j in await svc.jobs(limit=100, metadata={SHA_KEY: sub.train_sha}) if j["id"] not in known]
    file_sha = {u.file_id: u.sha256 for u in await asyncio.to_thread(Ledger().entries, svc.identity)}
    existing = existing_for(sub.points, seen, model=sub.model, method=sub.method, train_sha=sub.train_sha,
                            valid_sha=sub.valid_sha, file_sha=file_sha)
    meta: dict[str, str] = {}
    if sub.keeps_metadata:
        meta = {SHA_KEY: sub.train_sha, **({VALID_SHA_KEY: sub.valid_sha} if sub.valid_sha else {})}
        if len(sub.points) > 1:
            meta[SWEEP_KEY] = secrets.token_hex(4)
    jobs = []
    for p in sub.points:
        if p in existing:
            continue
        if sub.keeps_metadata and sub.estimate_s is not None:  # compared with the real time once it has ended
            meta[ESTIMATE_KEY] = str(round(sub.estimate_s * epochs_share(p, sub.points)))
        jobs.append(await svc.create_job(
            training_file=sub.training_file, validation_file=sub.validation_file, model=sub.model, method=sub.method,
            hyperparameters=p.hp, suffix=p.suffix(sub.suffix) or None, seed=p.seed, grader=sub.grader,
            metadata=dict(meta) or None))
    return jobs, existing


def epochs_share(point: Point, points: list[Point]) -> float:
    """A point's share of the grid's mean job length: its epochs over the mean epochs (auto counts as the mean)."""
    epochs = [p.hp.get("n_epochs") for p in points]
    known = [e for e in epochs if isinstance(e, int)]
    mine = point.hp.get("n_epochs")
    if not known or not isinstance(mine, int):
        return 1.0
    mean = sum(e if isinstance(e, int) else sum(known) / len(known) for e in epochs) / len(epochs)
    return mine / mean


def queue_positions(jobs: list[dict]) -> dict[str, int]:
    """Waiting jobs' places in a one-at-a-time queue (``ftui serve``'s: oldest first; a job waits as
    ``validating_files`` until the runner takes it, then ``queued``): 1 = the next to train. When no job is
    running, the oldest waiting one is being taken now: place 0."""
    waiting = sorted((j for j in jobs if j.get("status") in ("validating_files", "queued")),
                     key=lambda j: (j.get("created_at") or 0, j.get("id") or ""))
    first = 1 if any(j.get("status") == "running" for j in jobs) else 0
    return {j["id"]: i for i, j in enumerate(waiting, first)}


# -- comparing runs ---------------------------------------------------------------------------------------------
def run_label(job: dict) -> str:
    """How a run is named in a legend: its suffix (a sweep's suffix names its point), else its hyperparameters."""
    if job.get("user_provided_suffix"):
        return str(job["user_provided_suffix"])
    _, hp = job_hyperparameters(job)
    short = {k: SWEEPABLE[k][2] for k in SWEEPABLE}
    parts = [f"{short.get(k, k)}{_short(v)}" for k, v in hp.items() if v != "auto" and k in short]
    return " ".join(parts) or job["id"][-8:]


def tokens_per_step(track: JobTrack) -> float | None:
    """A finished job's trained tokens over its steps: the x of "aligned by trained tokens" (known once the job has
    reported its trained tokens; steps of one job carry about the same number of tokens)."""
    tokens, total = track.job.get("trained_tokens"), track.total_steps
    return tokens / total if tokens and total else None


def curve(track: JobTrack, series: str, by: str = "step") -> list[tuple[float, float]]:
    points = track.series(series)
    if by == "tokens":
        per = tokens_per_step(track)
        if per is None:
            return []
        return [(s * per, v) for s, v in points]
    return [(float(s), v) for s, v in points]


def valid_series(track: JobTrack) -> str:
    """The validation curve a run is judged by: the full validation loss (or reward) where there is one."""
    kind = job_hyperparameters(track.job)[0]
    names = ("full_valid_mean_reward",) if kind == "reinforcement" else ("full_valid_loss", "valid_loss")
    return next((n for n in names if track.metrics.get(n)), names[0])


@dataclass
class RunRow:
    id: str
    label: str
    method: str
    hyperparameters: str
    data: str
    trained_tokens: int | None
    duration_s: int | None
    final: float | None  # the last validation figure (loss, or reward for RFT)
    best: float | None
    best_step: int | None
    measure: str  # what final and best are: "valid loss" | "valid reward"
    evals: list[str] = field(default_factory=list)  # "accuracy 0.817 on test.jsonl"


def run_row(track: JobTrack, evals: list[dict] | None = None, file_names: dict[str, str] | None = None) -> RunRow:
    """A run's figures; ``file_names``: file id → the name it was uploaded from (the upload ledger)."""
    job = track.job
    kind, hp = job_hyperparameters(job)
    series = track.series(valid_series(track))
    higher = kind == "reinforcement"
    best = (max if higher else min)(series, key=lambda p: p[1]) if series else None
    # training time: from "Fine-tuning job started" (a queued job's wait is not the run's), else from creation
    created = next((e.get("created_at") for e in track.events
                    if str(e.get("message", "")).startswith("Fine-tuning job started")), job.get("created_at"))
    finished = job.get("finished_at")
    shown = {k: v for k, v in hp.items() if v != "auto"}
    return RunRow(
        id=job["id"], label=run_label(job), method=kind,
        hyperparameters=", ".join(f"{SWEEPABLE.get(k, (k, None, k))[2]}={_short(v)}" for k, v in shown.items())
        or "auto", data=(file_names or {}).get(job.get("training_file") or "") or str(job.get("training_file") or ""),
        trained_tokens=job.get("trained_tokens"),
        duration_s=finished - created if created and finished else None,
        final=series[-1][1] if series else None, best=best[1] if best else None, best_step=best[0] if best else None,
        measure="valid reward" if higher else "valid loss",
        evals=[f"{e['metric']} {e['score']:.3f} on {e['data_name']}" for e in evals or []
               if isinstance(e.get("score"), (int, float))])
