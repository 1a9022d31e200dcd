"""Every fault the test suite can inject into the local backend, in one place. Nothing here is armed unless the suite
arms it: HTTP faults through ``/_test/faults`` (served only with ``ftui serve --test-hooks``, hidden), the runner's
through ``$FTUI_TEST_RUNNER_FAULT``. None is needed to use the server; each makes a real failure happen where a bug,
a proxy or the OOM killer would (the suite tests the app's answers to them, never a mock).

- an HTTP status, with Retry-After, for the next N requests under a path (``Faults.arm``), or a raw body such as
  HTML or broken JSON, or a failure *after* the request was carried out (a dropped answer);
- a chat stream that breaks after N content chunks (``stream_error_after``);
- a generation that fails (``generation_errors``: the next N generations raise);
- the runner failing a job's validation, or dying there (``runner_fault``).

The HTTP glue (a middleware and the ``/_test`` routes) is in ``http/app.py``; it calls only this."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Faults:
    armed: list[dict] = field(default_factory=list)  # {"path", "method", "status", "times", "retry_after", ...}
    counts: dict[str, int] = field(default_factory=dict)  # "METHOD /path" -> requests seen (the app's traffic)
    stream_error_after: int | None = None  # the next chat stream breaks after this many content chunks (once)
    generation_errors: int = 0  # the next N generations fail

    def arm(self, req: dict) -> None:
        """What ``POST /_test/faults`` asks for."""
        if "stream_error_after" in req:
            self.stream_error_after = int(req["stream_error_after"])
        elif "generation_errors" in req:
            self.generation_errors = int(req["generation_errors"])
        else:
            self.armed.append({"path": req.get("path", "/v1"), "status": int(req.get("status", 500)),
                               "times": int(req.get("times", 1)), "retry_after": req.get("retry_after"),
                               "message": req.get("message"), "method": req.get("method"),
                               "body": req.get("body"), "content_type": req.get("content_type"),
                               "after": bool(req.get("after"))})

    def seen(self, method: str, path: str) -> dict | None:
        """Count a request; the armed fault it meets (used up by one), if any."""
        key = f"{method} {path}"
        self.counts[key] = self.counts.get(key, 0) + 1
        for f in self.armed:
            if f["times"] > 0 and path.startswith(f["path"]) and f["method"] in (None, method):
                f["times"] -= 1
                return f
        return None

    def take_generation_error(self) -> bool:
        """Whether this generation is to fail (one of the armed ones is used up)."""
        fail = self.generation_errors > 0
        self.generation_errors -= fail
        return fail

    def take_stream_error_after(self) -> int | None:
        after, self.stream_error_after = self.stream_error_after, None
        return after


def runner_fault() -> None:
    """``$FTUI_TEST_RUNNER_FAULT`` (set only by the test suite): fail validation ("raise") or kill the runner there
    ("die"), the way a bug or the OOM killer would."""
    fault = os.environ.get("FTUI_TEST_RUNNER_FAULT")
    if fault == "raise":
        raise RuntimeError("injected validation fault")
    if fault == "die":
        os._exit(17)
