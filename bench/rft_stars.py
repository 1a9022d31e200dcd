#!/usr/bin/env python3
"""Does reinforcement fine-tuning learn, on 2 CPU cores, with data shipped in the repository? Seed 004's review
stars: `ftui prepare` writes chat and RFT splits of the bundled reviews; a short supervised run warm-starts the model
(small models learn the answer's format first: the base never answers with a digit), then an RFT job with a
string_check grader on the star trains on the same prompts; `ftui eval --grader` measures the held-out pass rate of
the warm start and of the RFT model with the same grader.

    python bench/rft_stars.py [--steps-per-epoch-prompts 8] [--samples 4]

Prints each stage's wall time, the held-out rewards, and the RFT job's step timing (sampling, training, eval).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SYSTEM = "Rate the app review from 1 to 5 stars. Answer with the digit only."
GRADER = {"type": "string_check", "name": "star", "operation": "eq", "input": "{{ sample.output_text }}",
          "reference": "{{ item.star }}"}


def cli(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "ftui.cli", *map(str, args)], capture_output=True, text=True,
                         env=env)
    if res.returncode not in (0, 1):
        raise SystemExit(f"ftui {args[0]} failed:\n{res.stderr}")
    return res


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8, help="prompts per RFT step")
    ap.add_argument("--compute", type=float, default=1.0, help="compute_multiplier (samples = 4 × it)")
    ap.add_argument("--lr", type=float, default=1.0, help="RFT learning_rate_multiplier")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--sft-lr", type=float, default=1.0, help="the warm start's learning_rate_multiplier")
    ap.add_argument("--prompts", type=int, default=0, help="RFT on the first N training prompts (0: all 160)")
    args = ap.parse_args()

    from ftui.service.local import LocalBackend
    from tests.backend import wait_for

    work = Path(tempfile.mkdtemp(prefix="ftui-rft-bench-"))
    chat, rft = work / "chat", work / "rft"
    common = ["--system", SYSTEM, "--split-counts", "160,40,60", "--seed", "7"]
    cli("prepare", ROOT / "ftui/data/samples/reviews.csv", "--out", chat, *common)
    cli("prepare", ROOT / "ftui/data/samples/reviews.csv", "--out", rft, *common, "--rft", "star")
    (work / "grader.json").write_text(json.dumps(GRADER))
    local = LocalBackend(work / "server")
    local.start()
    env = dict(os.environ, FTUI_CONFIG_FILE=str(work / "config.toml"))
    (work / "config.toml").write_text(f'backend = "here"\n[profiles.here]\nkind = "local"\n'
                                      f'data_dir = "{work / "server"}"\n')  # eval finds the running server
    try:
        import openai

        client = openai.OpenAI(base_url=local.base_url, api_key=local.api_key or "local")

        def upload(path: Path):
            with open(path, "rb") as fh:
                return client.files.create(file=fh, purpose="fine-tune")

        def measure(model: str, label: str) -> float:
            out = work / f"eval-{label}"
            cli("eval", rft / "test.jsonl", "--model", model, "--no-base", "--out", out, "--grader",
                work / "grader.json", "--max-tokens", "4", env=env)
            doc = json.loads((out / "eval.json").read_text())
            return doc["models"][model]["mean_reward"]

        t0 = time.perf_counter()
        sft = wait_for(client, client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct", training_file=upload(chat / "train.jsonl").id, seed=7, suffix="warm",
            method={"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 1, "batch_size": 8, "learning_rate_multiplier": args.sft_lr}}}).id, timeout=1800)
        t_sft = time.perf_counter() - t0
        warm = sft.fine_tuned_model
        before = measure(warm, "warm")
        t0 = time.perf_counter()
        train = rft / "train.jsonl"
        if args.prompts:
            train = work / "rft-train.jsonl"
            train.write_text("".join((rft / "train.jsonl").read_text().splitlines(keepends=True)[:args.prompts]))
        job = wait_for(client, client.fine_tuning.jobs.create(
            model=warm, training_file=upload(train).id,
            validation_file=upload(rft / "valid.jsonl").id, seed=7, suffix="rft",
            method={"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {
                "n_epochs": args.epochs, "batch_size": args.batch, "compute_multiplier": args.compute,
                "learning_rate_multiplier": args.lr, "reasoning_effort": "low"}}}).id, timeout=3600)
        t_rft = time.perf_counter() - t0
        if job.status != "succeeded":
            raise SystemExit(f"RFT job {job.status}: {job.error}")
        after = measure(job.fine_tuned_model, "rft")
        steps = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data if e.type == "metrics"]
        steps.sort(key=lambda d: d["step"])
        timing = {k: sum(d["timing"]["step"].get(k, 0.0) for d in steps) / len(steps)
                  for k in ("sampling", "training", "eval", "full_iteration")}
        print(f"warm start (SFT, 1 epoch of 160): {t_sft:.0f} s; held-out reward (pass rate) {before:.3f}")
        print(f"RFT, {len(steps)} steps of {args.batch} prompts × {max(2, round(4 * args.compute))} samples: "
              f"{t_rft:.0f} s; held-out reward {after:.3f} ({after - before:+.3f})")
        print("per step: " + ", ".join(f"{k} {v:.2f} s" for k, v in timing.items()))
        print("train mean reward by step: " + " ".join(f"{d['train_mean_reward']:.2f}" for d in steps))
        print("validation reward: " + " ".join(f"{d['step']}:{d['full_valid_mean_reward']:.2f}" for d in steps
                                                if "full_valid_mean_reward" in d))
    finally:
        local.release()


if __name__ == "__main__":
    main()
