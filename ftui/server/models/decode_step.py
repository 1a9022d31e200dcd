"""One decoding step of :class:`ftui.server.models.decoding.Decoder`, as a TorchScript function.

The eager step spends ~5 ms of a ~20 ms token in Python, calling ~25 operators per layer; TorchScript's interpreter
calls the same operators (run with ``optimized_execution(False)``: no fusion, the same kernels, so the same logits bit
for bit) for ~15 % less a token (SmolLM2-135M, 2 cores: 20.6 → 17.6 ms; tested against the eager step and
transformers). ``torch.jit.script`` is deprecated in PyTorch 2.x in favour of ``torch.compile``, which compiled this
model's step for ~50 s without making it faster; so it is used while it exists: when it fails or is gone, or with
``FTUI_DECODE_SCRIPT=0``, :func:`scripted` gives None and the decoder runs the eager step, which is the same
arithmetic.

Imported only when a decoder first generates (it imports torch). No ``from __future__ import annotations`` here:
TorchScript reads the annotations.
"""

import logging
import os
import threading
import warnings
from typing import List, Optional

import torch

log = logging.getLogger("ftui.inference")

_lock = threading.Lock()
_compiled: dict = {}


def step(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, pos: int,
         norms1: List[torch.Tensor], qkv: List[torch.Tensor], out: List[torch.Tensor], norms2: List[torch.Tensor],
         gate_up: List[torch.Tensor], down: List[torch.Tensor], norm: torch.Tensor, head: torch.Tensor, eps: float,
         heads: int, kv_heads: int, head_dim: int, inner: int) -> torch.Tensor:
    """The float32 logits after one token whose embedding is ``x`` (1 × hidden) at position ``pos``; its keys and
    values go into ``keys``/``values`` (layers × kv heads × capacity × head dim) at ``pos``. What
    ``Decoder._forward`` computes for one token, operator for operator."""
    # the operator's `Scalar?[]`: TorchScript's `number`; a local annotation, never evaluated by Python
    none: List[Optional[number]] = []  # noqa: F821
    n = pos + 1
    ks = keys[:, :, :n]
    vs = values[:, :, :n]
    half = head_dim // 2
    q_k = heads + kv_heads
    for i in range(len(qkv)):
        h = x.float()
        h = norms1[i] * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
        both = torch.ops.mkldnn._linear_pointwise(h, qkv[i], None, "none", none, "").view(1, q_k + kv_heads,
                                                                                           head_dim)
        qk = both[:, :q_k]
        qk = qk * cos + qk.roll(half, -1) * sin
        keys[i, :, pos] = qk[0, heads:]
        values[i, :, pos] = both[0, q_k:]
        att = torch.nn.functional.scaled_dot_product_attention(
            qk[:, :heads].transpose(0, 1).unsqueeze(0), ks[i].unsqueeze(0), vs[i].unsqueeze(0),
            scale=head_dim ** -0.5, enable_gqa=True)
        x = x + torch.ops.mkldnn._linear_pointwise(att[0].transpose(0, 1).reshape(1, heads * head_dim), out[i],
                                                   None, "none", none, "")
        h = x.float()
        h = norms2[i] * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
        gu = torch.ops.mkldnn._linear_pointwise(h, gate_up[i], None, "none", none, "")
        x = x + torch.ops.mkldnn._linear_pointwise(torch.nn.functional.silu(gu[:, :inner]) * gu[:, inner:], down[i],
                                                   None, "none", none, "")
    h = x.float()
    h = norm * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return torch.ops.mkldnn._linear_pointwise(h, head, None, "none", none, "")[0].float()


def scripted():
    """``step`` compiled by TorchScript (once per process), or None where that is off or unavailable."""
    if os.environ.get("FTUI_DECODE_SCRIPT", "1") == "0":
        return None
    with _lock:
        if "step" not in _compiled:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # said in the module's docstring
                    _compiled["step"] = torch.jit.script(step)
            except Exception as exc:  # noqa: BLE001 — any failure means the eager step, never a failed answer
                log.warning("decoding without TorchScript (%s: %s)", type(exc).__name__, exc)
                _compiled["step"] = None
        return _compiled["step"]
