"""Sweeps, the duplicate check and comparisons (ftui.service.runs): pure, no backend."""
from __future__ import annotations

import pytest

from ftui.service.jobs import JobTrack
from ftui.service.runs import (
    SHA_KEY,
    SweepError,
    existing_for,
    grid,
    identical,
    queue_positions,
    run_label,
    run_row,
    values_of,
)


def test_a_field_reads_as_a_list_of_values_and_a_bad_one_is_named():
    assert values_of("", "n_epochs") == ["auto"]
    assert values_of("auto", "learning_rate_multiplier") == ["auto"]
    assert values_of("", "seed") == [None]
    assert values_of("1, 2,3 ,2", "n_epochs") == [1, 2, 3]
    assert values_of("0.5,1", "learning_rate_multiplier") == [0.5, 1.0]
    assert values_of("0", "seed") == [0]
    with pytest.raises(SweepError, match=r"Epochs: '1\.5' is not an integer"):
        values_of("1, 1.5", "n_epochs")
    with pytest.raises(SweepError, match="LR multiplier: 0 must be above 0"):
        values_of("0, 1", "learning_rate_multiplier")


def test_the_grid_names_each_point_by_what_varies():
    points = grid({"n_epochs": [1, 2], "batch_size": ["auto"], "learning_rate_multiplier": [0.5, 2.0],
                   "seed": [7]}, {"beta": "auto"})
    assert [p.name for p in points] == ["ep1-lr0.5", "ep1-lr2", "ep2-lr0.5", "ep2-lr2"]
    assert points[1].hp == {"beta": "auto", "n_epochs": 1, "batch_size": "auto", "learning_rate_multiplier": 2.0}
    assert {p.seed for p in points} == {7}
    assert points[2].suffix("reviews") == "reviews-ep2-lr0.5"
    assert points[2].suffix("") == "ep2-lr0.5"
    single = grid({"n_epochs": [3], "seed": [None]})
    assert len(single) == 1 and single[0].name == "" and single[0].suffix("x") == "x"
    with pytest.raises(SweepError, match="The sweep has 81 jobs: at most 64"):
        grid({"n_epochs": [1, 2, 3], "batch_size": [1, 2, 3], "learning_rate_multiplier": [1, 2, 3],
              "seed": [1, 2, 3]})


def _job(jid, *, sha="a" * 64, status="succeeded", hp=None, seed=1, method="supervised", created=1, **kw):
    hp = {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 0.5, **(hp or {})}
    return {"id": jid, "status": status, "model": "base", "seed": seed, "created_at": created,
            "training_file": kw.pop("training_file", "file-1"), "validation_file": kw.pop("validation_file", None),
            "metadata": {SHA_KEY: sha} if sha else None, "method": {"type": method, method: {"hyperparameters": hp}},
            **kw}


def test_a_point_is_identical_only_with_the_same_content_base_method_and_hyperparameters():
    p = grid({"n_epochs": [2], "batch_size": ["auto"], "learning_rate_multiplier": [0.5], "seed": [None]})[0]
    same = dict(model="base", method="supervised", point=p, train_sha="a" * 64, valid_sha=None, file_sha={})
    assert identical(_job("j1"), **same)
    assert identical(_job("j1", status="queued"), **same)  # queued counts: it will train
    assert not identical(_job("j1", status="failed"), **same)
    assert not identical(_job("j1", status="cancelled"), **same)
    assert not identical(_job("j1", sha="b" * 64), **same)
    assert not identical(_job("j1", hp={"learning_rate_multiplier": 1.0}), **same)
    assert not identical(_job("j1", hp={"batch_size": 8}), **same)  # OpenAI reports chosen values: not "auto"
    assert not identical(_job("j1", method="dpo"), **same)
    assert not identical(_job("j1", model="other"), **same)
    assert not identical(_job("j1", validation_file="file-9"), **same)
    # no metadata: the ledger's file id -> sha256, else the same file id
    assert identical(_job("j1", sha=None, training_file="file-7"), **{**same, "file_sha": {"file-7": "a" * 64}})
    assert not identical(_job("j1", sha=None, training_file="file-7"), **same)
    assert identical(_job("j1", sha=None, training_file="file-7"), **{**same, "train_sha": "file:file-7"})
    seeded = grid({"n_epochs": [2], "batch_size": ["auto"], "learning_rate_multiplier": [0.5], "seed": [3]})[0]
    assert not identical(_job("j1", seed=1), **{**same, "point": seeded})
    assert identical(_job("j1", seed=3), **{**same, "point": seeded})


def test_existing_for_finds_the_newest_identical_job_of_each_point():
    points = grid({"n_epochs": [2, 3], "batch_size": ["auto"], "learning_rate_multiplier": [0.5], "seed": [None]})
    jobs = [_job("old", created=1), _job("new", created=5), _job("other", created=9, hp={"n_epochs": 4})]
    found = existing_for(points, jobs, model="base", method="supervised", train_sha="a" * 64, valid_sha=None,
                         file_sha={})
    assert {p.name: j["id"] for p, j in found.items()} == {"ep2": "new"}


