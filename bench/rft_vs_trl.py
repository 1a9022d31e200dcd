#!/usr/bin/env python3
"""One reinforcement step, ftui's trainer against TRL's GRPOTrainer, in the same run: SmolLM2-135M-Instruct (the
converted GGUF both load), LoRA r=16 / alpha 32 on every linear layer, 8 review-length prompts × 4 samples a step,
completions of at most 32 tokens (``reasoning_effort: default``), temperature 1, one update per batch of samples, no
KL term, the same fuzzy-match reward against the review's star (the ftui grader engine is TRL's reward function).

    pip install -e ".[bench]"      # TRL and datasets: the bench's peer, not a dependency of ftui
    python bench/rft_vs_trl.py [--steps 6] [--budget 32]

ftui's steps run as a real job on `ftui serve` (its metrics events carry each step's timing: sampling, grading,
training); TRL's run in this process through a TrainerCallback timing each optimizer step (generation, reward and
the backward pass are all inside it). The first step of each is warm-up and left out; the median of the rest is
compared. Precision follows the machine for both (bf16 where the CPU multiplies it natively).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SYSTEM = "Rate the app review from 1 to 5 stars. Answer with the digit only."
# partial credit (fuzzy match): the base model rarely answers with the bare digit, and groups whose samples all score
# the same would be skipped by ftui (no advantage) but not by TRL, which would make the comparison unfair
GRADER = {"type": "text_similarity", "name": "close", "evaluation_metric": "fuzzy_match",
          "input": "{{ sample.output_text }}", "reference": "{{ item.star }} stars"}
BUDGETS = {16: "low", 32: "default", 64: "medium", 256: "high"}


def rows(n: int) -> list[dict]:
    with open(ROOT / "ftui/data/samples/reviews.csv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    # review-length prompts: the longest reviews of the sample, whole
    table.sort(key=lambda r: -len(r["review"]))
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": r["review"]}],
             "star": r["star"]} for r in table[:n]]


def ftui_steps(data: list[dict], steps: int, budget: int, work: Path) -> list[dict]:
    import openai

    from tests.backend import Server, wait_for

    server = Server(work / "server").start()
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        f = client.files.create(file=("rft.jsonl", "".join(json.dumps(r) + "\n" for r in data).encode()),
                                purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=f.id, seed=7, method={
            "type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {
                "n_epochs": 1, "batch_size": 8, "compute_multiplier": 1, "reasoning_effort": BUDGETS[budget]}}})
        done = wait_for(client, job.id, timeout=3600)
        if done.status != "succeeded":
            raise SystemExit(f"ftui's job {done.status}: {done.error}")
        events = client.fine_tuning.jobs.list_events(job.id, limit=200).data
        out = sorted((e.data for e in events if e.type == "metrics"), key=lambda d: d["step"])
        assert len(out) == steps, len(out)
        return out
    finally:
        server.stop()


def trl_steps(data: list[dict], steps: int, budget: int, model_dir: Path, bf16: bool, work: Path) -> list[float]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from ftui.core.graders import Engine, template

    engine = Engine(GRADER)

    def reward(completions, star, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [engine.grade(template.make_sample(t), {"star": s}).reward for t, s in zip(texts, star)]

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    torch.manual_seed(7)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ds = Dataset.from_list([{"prompt": r["messages"], "star": r["star"]} for r in data])
    cfg = GRPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=32, num_generations=4,
                     gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1,
                     max_completion_length=budget, temperature=1.0, top_p=1.0, top_k=0, learning_rate=1e-4,
                     beta=0.0, max_steps=steps, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                     bf16=bf16, seed=7, dataloader_num_workers=0, shuffle_dataset=True, log_completions=False)
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=reward, args=cfg, train_dataset=ds,
                          peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"), callbacks=[Timer()])
    trainer.train()
    return times


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--budget", type=int, default=32, choices=sorted(BUDGETS))
    args = ap.parse_args()
    import torch

    from ftui.server.models import basemodels

    work = Path(tempfile.mkdtemp(prefix="ftui-rft-vs-trl-"))
    os.environ.setdefault("FTUI_MODEL_CACHE", str(work / "models"))
    model_dir = basemodels.ensure("smollm2-135m-instruct", work / "server")
    bf16 = basemodels.cpu_has_bf16() or torch.cuda.is_available()
    data = rows(8 * args.steps)
    lengths = [len(r["messages"][1]["content"]) for r in data]
    print(f"{len(data)} prompts, reviews of {min(lengths)}-{max(lengths)} characters; 8 prompts × 4 samples a step, "
          f"≤ {args.budget} answer tokens; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'bf16' if bf16 else 'fp32'}")

    t0 = time.perf_counter()
    ours = ftui_steps(data, args.steps, args.budget, work)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = trl_steps(data, args.steps, args.budget, model_dir, bf16, work)
    t_theirs = time.perf_counter() - t0

    ours_step = [d["timing"]["step"]["full_iteration"] for d in ours][1:]
    parts = {k: statistics.median(d["timing"]["step"][k] for d in ours[1:]) for k in ("sampling", "grading",
                                                                                         "training")}
    a, b = statistics.median(ours_step), statistics.median(theirs[1:])
    print(f"ftui:  median step {a:.2f} s (" + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
          + f"); whole job {t_ours:.0f} s with the model load and the starting model's check")
    print(f"TRL:   median step {b:.2f} s; whole run {t_theirs:.0f} s with the model load")
    print(f"step rate, ftui / TRL: {b / a:.2f}×")


if __name__ == "__main__":
    main()
