#!/usr/bin/env python3
"""Time ftui's trainer against a plain transformers + peft loop on the same data, in one run, and chat TTFT.

    python bench/trainer_vs_plain.py            # Marv sample, 2 epochs, batch 4

Both train the same LoRA (r=16, alpha 32, all-linear) on the same tokenised Marv examples with the same batches,
so the ratio isolates ftui's own work (masking, metrics, events, checkpoints, state saves) against the plain loop's
`model(labels=...)`. ftui's run goes through a real `ftui serve` and the official SDK; its time is the trainer's
whole training loop (every step, evaluation, checkpoint and state save), as the trainer logs it with perf_counter.
The plain loop's time is its training steps only (no saves).
TTFT: time to the first streamed token of a chat completion with the model already loaded.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftui.server import basemodels  # noqa: E402
from ftui.server.trainer import BASE_LR, encode_sft  # noqa: E402

SAMPLE = ROOT / "ftui" / "data" / "samples" / "marv.jsonl"
EPOCHS, BS = 3, 4


def plain_loop(data_dir: Path) -> float:
    import orjson
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, data_dir)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    rows = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    data = [encode_sft(tok, r["messages"]) for r in rows]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=BASE_LR, weight_decay=0.0)
    bf16 = os.environ.get("FTUI_TRAIN_BF16", "auto")
    from ftui.server.trainer import _bf16_wanted

    use_bf16 = _bf16_wanted("cpu") if bf16 == "auto" else bf16 == "1"
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        for b in range(math.ceil(len(data) / BS)):
            batch = data[b * BS:(b + 1) * BS]
            width = max(len(x) for x, _ in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id)
            lab = torch.full((len(batch), width), -100)
            att = torch.zeros((len(batch), width), dtype=torch.long)
            for r, (x, y) in enumerate(batch):
                ids[r, :len(x)] = torch.tensor(x)
                lab[r, :len(y)] = torch.tensor(y)
                att[r, :len(x)] = 1
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def ftui_run(data_dir: Path) -> tuple[float, float]:
    sys.path.insert(0, str(ROOT))
    from tests.server.conftest import Server, wait_for

    s = Server(data_dir).start()
    try:
        c = s.client()
        f = c.files.create(file=SAMPLE.open("rb"), purpose="fine-tune")
        job = c.fine_tuning.jobs.create(model=basemodels.DEFAULT_BASE, training_file=f.id, seed=0, method={
            "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": EPOCHS, "batch_size": BS}}})
        job = wait_for(c, job.id)
        assert job.status == "succeeded", job.error
        logged = (s.data_dir.parent / f"serve-{s.port}.log").read_text()
        train_s = float(re.findall(rf"job {job.id}: steps .* in ([0-9.]+) s", logged)[-1])
        msgs = [{"role": "user", "content": "What is the capital of Japan?"}]
        c.chat.completions.create(model=job.fine_tuned_model, messages=msgs, max_tokens=4)  # load once
        ttfts = []
        for _ in range(5):
            t0 = time.perf_counter()
            stream = c.chat.completions.create(model=job.fine_tuned_model, messages=msgs, max_tokens=32,
                                               temperature=0, stream=True)
            for ch in stream:
                if ch.choices and ch.choices[0].delta.content:
                    ttfts.append(time.perf_counter() - t0)
                    break
            stream.close()
        return train_s, sorted(ttfts)[len(ttfts) // 2]
    finally:
        s.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FTUI_MODEL_CACHE", str(Path(tmp) / "cache"))
        basemodels.ensure(basemodels.DEFAULT_BASE, Path(tmp))
        plain = plain_loop(Path(tmp))
        ours, ttft = ftui_run(Path(tmp) / "serve")
    steps = EPOCHS * math.ceil(16 / BS)
    print(f"Marv sample, {EPOCHS} epochs × batch {BS} = {steps} steps, LoRA r16 all-linear, {os.cpu_count()} CPUs")
    print(f"plain transformers+peft loop : {plain:6.1f} s")
    print(f"ftui trainer (whole loop)    : {ours:6.1f} s   (incl. 3 checkpoints and 2 state saves)")
    print(f"ratio plain / ftui           : {plain / ours:6.2f}  (≥ 1.0 means ftui is as fast or faster)")
    print(f"chat time to first token     : {ttft * 1000:6.0f} ms (median of 5, model loaded)")


if __name__ == "__main__":
    main()