def test_a_points_estimated_share_of_the_grid_follows_its_epochs():
    from ftui.service.runs import epochs_share

    points = grid({"n_epochs": [1, 3], "learning_rate_multiplier": [1.0, 2.0]})
    assert [epochs_share(p, points) for p in points] == [0.5, 0.5, 1.5, 1.5]
    auto = grid({"n_epochs": ["auto"], "learning_rate_multiplier": [1.0, 2.0]})
    assert [epochs_share(p, auto) for p in auto] == [1.0, 1.0]


def test_queue_positions_are_oldest_first_among_waiting_jobs():
    jobs = [{"id": "a", "status": "running", "created_at": 1}, {"id": "c", "status": "validating_files",
                                                                  "created_at": 3},
            {"id": "b", "status": "queued", "created_at": 2}, {"id": "d", "status": "succeeded", "created_at": 0},
            {"id": "e", "status": "paused", "created_at": 0}]
    assert queue_positions(jobs) == {"b": 1, "c": 2}
    # nothing running: the oldest waiting job is being taken now
    assert queue_positions([{**j, "status": "succeeded"} if j["id"] == "a" else j for j in jobs]) == {"b": 0, "c": 1}


def test_a_run_row_has_final_and_best_validation_and_its_evaluations():
    job = _job("ftjob-1", user_provided_suffix="ep2-lr0.5", trained_tokens=4000, finished_at=101, created_at=1)
    track = JobTrack(job)
    for step, (tl, fv) in enumerate([(2.0, None), (1.5, 1.4), (1.2, None), (1.0, 1.6)], 1):
        data = {"step": step, "total_steps": 4, "train_loss": tl, **({"full_valid_loss": fv} if fv else {})}
        track.add_events([{"id": f"e{step}", "type": "metrics", "data": data}])
    row = run_row(track, [{"metric": "accuracy", "score": 0.8125, "data_name": "test.jsonl"}])
    assert (row.label, row.final, row.best, row.best_step) == ("ep2-lr0.5", 1.6, 1.4, 2)
    assert row.duration_s == 100  # no "started" event: from its creation
    track.add_events([{"id": "s", "type": "message", "message": "Fine-tuning job started", "created_at": 31}])
    row = run_row(track, file_names={"file-1": "train.jsonl"})
    assert row.duration_s == 70 and row.data == "train.jsonl"  # the time it trained, not the time it queued
    assert row.evals == []
    row = run_row(track, [{"metric": "accuracy", "score": 0.8125, "data_name": "test.jsonl"}])
    assert row.trained_tokens == 4000 and row.measure == "valid loss"
    assert row.hyperparameters == "ep=2, lr=0.5"
    assert row.evals == ["accuracy 0.812 on test.jsonl"]
    assert run_label({**job, "user_provided_suffix": None}) == "ep2 lr0.5"
    from ftui.service.runs import curve

    assert curve(track, "train_loss", "tokens")[-1] == (4000.0, 1.0)  # 1000 tokens a step
    assert curve(track, "train_loss")[0] == (1.0, 2.0)


def test_an_rft_run_is_judged_by_its_highest_validation_reward():
    track = JobTrack(_job("r", method="reinforcement"))
    for step, v in [(1, 0.2), (2, 0.7), (3, 0.5)]:
        track.add_events([{"id": f"e{step}", "type": "metrics",
                           "data": {"step": step, "full_valid_mean_reward": v}}])
    row = run_row(track)
    assert (row.best, row.best_step, row.final, row.measure) == (0.7, 2, 0.5, "valid reward")


def test_the_evaluation_index_keeps_each_models_latest_score_per_data_file(tmp_path):
    from ftui.service.evaluate import evaluations, index_path, remember

    before = index_path().read_bytes() if index_path().exists() else None
    doc = {"metric": "accuracy", "data": str(tmp_path / "test.jsonl"), "examples": 60, "complete": True,
           "models": {"ft:base:x": {"accuracy": 0.75}, "base": {"accuracy": 0.5}}}
    remember(doc, tmp_path / "a" / "eval.json")
    remember({**doc, "models": {"ft:base:x": {"accuracy": 0.8}}}, tmp_path / "b" / "eval.json")
    remember({**doc, "metric": "reward", "data": "other.jsonl", "models": {"ft:base:x": {"mean_reward": 0.4}}},
             tmp_path / "c" / "eval.json")
    got = evaluations("ft:base:x")
    assert [(e["data_name"], e["metric"], e["score"]) for e in got] == [("other.jsonl", "reward", 0.4),
                                                                         ("test.jsonl", "accuracy", 0.8)]
    remember({**doc, "models": {"ft:base:x": {"accuracy": 0.9}}}, tmp_path / "b" / "eval.json")  # run b again
    assert [e["score"] for e in evaluations("ft:base:x")] == [0.9, 0.4]
    assert evaluations("base")[0]["score"] == 0.5
    assert oct(index_path().stat().st_mode & 0o777) == "0o600"
    if before is not None:
        index_path().write_bytes(before)
