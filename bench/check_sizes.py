#!/usr/bin/env python3
"""`ftui check` against the cookbook procedure at every size: the bundled 16-example sample, then 10, 1,000 and
100,000 generated examples (the 100 MB case is bench/check_vs_cookbook.py). Same run, best of --repeat, both
encodings for the small files; the token totals must be identical.

    python bench/check_sizes.py
    python bench/check_sizes.py --repeat 5 --sizes 10 1000

Small files are counted by the small-file BPE counter (ftui/core/tokens.py: verified ranks from a hash-checked
cache in the user cache dir), so their time is Python start-up, imports and the read, not building a tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_vs_cookbook import OUT, ROOT, run_measured, seed_tiktoken_cache  # noqa: E402


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10, 1000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    a = ap.parse_args()
    gen = a.shared / "bench" / "gen_dataset.py"
    baseline = a.shared / "bench" / "cookbook_baseline.py"
    if not gen.exists() or not baseline.exists():
        sys.exit(f"need {gen} and {baseline} (pass --shared)")
    OUT.mkdir(parents=True, exist_ok=True)
    cache = OUT / "tiktoken-cache"
    seed_tiktoken_cache(cache)
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache))
    # the cookbook hard-codes cl100k_base; ftui counts o200k_base (the default model) and cl100k_base
    files = [("marv.jsonl (16)", ROOT / "ftui" / "data" / "samples" / "marv.jsonl")]
    for n in a.sizes:
        path = OUT / f"bench_{n}.jsonl"
        if not path.exists():
            subprocess.run([sys.executable, str(gen), "--examples", str(n), "--seed", "0", "--out", str(path)],
                           check=True)
        files.append((f"{n:,} examples", path))
    subprocess.run([sys.executable, "-m", "ftui.cli", "check", str(files[0][1])], capture_output=True, env=env)
    print(f"{os.cpu_count()} CPUs; best of {a.repeat}; the first ftui run above filled the rank cache")
    print(f"\n{'file':<20}{'size':>10}{'cookbook s':>12}{'ftui cl100k s':>15}{'ftui o200k s':>14}"
          f"{'ratio (cl100k)':>16}{'tokens equal':>14}")
    for label, path in files:
        def best(cmd):  # timing only: no memory sampler taking CPU from the tool (see check_vs_cookbook.py)
            return min((run_measured(cmd, env, sample=False) for _ in range(a.repeat)), key=lambda r: r[0])

        cb = best([sys.executable, str(baseline), str(path)])
        cb_tokens = int(re.search(r"Dataset has ~(\d+) tokens", cb[4]).group(1))
        cl = best([sys.executable, "-m", "ftui.cli", "check", str(path), "--json", "--model", "gpt-3.5-turbo"])
        o2 = best([sys.executable, "-m", "ftui.cli", "check", str(path), "--json", "--model", "gpt-4.1-mini"])
        same = json.loads(cl[4])["estimate"]["billing_tokens_per_epoch"] == cb_tokens
        print(f"{label:<20}{path.stat().st_size / 1e3:>8.0f}KB{cb[0]:>12.2f}{cl[0]:>15.2f}{o2[0]:>14.2f}"
              f"{cb[0] / cl[0]:>15.1f}x{'yes' if same else 'NO':>14}")


if __name__ == "__main__":
    main()
