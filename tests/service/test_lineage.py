"""Lineage through a real `ftui serve`: raw reviews → `ftui prepare`'s recipe → the uploaded train split (its
content hash on the backend) → the job → its model → an evaluation of it; and back: every model trained on that
prepared data, from its test split."""
from __future__ import annotations

import json

import pytest

from ftui.core.evalset import load
from ftui.core.files import sha256_of
from ftui.core.prepare import Recipe, plan, write
from ftui.service.evaluate import EvalParams, run, write as write_eval
from ftui.service.lineage import lineage_of, models_trained_on
from ftui.service.profiles import Profile
from ftui.service.runs import SHA_KEY
from tests.backend import wait_for
from tests.helpers import SAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture
async def svc(server):
    from ftui.service.client import Service

    s = Service(Profile("local", "local"), base_url=server.base_url)
    yield s
    await s.close()


async def test_source_recipe_file_job_model_evaluation_and_back(svc, server, tmp_path):
    prepared = tmp_path / "reviews-prepared"
    write(plan(Recipe([str(SAMPLES / "reviews.csv")], system="Rate the review from 1 to 5.", split_counts=(24, 0, 8),
                      seed=11)), prepared)
    train = prepared / "train.jsonl"
    digest = sha256_of(train)
    f = await svc.upload(train)
    assert f["sha256"] == digest  # the backend keeps each file's content hash (an ftui extension)
    job = await svc.create_job(training_file=f["id"], model="smollm2-135m-instruct", suffix="lineage", seed=3,
                               hyperparameters={"n_epochs": 1, "batch_size": 8}, metadata={SHA_KEY: digest})
    done = wait_for(server.client(), job["id"])
    assert done.status == "succeeded", done.error
    job = await svc.job(job["id"])
    model = job["fine_tuned_model"]
    before = [(link.kind, link.text) for link in await lineage_of(svc, job)]
    assert [k for k, _ in before] == ["source", "recipe", "file", "job", "model"]
    recipe = (prepared / "prepare.json").read_text()
    assert before[0][1] == "reviews.csv" and before[1][1].startswith("recipe-") and before[1][1][:19] in recipe
    assert before[2][1] == f"train.jsonl ({f['id']}, sha256 {digest[:12]}…)"
    assert before[3][1] == job["id"] and before[4][1] == model
    # an evaluation of the model becomes the last link
    test = prepared / "test.jsonl"
    r = await run(svc, load(test), [model], EvalParams(max_tokens=2), teacher_forced=False)
    write_eval(r, tmp_path / "eval")
    after = await lineage_of(svc, job)
    score = json.loads((tmp_path / "eval" / "eval.json").read_text())["models"][model]["exact_match"]
    assert (after[-1].kind, after[-1].text) == ("evaluation", f"exact_match {score:.3f} on test.jsonl")  # 8
    # examples are too few for a label set: the headline is exact match
    # and back: the models trained on the data the test split was prepared with
    found = await models_trained_on(svc, test)
    assert found.models == [model] and found.why.startswith("1 model trained on train.jsonl (recipe-")
    none = await models_trained_on(svc, SAMPLES / "marv_valid.jsonl")
    assert none.models == [] and "No prepare.json beside marv_valid.jsonl" in none.why
