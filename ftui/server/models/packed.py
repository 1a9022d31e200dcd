"""Linear layers whose bfloat16 weights are laid out once for oneDNN, for decoding on a CPU.

Decoding one token multiplies a single row by every weight matrix; ``nn.Linear`` in bfloat16 hands oneDNN a plain
weight that it reorders into its blocked layout at every call. Measured on SmolLM2-135M (2 cores, avx512-bf16): the
output layer's 49,152 × 576 product 3.75 ms → 0.90 ms, an MLP projection 84 µs → 33 µs, and streamed decoding
24.6 → 34.3 tokens/s with the same greedy tokens (the same oneDNN kernel, so the same sums: max difference 0.0).
This is what PyTorch's own compiler does for frozen CPU models (inductor's ``freezing``); done here without a
compile step, which takes tens of seconds on a small machine, once per model. Only the layers' weights change form:
the model computes exactly what it did.

The float32 model that evaluations use (batched greedy answers, scores; see ``ModelCache.fast``) gets the same
treatment while it computes, through :func:`float_products`: in float32 ``nn.Linear`` goes to MKL, whose products of
a few rows read the weights at 8–11 GB/s on this project's 2-core machine (the 49,152 × 576 output layer: 19 ms for
four rows); oneDNN's packed float32 kernel reads them at ~20 GB/s (5 ms), so the linear layers of a decoding step of
a batch of four take 23 ms instead of 61 (the whole step ~45 instead of ~95). Its sums come in another order than
MKL's (logits within ~1e-4), so a rare greedy token may differ from the unpacked model's. From two rows up a row's
products do not depend on the other rows, bit for bit (MKL's do): a score, a prompt's forward pass and a batch's
decoding steps are the same whatever the batch; a request decoded alone multiplies one row, which oneDNN sums in
another order (within float rounding, as MKL's batches differed from its single rows), so its greedy answer is the
batched one but in a near tie.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import weakref

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


# The float32 packs of each model (made on first use, freed with the model); [] where there are none.
_FLOAT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
FLOAT_SHARE = 0.25  # the packed copies may take at most this share of the machine's memory (they are a second copy)


def _float_packs(model) -> list:
    """``[(linear, its forward by the packed weight), ...]`` for a float32 CPU ``model``, made once; ``[]`` where
    oneDNN is missing, the copies would take more than ``FLOAT_SHARE`` of the memory with those of the other loaded
    models, or ``FTUI_SERVE_PACK_FLOAT=0``."""
    got = _FLOAT.get(model)
    if got is not None:
        return got
    import torch
    from torch import nn

    linears = [m for m in model.modules() if type(m) is nn.Linear]
    # this model's copies and those of the other models still loaded (the server keeps two)
    size = sum(m.weight.numel() * 4 for m in linears)
    held = sum(f.args[1].numel() * 4 for packs in list(_FLOAT.values()) for _, f in packs)  # args: op, weight, bias
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not reported: no second copy
        memory = 0
    if (os.environ.get("FTUI_SERVE_PACK_FLOAT", "1") == "0" or not linears or held + size > FLOAT_SHARE * memory
            or model.device.type != "cpu" or model.dtype != torch.float32 or not torch.backends.mkldnn.is_available()):
        got = []
    else:
        # laid out for four rows (an evaluation's batch); a row's products are the same in any batch from two rows up
        op, pack = torch.ops.mkldnn._linear_pointwise, torch.ops.mkldnn._reorder_linear_weight
        got = [(m, functools.partial(_packed_product, op, pack(m.weight.detach(), 4), m.bias)) for m in linears]
        log.info("packed %d float32 linear layers for oneDNN (%.0f MB)", len(got), size / 1e6)
    _FLOAT[model] = got
    return got


def _packed_product(op, weight, bias, x):
    return op(x, weight, bias, "none", [], "")


@contextlib.contextmanager
def float_products(model):
    """While inside, the linear layers of a float32 CPU ``model`` multiply by their packed copies (see the module's
    note); outside, the model is untouched (copies of it, such as the bf16 one for streamed answers, never see the
    packs). Run it on the thread that owns the model (the torch thread) and under the model's lock."""
    packs = _float_packs(model)
    for linear, forward in packs:
        linear.forward = forward
    try:
        yield
    finally:
        for linear, _ in packs:
            linear.__dict__.pop("forward", None)
