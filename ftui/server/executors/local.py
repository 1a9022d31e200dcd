"""The local executor: the trainer in the runner process, on this machine (``ftui serve``'s default)."""

from __future__ import annotations

from collections.abc import Callable

from ftui.server.store import Store


class LocalExecutor:
    name = "local"

    def describe(self) -> dict:
        return {"name": "local", "workers": 1, "where": "this machine"}

    def train(self, store: Store, job: dict, control: Callable[[], None]) -> bool:
        from ftui.server.train.trainer import JobTrainer

        cls = JobTrainer
        if job["method"]["type"] == "reinforcement":
            from ftui.server.train.rft import ReinforcementTrainer as cls  # type: ignore[assignment]
        cls(store, job, control).run()
        return True

    def recover(self, store: Store, job: dict) -> bool:
        return False
