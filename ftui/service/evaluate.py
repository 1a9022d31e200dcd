"""Evaluation runs: every held-out example through every model (any backend, through ``Service``), cached, resumable,
then scored (``ftui.core.scoring``) and written as ``eval.jsonl`` + ``eval.json``.

- Bounded concurrency (``asyncio.Semaphore``); the SDK's retries honour ``Retry-After``; a backend that stays away
  (offline, 5xx, 429 past the retries) pauses the run, which tries again with backoff until it answers or is
  stopped — what was answered stays answered.
- Temperature 0 and a seed by default; ``max_tokens`` from the references' length.
- Answers are cached per (backend, model, example, parameters) in the user cache dir — the backend by its identity
  (the local backend's data dir, not its port, which changes at every start): a re-run, or a run resumed
  after a stop, only asks for what is missing.
- For the local backend, the teacher-forced loss and token accuracy of the references (``/v1/ftui/score``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from ftui.core import scoring
from ftui.core.catalog import inference_cost
from ftui.core.evalset import EvalSet
from ftui.core.files import atomic_write, user_data_dir

from .errors import ServiceError

MAX_BACKOFF = 30.0
SCORE_BATCH = 64


@dataclass
class EvalParams:
    temperature: float = 0.0
    seed: int | None = 0
    max_tokens: int | None = None  # None: from the references (longest × 1.5 + 8 tokens, 16..1024)
    concurrency: int = 4

    def key(self, max_tokens: int) -> str:
        return f"t={self.temperature:g};s={self.seed};m={max_tokens}"


@dataclass
class Answer:
    model: str
    id: str
    line: int
    text: str = ""
    error: str = ""  # a refusal that retrying cannot fix (400: too long, unknown model…)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False


@dataclass
class Progress:
    done: int
    total: int
    cached: int
    errors: int
    started: float
    waiting: str = ""  # why the run is paused (the backend is away), retrying
    tokens: int = 0
    cost_usd: float | None = None  # the answers asked so far, for models with a known price (fine-tuned OpenAI)

    @property
    def rate(self) -> float:
        """Answers per second asked of the backend (cached ones excluded)."""
        elapsed = time.monotonic() - self.started
        asked = self.done - self.cached
        return asked / elapsed if elapsed > 0 and asked > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        r = self.rate
        return (self.total - self.done) / r if r > 0 else None


def default_max_tokens(references: list[str]) -> int:
    from ftui.core.tokens import counter

    count = counter("o200k_base")
    longest = max((count(r) for r in references), default=16)
    return max(16, min(1024, int(longest * 1.5) + 8))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ftui" / "eval"


class AnswerCache:
    """One append-only JSONL file per (backend, model). Each answer is one ``write`` of one complete line on an
    O_APPEND descriptor (not a temp-file rename: a cache grows line by line; a torn last line is skipped when read)."""

    def __init__(self, folder: Path, backend: str, model: str) -> None:
        digest = hashlib.sha256(f"{backend}\n{model}".encode()).hexdigest()[:20]
        self.path = folder / f"{digest}.jsonl"
        self.entries: dict[str, dict] = {}
        try:
            for line in self.path.read_bytes().splitlines():
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "k" in rec:
                    self.entries[rec["k"]] = rec
        except FileNotFoundError:
            pass

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def add(self, key: str, answer: Answer) -> None:
        rec = {"k": key, "text": answer.text, "prompt_tokens": answer.prompt_tokens,
               "completion_tokens": answer.completion_tokens, "latency_s": answer.latency_s}
        self.entries[key] = rec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, orjson.dumps(rec) + b"\n")
        finally:
            os.close(fd)


@dataclass
class EvalRun:
    data: EvalSet
    models: list[str]
    params: EvalParams
    max_tokens: int
    answers: dict[str, list[Answer | None]] = field(default_factory=dict)
    losses: dict[str, list[dict | None]] = field(default_factory=dict)  # model -> per example {loss, …}
    grader: dict | None = None  # an OpenAI grader scoring every answer (`ftui eval --grader`)
    rewards: dict[str, list[dict | None]] = field(default_factory=dict)  # model -> per example {reward, …}
    stopped: bool = False
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return all(a is not None for answers in self.answers.values() for a in answers)


async def run(svc, data: EvalSet, models: list[str], params: EvalParams | None = None, *,
              progress: Callable[[Progress], None] | None = None, stop: asyncio.Event | None = None,
              cache_folder: Path | None = None, teacher_forced: bool | None = None,
              grader: dict | None = None) -> EvalRun:
    """Answer every example with every model. Returns when all are answered, or when ``stop`` is set (what was
    answered is kept; the cache makes the next run pick up there). ``grader``: an OpenAI grader also scores each
    answer, with the engine RFT jobs use (model graders are judged through this backend)."""
    params = params or EvalParams()
    stop = stop or asyncio.Event()
    max_tokens = params.max_tokens or default_max_tokens(data.references)
    out = EvalRun(data, list(models), params, max_tokens, grader=grader)
    folder = cache_folder or cache_dir()
    caches = {m: AnswerCache(folder, svc.identity, m) for m in models}  # not the URL: a local port changes
    pkey = params.key(max_tokens)
    n = len(data.examples)
    state = Progress(0, n * len(models), 0, 0, time.monotonic())
    t0 = time.monotonic()
    todo: list[tuple[str, int]] = []
    for m in models:
        out.answers[m] = [None] * n
        for i, ex in enumerate(data.examples):
            rec = caches[m].get(f"{ex.prompt_key};{pkey}")
            if rec is not None:
                out.answers[m][i] = Answer(m, ex.id, ex.line, rec["text"], "", rec.get("prompt_tokens", 0),
                                           rec.get("completion_tokens", 0), rec.get("latency_s", 0.0), True)
                state.done += 1
                state.cached += 1
            else:
                todo.append((m, i))
    if progress:
        progress(state)
    sem = asyncio.Semaphore(max(1, params.concurrency))
    pause_until = [0.0]

    async def one(m: str, i: int) -> None:
        ex = data.examples[i]
        delay = 1.0
        async with sem:
            while not stop.is_set():
                wait = pause_until[0] - time.monotonic()
                if wait > 0:  # another request found the backend away: do not hammer it
                    await _sleep_or_stop(stop, wait)
                    continue
                t = time.monotonic()
                try:
                    text, usage = await svc.complete(m, ex.messages, temperature=params.temperature,
                                                     seed=params.seed, max_tokens=max_tokens, tools=ex.tools)
                except ServiceError as e:
                    if e.problem.transient:
                        delay = min(MAX_BACKOFF, max(delay * 2, e.problem.retry_after or 0))
                        pause_until[0] = max(pause_until[0], time.monotonic() + delay)
                        state.waiting = f"{e.problem.message} — retrying in {delay:.0f} s"
                        if progress:
                            progress(state)
                        continue
                    ans = Answer(m, ex.id, ex.line, "", e.problem.message)
                    state.errors += 1
                else:
                    ans = Answer(m, ex.id, ex.line, text, "", usage.get("prompt_tokens", 0),
                                 usage.get("completion_tokens", 0), round(time.monotonic() - t, 3))
                    caches[m].add(f"{ex.prompt_key};{pkey}", ans)
                    state.tokens += usage.get("total_tokens", 0)
                    cost = inference_cost(m, ans.prompt_tokens, ans.completion_tokens)
                    if cost is not None:
                        state.cost_usd = (state.cost_usd or 0.0) + cost
                out.answers[m][i] = ans
                state.done += 1
                state.waiting = ""
                if progress:
                    progress(state)
                return

    scored = teacher_forced if teacher_forced is not None else svc.profile.kind in ("local", "compatible")
    scored = scored and all(ex.reference for ex in data.examples)  # prompts alone have no reference to score
    tasks = {m: [asyncio.create_task(one(mm, i)) for mm, i in todo if mm == m] for m in models}

    async def answered_then_scored(m: str) -> None:
        # a model's references are scored as soon as its answers are in, while the backend still holds it (the local
        # one keeps two models loaded: a leaderboard of six scored after all the answers loaded each model twice)
        await asyncio.gather(*tasks[m])
        if scored and not stop.is_set():
            out.losses[m] = await _losses(svc, data, m, stop)

    per_model = [asyncio.create_task(answered_then_scored(m)) for m in models]
    try:
        await asyncio.gather(*per_model)
    finally:
        for t in per_model + [t for mine in tasks.values() for t in mine]:
            t.cancel()
    out.stopped = stop.is_set() and not out.complete
    out.losses = {m: out.losses.get(m, []) for m in models} if scored and not out.stopped else {}
    if grader is not None and not out.stopped:
        out.rewards = await grade_answers(svc, out, grader)
    out.seconds = time.monotonic() - t0
    return out


async def grade_answers(svc, r: EvalRun, grader: dict) -> dict[str, list[dict | None]]:
    """Every answer graded (in a thread: python graders are processes, a judge is a request through ``svc``)."""
    from ftui.core.graders import Engine, JudgeError

    loop = asyncio.get_running_loop()

    def judge(model: str, messages: list[dict], params: dict) -> tuple[str, int]:
        call = svc.complete(model, messages, temperature=params.get("temperature") or 0.0, seed=params.get("seed"),
                            max_tokens=params.get("max_completions_tokens") or 256)
        try:
            text, usage = asyncio.run_coroutine_threadsafe(call, loop).result()
        except ServiceError as e:
            raise JudgeError(e.problem.message) from None
        return text, int(usage.get("total_tokens", 0))

    def grade_all() -> dict[str, list[dict | None]]:
        out: dict[str, list[dict | None]] = {}
        with Engine(grader, judge=judge) as engine:
            for m in r.models:
                out[m] = []
                for ex, a in zip(r.data.examples, r.answers[m]):
                    if a is None or a.error:
                        out[m].append(None)
                        continue
                    res = engine.run(a.text, ex.item)
                    out[m].append({"reward": res["reward"], "sub_rewards": res["sub_rewards"],
                                   "errors": [k for k, v in res["metadata"]["errors"].items() if v is True]})
        return out

    return await asyncio.to_thread(grade_all)


def passes(reward: float, grader: dict) -> bool:
    """A graded answer counts as right when its reward reaches the grader's pass_threshold (default 0.5)."""
    threshold = grader.get("pass_threshold")
    return reward >= (threshold if isinstance(threshold, (int, float)) else 0.5)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def _losses(svc, data: EvalSet, model: str, stop: asyncio.Event) -> list[dict | None]:
    out: list[dict | None] = []
    for s in range(0, len(data.examples), SCORE_BATCH):
        if stop.is_set():
            break
        part = data.examples[s:s + SCORE_BATCH]
        examples = [{"messages": ex.messages + [{"role": "assistant", "content": ex.reference}]} for ex in part]
        try:
            out.extend(await svc.score(model, examples))
        except ServiceError:
            return []  # not worth failing the evaluation: the loss column stays empty, the note says why
    return out


