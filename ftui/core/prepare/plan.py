"""``plan(recipe)``: run the steps in memory, in order; nothing is written."""

from __future__ import annotations

import threading
import time

from ...errors import Cancelled
from ..recipe import Progress, Recipe
from .result import Plan
from .steps import STEPS, Tick, read_and_map


def _ticker(progress: Progress | None, cancel: threading.Event | None) -> Tick:
    def tick(step: str, done: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if progress is not None:
            progress(step, done)
    return tick


def plan(recipe: Recipe, progress: Progress | None = None, cancel: threading.Event | None = None) -> Plan:
    """Run every step of the recipe in memory; nothing is written."""
    t0 = time.perf_counter()
    recipe.check()
    tick = _ticker(progress, cancel)
    pool = read_and_map(recipe, tick)
    for step in STEPS:
        step(pool, tick)
    return Plan(recipe, pool.steps, pool.lines, pool.origin, pool.labels, pool.splits, pool.classification,
                pool.pairs, pool.notes, time.perf_counter() - t0)
