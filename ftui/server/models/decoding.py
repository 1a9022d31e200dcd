"""Streamed generation of Llama-family models on a CPU, in as few PyTorch operators as the same arithmetic allows.

A decoding step of SmolLM2-135M through transformers' model and ``generate`` took ~28 ms on 2 cores, of which the
weight products (packed for oneDNN, see models/packed.py) were ~11.5 ms: the rest was PyTorch's and Python's cost per
operator, ~60 of them per layer. Here a layer is one product for the queries, keys and values (their weights stacked
and packed once), rotary embeddings on the queries and keys together (rotate_half's sign folded into the sine, so a
roll replaces two slices, a negation and a concatenation), keys and values written into buffers allocated once per
answer (no concatenation of the whole cache at every token), one product for the MLP's gate and up projections, and
the rest as transformers computes it: the same normalisation in float32, the same attention kernel, the same dtypes,
so the same logits bit for bit and the same greedy tokens (tested against transformers' ``generate`` on the same
weights). Measured: 19.5 ms a token (51 tokens/s) instead of 28–29; the one-token step as TorchScript
(decode_step.py) makes it ~17.6 ms.

Sampling is transformers' own warpers (temperature, top-k 50, top-p) on float32 logits, as ``generate`` does: the
same seed gives the same sampled answer. The keys and values of the last conversation stay with the decoder, so a
chat's next turn computes only its new tokens.
Hand-written rather than a library because the libraries that fuse layers (llama.cpp, ONNX Runtime, torch.compile)
either need a second copy and format of the weights, a native build, or tens of seconds of compiling per model.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger("ftui.inference")

PREFIX_MIN = 32  # tokens in common with the last conversation below which a fresh prefill is as fast


def reusable_prefix(seen, ids) -> int:
    """How many of the prompt ``ids`` (1-D) begin as ``seen`` (the token ids of the last conversation whose keys and
    values are kept) and can be taken from it: at least one token is left to compute (its logits start the answer),
    and a shared run under ``PREFIX_MIN`` counts as none. The rule of both kept-conversation caches (this decoder's
    buffers and inference._PREFIX)."""
    n = min(int(seen.shape[0]), int(ids.shape[0]) - 1)
    same = int((seen[:n] == ids[:n]).int().cumprod(0).sum()) if n > 0 else 0
    return same if same >= PREFIX_MIN else 0
TOP_K = 50  # transformers' generate samples from the 50 likeliest tokens unless told otherwise
SLACK = 256  # tokens allocated beyond an answer's prompt and limit, so that follow-ups often fit in place


def supports(model) -> bool:
    """A bfloat16 Llama-architecture model on a CPU whose oneDNN multiplies bfloat16, with the layers this decoder
    computes (no biases, SiLU, plain rotary embeddings)."""
    import torch

    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "llama":
        return False
    rope = getattr(cfg, "rope_parameters", None) or {"rope_type": "default"}
    return (model.device.type == "cpu" and model.dtype == torch.bfloat16
            and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
            and rope.get("rope_type", "default") == "default"
            and getattr(cfg, "hidden_act", "") == "silu"
            and not getattr(cfg, "attention_bias", False) and not getattr(cfg, "mlp_bias", False)
            and getattr(cfg, "pretraining_tp", 1) == 1)


class Decoder:
    """A bfloat16 Llama model's weights, packed for decoding on a CPU; generates one answer at a time (the caller
    holds the model's lock). Built from the transformers model, which is not needed afterwards."""

    def __init__(self, model) -> None:
        import torch

        def pack(w):
            return torch.ops.mkldnn._reorder_linear_weight(w.detach().contiguous(), 1)

        cfg = model.config
        self.config = cfg
        self.device = torch.device("cpu")
        self.dtype = torch.bfloat16
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.inner = cfg.intermediate_size
        self.eps = float(cfg.rms_norm_eps)
        base = model.model
        self.embed = base.embed_tokens.weight.detach()
        self.inv_freq = base.rotary_emb.inv_freq.detach().float()  # transformers multiplies in float32 too
        self.layers = []
        with torch.no_grad():
            for layer in base.layers:
                a, p = layer.self_attn, layer.mlp
                self.layers.append((
                    layer.input_layernorm.weight.detach(),
                    pack(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])),
                    pack(a.o_proj.weight),
                    layer.post_attention_layernorm.weight.detach(),
                    pack(torch.cat([p.gate_proj.weight, p.up_proj.weight])),
                    pack(p.down_proj.weight)))
            self.norm = base.norm.weight.detach()
            self.head = pack(model.lm_head.weight)
        self._lists = tuple(list(w) for w in zip(*self.layers))  # per kind of weight, every layer's: the step's
        self._seen: Any = None  # the last conversation's token ids whose keys and values are in _k/_v
        self._k: Any = None
        self._v: Any = None

    # -- the arithmetic -----------------------------------------------------------------------------------------------
    def _rms(self, x, w):
        import torch

        h = x.float()
        return w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def _rotary(self, first: int, n: int):
        """cos and the signed sin of positions first … first+n-1, as transformers computes them (float32, then bf16)."""
        import torch

        half = self.head_dim // 2
        freqs = torch.arange(first, first + n, dtype=torch.float32)[:, None] * self.inv_freq
        emb = torch.cat((freqs, freqs), -1)
        sin = emb.sin()
        sin = torch.cat((-sin[:, :half], sin[:, half:]), -1)
        return emb.cos().to(self.dtype)[:, None], sin.to(self.dtype)[:, None]

    def _forward(self, ids, first: int):
        """Logits (float32) of the last of ``ids`` (1-D), whose positions start at ``first``; their keys and values go
        into the buffers at those positions."""
        import torch
        from torch.nn import functional as F

        lin = torch.ops.mkldnn._linear_pointwise
        H, KV, D, inner = self.heads, self.kv_heads, self.head_dim, self.inner
        n = int(ids.shape[0])
        end = first + n
        x = self.embed[ids]
        cos, sin = self._rotary(first, n)
        half = D // 2
        mask = None
        if first and n > 1:  # new tokens after cached ones: each sees the cache and the new tokens before it
            mask = torch.ones(n, end, dtype=torch.bool).tril(first)
        causal = first == 0 and n > 1
        ks, vs = self._k[:, :, :end], self._v[:, :, :end]
        kn, vn = self._k[:, :, first:end], self._v[:, :, first:end]
        for i, (n1, wqkv, wo, n2, wgu, wd) in enumerate(self.layers):
            heads = lin(self._rms(x, n1), wqkv, None, "none", [], "").view(n, H + 2 * KV, D)
            qk = heads[:, :H + KV]
            qk = qk * cos + qk.roll(half, -1) * sin
            kn[i].copy_(qk[:, H:].transpose(0, 1))
            vn[i].copy_(heads[:, H + KV:].transpose(0, 1))
            att = F.scaled_dot_product_attention(qk[:, :H].transpose(0, 1).unsqueeze(0), ks[i].unsqueeze(0),
                                                 vs[i].unsqueeze(0), attn_mask=mask, is_causal=causal,
                                                 scale=D ** -0.5, enable_gqa=True)
            x = x + lin(att[0].transpose(0, 1).reshape(n, H * D), wo, None, "none", [], "")
            gu = lin(self._rms(x, n2), wgu, None, "none", [], "")
            x = x + lin(F.silu(gu[:, :inner]) * gu[:, inner:], wd, None, "none", [], "")
        return lin(self._rms(x[-1:], self.norm), self.head, None, "none", [], "")[0].float()

    def _next(self, token: int, pos: int):
        """Logits after ``token`` at ``pos``: the TorchScript step where there is one (decode_step.py), else the
        same arithmetic eagerly."""
        import torch

        from ftui.server.models import decode_step

        step = decode_step.scripted()
        if step is None:
            return self._forward(torch.tensor([token]), pos)
        cos, sin = self._rotary(pos, 1)
        with torch.jit.optimized_execution(False):  # the plain interpreter: the same kernels as the eager step
            return step(self.embed[token:token + 1], cos, sin, self._k, self._v, pos, *self._lists, self.norm,
                        self.head, self.eps, self.heads, self.kv_heads, self.head_dim, self.inner)

    # -- a whole answer -----------------------------------------------------------------------------------------------
    def _start(self, ids, room: int) -> int:
        """Buffers for ``ids`` plus ``room`` tokens; -> how many of ``ids`` already have their keys and values (the
        longest prefix shared with the last conversation, if long enough to pay; at least one token is left new)."""
        import torch

        same = reusable_prefix(self._seen, ids) if self._seen is not None else 0
        need = int(ids.shape[0]) + room
        if self._k is None or self._k.shape[2] < need:
            shape = (len(self.layers), self.kv_heads, need + SLACK, self.head_dim)
            k, v = torch.empty(shape, dtype=self.dtype), torch.empty(shape, dtype=self.dtype)
            if same:
                k[:, :, :same] = self._k[:, :, :same]
                v[:, :, :same] = self._v[:, :, :same]
            self._k, self._v = k, v
        self._seen = None  # until this answer ends well: a failed one leaves nothing to reuse
        return same

    def generate(self, ids, *, max_new_tokens: int, eos: int | None, sample: dict | None,
                 on_token: Callable[[int], None], halted: Callable[[], bool], reuse: bool) -> tuple[int, int]:
        """Generate after the prompt ``ids`` (1-D), calling ``on_token`` with each new token (``eos`` too, as
        ``generate`` hands it to its streamer) until ``eos``, ``max_new_tokens`` or ``halted()``. ``sample``:
        {"temperature", "top_p"}, or None for greedy. ``reuse``: start from the last conversation's keys and values
        where ``ids`` begins with it. -> (prompt tokens whose keys and values were reused, new tokens)."""
        import torch

        if not reuse:
            self._seen = None
        first = self._start(ids, max_new_tokens)
        warp: list | None = None
        if sample is not None:
            from transformers.generation.logits_process import (
                TemperatureLogitsWarper,
                TopKLogitsWarper,
                TopPLogitsWarper,
            )

            # generate's order, and its top-k of 50 when sampling (a default it applies, not the config's None)
            warp = [TemperatureLogitsWarper(sample["temperature"]), TopKLogitsWarper(TOP_K)]
            if sample["top_p"] < 1.0:
                warp.append(TopPLogitsWarper(sample["top_p"]))
        out: list[int] = []
        logits = self._forward(ids[first:], first)
        pos = int(ids.shape[0])
        while True:
            if warp is None:
                token = int(logits.argmax())
            else:
                scores = logits[None]
                for p in warp:
                    scores = p(None, scores)
                token = int(torch.multinomial(torch.softmax(scores, -1), 1)[0, 0])
            out.append(token)
            on_token(token)
            if token == eos or len(out) >= max_new_tokens or halted():
                break
            logits = self._next(token, pos)
            pos += 1
        # the keys and values now cover the prompt and every answer token but the last (never fed back)
        self._seen = torch.cat((ids, torch.tensor(out[:-1], dtype=ids.dtype)))
        return first, len(out)