# -- scoring and writing ---------------------------------------------------------------------------------------------
def summary(r: EvalRun) -> dict:
    refs = r.data.references
    labels = scoring.label_set(refs)
    models: dict[str, dict] = {}
    right: dict[str, list[bool]] = {}
    for m in r.models:
        answers = [a.text if a is not None else "" for a in r.answers[m]]
        sc = scoring.score(answers, refs, labels)
        losses = [x for x in r.losses.get(m, []) if x and x.get("loss") is not None]
        if losses:
            tok = sum(x["tokens"] for x in losses)
            sc.mean_loss = round(sum(x["loss"] * x["tokens"] for x in losses) / tok, 5) if tok else None
            sc.mean_token_accuracy = round(sum(x["token_accuracy"] * x["tokens"] for x in losses) / tok, 5) \
                if tok else None
        d = sc.to_dict()
        done = [a for a in r.answers[m] if a is not None]
        d["answered"] = len(done)
        d["errors"] = sum(1 for a in done if a.error)
        d["mean_latency_s"] = round(sum(a.latency_s for a in done if not a.cached) /
                                    max(1, sum(1 for a in done if not a.cached)), 3)
        d["completion_tokens"] = sum(a.completion_tokens for a in done)
        d["prompt_tokens"] = sum(a.prompt_tokens for a in done)
        d["cost_usd"] = inference_cost(m, d["prompt_tokens"], d["completion_tokens"])
        models[m] = d
        if r.grader is not None:
            graded = r.rewards.get(m) or []
            got = [g for g in graded if g is not None]
            d["mean_reward"] = round(sum(g["reward"] for g in got) / len(got), 5) if got else None
            d["pass_rate"] = round(sum(passes(g["reward"], r.grader) for g in got) / len(got), 5) if got else None
            counts: dict[str, int] = {}
            for g in got:
                for flag in g["errors"]:
                    counts[flag] = counts.get(flag, 0) + 1
            d["grader_errors"] = counts
            right[m] = [g is not None and passes(g["reward"], r.grader) for g in graded] or [False] * len(refs)
        elif labels:
            right[m] = [scoring.predicted_label(a, labels) == scoring.normalise(ref) for a, ref in zip(answers, refs)]
        else:
            right[m] = [scoring.exact(a, ref) for a, ref in zip(answers, refs)]
    comparisons = []
    for i, a in enumerate(r.models):
        for b in r.models[i + 1:]:
            comparisons.append({"a": a, "b": b, **scoring.paired(right[a], right[b]).to_dict()})
    return {
        "ftui_eval": 1,
        "data": r.data.path,
        "examples": len(refs),
        "skipped_lines": r.data.n_issues,
        "params": {**asdict(r.params), "max_tokens": r.max_tokens},
        "labels": labels,
        "majority_rate": scoring.majority_rate(refs),
        "metric": "reward" if r.grader is not None else "accuracy" if labels else "exact_match",
        "grader": {"name": r.grader["name"], "type": r.grader["type"]} if r.grader is not None else None,
        "models": models,
        "comparisons": comparisons,
        "complete": r.complete,
        "seconds": round(r.seconds, 2),
    }


