#!/usr/bin/env python3
"""How the local backend shares a busy machine: streamed chat tokens/s of the base model through a real `ftui serve`
and the official SDK, alone and beside CPU hogs (busy-looping processes, as a compile or another job would be),
for each variant of the server's thread settings (its OpenMP runtime's wait policy and spin count).

    python bench/contention.py [--hogs 4] [--tokens 96] [--repeat 3] [--variants default,GOMP_SPINCOUNT=10000]

With H hogs on C cores a fair share is C / (C + H) of the machine for everything else; a backend whose speed
beside the hogs is well under its share of its speed alone degrades out of proportion (OpenMP threads spinning at
barriers while the thread they wait for is descheduled). Prints tokens/s alone, beside the hogs, their ratio and
the fair share, per variant. `default` is what `ftui serve` does (GOMP_SPINCOUNT=10000 since 2026-12-04);
GOMP_SPINCOUNT=300000 is GNU OpenMP's own default, what it did before.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.backend import Server  # noqa: E402

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def hog(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def tokens_per_s(client, tokens: int, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        first = last = None
        n = 0
        t0 = time.perf_counter()
        s = client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=tokens, temperature=0,
                                           stream=True, stream_options={"include_usage": True})
        for ch in s:
            if ch.usage:
                n = ch.usage.completion_tokens
            if ch.choices and ch.choices[0].delta.content:
                last = time.perf_counter() - t0
                first = first if first is not None else last
        rates.append((n - 1) / (last - first))
    return statistics.median(rates)


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser()
    ap.add_argument("--hogs", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", default="default,GOMP_SPINCOUNT=300000,OMP_WAIT_POLICY=PASSIVE",
                    help="comma-separated: default, or NAME=VALUE set in the server's environment")
    a = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    share = cores / (cores + a.hogs)
    print(f"{cores} cores, {a.hogs} hogs: a fair share is {share:.2f} of the machine")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("FTUI_MODEL_CACHE", str(tmp / "cache"))
        for i, variant in enumerate(a.variants.split(",")):
            env = {} if variant == "default" else dict([variant.split("=", 1)])
            (tmp / str(i)).mkdir()
            s = Server(tmp / str(i), env=env).start()
            stop = mp.Event()
            hogs = []
            try:
                c = s.client(timeout=600)
                tokens_per_s(c, 8, 1)  # load the model
                alone = tokens_per_s(c, a.tokens, a.repeat)
                hogs = [mp.Process(target=hog, args=(stop,), daemon=True) for _ in range(a.hogs)]
                for h in hogs:
                    h.start()
                busy = tokens_per_s(c, a.tokens, a.repeat)
            finally:
                stop.set()
                for h in hogs:
                    h.join(5)
                s.stop()
            print(f"  {variant:24s} alone {alone:6.1f} tok/s · beside {a.hogs} hogs {busy:6.1f} tok/s"
                  f" · {busy / alone:.2f} of alone (fair share {share:.2f}, {busy / alone / share:.2f} of it)",
                  flush=True)


if __name__ == "__main__":
    main()
