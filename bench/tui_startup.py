#!/usr/bin/env python3
"""The TUI's first paint, and the longest event-loop stall while a large file is analysed.

    python bench/tui_startup.py                 # first paint ×7 + a 100 MB set from ../shared/bench/gen_dataset.py
    python bench/tui_startup.py --mb 20 --repeat 3

First paint: wall time from spawning `python` to the app's Ready event (the first screen drawn, headless),
best and median of N fresh processes, opening the bundled samples directory and a sample file. Whether openai or
torch got imported is printed too (they must not be). The peer: a minimal Textual app (Header + DataTable + Footer)
spawned the same way, its runs interleaved with ftui's in the same minute; the ratio is ftui's median over its
median (target ≤ 1.3).

Stall: the real app (headless, 120×36) opens the generated file; a 5 ms timer on the UI's event loop records the
largest gap between its ticks from the moment the file is opened until the findings are on screen. The stall is
that gap minus the 5 ms period: how long a key press could have waited.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "ftui" / "data" / "samples"

CHILD = """
import sys, time
from ftui.tui.app import FtuiApp
class Bench(FtuiApp):
    def on_ready(self):
        heavy = sorted(m for m in ("openai", "torch", "transformers") if m in sys.modules)
        with open(sys.argv[2], "w") as f:  # stdout belongs to the app while it runs
            f.write(f"READY {time.time()} {','.join(heavy) or '-'}")
        self.exit()
Bench(sys.argv[1]).run(headless=True)
"""

MINIMAL = """
import sys, time
from textual.app import App
from textual.widgets import DataTable, Footer, Header
class Minimal(App):
    def compose(self):
        yield Header()
        yield DataTable()
        yield Footer()
    def on_ready(self):
        with open(sys.argv[2], "w") as f:
            f.write(f"READY {time.time()} -")
        self.exit()
Minimal().run(headless=True)
"""


def _spawn(code: str, path: Path) -> tuple[float, str]:
    env = {**os.environ, "FTUI_CONFIG_FILE": os.devnull}
    t0 = time.time()
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        subprocess.run([sys.executable, "-c", code, str(path), out.name], capture_output=True, env=env,
                       cwd=ROOT, timeout=60, check=True)
        line = Path(out.name).read_text()
    _, ready, heavy = line.split()
    return float(ready) - t0, heavy


def first_paint(path: Path, repeat: int) -> tuple[list[float], list[float], str]:
    """ftui's and the minimal app's first paints, interleaved (same minute, same machine load)."""
    ours, peer, heavy = [], [], "-"
    for _ in range(repeat):
        t, heavy = _spawn(CHILD, path)
        ours.append(t)
        peer.append(_spawn(MINIMAL, path)[0])
    return ours, peer, heavy


async def stall(path: Path) -> tuple[float, float, int]:
    from ftui.config import Config
    from ftui.tui.app import FtuiApp
    from ftui.tui.messages import AnalysisDone, AnalysisFailed

    done = asyncio.Event()
    nonlocal_t0 = [time.perf_counter()]

    def hook(message) -> None:
        if os.environ.get("FTUI_BENCH_DEBUG") and type(message).__name__.startswith("Analysis") and \
                type(message).__name__ != "AnalysisProgress":
            print(f"  {type(message).__name__} at +{time.perf_counter() - nonlocal_t0[0]:.2f} s", file=sys.stderr)
        if isinstance(message, (AnalysisDone, AnalysisFailed)):
            done.set()

    app = FtuiApp(path.parent, config=Config(cursor_blink=False))
    async with app.run_test(size=(120, 36), message_hook=hook) as pilot:
        await pilot.pause()
        while app.service is None and app.profile.kind != "off":  # the local backend comes up after the paint
            await pilot.pause(0.1)
        warm = [w for w in app.workers if w.group in ("warm", "models")]
        if warm:  # the tokenizer loads once after the first paint; the file is opened after that
            await app.workers.wait_for_complete(warm)
        period = 0.005
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            if os.environ.get("FTUI_BENCH_DEBUG") and now - last[0] > 0.05:
                print(f"  gap {1000 * (now - last[0]):.0f} ms ending at +{now - t0:.2f} s", file=sys.stderr)
            last[0] = now

        timer = app.set_interval(period, tick)
        nonlocal_t0[0] = t0 = time.perf_counter()
        last[0] = t0
        app.screen.open(path)
        await asyncio.wait_for(done.wait(), 600)
        await pilot.pause()  # the findings and summary drawn
        took = time.perf_counter() - t0
        timer.stop()
        findings = len(app.screen.report.findings) if app.screen.report else 0
    return max(gaps) - period, took, findings


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--paint-only", action="store_true", help="only the first-paint comparison")
    a = ap.parse_args()
    # ftui's own modules compiled once, as pip does for any installed package (this machine sets
    # PYTHONDONTWRITEBYTECODE, so an editable checkout would otherwise recompile them on every start)
    import compileall

    compileall.compile_dir(str(ROOT / "ftui"), quiet=1)
    for label, p in (("samples directory", SAMPLES), ("broken.jsonl", SAMPLES / "broken.jsonl")):
        ours, peer, heavy = first_paint(p, a.repeat)
        med, pmed = statistics.median(ours), statistics.median(peer)
        print(f"first paint, {label:<18}: best {min(ours) * 1000:4.0f} ms, median {med * 1000:4.0f} ms; minimal "
              f"Textual app best {min(peer) * 1000:4.0f} ms, median {pmed * 1000:4.0f} ms → ratio {med / pmed:.2f} "
              f"(×{a.repeat} each, interleaved; heavy modules loaded: {heavy})")
    if a.paint_only:
        return
    gen = a.shared / "bench" / "gen_dataset.py"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.jsonl"
        subprocess.run([sys.executable, str(gen), "--mb", str(a.mb), "--out", str(data)], check=True,
                       stdout=subprocess.DEVNULL)
        worst, took, n = asyncio.run(stall(data))
    size = data.stat().st_size if data.exists() else a.mb * 1e6
    print(f"analysis of {size / 1e6:.0f} MB in the app: {took:.2f} s to findings on screen ({n:,} findings); "
          f"longest event-loop stall {worst * 1000:.0f} ms ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
