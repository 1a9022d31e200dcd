"""Data parallelism inside the runner process on a CPU: a batch in two halves, computed at the same time.

A 135M-parameter model on a few hundred tokens makes thousands of small operators per step, and one operator split
over a CPU's threads (PyTorch's intra-op parallelism) scales badly there: on this project's 2-core machine one
thread does a Marv step in ~0.60 s and two in ~0.45–0.55 s. Two halves of the batch, each in its own thread with
half the CPU's threads, keep both cores busy with whole operators instead (~0.42 s for the same step). Each half
returns its gradients (``torch.autograd.grad``, nothing accumulates into ``.grad`` from two threads at once) and the
caller adds them in a fixed order, so a run is as reproducible as before.

GPUs keep one stream of work (``for_job`` gives None there), and so does a CPU with a single thread. A training
set whose examples share a long prefix (a system prompt) keeps one row too (``pays``): a row computes the prefix once
(``packing.shared_prefix``), two halves twice — on Marv (21 shared tokens of ~50, batches of 4) one row of 137
positions and two halves of 158 took the same time, where without the sharing the halves were 4–13 % faster.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from ftui.server.train.packing import shared_prefix

T = TypeVar("T")
R = TypeVar("R")


def trained(pair) -> int:
    """How many positions of an (ids, labels) pair are trained (each predicts the next label)."""
    return sum(1 for y in pair[1][1:] if y != -100)


PREFIX_SHARE = 0.1  # halves pay while computing the shared prefix twice adds under this share of a row's positions


def pays(pairs: Sequence, batch_size: int, prefix: int) -> bool:
    """Do two halves beat one row for batches of ``batch_size`` of these (ids, labels) pairs, which all begin with
    ``prefix`` shared tokens? No for batches of one; else when the second copy of the prefix is a small share."""
    if batch_size < 2 or not pairs:
        return False
    mean = sum(len(x) for x, _ in pairs) / len(pairs)
    return prefix <= PREFIX_SHARE * (prefix + batch_size * (mean - prefix))


def split(batch: Sequence) -> tuple[list, list] | None:
    """Two halves of a batch of (ids, labels) pairs with about as many tokens each (longest first to the lighter
    half), each keeping the batch's order, both training something; None when that cannot be."""
    if len(batch) < 2:
        return None
    sides: tuple[list[int], list[int]] = ([], [])
    load = [0, 0]
    for i in sorted(range(len(batch)), key=lambda i: (-len(batch[i][0]), i)):
        k = 0 if load[0] <= load[1] else 1
        sides[k].append(i)
        load[k] += len(batch[i][0])
    halves = ([batch[i] for i in sorted(sides[0])], [batch[i] for i in sorted(sides[1])])
    if not all(sum(trained(x) for x in h) for h in halves):
        return None
    return halves


class TwoHalves:
    """A helper thread and this thread, each with ``threads`` intra-op threads, running one function on two halves.

    ``torch.set_num_threads`` is set once here and once in the helper (each call also clears oneDNN's cache of
    compiled kernels, so never per step); :meth:`close` gives this thread its count back."""

    def __init__(self, threads: int) -> None:
        import torch

        self.threads = threads
        self._saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ftui-half", initializer=torch.set_num_threads,
                                        initargs=(threads,))

    @classmethod
    def for_job(cls, dev: str, pairs: Sequence, batch_size: int) -> "TwoHalves | None":
        """Two halves for an SFT job on a CPU with at least two threads (``FTUI_TRAIN_HALVES=0`` turns it off), when
        they pay for its (ids, labels) pairs (the first thousand tell); else None."""
        import torch

        if dev != "cpu" or os.environ.get("FTUI_TRAIN_HALVES", "1") == "0" or torch.get_num_threads() < 2:
            return None
        sample = pairs[:1000]
        if not pays(sample, batch_size, shared_prefix(sample)):
            return None
        return cls(torch.get_num_threads() // 2)

    def run(self, fn: Callable[[T], R], first: T, second: T) -> tuple[R, R]:
        """``(fn(first), fn(second))``, the second in the helper thread; both always finish before this returns."""
        later = self._pool.submit(fn, second)
        try:
            a = fn(first)
        except BaseException:
            later.exception()  # wait: never leave the helper running on the model
            raise
        return a, later.result()

    def close(self) -> None:
        import torch

        self._pool.shutdown(wait=True)
        torch.set_num_threads(self._saved)
