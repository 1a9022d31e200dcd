"""Pure parts of ftui.service: profiles (no key ever rendered), results CSV, the job track."""
from __future__ import annotations

import base64

import pytest

from ftui.service import results
from ftui.service.jobs import JobTrack
from ftui.service.profiles import ProfileError, resolve

KEY = "sk-secret-123456"


def test_profile_resolution_and_the_key_is_never_rendered():
    assert resolve(None, {}, env={}).kind == "local"
    p = resolve(None, {}, env={"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "https://proxy.example/v1",
                               "OPENAI_ORG_ID": "org-1", "OPENAI_PROJECT_ID": "proj-1"})
    assert (p.kind, p.base_url, p.organization, p.project, p.api_key) == (
        "openai", "https://proxy.example/v1", "org-1", "proj-1", KEY)
    assert KEY not in repr(p) and KEY not in str(p) and KEY not in p.label()
    assert p.label() == "OpenAI · proxy.example"
    azure = resolve("az", {"az": {"kind": "azure", "endpoint": "https://x.openai.azure.com/",
                                  "api_version": "2025-04-01-preview", "deployments": {"ft:a": "dep-a"}}},
                    env={"AZURE_OPENAI_API_KEY": KEY})
    assert azure.api_key == KEY and azure.base_url == "https://x.openai.azure.com" and KEY not in repr(azure)
    assert azure.interval == 15.0 and resolve("local", {}, env={}).interval == 1.0
    assert resolve("off", {}, env={}).label() == "no backend"


@pytest.mark.parametrize("backend, profs, env, needle", [
    ("openai", {}, {}, "OPENAI_API_KEY is not set"),
    ("nope", {}, {}, "neither a profile"),
    ("az", {"az": {"kind": "azure"}}, {}, "needs endpoint"),
    ("c", {"c": {"kind": "compatible"}}, {}, "needs base_url"),
    ("c", {"c": {"kind": "compatible", "base_url": "http://h/v1", "api_key": "sk-x"}}, {}, "must not hold the key"),
    ("c", {"c": {"kind": "weird"}}, {}, "kind must be one of"),
])
def test_bad_profiles_are_explained(backend, profs, env, needle):
    with pytest.raises(ProfileError, match=needle):
        resolve(backend, profs, env=env)


CSV = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.5,0.25,,\n2,1.25,0.5,1.4,0.3\n"


@pytest.mark.parametrize("raw", [CSV, base64.b64encode(CSV)])
def test_results_csv_plain_or_base64(raw):
    s = results.parse(raw)
    assert s["train_loss"] == [(1, 1.5), (2, 1.25)]
    assert s["train_mean_token_accuracy"] == [(1, 0.25), (2, 0.5)]
    assert s["valid_loss"] == [(2, 1.4)]


def test_results_csv_garbage_is_an_error():
    with pytest.raises(results.ResultsError):
        results.parse(b"\x00\x01not a csv")


def ev(i, step=None, **data):
    e = {"id": f"ev-{i}", "created_at": i, "type": "message", "data": {}, "message": f"m{i}", "level": "info"}
    if step is not None:
        e.update(type="metrics", data={"step": step, "total_steps": 10, **data})
    return e


def test_job_track_merges_pages_by_id_and_builds_series():
    t = JobTrack({"id": "j", "status": "running"})
    new = t.add_events([ev(3, 2, train_loss=1.0), ev(2, 1, train_loss=2.0), ev(1)])
    assert [e["id"] for e in new] == ["ev-1", "ev-2", "ev-3"]
    newest = ev(4, 3, train_loss=0.5, valid_loss=0.7)
    assert t.add_events([newest, ev(3, 2, train_loss=1.0)]) == [newest]
    assert [e["id"] for e in t.events] == ["ev-1", "ev-2", "ev-3", "ev-4"]
    assert t.series("train_loss") == [(1, 2.0), (2, 1.0), (3, 0.5)]
    assert t.series("valid_loss") == [(3, 0.7)]
    assert (t.step, t.total_steps, t.terminal) == (3, 10, False)
    t.add_results({"train_loss": [(1, 9.0), (4, 0.25)]})  # events win for steps they have; the CSV fills the rest
    assert t.series("train_loss") == [(1, 2.0), (2, 1.0), (3, 0.5), (4, 0.25)]
    t.job["status"] = "succeeded"
    assert t.terminal


def _status_error(status: int, body: dict, headers: dict | None = None):
    import httpx2
    import openai

    req = httpx2.Request("POST", "https://api.openai.com/v1/fine_tuning/jobs")
    resp = httpx2.Response(status, request=req, json=body, headers=headers or {})
    cls = {401: openai.AuthenticationError, 403: openai.PermissionDeniedError, 429: openai.RateLimitError}[status]
    return cls(body["error"]["message"], response=resp, body=body)


def test_403_on_job_creation_at_openai_explains_the_wind_down():
    from ftui.service.errors import explain

    exc = _status_error(403, {"error": {"message": "You are not allowed to create fine-tuning jobs.",
                                        "code": None}})
    p = explain(exc, action="create job", openai_host=True)
    assert p.kind == "forbidden" and "winding down" in p.message and "ftui serve" in p.message
    assert "winding down" not in explain(exc, action="create job", openai_host=False).message


def test_429_retry_after_ms_and_quota():
    from ftui.service.errors import explain

    p = explain(_status_error(429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
                              {"retry-after-ms": "2500"}))
    assert p.retry_after == 2.5 and p.transient
    q = explain(_status_error(429, {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}))
    assert q.retry_after is None and "billing" in q.message


def test_header_shows_host_only_never_credentials_in_the_url():
    from ftui.service.profiles import Profile

    p = Profile("box", "compatible", base_url="http://alice:s3cret@gpu-box:8000/v1")
    assert p.host() == "gpu-box:8000" and "s3cret" not in p.label() and "alice" not in p.label()
    assert Profile("o", "openai").host() == "api.openai.com"
    assert Profile("v6", "compatible", base_url="http://u:p@[::1]:9/v1").host() == "[::1]:9"


def test_dpo_results_stay_reward_accuracy():
    dpo = b"step,train_loss,train_mean_reward_accuracy,train_mean_reward_margin\n1,0.69,0.5,0.01\n2,0.6,0.75,0.2\n"
    series = results.parse(dpo)
    assert series["train_mean_reward_accuracy"] == [(1, 0.5), (2, 0.75)]
    assert "train_mean_token_accuracy" not in series
