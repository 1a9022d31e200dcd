#!/usr/bin/env python3
"""Evaluation speed against the local backend: examples/s for short-answer examples at concurrency 1 and 4 (the
same examples, no cache), and the teacher-forced loss of 1,000 short references.

    python bench/eval_throughput.py                 # 200 examples, SmolLM2-135M-Instruct on this CPU
    python bench/eval_throughput.py --examples 100 --loss-examples 500

The examples are seed-004-like reviews (../shared/bench/gen_reviews.py) prepared by `ftui prepare` with a system
prompt asking for the star digit; answers are capped at 4 tokens (what `ftui eval` picks for one-digit references).
The same prompts are then sent for one token each, at concurrency 1 and 4: batching's gain on the prompts alone, and
the bound they set (concurrency 4 answers no faster than it computes the prompts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SYSTEM = "Rate the app review from 1 to 5 stars. Answer with the digit only."


async def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--loss-examples", type=int, default=1000)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    a = ap.parse_args()
    gen = a.shared / "bench" / "gen_reviews.py"
    if not gen.exists():
        sys.exit(f"need {gen} (pass --shared)")
    from ftui.core.evalset import load
    from ftui.core.prepare import Recipe, plan, write
    from ftui.service.client import Service
    from ftui.service.evaluate import EvalParams, run
    from ftui.service.local import LocalBackend
    from ftui.service.profiles import Profile

    work = Path(tempfile.mkdtemp(prefix="ftui-eval-bench-"))
    raw = work / "reviews.csv"
    subprocess.run([sys.executable, str(gen), "--rows", str(max(3000, a.loss_examples * 3)), "--seed", "11",
                    "--out", str(raw)], check=True)
    p = plan(Recipe([str(raw)], user="review", assistant="star", system=SYSTEM,
                    split_counts=(a.loss_examples, 0, a.examples)))
    write(p, work / "prepared")
    test = load(work / "prepared" / "test.jsonl")
    train = load(work / "prepared" / "train.jsonl")
    local = LocalBackend(work / "server")
    base_url = local.start()
    profile = Profile("local", "local")
    profile.api_key = local.api_key
    svc = Service(profile, base_url=base_url)
    model = "smollm2-135m-instruct"
    try:
        # load the model once so neither run pays for it
        await svc.complete(model, test.examples[0].messages, max_tokens=1)
        rates = {}
        for conc in (1, 4):
            t0 = time.perf_counter()
            r = await run(svc, test, [model], EvalParams(max_tokens=4, concurrency=conc),
                          cache_folder=work / f"cache-{conc}", teacher_forced=False)
            rates[conc] = len(test.examples) / (time.perf_counter() - t0)
            assert r.complete
        # the same prompts answered with one token each (the prompt's forward pass and little else): what batching
        # gains on the prompts alone, a bound on concurrency 4 ÷ concurrency 1 however fast decoding gets
        prompt_rates = {}
        for conc in (1, 4):
            lanes = [test.examples[i::conc] for i in range(conc)]

            async def lane(exs) -> None:
                for ex in exs:
                    await svc.complete(model, ex.messages, max_tokens=1)

            t0 = time.perf_counter()
            await asyncio.gather(*(lane(exs) for exs in lanes))
            prompt_rates[conc] = len(test.examples) / (time.perf_counter() - t0)
        examples = [{"messages": ex.messages + [{"role": "assistant", "content": ex.reference}]}
                    for ex in train.examples]
        t0 = time.perf_counter()
        for s in range(0, len(examples), 64):
            await svc.score(model, examples[s:s + 64])
        loss_s = time.perf_counter() - t0
    finally:
        await svc.close()
        local.stop()
    print(f"{len(test.examples)} short-answer examples, {model}, {sys.platform}, "
          f"{len(os.sched_getaffinity(0))} cores, float32 answers (their products packed for oneDNN: "
          f"{'no' if os.environ.get('FTUI_SERVE_PACK_FLOAT') == '0' else 'yes, where it has oneDNN'})")
    print(f"  concurrency 1: {rates[1]:.2f} examples/s")
    print(f"  concurrency 4: {rates[4]:.2f} examples/s  ({rates[4] / rates[1]:.2f}×)")
    print(f"  one token each (the prompts alone): {prompt_rates[1]:.2f} and {prompt_rates[4]:.2f} examples/s "
          f"({prompt_rates[4] / prompt_rates[1]:.2f}×)")
    print(f"  bound: concurrency 4 cannot answer faster than it computes the prompts alone, so at most "
          f"{prompt_rates[4] / rates[1]:.2f}× concurrency 1 however fast its decoding")
    print(f"teacher-forced loss of {len(examples):,} references: {loss_s:.1f} s "
          f"({len(examples) / loss_s:.0f} examples/s)")


if __name__ == "__main__":
    asyncio.run(main())
