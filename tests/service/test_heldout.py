"""A job is measured on its own held-out data, and a training file is uploaded once: the upload ledger and
prepare.json's content hashes, against a real `ftui serve` through the real SDK."""
from __future__ import annotations

import json
import shutil

import pytest

from ftui.core.prepare import Recipe, plan, write
from ftui.service.heldout import heldout_for
from ftui.service.profiles import Profile
from tests.helpers import SAMPLES

BASE = "smollm2-135m-instruct"


@pytest.fixture
async def svc(server, tmp_path, monkeypatch):
    from ftui.service.client import Service

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # a ledger of this test's own
    s = Service(Profile("local", "local", data_dir=str(server.data_dir)), base_url=server.base_url)
    yield s
    await s.close()


def _prepared(folder, system: str):
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], user="review", assistant="star", system=system)), folder)
    return folder


async def _job(svc, train_id: str, valid_id: str | None = None) -> dict:
    job = await svc.create_job(training_file=train_id, validation_file=valid_id, model=BASE,
                               hyperparameters={"n_epochs": 1}, suffix="heldout")
    await svc.cancel(job["id"])  # only its files matter here
    return await svc.job(job["id"])


async def test_a_job_is_measured_on_the_test_split_prepared_with_its_own_training_file(svc, server, tmp_path):
    ours = _prepared(tmp_path / "reviews-prepared", "Rate the review.")
    other = _prepared(tmp_path / "other-prepared", "Something else entirely.")  # prepared last, not ours
    f = await svc.upload(ours / "train.jsonl")
    job = await _job(svc, f["id"])
    found = await heldout_for(svc, job, [other], tmp_path / "dl")
    assert found.path == ours / "test.jsonl"
    assert found.why.startswith(f"{ours / 'test.jsonl'}: the test split prepared with the job's training file "
                                f"train.jsonl ({f['id']}")


async def test_without_the_ledger_the_prepared_folder_is_found_by_name_size_and_content(svc, server, tmp_path,
                                                                                        monkeypatch):
    ours = _prepared(tmp_path / "a", "Rate the review.")
    other = _prepared(tmp_path / "b", "Another system prompt.")
    f = await svc.upload(ours / "train.jsonl")
    job = await _job(svc, f["id"])
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "another-machine"))  # uploaded by someone else
    found = await heldout_for(svc, job, [other, ours], tmp_path / "dl")
    assert found.path == ours / "test.jsonl"
    assert "which has the name, size and content of the job's training file" in found.why
    found = await heldout_for(svc, job, [other], tmp_path / "dl")  # a folder whose train.jsonl is other data
    assert found.path is None and "no validation file" in found.why


async def test_a_changed_training_file_falls_back_to_the_validation_file_named_by_its_filename(svc, server, tmp_path):
    ours = _prepared(tmp_path / "p", "Rate the review.")
    train = tmp_path / "train.jsonl"
    shutil.copy(ours / "train.jsonl", train)  # no prepare.json beside it
    f = await svc.upload(train)
    v = await svc.upload(SAMPLES / "marv_valid.jsonl")
    job = await _job(svc, f["id"], v["id"])
    found = await heldout_for(svc, job, [], tmp_path / "dl")
    assert found.path == tmp_path / "dl" / f"marv_valid-{v['id']}.jsonl"
    assert found.path.read_bytes() == (SAMPLES / "marv_valid.jsonl").read_bytes()
    assert found.why.endswith(f"the job's validation file marv_valid.jsonl ({v['id']}) — no test split prepared "
                              "with its training file train.jsonl was found")
    # the prepared folder's train.jsonl edited after the upload: its test split is no longer the job's
    g = await svc.upload(ours / "train.jsonl")
    job = await _job(svc, g["id"])
    with open(ours / "train.jsonl", "a") as fh:
        fh.write(json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "1"}]})
                 + "\n")
    found = await heldout_for(svc, job, [ours], tmp_path / "dl")
    assert found.path is None
    assert found.why == ("No test split prepared with the job's training file train.jsonl was found and the job has no "
                         "validation file: name the held-out data in Data")


async def test_an_identical_file_is_uploaded_once(svc, server, tmp_path):
    data = tmp_path / "t.jsonl"
    shutil.copy(SAMPLES / "marv.jsonl", data)
    first = await svc.upload(data)
    server.reset_requests()
    moved = []
    again = await svc.upload(data, progress=lambda done, total: moved.append((done, total)))
    assert again["id"] == first["id"] and again["ftui_reused"] is True
    assert moved[-1] == (data.stat().st_size, data.stat().st_size)
    assert server.requests().get("POST /v1/files", 0) == 0
    fresh = await svc.upload(data, reuse=False)  # asked for: a new file
    assert fresh["id"] != first["id"] and "ftui_reused" not in fresh
    await svc.delete_file(first["id"])
    await svc.delete_file(fresh["id"])
    third = await svc.upload(data)  # both deleted: uploaded again, not a dangling id
    assert third["id"] not in (first["id"], fresh["id"]) and "ftui_reused" not in third
    with open(data, "a") as fh:
        fh.write("\n")
    changed = await svc.upload(data)
    assert changed["id"] != third["id"]


def test_the_shared_system_prompt_is_the_one_most_examples_begin_with():
    from ftui.core.system_prompt import shared_system_prompt

    def ex(system):
        msgs = [{"role": "system", "content": system}] if system else []
        turn = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        return json.dumps({"messages": msgs + turn})

    assert shared_system_prompt([ex("A"), ex("A"), ex("B"), "not json"]) == ("A", 2 / 3)
    assert shared_system_prompt([ex("A"), ex("B"), ex(None)]) is None  # a third each: no default
    assert shared_system_prompt([ex(None), ex(None)]) is None
    assert shared_system_prompt([ex("A"), ex(None)]) == ("A", 0.5)


async def test_a_tuned_models_training_system_prompt_is_read_from_its_training_file(svc, server, tmp_path,
                                                                                    monkeypatch):
    from ftui.service.trained_on import training_system_prompt

    f = await svc.upload(SAMPLES / "marv.jsonl")
    job = await _job(svc, f["id"])
    found = await training_system_prompt(svc, "ft:x:ckpt-step-1", job_id=job["id"])  # a checkpoint of this job
    assert (found.text, found.share, found.source) == ("Marv is a factual chatbot that is also sarcastic.", 1.0,
                                                       "marv.jsonl")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "elsewhere"))  # no ledger: the backend's copy is read
    found = await training_system_prompt(svc, "ft:x:ckpt-step-1", job_id=job["id"])
    assert (found.text, found.source) == ("Marv is a factual chatbot that is also sarcastic.", f["id"])
    assert await training_system_prompt(svc, BASE) is None