def rows(r: EvalRun) -> list[dict]:
    """eval.jsonl: one line per example per model."""
    refs = r.data.references
    labels = scoring.label_set(refs)
    out = []
    for m in r.models:
        losses = r.losses.get(m) or []
        for i, ex in enumerate(r.data.examples):
            a = r.answers[m][i]
            if a is None:
                continue
            row = {"id": ex.id, "line": ex.line, "model": m, "answer": a.text, "reference": ex.reference,
                   "exact": scoring.exact(a.text, ex.reference), "contains": scoring.contains(a.text, ex.reference)}
            if labels:
                p = scoring.predicted_label(a.text, labels)
                row["label"] = p
                row["correct"] = p == scoring.normalise(ex.reference)
            graded = (r.rewards.get(m) or [None] * (i + 1))[i] if r.rewards else None
            if graded is not None:
                row.update({"reward": graded["reward"], "sub_rewards": graded["sub_rewards"],
                            "grader_errors": graded["errors"]})
            loss = losses[i] if i < len(losses) else None
            if loss:
                row["loss"] = loss.get("loss")
                row["token_accuracy"] = loss.get("token_accuracy")
            row.update({"prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
                        "latency_s": a.latency_s, "cached": a.cached, "error": a.error or None})
            out.append(row)
    return out


