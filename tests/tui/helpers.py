"""What the Pilot tests share: the app's test config, a profile for a test server, the message Recorder, and the
app on a real server. Imported by tests, never a test module."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ftui.config import Config
from ftui.tui.pilot import settle  # noqa: F401 (re-exported for the tests)
from tests.helpers import SAMPLES

ROOT = Path(__file__).resolve().parent.parent.parent


def test_config(**kw) -> Config:
    """No cursor blink; no backend unless the test asks for one (a profile is passed to the app)."""
    return Config(**{"cursor_blink": False, "backend": "off", **kw})


test_config.__test__ = False  # a helper, not a test


def profile_for(server, **kw):
    """A profile for a test server (tests.backend.Server), polled fast."""
    from ftui.service.profiles import Profile

    return Profile("test", "compatible", base_url=server.base_url, api_key=server.api_key or "unused",
                   poll_interval=0.3, **kw)


class Recorder:
    """message_hook that records every message and lets a test await the first of a type."""

    def __init__(self) -> None:
        self.messages: list = []
        self._waiters: list[tuple[type, asyncio.Event]] = []

    def __call__(self, message) -> None:
        self.messages.append(message)
        for kind, event in self._waiters:
            if isinstance(message, kind):
                event.set()

    def of(self, kind) -> list:
        return [m for m in self.messages if isinstance(m, kind)]

    async def until(self, predicate, timeout: float = 120, what: str = "") -> None:
        """Wait (woken by each message, never by a sleep) until ``predicate()`` holds."""
        event = asyncio.Event()
        self._waiters.append((object, event))
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    event.clear()
                    await event.wait()
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}") from None
        finally:
            self._waiters.remove((object, event))

    async def wait_for(self, kind, timeout: float = 60) -> None:
        if self.of(kind):
            return
        event = asyncio.Event()
        self._waiters.append((kind, event))
        await asyncio.wait_for(event.wait(), timeout)


def app_for(server, key=None, path=SAMPLES):
    """The real app on a real test server (tests.backend.Server), polled fast."""
    from ftui.service.profiles import Profile
    from ftui.tui.app import FtuiApp

    prof = Profile("test", "compatible", base_url=server.base_url, api_key=key or server.api_key or "unused",
                   poll_interval=0.2)
    return FtuiApp(path, config=test_config(backend="test"), profile=prof)


def toasts(rec: Recorder) -> list:
    """The notifications the app showed, in order."""
    from textual.notifications import Notify

    return [m.notification for m in rec.of(Notify)]
