"""Linear layers whose bfloat16 weights are laid out once for oneDNN, for decoding on a CPU.

Decoding one token multiplies a single row by every weight matrix; ``nn.Linear`` in bfloat16 hands oneDNN a plain
weight that it reorders into its blocked layout at every call. Measured on SmolLM2-135M (2 cores, avx512-bf16): the
output layer's 49,152 × 576 product 3.75 ms → 0.90 ms, an MLP projection 84 µs → 33 µs, and streamed decoding
24.6 → 34.3 tokens/s with the same greedy tokens (the same oneDNN kernel, so the same sums: max difference 0.0).
This is what PyTorch's own compiler does for frozen CPU models (inductor's ``freezing``); done here without a
compile step, which takes tens of seconds on a small machine, once per model. Only the layers' weights change form:
the model computes exactly what it did.
"""

from __future__ import annotations

import logging

log = logging.getLogger("ftui.inference")


def available(model) -> bool:
    """Can ``model``'s linear layers be packed: a bfloat16 model on a CPU whose oneDNN multiplies bfloat16."""
    import torch

    return (model.device.type == "cpu" and model.dtype == torch.bfloat16
            and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))


def pack_linears(model):
    """Replace every bias-free or biased ``nn.Linear`` of a bfloat16 CPU ``model`` with a packed one, in place; the
    model is returned. A tied output layer gets its own packed copy (the embedding keeps the plain weight)."""
    import torch
    from torch import nn

    class PackedLinear(nn.Module):
        def __init__(self, linear: nn.Linear) -> None:
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)  # laid out for one row
            self.register_buffer("packed", weight, persistent=False)
            self.bias = linear.bias

        def forward(self, x):
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, packed for oneDNN"

    n = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, PackedLinear(child))
                n += 1
    log.info("packed %d linear layers for oneDNN", n)
    return model