def write(r: EvalRun, out_dir: str | Path) -> tuple[Path, Path, dict]:
    out = Path(out_dir)
    doc = summary(r)
    body = b"".join(orjson.dumps(x) + b"\n" for x in rows(r))
    atomic_write(out / "eval.jsonl", body)
    atomic_write(out / "eval.json", orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    try:
        remember(doc, out / "eval.json")
    except OSError:  # the index is a convenience for comparisons: the run's own files are written
        pass
    return out / "eval.jsonl", out / "eval.json", doc


# -- the index of evaluations: which model was measured on what, with which score ---------------------------------
INDEX_KEEP = 2000


def index_path() -> Path:
    return user_data_dir() / "evals.json"


def headline(doc: dict, model: str) -> float | None:
    """A model's one figure in an eval.json: mean reward, accuracy (a label set) or exact match."""
    d = (doc.get("models") or {}).get(model) or {}
    v = d.get("mean_reward" if doc.get("metric") == "reward" else doc.get("metric") or "exact_match")
    return float(v) if isinstance(v, (int, float)) else None


def remember(doc: dict, path: Path) -> None:
    """Add a finished run's figures to ``$XDG_DATA_HOME/ftui/evals.json`` (one entry per model; the same run
    written again replaces its entries), so a comparison of jobs shows what their models scored."""
    try:
        index = orjson.loads(index_path().read_bytes())
    except (OSError, ValueError):
        index = []
    if not isinstance(index, list):
        index = []
    where = str(Path(path).resolve())
    index = [e for e in index if isinstance(e, dict) and e.get("path") != where]
    for model in doc.get("models") or {}:
        index.append({"model": model, "metric": doc.get("metric"), "score": headline(doc, model),
                      "data": doc.get("data"), "data_name": Path(str(doc.get("data") or "")).name,
                      "examples": doc.get("examples"), "complete": doc.get("complete"), "path": where,
                      "at": time.time()})
    atomic_write(index_path(), orjson.dumps(index[-INDEX_KEEP:]) + b"\n", mode=0o600)


def evaluations(model: str) -> list[dict]:
    """What the index holds of ``model``, newest first (one per data file)."""
    try:
        index = orjson.loads(index_path().read_bytes())
    except (OSError, ValueError):
        return []
    seen, out = set(), []
    for e in reversed(index if isinstance(index, list) else []):
        if isinstance(e, dict) and e.get("model") == model and e.get("data") not in seen:
            seen.add(e.get("data"))
            out.append(e)
    return out


def disagreements(r: EvalRun, a: str, b: str) -> list[int]:
    """Indices of the examples where models ``a`` and ``b`` are not both right or both wrong."""
    refs = r.data.references
    labels = scoring.label_set(refs)
    out = []
    for i, ref in enumerate(refs):
        x, y = r.answers[a][i], r.answers[b][i]
        if x is None or y is None:
            continue
        if r.grader is not None and r.rewards:
            gx, gy = r.rewards[a][i], r.rewards[b][i]
            rx = gx is not None and passes(gx["reward"], r.grader)
            ry = gy is not None and passes(gy["reward"], r.grader)
        elif labels:
            rx = scoring.predicted_label(x.text, labels) == scoring.normalise(ref)
            ry = scoring.predicted_label(y.text, labels) == scoring.normalise(ref)
        else:
            rx, ry = scoring.exact(x.text, ref), scoring.exact(y.text, ref)
        if rx != ry:
            out.append(i)
    return out


def base_of(model: str) -> str | None:
    """The base model of a fine-tuned model or checkpoint id (``ft:BASE:org:suffix:id[:ckpt-step-N]``)."""
    if model.startswith("ft:") and model.count(":") >= 2:
        return model.split(":")[1] or None
    return None


def with_bases(models: list[str]) -> list[str]:
    """The models, each once, then the base model of every fine-tuned one not already there (an evaluation compares
    a tuned model with what it was tuned from)."""
    out = list(dict.fromkeys(models))
    for m in list(out):
        b = base_of(m)
        if b and b not in out:
            out.append(b)
    return out
