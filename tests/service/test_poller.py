"""The Jobs workspace's poll policy (ftui.service.jobs.JobPoller), pure: what a tick fetches, what counts as a change,
when a job has just ended (announced exactly once), and how long to the next tick. No Textual, no backend."""
from __future__ import annotations

from ftui.service.errors import Problem
from ftui.service.jobs import JobPoller, Tick


def job(i: str, status: str, **kw) -> dict:
    return {"id": i, "status": status, "created_at": 1, **kw}


def test_first_sight_is_a_change_but_not_an_end():
    p = JobPoller(1.0)
    t = Tick()
    p.observe(job("a", "running"), t)
    p.observe(job("b", "succeeded"), t)
    assert t.changed == ["a", "b"] and t.finished == []
    assert [x.id for x in p.live()] == ["a"]


def test_an_end_is_announced_exactly_once_even_when_seen_again_and_again():
    p = JobPoller(1.0)
    p.observe(job("a", "running"), Tick())
    ends = []
    for _ in range(3):  # the list, the job itself, an action's answer: all see the same end
        t = Tick()
        p.observe(job("a", "succeeded", fine_tuned_model="ft:x"), t)
        ends += t.finished
    assert ends == ["a"]


def test_a_stale_answer_never_moves_a_finished_job_back():
    p = JobPoller(1.0)
    p.observe(job("a", "running"), Tick())
    p.observe(job("a", "cancelled"), Tick())  # the cancel action's answer
    t = Tick()
    p.observe(job("a", "running"), t)  # a poll that read the job before the cancel
    assert p.tracks["a"].job["status"] == "cancelled" and t.changed == [] and t.finished == []


def test_list_is_read_first_then_every_list_every_or_when_asked_and_never_while_hidden():
    p = JobPoller(1.0, list_every=60)
    assert p.wants_list(0, hidden=False)
    p.listed_at, p.list_asked = 0, False
    assert not p.wants_list(30, hidden=False) and p.wants_list(60, hidden=False)
    p.list_asked = True
    assert p.wants_list(1, hidden=False) and not p.wants_list(1, hidden=True)


def test_what_the_detail_loads():
    p = JobPoller(1.0)
    p.observe(job("live", "running"), Tick())
    p.observe(job("old", "succeeded"), Tick())
    t = Tick()
    live, old = p.tracks["live"], p.tracks["old"]
    assert p.wants_events(live, t, selected=None)  # live jobs follow their events
    assert not p.wants_events(old, t, selected=None)  # an old one costs nothing…
    assert p.wants_events(old, t, selected="old")  # …until it is selected and its backlog is not loaded
    old.events_complete = True
    assert not p.wants_events(old, t, selected="old")
    assert p.wants_checkpoints(live, []) and p.wants_results(old)
    live.checkpoints_loaded_at = "running"
    assert not p.wants_checkpoints(live, []) and p.wants_checkpoints(live, [{"message": "Checkpoint at step 4"}])


def test_next_delay_backoff_retry_after_and_hidden():
    p = JobPoller(2.0)
    assert p.next_delay() == 2.0 and p.next_delay(hidden=True) == 8.0
    offline = Problem("offline", "down")
    assert [p.next_delay(offline) for _ in range(6)] == [4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert p.next_delay(Problem("rate_limited", "slow", retry_after=1.5)) == 1.5
    assert p.next_delay(Problem("auth", "no")) == 10.0
    assert p.next_delay() == 2.0 and p.failures == 0
