"""What made a model, link by link: the raw sources and the recipe (``prepare.json``), the training file (its content
hash), the job, the model, and the evaluations of that model — and the other way round, every model trained on a
prepared data set (the Eval workspace's "all models trained on this data").

What each link rests on: the backend's file object (ftui serve gives its ``sha256``), the upload ledger (the local
file a training file was uploaded from, and its hash), the ``prepare.json`` beside that file when it lists that very
content as its train split (its ``recipe_id`` and ``inputs``), the job's ``metadata`` (the app writes the training
file's hash there) and the index of evaluations (``evaluate.evaluations``)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from ftui.core.files import PREPARE_REPORT, sha256_of

from .errors import ServiceError
from .evaluate import evaluations
from .ledger import Ledger
from .runs import SHA_KEY, content_of


@dataclass(frozen=True)
class Link:
    kind: str  # source | recipe | file | job | model | evaluation
    text: str


def _prepare_report(train: Path, digest: str | None) -> dict | None:
    """The ``prepare.json`` beside ``train`` when it made this very content as its train split."""
    try:
        doc = json.loads((train.parent / PREPARE_REPORT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or (doc.get("outputs") or {}).get("train") != train.name:
        return None
    if digest is not None and (doc.get("sha256") or {}).get("train") != digest:
        return None
    return doc


async def lineage_of(svc, job: dict) -> list[Link]:
    """source → recipe → file → job → model → evaluations, as far as they are known."""
    links: list[Link] = []
    fid = job.get("training_file") or ""
    name, digest = fid, None
    try:
        f = await svc.file(fid) if fid else {}
        name = f.get("filename") or fid
        digest = f.get("sha256") if isinstance(f.get("sha256"), str) else None
    except ServiceError:
        pass
    meta = job.get("metadata") or {}
    if digest is None and isinstance(meta, dict) and isinstance(meta.get(SHA_KEY), str):
        digest = meta[SHA_KEY]
    known = await asyncio.to_thread(Ledger().get, svc.identity, fid) if fid else None
    if known is not None:
        digest = digest or known.sha256
        local = Path(known.path)
        same = local.is_file() and await asyncio.to_thread(sha256_of, local) == known.sha256
        doc = _prepare_report(local, digest) if same else None
        if doc is not None:
            sources = [Path(str(i.get("path"))).name for i in doc.get("inputs") or [] if isinstance(i, dict)]
            sources = sources or [Path(str(p)).name for p in (doc.get("recipe") or {}).get("inputs") or []]
            if sources:
                links.append(Link("source", ", ".join(sources)))
            links.append(Link("recipe", f"{doc.get('recipe_id') or 'prepare.json'} ({local.parent / PREPARE_REPORT})"))
        name = local.name if name == fid else name
    links.append(Link("file", f"{name} ({fid}" + (f", sha256 {digest[:12]}…)" if digest else ")")))
    links.append(Link("job", job.get("id") or ""))
    model = job.get("fine_tuned_model")
    if model:
        links.append(Link("model", model))
        for e in await asyncio.to_thread(evaluations, model):
            if isinstance(e.get("score"), (int, float)):
                links.append(Link("evaluation", f"{e['metric']} {e['score']:.3f} on {e.get('data_name')}"))
    return links


def lineage_text(links: list[Link]) -> str:
    return " → ".join(link.text for link in links)


@dataclass(frozen=True)
class TrainedOn:
    models: list[str]
    why: str


async def models_trained_on(svc, data: Path) -> TrainedOn:
    """The fine-tuned models of succeeded jobs whose training file has the content of the train split prepared with
    ``data`` (the ``prepare.json`` beside it names the split and its sha256), newest first."""
    try:
        doc = json.loads((data.parent / PREPARE_REPORT).read_text())
    except (OSError, ValueError):
        return TrainedOn([], f"No {PREPARE_REPORT} beside {data.name}: it was not made by ftui prepare, so the "
                             "data its models were trained on is unknown")
    digest = (doc.get("sha256") or {}).get("train") if isinstance(doc, dict) else None
    train = (doc.get("outputs") or {}).get("train") if isinstance(doc, dict) else None
    if not digest:
        return TrainedOn([], f"{PREPARE_REPORT} beside {data.name} lists no train split")
    jobs = await svc.jobs(limit=100)
    known = {j["id"] for j in jobs}
    try:  # backends that keep metadata find older jobs on this content too
        jobs += [j for j in await svc.jobs(limit=100, metadata={SHA_KEY: digest}) if j["id"] not in known]
    except ServiceError:
        pass
    file_sha = {u.file_id: u.sha256 for u in await asyncio.to_thread(Ledger().entries, svc.identity)}
    for f in await _files(svc):
        if isinstance(f.get("sha256"), str):
            file_sha.setdefault(f["id"], f["sha256"])
    found = [j for j in sorted(jobs, key=lambda j: j.get("created_at") or 0, reverse=True)
             if j.get("status") == "succeeded" and j.get("fine_tuned_model")
             and content_of(j, SHA_KEY, file_sha) == digest]
    models = list(dict.fromkeys(j["fine_tuned_model"] for j in found))
    recipe = doc.get("recipe_id") or PREPARE_REPORT
    if not models:
        return TrainedOn([], f"No finished job on this backend was trained on {train} ({recipe})")
    return TrainedOn(models, f"{len(models)} model{'s' if len(models) != 1 else ''} trained on {train} ({recipe}), "
                             f"measured on {data.name}")


async def _files(svc) -> list[dict]:
    try:
        return await svc.files()
    except ServiceError:
        return []
