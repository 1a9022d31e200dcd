"""Model ids in narrow places. Every fine-tuned model of one base starts the same way
(``ft:smollm2-135m-instruct:local:…``): cut at the end they all read alike. A short form keeps what tells them
apart — the suffix, the job's id, the checkpoint — and cuts the middle."""

from __future__ import annotations


def short_model(model: str, width: int = 30) -> str:
    if len(model) <= width:
        return model
    if model.startswith("ft:"):
        parts = model.split(":")
        tail = ":".join(parts[3:])  # suffix:id[:ckpt-step-N]
        short = f"ft:…:{tail}"
        with_base = f"{short} ({parts[1]})"
        if len(with_base) <= width:
            return with_base
        if len(short) <= width:
            return short
        return "ft:…" + tail[-(width - 4):]  # the end of the tail: the id and the checkpoint
    head = max(3, (width - 1) // 3)  # a third of the start, two thirds of the end
    return model[:head] + "…" + model[-(width - 1 - head):]


def params(n: int | None) -> str:
    """A parameter count as people say it: 134,515,008 → 135M; 7,241,732,096 → 7.2B."""
    if not n:
        return "—"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n:,}"
