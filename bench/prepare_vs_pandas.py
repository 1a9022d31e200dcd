#!/usr/bin/env python3
"""Time `ftui prepare` against the seed-004 pandas procedure on the same review table, in the same run.

    python bench/prepare_vs_pandas.py                  # 300,000 rows from ../shared/bench/gen_reviews.py
    python bench/prepare_vs_pandas.py --rows 50000

The peer (pandas, `pip install 'ftui[bench]'`) does what the seed's notebook does: read the CSV, drop duplicates on
the prompt, shuffle, cut 80/10/10 by position, write chat JSONL. `ftui prepare` does more: it validates every
example and counts its tokens, removes near duplicates (MinHash LSH), stratifies the split by the star, removes
validation/test examples that leak from train, writes atomically and reports every step — then the bench checks
that no prompt of valid/test occurs in train for ftui (and counts how many do for the peer).

Both run as child processes of this script, one after the other, in the same minute; wall time and peak RSS (the
whole process tree, sampled every 10 ms) are printed, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_vs_cookbook import run_measured  # noqa: E402  (same measuring code as the check bench)

ROOT = Path(__file__).resolve().parent.parent

PANDAS_PEER = textwrap.dedent("""
    import sys, json
    import pandas as pd
    src, out = sys.argv[1], sys.argv[2]
    df = pd.read_csv(src)
    df["prompt"] = df["review"]
    df["completion"] = df["star"].astype(str)
    df = df.drop_duplicates(subset=["prompt"]).sample(frac=1, random_state=0).reset_index(drop=True)
    n = len(df)
    cuts = {"train": df[: int(n * 0.8)], "valid": df[int(n * 0.8): int(n * 0.9)], "test": df[int(n * 0.9):]}
    for name, part in cuts.items():
        with open(f"{out}/{name}.jsonl", "w") as f:
            for p, c in zip(part["prompt"], part["completion"]):
                f.write(json.dumps({"messages": [{"role": "user", "content": p},
                                                 {"role": "assistant", "content": c}]}) + "\\n")
    print(n)
