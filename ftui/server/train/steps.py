"""The math of one batch: the forward pass (packed, attention within each example, the output layer only where a
label is trained), the SFT and DPO losses, and evaluation; mixed into :class:`ftui.server.train.trainer.JobTrainer`."""

from __future__ import annotations

import contextlib

from ftui.server.models import basemodels
from ftui.server.train.halves import TwoHalves, split, trained
from ftui.server.train.packing import SEGMENT_ATTENTION, packs, right_pad, shared_prefix


class BatchSteps:
    """Needs ``bf16`` (autocast on or off); uses ``halves`` (two halves at once, or None) and ``params`` (the
    trained parameters) when they are set."""

    bf16: bool = False
    halves: TwoHalves | None = None  # set for the training loop (SFT on a CPU with 2+ threads)
    params: tuple | list = ()  # the trained (LoRA) parameters
    rank: int = 0  # data-parallel training (torch.distributed initialised by the worker): this process's rank…
    world: int = 1  # …and the number of processes; each computes its share of every batch

    def _autocast(self, dev):
        import torch

        return torch.autocast(dev, dtype=torch.bfloat16, enabled=self.bf16)

    def _forward(self, model, pairs, pad, dev):
        """One batch of (ids, labels) pairs -> (float32 logits at the trained positions only, their targets, the
        pair each belongs to).

        No compute on padding: the pairs are packed end to end into one row, positions restarting at 0 for each, and
        attention stays within each pair — on a CPU by :func:`_segment_attention`, which also lets the pairs share
        the tokens they all begin with (``packing.shared_prefix``: computed once), elsewhere (when right-padding
        would waste more than ``packing.PACK_WASTE`` of the positions) by the model's packed-sequence mask (position ids
        without an attention mask). Same loss as the padded batch (tested), on fewer positions (see ``packing``).
        The decoder runs on every position, but the output layer (576 × 49,152 for SmolLM2, a fifth of the model's
        FLOPs per token) and the softmax over the vocabulary run only where a label is trained: in chat data most
        tokens are system and user turns.
        """
        import torch

        lengths = [len(x) for x, _ in pairs]
        causal = model.get_base_model()
        head = basemodels.bf16_output(causal) if self.bf16 else causal.lm_head
        segments = causal.config._attn_implementation == SEGMENT_ATTENTION
        if len(pairs) > 1 and (segments or packs(lengths)):
            # the tokens every pair begins with (a system prompt), once, at the row's start (segment attention only)
            p = shared_prefix(pairs) if segments else 0
            ids = torch.tensor(pairs[0][0][:p] + [t for x, _ in pairs for t in x[p:]], dtype=torch.long,
                               device=dev)[None]
            pos = torch.tensor(list(range(p)) + [i for n in lengths for i in range(p, n)], dtype=torch.long,
                               device=dev)[None]
            # the target of each position is the next label of its own pair; a pair's last position has none, nor
            # does the shared prefix (it ends before any pair's first trained label)
            tgt = torch.tensor([-100] * p + [t for _, y in pairs for t in (list(y[p + 1:]) + [-100])],
                               dtype=torch.long, device=dev)
            row_of = torch.repeat_interleave(torch.arange(len(pairs), device=dev),
                                             torch.tensor([n - p for n in lengths], device=dev))
            row_of = torch.cat([torch.zeros(p, dtype=torch.long, device=dev), row_of])
            keep = tgt != -100
            with self._autocast(dev):
                hidden = causal.model(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state[0]
                logits = head(hidden[keep])
            return logits.float(), tgt[keep], row_of[keep]
        ids, lab, att = right_pad(pairs, pad, dev)
        tgt = lab[:, 1:]
        keep = tgt != -100
        with self._autocast(dev):
            hidden = causal.model(input_ids=ids, attention_mask=att).last_hidden_state[:, :-1]
            logits = head(hidden[keep])
        rows = keep.nonzero()[:, 0]
        return logits.float(), tgt[keep], rows

    def _sft_train(self, model, batch, pad, dev) -> dict:
        """Forward and backward of one SFT batch (gradients in ``.grad``) -> its metrics; in two halves at once
        when the trainer has :class:`TwoHalves` and the batch splits into halves that both train something."""
        if self.world > 1:
            return self._sft_train_shared(model, batch, pad, dev)
        halves = self._halves_of(batch)
        if halves is None:
            loss, metrics = self._sft_step(model, batch, pad, dev)
            loss.backward()
            return metrics
        n = sum(trained(p) for p in batch)
        (s0, c0, g0), (s1, c1, g1) = self.halves.run(
            lambda half: self._sft_sums(model, half, pad, dev, n, self.params), *halves)
        for p, a, b in zip(self.params, g0, g1):
            p.grad = a + b if p.grad is None else p.grad + a + b
        return {"train_loss": round((s0 + s1) / n, 5), "train_mean_token_accuracy": round((c0 + c1) / n, 5)}

    def _sft_train_shared(self, model, batch, pad, dev) -> dict:
        """Data-parallel: this rank computes the gradients of its share of the batch (every ``world``-th pair),
        scaled by the whole batch's trained tokens, and ``torch.distributed.all_reduce`` sums them (and the loss
        sums) over the ranks: the same gradients as the whole batch on one worker, so the same optimizer step
        everywhere."""
        import torch
        import torch.distributed as dist

        n = sum(trained(p) for p in batch)
        mine = batch[self.rank::self.world]
        grads = None
        s = c = 0.0
        if n and mine and any(trained(p) for p in mine):
            s, c, grads = self._sft_sums(model, mine, pad, dev, n, self.params)
        flat = (torch.cat([g.reshape(-1).float() for g in grads]) if grads is not None else
                torch.zeros(sum(p.numel() for p in self.params), device=dev))
        sums = torch.tensor([s, c], dtype=torch.float64, device=dev)
        dist.all_reduce(flat)
        dist.all_reduce(sums)
        at = 0
        for p in self.params:
            g = flat[at:at + p.numel()].view_as(p).to(p.dtype)
            at += p.numel()
            p.grad = g if p.grad is None else p.grad + g
        if not n:
            return {"train_loss": 0.0, "train_mean_token_accuracy": 0.0}
        return {"train_loss": round(float(sums[0]) / n, 5), "train_mean_token_accuracy": round(float(sums[1]) / n, 5)}

    def _halves_of(self, batch) -> tuple[list, list] | None:
        return split(batch) if self.halves is not None else None

    def _sft_sums(self, model, pairs, pad, dev, scale: float, params=None) -> tuple[float, int, tuple | None]:
        """(summed loss, correct predictions, gradients of summed loss / ``scale`` for ``params`` or None) over the
        trained positions of ``pairs``; callable from any thread (grad mode and autocast are set here)."""
        import torch

        with torch.set_grad_enabled(params is not None):
            logits, tgt, _ = self._forward(model, pairs, pad, dev)
            total = torch.nn.functional.cross_entropy(logits, tgt, reduction="sum")
            correct = int((logits.argmax(-1) == tgt).sum())
            grads = torch.autograd.grad(total / scale, params) if params is not None else None
        return total.item(), correct, grads

    def _sft_step(self, model, batch, pad, dev):
        import torch

        logits, tgt, _ = self._forward(model, batch, pad, dev)
        if tgt.numel() == 0:  # nothing trainable in this batch (every answer weight 0)
            zero = logits.sum() * 0.0
            return zero, {"train_loss": 0.0, "train_mean_token_accuracy": 0.0}
        loss = torch.nn.functional.cross_entropy(logits, tgt)
        with torch.no_grad():
            acc = (logits.argmax(-1) == tgt).float().mean()
        return loss, {"train_loss": round(loss.item(), 5), "train_mean_token_accuracy": round(acc.item(), 5)}

    def _dpo_logps(self, model, batch, pad, dev):
        """Summed log-probabilities of the chosen (first half) and rejected (second half) completions."""
        import torch

        pairs = [(p + c, [-100] * len(p) + c) for p, c, _ in batch]
        pairs += [(p + r, [-100] * len(p) + r) for p, _, r in batch]
        logits, tgt, rows = self._forward(model, pairs, pad, dev)
        lp = torch.gather(logits.log_softmax(-1), 1, tgt.unsqueeze(-1)).squeeze(-1)
        return torch.zeros(len(pairs), dtype=lp.dtype, device=lp.device).index_add(0, rows, lp)

    reference_adapter: str | None = None  # set when the reference is a frozen adapter, not the bare base

    @contextlib.contextmanager
    def _reference(self, model):
        """DPO's reference model: the base with the adapter off, or the frozen adapter of the model the job
        continues (then switched back to the adapter that trains)."""
        if self.reference_adapter is None:
            with model.disable_adapter():
                yield
            return
        model.set_adapter(self.reference_adapter)
        try:
            yield
        finally:
            model.set_adapter("default")

    def _dpo_step(self, model, batch, pad, dev, beta):
        import torch

        n = len(batch)
        with torch.no_grad(), self._reference(model):
            ref = self._dpo_logps(model, batch, pad, dev)
        pol = self._dpo_logps(model, batch, pad, dev)
        z = beta * ((pol[:n] - ref[:n]) - (pol[n:] - ref[n:]))
        loss = -torch.nn.functional.logsigmoid(z).mean()
        acc = (z > 0).float().mean().item()
        return loss, {"train_loss": round(loss.item(), 5), "train_mean_reward_accuracy": round(acc, 5),
                      "train_mean_reward_margin": round((z / beta).mean().item(), 5)}

    def _evaluate(self, model, batch, pad, dev, kind, beta, prefix: str) -> dict:
        import torch

        model.eval()
        try:
            with torch.no_grad():
                if kind == "dpo":
                    loss, m = self._dpo_step(model, batch, pad, dev, beta)
                    return {f"{prefix}_loss": m["train_loss"],
                            f"{prefix}_mean_reward_accuracy": m["train_mean_reward_accuracy"]}
                # token-weighted over every trained position of the batch (TRL's definition)
                total_loss = total_correct = total_tokens = 0.0
                for i in range(0, len(batch), 8):
                    part = batch[i:i + 8]
                    halves = self._halves_of(part)
                    if halves is not None:
                        sums = self.halves.run(lambda half: self._sft_sums(model, half, pad, dev, 1.0), *halves)
                    else:
                        sums = [self._sft_sums(model, part, pad, dev, 1.0)]
                    total_loss += sum(s for s, _, _ in sums)
                    total_correct += sum(c for _, c, _ in sums)
                    total_tokens += sum(trained(p) for p in part)
                n = max(total_tokens, 1)
                return {f"{prefix}_loss": round(total_loss / n, 5),
                        f"{prefix}_mean_token_accuracy": round(total_correct / n, 5)}
        finally:
            model.train()
