"""For code that drives the app headless (tests, scripts/screenshots.py, bench/): wait without sleeping."""

from __future__ import annotations


async def settle(pilot) -> None:
    """Wait until every worker but the file tree's long-lived loader has finished, and the UI has caught up."""
    app = pilot.app
    await pilot.pause()
    busy = [w for w in app.workers if w.group != "_loader"]
    if busy:
        await app.workers.wait_for_complete(busy)
    await pilot.pause()
