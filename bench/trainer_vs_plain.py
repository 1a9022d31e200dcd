#!/usr/bin/env python3
"""ftui's trainer against a plain transformers + peft loop on the same data and batches, in one run.

    python bench/trainer_vs_plain.py                 # Marv sample (3 epochs) and a varied chat set (1 epoch)
    python bench/trainer_vs_plain.py --only marv --rounds 5
    python bench/trainer_vs_plain.py --no-trl        # without TRL's SFTTrainer (a peer from ftui[bench])

Both train the same LoRA (r=16, alpha 32, all-linear, same seed, so the same initial adapter) on the same tokenised
examples in the same shuffled batches, under bf16 autocast where the CPU has bf16 (fp32 elsewhere). The plain loop
is the one everybody writes: right-padded batches, `model(input_ids, attention_mask, labels=...)`, the model's
default attention, AdamW. ftui's run goes through a real `ftui serve` and the official SDK; its time is the
trainer's whole training loop (every step, its metrics event, the checkpoints and resumable-state saves), as the
trainer logs it with perf_counter; the plain loop's time is its steps only (no saves). Both report tokens/s (every
token of every example, each epoch) and the training loss at the last step. ftui's trainer also logs the time spent
in the steps themselves (forward, backward, optimizer: what the plain loop times), so the table shows that ratio
too.

Each run is a fresh process (the plain loop a child of this script, ftui's a fresh runner). The two alternate,
round after round (plain first in even rounds, ftui first in odd ones), and the table shows the
medians: on a shared 2-core machine one run of either moves by 20-50 % from minute to minute, more than the
difference being measured.

The varied set comes from ../shared/bench/gen_dataset.py (1-4 turns, heavy-tailed answer lengths, up to 1,024
tokens): unlike Marv, whose 16 examples are all 45-60 tokens, its batches would be mostly padding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ftui.server.models import basemodels  # noqa: E402
from ftui.server.train.trainer import BASE_LR, _bf16_wanted, encode_sft  # noqa: E402

GEN = ROOT.parent / "shared" / "bench" / "gen_dataset.py"
BS, SEED = 4, 0


def datasets(tmp: Path) -> dict[str, tuple[Path, int]]:
    chat = tmp / "chat48.jsonl"
    subprocess.run([sys.executable, str(GEN), "--examples", "48", "--seed", "3", "--out", str(chat)], check=True,
                   stdout=subprocess.DEVNULL)
    return {"marv": (ROOT / "ftui" / "data" / "samples" / "marv.jsonl", 3), "chat": (chat, 1)}


def encoded_examples(tok, path: Path) -> list[tuple[list[int], list[int]]]:
    """Every example of a chat JSONL file as the trainer encodes it: (token ids, labels)."""
    import orjson

    return [encode_sft(tok, orjson.loads(line)["messages"]) for line in path.read_bytes().splitlines() if line.strip()]


def plain_run(data_dir: Path, path: Path, epochs: int) -> tuple[float, int, float]:
    """The plain loop in a fresh process of its own, as ftui's trainer runs in a fresh runner process: a loop run in
    this process left the machine slower for the next ftui run (5.3-6.0 s in its steps before, 7.0-8.5 s after, the
    same job, measured three times each), and would have counted against ftui."""
    out = subprocess.run([sys.executable, __file__, "--plain", str(data_dir), str(path), str(epochs)], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    took, tokens, loss = json.loads(out.strip().splitlines()[-1])
    return took, tokens, loss


def plain_loop(data_dir: Path, path: Path, epochs: int) -> tuple[float, int, float]:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(SEED)
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, data_dir)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    data = encoded_examples(tok, path)
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


def trl_run(data_dir: Path, path: Path, epochs: int) -> tuple[float, int, float]:
    """TRL's SFTTrainer in a fresh process of its own (like the plain loop)."""
    out = subprocess.run([sys.executable, __file__, "--trl", str(data_dir), str(path), str(epochs)], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    took, tokens, loss = json.loads(out.strip().splitlines()[-1])
    return took, tokens, loss


def trl_loop(data_dir: Path, path: Path, epochs: int) -> tuple[float, int, float]:
    """What a user who trains a LoRA with TRL writes: SFTTrainer with a LoraConfig, on the same tokenised examples
    and labels (a `labels` column, which TRL keeps as is: the assistant turns only, as ftui trains), in the same
    order (the epochs laid end to end, read in sequence), batch size, learning rate (constant, AdamW, no weight
    decay) and precision. One difference from TRL's defaults, in TRL's favour: no gradient checkpointing (TRL turns
    it on by default; it saves memory and costs a forward pass)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(SEED)
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, data_dir)
    model.config.use_cache = False
    data = encoded_examples(tok, path)
    order = []
    for epoch in range(epochs):
        o = list(range(len(data)))
        random.Random(SEED * 1000 + epoch).shuffle(o)  # the trainer's order
        order += o
    ds = Dataset.from_dict({"input_ids": [data[i][0] for i in order], "labels": [data[i][1] for i in order]})
    tokens = sum(len(data[i][0]) for i in order)
    use_bf16 = _bf16_wanted("cpu")
    args = SFTConfig(output_dir=str(data_dir / "trl-out"), per_device_train_batch_size=BS, num_train_epochs=1,
                     learning_rate=BASE_LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                     optim="adamw_torch", bf16=use_bf16, fp16=False, use_cpu=True, gradient_checkpointing=False,
                     logging_steps=1, save_strategy="no", report_to=[], seed=SEED, data_seed=SEED,
                     dataloader_num_workers=0, max_length=None, disable_tqdm=True)

    class InOrder(SFTTrainer):
        def _get_train_sampler(self, *a, **kw):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    trainer = InOrder(model=model, args=args, train_dataset=ds, processing_class=tok,
                      peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    t0 = time.perf_counter()
    trainer.train()
    took = time.perf_counter() - t0
    loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
    return took, tokens, loss


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
    took, steps = map(float, re.findall(rf"job {job.id}: steps .* in ([0-9.]+) s .*; ([0-9.]+) s in the steps",
                                        logged)[-1])
    events = c.fine_tuning.jobs.list_events(job.id, limit=100).data
    last = max((e for e in events if e.type == "metrics"), key=lambda e: e.data["step"])
    return took, steps, job.trained_tokens, last.data["train_loss"]


def matmul_rate() -> float:
    """This CPU's bf16 (or float32 without native bf16) matrix-multiply rate, FLOP/s on every core: the best of 5
    products of 2,048-square matrices, the shape class a training step's big products have."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    dtype = torch.bfloat16 if _bf16_wanted("cpu") else torch.float32
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best


def step_flop(data_dir: Path, path: Path, epochs: int) -> tuple[float, float, float]:
    """The FLOP a LoRA training of ``path`` does for its useful work, as (frozen weights, attention, adapters):
    - the frozen weights: the forward pass (2 per weight and token) and the backward pass to the activations (2 more),
      the output layer's at the trained positions only (where the loss is taken);
    - attention, causal (each token attends to itself and the tokens before it, in its own example): QK^T and the
      weighted sum of V, 2 * T^2 * d a layer for an example of T tokens forward, twice that backward;
    - the adapters (r per linear layer): forward, backward to the input, and their own gradients, 6 * r * (in + out)
      a token. Padding, the masked half of a dense attention and the output layer's other positions are not
      useful work and are not counted (a plain loop does them; ftui's trainer does not). Work the trainer saves
      otherwise (a system prompt shared by a packed row's examples is computed once) counts as done: these are the
      model's FLOP, the same for any trainer of the same examples."""
    from torch import nn

    model, tok = basemodels.load(basemodels.DEFAULT_BASE, data_dir)
    out = model.get_output_embeddings().weight.numel()
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name and "lm_head" not in name)
    layers = [m for name, m in model.named_modules() if type(m) is nn.Linear and "lm_head" not in name]
    cfg = model.config
    width = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    encoded = encoded_examples(tok, path)
    lengths = [len(ids) for ids, _ in encoded]
    tokens = sum(lengths) * epochs
    trained = sum(sum(1 for x in labels if x != -100) for _, labels in encoded) * epochs
    frozen = 4.0 * n * tokens + 4.0 * out * trained  # the output layer where there is a loss to take
    attention = 6.0 * cfg.num_hidden_layers * width * sum(t * t for t in lengths) * epochs
    adapters = 6.0 * 16 * sum(m.in_features + m.out_features for m in layers) * tokens
    return frozen, attention, adapters


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["marv", "chat"])
    ap.add_argument("--rounds", type=int, default=3, help="plain/ftui pairs per set (medians are reported)")
    ap.add_argument("--no-trl", action="store_true", help="leave TRL's SFTTrainer out (it needs ftui[bench])")
    ap.add_argument("--plain", nargs=3, metavar=("DATA_DIR", "FILE", "EPOCHS"), help=argparse.SUPPRESS)
    ap.add_argument("--trl", nargs=3, metavar=("DATA_DIR", "FILE", "EPOCHS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain:  # the child process of plain_run
        data_dir, path, epochs = args.plain
        print(json.dumps(plain_loop(Path(data_dir), Path(path), int(epochs))))
        return
    if args.trl:  # the child process of trl_run
        data_dir, path, epochs = args.trl
        print(json.dumps(trl_loop(Path(data_dir), Path(path), int(epochs))))
        return
    if not args.no_trl:
        try:
            import trl  # noqa: F401
        except ImportError:
            sys.exit("TRL's SFTTrainer is a peer: pip install 'ftui[bench]' (or pass --no-trl)")
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
                plain, ftui, trl = [], [], []
                for r in range(args.rounds):
                    runs = [lambda: plain.append(plain_run(tmp, path, epochs)),
                            lambda: ftui.append(ftui_run(server, path, epochs))]
                    if not args.no_trl:
                        runs.append(lambda: trl.append(trl_run(tmp, path, epochs)))
                    for run in runs[r % len(runs):] + runs[:r % len(runs)]:  # each goes first in turn
                        run()
                    print(f"  round {r + 1}: plain {plain[-1][0]:.1f} s, ftui {ftui[-1][0]:.1f} s "
                          f"({ftui[-1][1]:.1f} s in steps)" + (f", TRL {trl[-1][0]:.1f} s" if trl else ""), flush=True)
                p_tok, p_loss = plain[0][1], plain[0][2]
                f_tok, f_loss = ftui[0][2], ftui[0][3]
                assert p_tok == f_tok, (p_tok, f_tok)
                assert all(x[1] == p_tok for x in plain) and all(x[2] == f_tok for x in ftui)
                p_s = statistics.median(x[0] for x in plain)
                f_s = statistics.median(x[0] for x in ftui)
                f_steps = statistics.median(x[1] for x in ftui)
                ratios = sorted(p[0] / f[0] for p, f in zip(plain, ftui))
                print(f"\n{name}: {path.name}, {epochs} epoch(s), {p_tok:,} tokens, {args.rounds} round(s), medians")
                print(f"  plain transformers+peft : {p_s:7.1f} s {p_tok / p_s:7.0f} tokens/s   last loss {p_loss:.3f}"
                      f" (round 1)")
                print(f"  ftui trainer (all of it): {f_s:7.1f} s {f_tok / f_s:7.0f} tokens/s   last loss {f_loss:.3f}")
                print(f"  ftui, its steps only    : {f_steps:7.1f} s {f_tok / f_steps:7.0f} tokens/s")
                rate = matmul_rate()
                frozen, attention, adapters = step_flop(tmp, path, epochs)
                flop = frozen + attention + adapters
                print(f"  ftui's steps achieve    : {flop / f_steps / 1e9:7.0f} GFLOP/s "
                      f"({flop / f_tok / 1e9:.3f} GFLOP per token: frozen weights {frozen / f_tok / 1e9:.3f}, "
                      f"attention {attention / f_tok / 1e9:.3f}, adapters {adapters / f_tok / 1e9:.3f}) = "
                      f"{flop / f_steps / rate:.0%} of this CPU's matmul rate, {rate / 1e9:.0f} GFLOP/s measured now "
                      f"({frozen / f_steps / rate:.0%} counting the frozen weights only)")
                print(f"  ratio (tokens/s)        : {p_s / f_s:7.2f}× whole loop, {p_s / f_steps:.2f}× steps only; "
                      f"per round {', '.join(f'{x:.2f}' for x in ratios)}")
                if trl:
                    assert all(x[1] == f_tok for x in trl), (trl, f_tok)
                    t_s = statistics.median(x[0] for x in trl)
                    t_ratios = sorted(t[0] / f[0] for t, f in zip(trl, ftui))
                    print(f"  TRL SFTTrainer          : {t_s:7.1f} s {f_tok / t_s:7.0f} tokens/s   last loss "
                          f"{trl[0][2]:.3f} (round 1)")
                    print(f"  ftui / TRL (tokens/s)   : {t_s / f_s:7.2f}× whole loop, {t_s / f_steps:.2f}× steps only; "
                          f"per round {', '.join(f'{x:.2f}' for x in t_ratios)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
