"""The Files & models workspace lists a chunked upload started elsewhere in the app, with its progress, and x
cancels it — on the backend too. Real server (a part is refused there with Retry-After, so the upload stays in
flight while the SDK waits to send it again)."""
from __future__ import annotations

import asyncio
import json

from textual.widgets import DataTable

from ftui.service.profiles import Profile
from ftui.tui.app import FtuiApp
from ftui.tui.messages import BackendReady
from tests.helpers import SAMPLES
from tests.tui.helpers import Recorder, settle, test_config


async def test_an_upload_in_parts_is_listed_and_cancelled(server, tmp_path):
    path = tmp_path / "big.jsonl"
    line = (SAMPLES / "marv.jsonl").read_text().splitlines()[0]
    path.write_text("\n".join(line for _ in range(40)) + "\n")
    rec = Recorder()
    profile = Profile("test", "compatible", base_url=server.base_url, api_key="unused", poll_interval=0.3)
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile)
    async with app.run_test(size=(120, 40), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        svc = app.service
        svc.upload_threshold = 1024
        svc.part_size = path.stat().st_size // 3 + 1
        svc.parallel_parts = 1
        server.clear_faults()  # nothing left armed by an earlier test on this shared server
        # the first part is refused with Retry-After: 30, so the SDK waits before sending it again: in flight
        server.fault("/v1/uploads/", status=503, times=1, method="POST", retry_after=30)
        # as the create-job form does; the first bytes sent say it has started (the service posts no message, so
        # the recorder would not wake for it: it waited 120 s once when the app had gone quiet before the start)
        started = asyncio.Event()
        task = asyncio.create_task(svc.upload(path, progress=lambda sent, total: started.set()))
        try:
            await asyncio.wait_for(started.wait(), 60)
            await _list_and_cancel(app, pilot, rec, svc, task, server)
        finally:
            server.clear_faults()


async def _list_and_cancel(app, pilot, rec, svc, task, server) -> None:
    assert svc.uploads
    await pilot.press("f5")
    await settle(pilot)
    screen = app.screen
    table = screen.query_one("#uploads", DataTable)
    # the row's arrival wakes the recorder: the table posts RowHighlighted, Update and Layout when it lists it
    await rec.until(lambda: table.display and table.row_count == 1, what="the upload listed")
    [state] = svc.uploads.values()
    row = table.get_row(state.id)
    assert row[1].plain == "big.jsonl" and row[3].plain.startswith("0/3") and row[4].plain == "pending"
    table.focus()
    await pilot.press("x")
    await asyncio.wait_for(asyncio.wait([task]), 60)  # the task, not a message: it ends after the row may change
    assert task.cancelled()
    assert state.status == "cancelled"
    await rec.until(lambda: table.get_row(state.id)[4].plain == "cancelled", what="the row to say so")
    server.clear_faults()
    client = server.client()
    try:
        client.uploads.complete(state.id, part_ids=["part-" + "0" * 24])
    except Exception as e:  # noqa: BLE001 — the SDK's error type
        assert json.loads(e.response.text)["error"]["code"] == "upload_cancelled"
    else:
        raise AssertionError("a cancelled upload completed")