""")


def leaks(folder: Path) -> int:
    """valid/test examples whose user text (case and spacing folded) is also in train."""
    def prompts(name: str) -> list[str]:
        path = folder / f"{name}.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            msgs = json.loads(line)["messages"]
            out.append(" ".join(next(m["content"] for m in msgs if m["role"] == "user").casefold().split()))
        return out

    train = set(prompts("train"))
    return sum(p in train for name in ("valid", "test") for p in prompts(name))


async def _tui_lag(src: Path) -> tuple[float, float, int]:
    """Preview the same file in the Prepare workspace (headless, 80x24) and measure how long the UI's event loop
    was kept from running: -> (worst stall ms, preview seconds, rows)."""
    import asyncio
    import time

    from ftui.config import Config
    from ftui.tui.app import FtuiApp
    from ftui.tui.messages import PrepareFailed, PreparePlanned
    from ftui.tui.pilot import settle

    done = asyncio.Event()
    result = {}

    def hook(m) -> None:
        if isinstance(m, (PreparePlanned, PrepareFailed)):
            result["m"] = m
            done.set()

    app = FtuiApp(src.parent, config=Config(cursor_blink=False, backend="off"))
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await settle(pilot)
        await pilot.press("f6")
        while app.screen.plan is None and "m" not in result:  # the sample preview of the folder's CSV
            await settle(pilot)
        done.clear()
        result.clear()
        screen = app.screen
        screen.query_one("#in-user").value = "review"
        screen.query_one("#in-assistant").value = "star"
        await pilot.pause()
        worst = 0.0
        t0 = time.perf_counter()
        screen.action_preview()
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - t - 0.01)
        seconds = time.perf_counter() - t0
    m = result["m"]
    if isinstance(m, PrepareFailed):
        sys.exit(f"the TUI preview failed: {m.error}")
    return worst * 1000, seconds, sum(int(v.size) for v in m.plan.splits.values())


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                    help="the shared/ folder with bench/gen_reviews.py")
    ap.add_argument("--no-tui", action="store_true", help="skip the app's stall measurement")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each (the best is reported)")
    a = ap.parse_args()
    gen = a.shared / "bench" / "gen_reviews.py"
    if not gen.exists():
        sys.exit(f"need {gen} (pass --shared)")
    try:
        import pandas  # noqa: F401
    except ImportError:
        sys.exit("the peer needs pandas: pip install 'ftui[bench]'")
    work = Path(tempfile.mkdtemp(prefix="ftui-prepare-bench-"))
    try:
        src = work / "reviews.csv"
        subprocess.run([sys.executable, str(gen), "--rows", str(a.rows), "--seed", str(a.seed), "--out", str(src)],
                       check=True)
        size = src.stat().st_size
        print(f"{a.rows:,} rows, {size / 1e6:.1f} MB ({src.name}); {sys.platform}, "
              f"{len(os.sched_getaffinity(0))} cores")
        ftui_out, peer_out = work / "ftui", work / "pandas"
        peer_out.mkdir()
        ftui_cmd = [sys.executable, "-m", "ftui.cli", "prepare", str(src), "--out", str(ftui_out), "--user",
                    "review", "--assistant", "star"]
        peer_cmd = [sys.executable, "-c", PANDAS_PEER, str(src), str(peer_out)]
        # Times: the best of --repeat runs of each, alternating, without the memory sampler (sampling the tree
        # every 10 ms takes CPU that ftui's two processes miss on a 2-core machine); memory: one more sampled run.
        # --json: the report; the run still writes its three files (--dry-run would not)
        f_times, p_times = [], []
        for _ in range(a.repeat):
            shutil.rmtree(ftui_out, ignore_errors=True)
            f_wall, _, _, _, f_stdout = run_measured(ftui_cmd + ["--json"], sample=False)
            p_wall, _, _, _, _ = run_measured(peer_cmd, sample=False)
            f_times.append(f_wall)
            p_times.append(p_wall)
        shutil.rmtree(ftui_out, ignore_errors=True)
        _, f_rss, f_tree, f_pss, f_stdout = run_measured(ftui_cmd + ["--json"])
        _, p_rss, p_tree, p_pss, _ = run_measured(peer_cmd)
        f_wall, p_wall = min(f_times), min(p_times)
        report = json.loads(f_stdout)
        steps = {s["name"]: s for s in report["steps"]}
        print(f"\n{'':<30}{'wall s':>8}{'peak RSS':>10}{'tree RSS':>10}{'tree PSS':>10}{'examples':>10}{'leaks':>7}")
        f_n = sum(report["counts"].values())
        p_n = sum(1 for n in ("train", "valid", "test") for _ in open(peer_out / f"{n}.jsonl"))
        print(f"{'ftui prepare (all steps)':<30}{f_wall:>8.2f}{f_rss:>7.0f} MB{f_tree:>7.0f} MB{f_pss:>7.0f} MB"
              f"{f_n:>10,}{leaks(ftui_out):>7,}")
        print(f"{'pandas (seed 004 procedure)':<30}{p_wall:>8.2f}{p_rss:>7.0f} MB{p_tree:>7.0f} MB{p_pss:>7.0f} MB"
              f"{p_n:>10,}{leaks(peer_out):>7,}")
        print(f"\nbest of {a.repeat}: ftui " + ", ".join(f"{t:.2f}" for t in f_times) + " s; pandas "
              + ", ".join(f"{t:.2f}" for t in p_times) + f" s on {os.cpu_count()} CPUs")
        print(f"ftui / pandas wall: {f_wall / p_wall:.2f}×   peak memory (tree PSS): {f_pss / p_pss:.2f}×")
        print(f"ftui removed {steps['exact_dedup']['removed']:,} exact and {steps['near_dedup']['removed']:,} near "
              f"duplicates; leakage step removed {steps['leakage']['removed'] if 'leakage' in steps else 0:,}")
        if not a.no_tui:
            import asyncio

            lag, seconds, n = asyncio.run(_tui_lag(src))
            print(f"the Prepare workspace previewing the same file: {seconds:.1f} s, {n:,} examples; the UI's "
                  f"longest stall {lag:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
