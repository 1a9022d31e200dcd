#!/usr/bin/env python3
"""Render the real app on the bundled samples to SVG in screenshots/ (fixed size; the README shows them).

    python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "screenshots"
SAMPLES = ROOT / "ftui" / "data" / "samples"
SIZE = (130, 40)


async def shoot() -> None:
    os.environ["FTUI_CONFIG_FILE"] = str(Path(tempfile.mkdtemp()) / "none.toml")  # the defaults, not the user's
    from ftui.tui.app import FtuiApp
    from ftui.tui.config import Config
    from ftui.tui.pilot import settle

    OUT.mkdir(exist_ok=True)
    os.chdir(ROOT)  # relative paths in the header, as a user in the repository sees them
    app = FtuiApp(SAMPLES.relative_to(ROOT) / "broken.jsonl", config=Config(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.save_screenshot("data-findings.svg", str(OUT))
        await pilot.press("down", "down", "enter")  # line 4: a conversation without an answer
        await settle(pilot)
        await pilot.press("]")  # the next example with a problem (line 5)
        await settle(pilot)
        app.save_screenshot("data-example.svg", str(OUT))
    app = FtuiApp(SAMPLES.relative_to(ROOT) / "marv.jsonl", config=Config(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#tabs").active = "tab-histograms"
        await settle(pilot)
        app.save_screenshot("data-histograms.svg", str(OUT))
    for f in sorted(OUT.glob("*.svg")):
        print(f.relative_to(ROOT), f.stat().st_size, "bytes")


if __name__ == "__main__":
    asyncio.run(shoot())
