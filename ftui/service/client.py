"""``Service``: the calls the app makes to a backend, on the official SDK's AsyncOpenAI (AsyncAzureOpenAI for
Azure). Results are plain dicts (``model_dump``), so callers never see SDK types; every failure is raised as a
``ServiceError`` whose ``problem`` explains it (see ``errors``). Importing this module imports ``openai``."""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Awaitable, Callable, cast

import openai

from ftui.core.files import atomic_write, sha256_of

from . import results
from .errors import ServiceError, bad_response, explain
from .jobs import JobTrack
from .ledger import Ledger
from .profiles import Profile

Progress = Callable[[int, int], None]


class _CountingReader(io.RawIOBase):
    """A binary file (on disk, or a part's bytes) that calls ``on_read(position)`` after each read: httpx reads
    multipart files in 64 KiB chunks, so the upload's progress moves as it is sent."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._f = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._on_read(self._f.tell())
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()

    def as_file(self) -> IO[bytes]:
        """Itself, typed as the SDK's file parameter (typeshed's ``IO[bytes]`` is nominal; httpx only reads)."""
        return cast("IO[bytes]", self)


def _dump(obj, action: str = "a request") -> dict:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict):
        return dict(obj)
    # the SDK hands back the text of a body that is not JSON (a proxy's HTML page, a login form)
    raise bad_response(action, "is not an API response (not JSON: is the base URL right?)")


def _idempotent() -> dict:
    """Headers for a creating POST: the SDK resends the same ones when it retries, so a retry of a request the
    backend already carried out gets the first answer again (not a second job or file)."""
    return {"Idempotency-Key": f"ftui-{uuid.uuid4()}"}


def _items(page, action: str) -> list[dict]:
    """The objects of a list page, each a dict; anything else is a bad response, explained."""
    data = getattr(page, "data", None)
    if not isinstance(data, list):
        raise bad_response(action, "has no list of objects (is the base URL right?)")
    return [_dump(x, action) for x in data]


def _job(obj, action: str) -> dict:
    job = _dump(obj, action)
    if not isinstance(job.get("id"), str) or not isinstance(job.get("status"), str):
        missing = "an id" if not isinstance(job.get("id"), str) else "a status"
        raise bad_response(action, f"is a job without {missing}")
    return job


UPLOAD_THRESHOLD = 512 * 2**20  # the Files API's limit
PART_SIZE = 64 * 2**20  # the Uploads API's largest part


@dataclass
class UploadState:
    """A chunked upload in flight (what the Files workspace lists)."""
    id: str
    filename: str
    bytes: int
    parts: int
    sent: int = 0
    parts_done: int = 0
    retried: int = 0
    status: str = "pending"  # pending | completed | cancelled
    task: asyncio.Task | None = None  # the asyncio task running it (cancel_upload cancels it)


def _read_part(path: Path, start: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(n)


def _md5(path: Path) -> str:
    import hashlib

    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Service:
    """Polling calls go out once (the poll loop backs off by itself); calls a person started (upload, create, cancel,
    pause, resume, delete, chat) get the SDK's own retries: connection errors, timeouts, 408/409/429/5xx, honouring
    Retry-After, with an Idempotency-Key on creating POSTs so a retry never makes a second job or file."""

    RETRIES = 2  # the SDK's default
    PART_RETRIES = 2  # a part that still fails after the SDK's retries is sent again this many times

    def __init__(self, profile: Profile, base_url: str | None = None, timeout: float = 60.0) -> None:
        self.profile = profile
        t = openai.Timeout(timeout, connect=5.0)
        self.client: openai.AsyncOpenAI
        if profile.kind == "azure":
            assert profile.base_url, "an azure profile always has its endpoint (profiles.py refuses one without)"
            self.client = openai.AsyncAzureOpenAI(azure_endpoint=profile.base_url, api_version=profile.api_version,
                                                  api_key=profile.api_key, max_retries=0, timeout=t)
        else:
            self.client = openai.AsyncOpenAI(api_key=profile.api_key or "local", base_url=base_url or profile.base_url,
                                             organization=profile.organization, project=profile.project,
                                             max_retries=0, timeout=t)
        self.base_url = str(self.client.base_url)
        self.retrying = self.client.with_options(max_retries=self.RETRIES)
        self.upload_threshold = UPLOAD_THRESHOLD  # bytes: above it a file goes through the Uploads API
        self.part_size = PART_SIZE
        self.parallel_parts = 3
        self.uploads: dict[str, UploadState] = {}  # chunked uploads of this app, for the Files workspace

    async def _call(self, coro: Awaitable, action: str = ""):
        try:
            return await coro
        except ServiceError:
            raise
        except openai.OpenAIError as exc:
            raise ServiceError(explain(exc, action=action, openai_host=self.profile.is_openai)) from exc
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # ValueError: broken JSON, …
            raise ServiceError(explain(exc, action=action)) from exc

    async def close(self) -> None:
        await self.client.close()

    # -- models and files --------------------------------------------------------------------------------------
    async def models(self) -> list[dict]:
        page = await self._call(self.client.models.list(), "list models")
        return _items(page, "list models")

    async def validate_grader(self, grader: dict) -> dict:
        """OpenAI's ``/fine_tuning/alpha/graders/validate``: the grader as the backend accepts it (a ServiceError
        whose problem names the field otherwise)."""
        call = self.client.fine_tuning.alpha.graders.validate(grader=grader)  # type: ignore[arg-type]
        return _dump(await self._call(call, "check a grader"), "check a grader")

    async def run_grader(self, grader: dict, model_sample: str, item: dict | None = None) -> dict:
        """OpenAI's graders API (``/fine_tuning/alpha/graders/run``): the backend grades one sample."""
        call = self.client.fine_tuning.alpha.graders.run(grader=grader, model_sample=model_sample,  # type: ignore
                                                         item=item if item is not None else {})
        return _dump(await self._call(call, "run a grader"), "run a grader")

    async def files(self) -> list[dict]:
        page = await self._call(self.client.files.list(), "list files")
        return _items(page, "list files")

    async def file(self, file_id: str) -> dict:
        return _dump(await self._call(self.client.files.retrieve(file_id), "read a file"), "read a file")

    @property
    def identity(self) -> str:
        """What names this backend across restarts: the local backend's data dir (its port changes at every start),
        else the base URL. Caches and the upload ledger are keyed by it."""
        if self.profile.kind == "local":
            from ftui.serveinfo import default_data_dir

            return f"local:{Path(self.profile.data_dir or default_data_dir()).expanduser().resolve()}"
        return self.base_url

    async def upload(self, path: str | Path, progress: Progress | None = None, reuse: bool = True) -> dict:
        """Upload a training file: the Files API up to ``upload_threshold`` bytes, the Uploads API above it (parts in
        parallel, each retried, one progress for the whole file; cancelling the caller cancels the Upload).

        With ``reuse``, a file this user already uploaded to this backend with the same content (sha256, in the
        ledger) is returned instead, when the backend still has it at the same size; the dict then carries
        ``"ftui_reused": True``. Every upload is recorded in the ledger."""
        path = Path(path)
        size = path.stat().st_size
        digest = await asyncio.to_thread(sha256_of, path)
        book = Ledger()
        if reuse:
            for known in book.by_content(self.identity, digest):
                try:
                    f = await self.file(known.file_id)
                except ServiceError:  # deleted on the backend, or the backend is another one now
                    book.forget(self.identity, known.file_id)
                    continue
                if f.get("bytes") == size and f.get("status") != "error":
                    if progress is not None:
                        progress(size, size)
                    return {**f, "ftui_reused": True}
        if size > self.upload_threshold:
            f = await self.upload_parts(path, progress)
        else:
            def on_read(n: int) -> None:
                if progress is not None:
                    progress(n, size)

            reader = _CountingReader(open(path, "rb"), on_read)
            try:
                f = _dump(await self._call(self.retrying.files.create(file=(path.name, reader.as_file(),
                                                                            "application/jsonl"),
                                                                      purpose="fine-tune",
                                                                      extra_headers=_idempotent()),
                                           "upload"), "upload")
            finally:
                reader.close()
        if f.get("id"):
            book.record(self.identity, f["id"], path, digest, size)
        return f

    async def upload_parts(self, path: str | Path, progress: Progress | None = None,
                           cancel: asyncio.Event | None = None) -> dict:
        """The Uploads API by hand rather than the SDK's ``upload_file_chunked`` (which sends parts one after the
        other, holds each in memory with no progress, and neither retries nor cancels): ``parallel_parts`` parts at
        a time, each read from disk when its turn comes, retried ``PART_RETRIES`` times past the SDK's own retries;
        an md5 of the file goes with the completion; any failure or a cancel (``cancel`` set, or the task
        cancelled) cancels the Upload on the backend."""
        path = Path(path)
        size = path.stat().st_size
        n_parts = max(1, -(-size // self.part_size))
        md5 = await asyncio.to_thread(_md5, path)
        up = await self._call(self.retrying.uploads.create(bytes=size, filename=path.name, purpose="fine-tune",
                                                           mime_type="application/jsonl",
                                                           extra_headers=_idempotent()), "start an upload")
        state = UploadState(up.id, path.name, size, n_parts, task=asyncio.current_task())
        self.uploads[up.id] = state
        sent = [0] * n_parts
        part_ids: list[str | None] = [None] * n_parts
        gate = asyncio.Semaphore(self.parallel_parts)

        def moved(i: int, n: int) -> None:
            sent[i] = n
            state.sent = sum(sent)
            if progress:
                progress(state.sent, size)

        async def one(i: int) -> None:
            async with gate:
                for attempt in range(self.PART_RETRIES + 1):
                    if cancel is not None and cancel.is_set():
                        raise asyncio.CancelledError()
                    start = i * self.part_size
                    data = await asyncio.to_thread(_read_part, path, start, min(self.part_size, size - start))
                    reader = _CountingReader(io.BytesIO(data), functools.partial(moved, i))
                    try:
                        part = await self._call(self.retrying.uploads.parts.create(
                            up.id, data=(f"{path.name}.part{i}", reader.as_file())), "upload a part")
                    except ServiceError as e:
                        moved(i, 0)
                        if not e.problem.transient or attempt == self.PART_RETRIES:
                            raise
                        state.retried += 1
                        continue
                    part_ids[i] = part.id
                    state.parts_done += 1
                    return

        try:
            tasks = [asyncio.create_task(one(i)) for i in range(n_parts)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
            done = await self._call(self.retrying.uploads.complete(up.id, part_ids=[p for p in part_ids if p],
                                                                   md5=md5),
                                    "complete the upload")
        except BaseException:
            state.status = "cancelled"
            try:  # the Upload is cancelled on the backend whatever stopped it (shielded: the caller may be going)
                await asyncio.shield(self.retrying.uploads.cancel(up.id))
            except (openai.OpenAIError, OSError):
                pass
            raise
        finally:
            if state.status == "pending":
                state.status = "completed"
        if getattr(done, "file", None) is None:
            raise bad_response("complete the upload", "has no file")
        return _dump(done.file, "complete the upload")

    def cancel_upload(self, upload_id: str) -> None:
        """Ask a running chunked upload (started anywhere in the app) to stop; it cancels itself on the backend."""
        state = self.uploads.get(upload_id)
        if state is not None and state.task is not None:
            state.task.cancel()

    async def delete_file(self, file_id: str) -> None:
        await self._call(self.retrying.files.delete(file_id), "delete file")
        Ledger().forget(self.identity, file_id)

    async def delete_model(self, model_id: str) -> None:
        await self._call(self.retrying.models.delete(model_id), "delete model")

    # -- jobs --------------------------------------------------------------------------------------------------
    async def create_job(self, *, training_file: str, model: str, method: str = "supervised",
                         hyperparameters: dict | None = None, suffix: str | None = None, seed: int | None = None,
                         validation_file: str | None = None, grader: dict | None = None,
                         metadata: dict[str, str] | None = None) -> dict:
        hp = {k: v for k, v in (hyperparameters or {}).items() if v not in (None, "", "auto")}
        inner: dict = {"hyperparameters": hp}
        if method == "reinforcement":
            inner["grader"] = grader
        kw: dict = {"training_file": training_file, "model": model, "method": {"type": method, method: inner}}
        if suffix:
            kw["suffix"] = suffix
        if seed is not None:
            kw["seed"] = seed
        if validation_file:
            kw["validation_file"] = validation_file
        if metadata:
            kw["metadata"] = metadata
        job = await self._call(self.retrying.fine_tuning.jobs.create(**kw, extra_headers=_idempotent()), "create job")
        return _job(job, "create job")

    async def jobs(self, limit: int = 100, metadata: dict[str, str] | None = None) -> list[dict]:
        """The newest jobs; ``metadata``: only those whose metadata holds each pair (OpenAI's and ftui serve's
        ``metadata[KEY]=VALUE`` filter)."""
        jobs = self.client.fine_tuning.jobs
        page = await self._call(jobs.list(limit=limit, metadata=metadata) if metadata else jobs.list(limit=limit),
                                "list jobs")
        return [_job(j, "list jobs") for j in _items(page, "list jobs")]

    async def job(self, job_id: str) -> dict:
        return _job(await self._call(self.client.fine_tuning.jobs.retrieve(job_id), "get job"), "get job")

    async def _job_action(self, verb: str, job_id: str) -> dict:
        call = getattr(self.retrying.fine_tuning.jobs, verb)
        return _job(await self._call(call(job_id, extra_headers=_idempotent()), f"{verb} job"), f"{verb} job")

    async def cancel(self, job_id: str) -> dict:
        return await self._job_action("cancel", job_id)

    async def pause(self, job_id: str) -> dict:
        return await self._job_action("pause", job_id)

    async def resume(self, job_id: str) -> dict:
        return await self._job_action("resume", job_id)

    async def new_events(self, track: JobTrack, page_size: int = 20) -> list[dict]:
        """Fetch only what is new: the newest page, then older pages (the ``after`` cursor) until an event already
        held appears. Merged into ``track`` de-duplicated by id; returns the new events, oldest first."""
        collected: list[dict] = []
        after = None
        while True:
            limit = page_size if after is None and track.seen else 100
            page = await self._call(self.client.fine_tuning.jobs.list_events(
                track.id, limit=limit, **({"after": after} if after else {})), "list events")
            data = _items(page, "list events")
            if not all(isinstance(e.get("id"), str) for e in data):
                raise bad_response("list events", "holds an event without an id")
            known = any(e["id"] in track.seen for e in data)
            collected += data
            if known or not page.has_more or not data:
                break
            after = data[-1]["id"]
        return track.add_events(collected)

    async def rollout_steps(self, job_id: str) -> list[dict]:
        """A reinforcement job's validation steps that kept rollouts (``/v1/ftui/fine_tuning/jobs/{id}/rollouts``,
        an ftui endpoint: other backends answer 404, and the caller says they keep none)."""
        steps: list[dict] = []
        after: int | None = None
        while True:
            params = {"limit": 100, **({"after": after} if after is not None else {})}
            page = await self._call(self.retrying.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts", cast_to=object,
                                                      options={"params": params}), "list rollouts")
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list) or not all(isinstance(d, dict) and isinstance(d.get("step"), int)
                                                     for d in data):
                raise bad_response("list rollouts", "is not a list of steps")
            steps += data
            if not page.get("has_more") or not data:
                return steps
            after = data[-1]["step"]

    async def rollouts(self, job_id: str, step: int) -> dict:
        """One validation step's prompts, each with its samples and their rewards."""
        doc = await self._call(self.retrying.get(f"/ftui/fine_tuning/jobs/{job_id}/rollouts/{int(step)}",
                                                 cast_to=object), "read rollouts")
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise bad_response("read rollouts", "has no list of prompts")
        return doc

    async def checkpoints(self, job_id: str) -> list[dict]:
        page = await self._call(self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=100), "checkpoints")
        return _items(page, "list checkpoints")

    async def results_raw(self, job: dict) -> bytes | None:
        files = job.get("result_files") or []
        if not files:
            return None
        resp = await self._call(self.client.files.content(files[0]), "results file")
        return resp.content if hasattr(resp, "content") else bytes(resp.read())

    async def load_results(self, track: JobTrack) -> None:
        raw = await self.results_raw(track.job)
        if raw is not None:
            track.add_results(results.parse(raw))
        else:
            track.results_loaded = True

    async def download_results(self, job: dict, dest: str | Path) -> Path:
        """Save the results CSV, decoded to plain text, atomically at ``dest``."""
        raw = await self.results_raw(job)
        if raw is None:
            raise ServiceError(explain(ValueError("this job has no results file yet")))
        dest = Path(dest).expanduser()
        atomic_write(dest, results.decode(raw).encode())
        return dest

    async def download_file(self, file_id: str, dest: str | Path) -> Path:
        """A backend file's content saved atomically at ``dest`` (the Eval workspace reads a job's validation
        file this way)."""
        resp = await self._call(self.client.files.content(file_id), "download a file")
        data = resp.content if hasattr(resp, "content") else bytes(resp.read())
        dest = Path(dest).expanduser()
        atomic_write(dest, data)
        return dest

    # -- chat --------------------------------------------------------------------------------------------------
    def deployment(self, model: str) -> str:
        """Azure chats with a deployment name, not a model id; the profile maps them."""
        return self.profile.deployments.get(model, model)

    async def chat(self, model: str, messages: list[dict], on_text: Callable[[str], None],
                   max_tokens: int = 256, temperature: float | None = None) -> dict | None:
        """Stream a completion; ``on_text`` gets each fragment. Returns the usage dict (or None)."""
        kw: dict = {"model": self.deployment(model), "messages": messages, "stream": True,
                    "stream_options": {"include_usage": True}, "max_tokens": max_tokens}
        if temperature is not None:
            kw["temperature"] = temperature
        stream = await self._call(self.retrying.chat.completions.create(**kw), "chat")
        usage = None
        try:
            async with stream:
                async for chunk in stream:
                    if chunk.choices:
                        text = chunk.choices[0].delta.content
                        if text:
                            on_text(text)
                    if getattr(chunk, "usage", None):
                        usage = _dump(chunk.usage)
        except (openai.OpenAIError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ServiceError(explain(exc, action="chat")) from exc
        return usage

    async def complete(self, model: str, messages: list[dict], *, temperature: float | None = 0.0,
                       seed: int | None = None, max_tokens: int = 256, tools: list | None = None
                       ) -> tuple[str, dict]:
        """One non-streamed completion (evaluation runs): -> (text, usage). The SDK's retries honour Retry-After."""
        kw: dict = {"model": self.deployment(model), "messages": messages, "max_tokens": max_tokens}
        if temperature is not None:
            kw["temperature"] = temperature
        if seed is not None:
            kw["seed"] = seed
        if tools:
            kw["tools"] = tools
        resp = await self._call(self.retrying.chat.completions.create(**kw), "evaluate")
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
            if not text and getattr(choice.message, "tool_calls", None):
                import orjson

                text = orjson.dumps([c.model_dump(mode="json") for c in choice.message.tool_calls]).decode()
        except (AttributeError, IndexError, TypeError) as exc:
            raise bad_response("evaluate", "has no choices[0].message") from exc
        usage = _dump(resp.usage) if getattr(resp, "usage", None) is not None else {}
        return text, usage

    async def score(self, model: str, examples: list[dict]) -> list[dict]:
        """The local backend's teacher-forced loss of each example's last assistant answer (``/v1/ftui/score``, an
        ftui endpoint: other backends do not have it)."""
        data = await self._call(self.retrying.post("/ftui/score", cast_to=object,
                                                   body={"model": model, "examples": examples}), "score answers")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(examples):
            raise bad_response("score answers", "is not a list of one score per example")
        return [x if isinstance(x, dict) else {} for x in items]
