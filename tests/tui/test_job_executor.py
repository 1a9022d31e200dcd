"""The Jobs detail says where a job trained and on how many workers when that is not simply here (ftui serve's
`executor` extension): a job on a Ray cluster names the cluster and its node, a data-parallel job its workers; a
job trained here says nothing more. Against a real `ftui serve` whose store holds the three jobs."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from ftui.server.store import Store, now
from ftui.tui.app import FtuiApp
from ftui.tui.messages import BackendReady, JobsPolled
from tests.backend import Server
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, profile_for, settle, test_config

pytestmark = pytest.mark.slow  # it starts a server
JOBS = {
    "ftjob-here0000001": None,
    "ftjob-ray00000001": {"name": "ray", "workers": 1, "where": "Ray cluster 10.0.0.5:6379 · gpu-node-3"},
    "ftjob-dp000000001": {"name": "local", "workers": 2, "where": "this machine"},
}


async def test_the_detail_says_where_a_job_trained(tmp_path):
    data = tmp_path / "data"
    store = Store(data)
    f = store.add_file("marv.jsonl", "fine-tune", (SAMPLES / "marv.jsonl").read_bytes())
    for job_id, executor in JOBS.items():
        store.add_job(id=job_id, created_at=now(), model="smollm2-135m-instruct", training_file=f["id"],
                      validation_file=None, status="succeeded", method={"type": "supervised", "supervised": {
                          "hyperparameters": {}}}, suffix=None, seed=0, metadata=None, executor=executor)
    store.close()
    server = Server(data).start()
    try:
        rec = Recorder()
        app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile_for(server))
        async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
            await rec.wait_for(BackendReady)
            await pilot.press("f3")
            await rec.wait_for(JobsPolled)
            table = app.screen.query_one("#jobs", DataTable)
            await rec.until(lambda: table.row_count == 3, what="the three jobs listed")
            shown = {}
            for job_id in JOBS:
                table.move_cursor(row=table.get_row_index(job_id))
                await settle(pilot)
                shown[job_id] = str(app.screen.query_one("#job-detail", Static).render())
            assert "on Ray cluster 10.0.0.5:6379 · gpu-node-3 · 1 worker" in shown["ftjob-ray00000001"]
            assert "on this machine · 2 workers" in shown["ftjob-dp000000001"]
            assert " worker" not in shown["ftjob-here0000001"]
    finally:
        server.stop()
