"""oneMKL's settings for the processes that run PyTorch on a CPU: the server, its runner and trainers, a worker."""

from __future__ import annotations

import os

VARIABLE = "MKL_DISABLE_FAST_MM"


def without_its_memory_manager() -> None:
    """Turn oneMKL's own memory manager off (``MKL_DISABLE_FAST_MM``) for this process and those it starts; MKL
    then allocates with malloc. Set before MKL's first allocation (before torch computes anything), and never over a
    value the user set.

    Seen once, on 2026-12-06: a trainer computing a batch's two halves in two threads (the 48 generated chats of
    bench/trainer_vs_plain.py) stopped for good inside PyTorch's CPU flash attention (bf16, an example over 384
    tokens), its main thread busy on one core for minutes in MKL's allocator (``mkl_serv_allocate`` →
    ``mm_account_ptr_by_tid``: the memory manager's bookkeeping of buffers per thread id) while the job stayed
    "running" with no step, as the suite's rare job that never stepped did. Not reproduced since (300 s of the same
    training in one process; 1,346 rounds of the attention in two threads of a forked child), so this is a
    precaution where the spin was, not a proven cure. Without the memory manager the same attention (forward and
    backward, 800 tokens) took 29–31 ms, as with it."""
    os.environ.setdefault(VARIABLE, "1")
