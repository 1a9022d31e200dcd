"""For code that drives the app headless (tests, scripts/screenshots.py, bench/): wait without sleeping."""

from __future__ import annotations

import asyncio


async def settle(pilot) -> None:
    """Wait until the app has drawn its first frame and run what waits for it (ftui's app: ``started``), then until
    every worker but the file tree's long-lived loader has finished, and the UI has caught up. (Without the first
    wait, an app idle for a moment before its first frame had no workers yet: the analysis of the file it opens
    had not started.)"""
    app = pilot.app
    started = getattr(app, "started", None)
    if isinstance(started, asyncio.Event):
        await started.wait()
    await pilot.pause()
    busy = [w for w in app.workers if w.group != "_loader"]
    if busy:
        await app.workers.wait_for_complete(busy)
    await pilot.pause()
