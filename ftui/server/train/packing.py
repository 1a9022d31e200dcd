"""How a training batch is laid out and attended: right-padding, packing end to end, and the CPU's per-example
attention that packed batches need (no compute on padding, no attention across examples, no T × T mask on long rows).

On a CPU a packed batch also computes the tokens every example begins with only once (``shared_prefix``): fine-tuning
sets repeat one system prompt in every example, and those positions — their keys, values and hidden states — are the
same in each. The row holds the prefix once, then each example's own tokens with position ids that go on from the
prefix's; each example attends to the prefix and, causally, to itself. Same loss and gradients as packing every
example whole (tested)."""

from __future__ import annotations

import threading

PACK_WASTE = 0.1  # pack a batch end to end when padding it would waste more than this share of positions


def right_pad(pairs, pad: int, dev):
    """(ids, labels) pairs -> right-padded ``input_ids``, ``labels`` (-100 on padding) and ``attention_mask``."""
    import torch

    width = max(len(x) for x, _ in pairs)
    ids = torch.full((len(pairs), width), pad, dtype=torch.long)
    lab = torch.full((len(pairs), width), -100, dtype=torch.long)
    att = torch.zeros((len(pairs), width), dtype=torch.long)
    for r, (x, y) in enumerate(pairs):
        ids[r, : len(x)] = torch.tensor(x)
        lab[r, : len(y)] = torch.tensor(y)
        att[r, : len(x)] = 1
    return ids.to(dev), lab.to(dev), att.to(dev)


def packs(lengths: list[int]) -> bool:
    """Pack this batch end to end? Yes when right-padding it would waste more than ``PACK_WASTE`` of its positions."""
    return len(lengths) > 1 and sum(lengths) < (1 - PACK_WASTE) * max(lengths) * len(lengths)


SEGMENT_ATTENTION = "ftui_segments"
EAGER_MAX = 384  # segments up to this length use plain matmul attention; longer ones PyTorch's fused kernel
# a packed row up to this long attends in one masked product over the whole row instead of one per example: a Marv
# batch (4 examples, ~150 positions) took ~70 operators per layer that way, 8 % of its training step's time; the row's
# T × T scores (9 heads: 2.4 MB in float32 at 256) stay small below it
DENSE_MAX = 256


SHARED_MIN = 8  # a shared prefix shorter than this is computed in each example (not worth a second key block)


def shared_prefix(pairs, minimum: int | None = None) -> int:
    """How many leading tokens every (ids, labels) pair of a batch shares, none of them predicting a trained label
    (so that the prefix's positions train nothing and each pair keeps at least its first trained target and one token
    of its own); 0 when under ``minimum`` or for a single pair."""
    if len(pairs) < 2:
        return 0
    limit = min(len(x) for x, _ in pairs) - 1
    for _, y in pairs:
        first = next((i for i, v in enumerate(y) if v != -100), len(y))
        limit = min(limit, first - 1)  # position t predicts label t + 1: labels 1..p stay untrained
    head = pairs[0][0]
    n = 0
    while n < limit and all(x[n] == head[n] for x, _ in pairs[1:]):
        n += 1
    return n if n >= (SHARED_MIN if minimum is None else minimum) else 0


def _segment_bounds(position_ids, length: int) -> list[tuple[int, int, int]]:
    """(start, end, shared) of each segment of a packed row: a segment starts where the position ids do not go on
    by one; ``shared`` is its first position id — the number of leading keys of the row (a shared prefix) that it
    attends to besides itself (0 for an example packed whole, and for the first one, which follows the prefix)."""
    pos = position_ids[0]
    starts = [0] + ((pos[1:] != pos[:-1] + 1).nonzero()[:, 0] + 1).tolist()
    firsts = pos[starts].tolist()
    return [(a, b, s) for a, b, s in zip(starts, starts[1:] + [length], firsts)]


_rows = threading.local()  # the last packed row's mask, per thread (two halves train at once)


