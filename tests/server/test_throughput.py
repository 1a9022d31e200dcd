"""The training speed a base model's object reports (``ftui.throughput``, what the app's time estimates use):
measured per method from succeeded jobs' "Fine-tuning job started" event to their end; paused or failed jobs and
other bases do not count. The store alone, no server."""
from __future__ import annotations

from ftui.server.store import Store


def _job(store: Store, jid: str, *, tokens: int, started: int, finished: int, method: str = "supervised",
         model: str = "base", status: str = "succeeded", paused: bool = False) -> None:
    store.add_job(id=jid, created_at=started - 5, model=model, training_file="file-x", validation_file=None,
                  status=status, method={"type": method, method: {"hyperparameters": {}}}, suffix=None, seed=1,
                  metadata=None)
    store.update_job(jid, trained_tokens=tokens, finished_at=finished)
    store.import_event({"id": f"{jid}-s", "job_id": jid, "created_at": started, "level": "info", "type": "message",
                        "message": "Fine-tuning job started", "data": None})
    if paused:
        store.import_event({"id": f"{jid}-p", "job_id": jid, "created_at": started + 1, "level": "info",
                            "type": "message", "message": "Fine-tuning job paused at step 2", "data": None})


def test_throughput_is_tokens_over_training_seconds_per_method(tmp_path):
    store = Store(tmp_path)
    assert store.throughput("base") == {}
    _job(store, "a", tokens=1000, started=100, finished=110)  # 100 tokens/s
    _job(store, "b", tokens=3000, started=200, finished=210)  # 300 tokens/s: together 4000 / 20 s
    _job(store, "c", tokens=9000, started=300, finished=301, paused=True)  # paused: its time is not training time
    _job(store, "d", tokens=9000, started=400, finished=401, status="failed")
    _job(store, "e", tokens=9000, started=500, finished=501, model="other")
    _job(store, "f", tokens=500, started=600, finished=610, method="dpo")
    assert store.throughput("base") == {
        "supervised": {"tokens_per_second": 200.0, "jobs": 2, "seconds_per_job": 10.0},
        "dpo": {"tokens_per_second": 50.0, "jobs": 1, "seconds_per_job": 10.0}}
    assert store.throughput("base", newest=1)["supervised"] == {"tokens_per_second": 300.0, "jobs": 1,
                                                                "seconds_per_job": 10.0}
    store.close()
