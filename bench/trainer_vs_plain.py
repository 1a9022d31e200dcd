#!/usr/bin/env python3
"""ftui's trainer against a plain transformers + peft loop on the same data and batches, in one run.

    python bench/trainer_vs_plain.py                 # Marv sample (3 epochs) and a varied chat set (1 epoch)
    python bench/trainer_vs_plain.py --only marv

Both train the same LoRA (r=16, alpha 32, all-linear, same seed, so the same initial adapter) on the same tokenised
examples in the same shuffled batches, under bf16 autocast where the CPU has bf16 (fp32 elsewhere). The plain loop
is the one everybody writes: right-padded batches, `model(input_ids, attention_mask, labels=...)`, the model's
default attention, AdamW. ftui's run goes through a real `ftui serve` and the official SDK; its time is the
trainer's whole training loop (every step, its metrics event, the checkpoints and resumable-state saves), as the
trainer logs it with perf_counter; the plain loop's time is its steps only (no saves). Both report tokens/s (every
token of every example, each epoch) and the training loss at the last step.

The varied set comes from ../shared/bench/gen_dataset.py (1-4 turns, heavy-tailed answer lengths, up to 1,024
tokens): unlike Marv, whose 16 examples are all 45-60 tokens, its batches would be mostly padding.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftui.server import basemodels  # noqa: E402
from ftui.server.trainer import BASE_LR, _bf16_wanted, encode_sft  # noqa: E402

GEN = ROOT.parent / "shared" / "bench" / "gen_dataset.py"
BS, SEED = 4, 0


def datasets(tmp: Path) -> dict[str, tuple[Path, int]]:
    chat = tmp / "chat48.jsonl"
    subprocess.run([sys.executable, str(GEN), "--examples", "48", "--seed", "3", "--out", str(chat)], check=True,
                   stdout=subprocess.DEVNULL)
    return {"marv": (ROOT / "ftui" / "data" / "samples" / "marv.jsonl", 3), "chat": (chat, 1)}


def plain_loop(data_dir: Path, path: Path, epochs: int) -> tuple[float, int, float]:
    import orjson
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(SEED)
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, data_dir)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    data = [encode_sft(tok, r["messages"]) for r in rows]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=BASE_LR, weight_decay=0.0)
    use_bf16 = _bf16_wanted("cpu")
    tokens, loss = 0, float("nan")
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = list(range(len(data)))
        random.Random(SEED * 1000 + epoch).shuffle(order)  # the trainer's order
        for b in range(math.ceil(len(data) / BS)):
            batch = [data[i] for i in order[b * BS:(b + 1) * BS]]
            width = max(len(x) for x, _ in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id)
            lab = torch.full((len(batch), width), -100)
            att = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (x, y) in enumerate(batch):
                ids[r, :len(x)] = torch.tensor(x)
                lab[r, :len(y)] = torch.tensor(y)
                att[r, :len(x)] = 1
                tokens += len(x)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                out = model(input_ids=ids, attention_mask=att, labels=lab).loss
            out.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss = out.item()
    return time.perf_counter() - t0, tokens, loss


def ftui_run(server, path: Path, epochs: int) -> tuple[float, int, float]:
    from tests.backend import wait_for

    c = server.client()
    with path.open("rb") as fh:
        f = c.files.create(file=fh, purpose="fine-tune")
    job = c.fine_tuning.jobs.create(model=basemodels.DEFAULT_BASE, training_file=f.id, seed=SEED, method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs, "batch_size": BS}}})
    job = wait_for(c, job.id, timeout=1800)
    assert job.status == "succeeded", job.error
    logged = (server.data_dir.parent / f"serve-{server.port}.log").read_text()
    took = float(re.findall(rf"job {job.id}: steps .* in ([0-9.]+) s", logged)[-1])
    events = c.fine_tuning.jobs.list_events(job.id, limit=100).data
    last = max((e for e in events if e.type == "metrics"), key=lambda e: e.data["step"])
    return took, job.trained_tokens, last.data["train_loss"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["marv", "chat"])
    args = ap.parse_args()
    from tests.backend import Server

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("FTUI_MODEL_CACHE", str(tmp / "cache"))
        basemodels.ensure(basemodels.DEFAULT_BASE, tmp)
        sets = datasets(tmp)
        (tmp / "serve").mkdir()
        server = Server(tmp / "serve").start()
        print(f"{os.cpu_count()} CPUs, LoRA r16 all-linear, batch {BS}, bf16 autocast: {_bf16_wanted('cpu')}")
        try:
            for name, (path, epochs) in sets.items():
                if args.only and name != args.only:
                    continue
                p_s, p_tok, p_loss = plain_loop(tmp, path, epochs)
                f_s, f_tok, f_loss = ftui_run(server, path, epochs)
                assert p_tok == f_tok, (p_tok, f_tok)
                print(f"\n{name}: {path.name}, {epochs} epoch(s), {p_tok:,} tokens")
                print(f"  plain transformers+peft : {p_s:7.1f} s {p_tok / p_s:7.0f} tokens/s   last loss {p_loss:.3f}")
                print(f"  ftui trainer (all of it): {f_s:7.1f} s {f_tok / f_s:7.0f} tokens/s   last loss {f_loss:.3f}")
                print(f"  ratio (tokens/s)        : {p_s / f_s:7.2f}×")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