def _blocked(position_ids, length: int, device):
    """The ``length × length`` mask of a packed row (True where a query must not see a key): each position sees the
    earlier positions of its own example and, for an example after a shared prefix, the prefix. Built once per
    forward pass: every layer gets the same ``position_ids`` tensor."""
    import torch

    last = getattr(_rows, "last", None)
    if last is not None and last[0] is position_ids:
        return last[1]
    segment = torch.empty(length, dtype=torch.long)
    shared = torch.empty(length, dtype=torch.long)
    for k, (start, end, prefix) in enumerate(_segment_bounds(position_ids.cpu(), length)):
        segment[start:end] = k
        shared[start:end] = prefix
    i = torch.arange(length)
    seen = ((segment[:, None] == segment[None, :]) & (i[None, :] <= i[:, None])) | (i[None, :] < shared[:, None])
    blocked = (~seen).to(device)
    _rows.last = (position_ids, blocked)  # holds the tensor: no later one can take its identity
    return blocked


def _matmul_attention(q, k, v, blocked, scaling):
    """Attention by two matmuls and a float32 softmax: ``q`` (rows, heads, n, dim) over ``k`` and ``v`` (rows,
    key/value heads, m, dim), where ``blocked`` (n × m) is True. Grouped-query attention without copying keys and
    values per head: the query heads that share a key/value head are stacked along the rows of one matmul."""
    import torch

    rows, heads, n, dim = q.shape
    kv_heads, m = k.shape[1], k.shape[2]
    groups = heads // kv_heads
    qg = q.reshape(rows, kv_heads, groups * n, dim)
    scores = torch.matmul(qg, k.transpose(-1, -2)).view(rows, kv_heads, groups, n, m) * scaling
    probs = torch.softmax(scores.masked_fill(blocked, float("-inf")), -1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs.view(rows, kv_heads, groups * n, m), v).view(rows, heads, n, dim)


def _segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Causal attention within each packed example, never across, and never over a T × T mask of a long row.

    ``query`` is (batch, heads, T, dim); a packed batch is one row whose position ids restart for each example (at 0,
    or at the length of a shared prefix at the row's start, which the example then attends to as well: see
    ``_segment_bounds``). Each example's block is attended on its own: short ones by two matmuls and a softmax
    (PyTorch's fused CPU attention is 2-4× slower there, above all its backward), long ones by the fused kernel
    (linear memory; 1.8× faster than matmuls at 1,000 tokens). A packed row of up to ``DENSE_MAX`` positions is
    attended whole, by the same two matmuls and softmax under a mask that keeps each example to itself (and its
    prefix): a few operators a layer instead of a dozen per example, on scores that stay small. A right-padded batch
    (several rows) needs no mask either: with causal attention no real token sees the padding after it.
    """
    import torch
    import torch.nn.functional as F

    rows, heads, length, _ = query.shape
    groups = heads // key.shape[1]
    pos = kwargs.get("position_ids")
    if rows == 1 and pos is not None and length <= DENSE_MAX:
        out = _matmul_attention(query, key, value, _blocked(pos, length, query.device), scaling)
        return out.transpose(1, 2).contiguous(), None
    bounds = _segment_bounds(pos, length) if rows == 1 and pos is not None else [(0, length, 0)]
    outs = []
    for start, end, shared in bounds:
        n = end - start
        q, k, v = query[:, :, start:end], key[:, :, start:end], value[:, :, start:end]
        if shared:  # the prefix's keys and values first, all visible
            k = torch.cat([key[:, :, :shared], k], dim=2)
            v = torch.cat([value[:, :, :shared], v], dim=2)
        future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
        if shared:
            future = torch.cat([torch.zeros(n, shared, dtype=torch.bool, device=q.device), future], dim=1)
        if n > EAGER_MAX:
            if shared:
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=~future, scale=scaling, enable_gqa=groups > 1)
            else:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=groups > 1)
        else:
            o = _matmul_attention(q, k, v, future, scaling)
        outs.append(o)
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def _no_mask(*args, **kwargs):
    return None


def training_attention(model, dev: str) -> None:
    """On a CPU, train with :func:`_segment_attention` (packed batches, no mask): measured 1.4× faster steps than
    the default SDPA on SmolLM2-135M at chat lengths. GPUs keep SDPA's fused kernels (and a packed-sequence mask)."""
    if dev != "cpu":
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(SEGMENT_ATTENTION, _segment_attention)
    AttentionMaskInterface.register(SEGMENT_ATTENTION, _no_mask)
    model.get_base_model().set_attn_implementation(SEGMENT_ATTENTION)
