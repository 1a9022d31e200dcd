"""The model catalog (encoding, training context, price, methods, shutdown) and the cost estimate.

The built-in catalog is ``ftui/data/models.json``. A user file of the same shape, at ``$FTUI_MODELS`` or
``<XDG config>/ftui/models.json``, adds models or replaces built-in ones by id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from ..errors import FtuiError
from .tokens import encoding_for_model

DEFAULT_MODEL = "gpt-4.1-mini-2025-04-14"
_BUILTIN = Path(__file__).resolve().parent.parent / "data" / "models.json"

# the cookbook's epochs heuristic (Chat_finetuning_data_prep.ipynb)
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


@dataclass(frozen=True)
class ModelInfo:
    id: str
    encoding: str
    aliases: tuple[str, ...] = ()
    provider: str = "openai"
    training_context: int | None = None
    price_per_1m_tokens: float | None = None
    price_per_hour: float | None = None
    ft_input_per_1m: float | None = None  # inference of a model fine-tuned from this one (USD per 1M tokens)
    ft_output_per_1m: float | None = None
    methods: tuple[str, ...] = ()
    shutdown_date: str | None = None
    source: str = ""
    as_of: str = ""
    known: bool = True
    notes: tuple[str, ...] = field(default=())

    @staticmethod
    def from_dict(d: dict) -> "ModelInfo":
        notes = []
        if d.get("context_unconfirmed"):
            notes.append("training context unconfirmed")
        if d.get("shutdown_unconfirmed"):
            notes.append("shutdown date unconfirmed")
        if d.get("tokens_approximate"):
            notes.append("token counts approximate (different tokenizer)")
        if d.get("legacy"):
            notes.append("legacy snapshot" + (f" (source: {d['source']})" if d.get("source") else ""))
        return ModelInfo(
            id=str(d["id"]),
            encoding=str(d.get("encoding") or encoding_for_model(str(d["id"]))),
            aliases=tuple(d.get("aliases") or ()),
            provider=str(d.get("provider") or "openai"),
            training_context=d.get("training_context"),
            price_per_1m_tokens=d.get("price_per_1m_tokens"),
            price_per_hour=d.get("price_per_hour"),
            ft_input_per_1m=d.get("ft_input_per_1m"),
            ft_output_per_1m=d.get("ft_output_per_1m"),
            methods=tuple(d.get("methods") or ()),
            shutdown_date=d.get("shutdown_date"),
            source=str(d.get("source") or ""),
            as_of=str(d.get("as_of") or ""),
            notes=tuple(notes),
        )


class CatalogError(FtuiError, ValueError):
    """The user's catalog file could not be read."""


def user_catalog_path() -> Path:
    env = os.environ.get("FTUI_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ftui" / "models.json"


def _read(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list) or not all(isinstance(m, dict) and "id" in m for m in models):
        raise CatalogError(f'{path}: expected {{"models": [{{"id": ...}}, ...]}}')
    return models


@lru_cache(maxsize=8)
def _load(user_path: str, mtime: float) -> tuple[ModelInfo, ...]:
    entries = {m["id"]: m for m in _read(_BUILTIN)}
    if user_path:
        for m in _read(Path(user_path)):
            entries[m["id"]] = {**entries.get(m["id"], {}), **m}
    return tuple(ModelInfo.from_dict(m) for m in entries.values())


def catalog() -> tuple[ModelInfo, ...]:
    """All known models, the user's file merged over the built-in one."""
    path = user_catalog_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return _load("", 0.0)
    return _load(str(path), mtime)


def resolve(name: str | None) -> ModelInfo:
    """The catalog entry for a model id, alias or ``ft:`` name; unknown names get a best-effort entry."""
    name = (name or DEFAULT_MODEL).strip()
    base = name.split(":")[1] if name.startswith("ft:") and name.count(":") >= 1 else name
    for m in catalog():
        if base == m.id or base in m.aliases:
            return m if base == name else replace(m, id=name)
    enc = encoding_for_model(name)
    return ModelInfo(id=name, encoding=enc, known=False, notes=(
        f"{name!r} is not in ftui's catalog: training context and price unknown, tokens counted with {enc} "
        f"(a guess from the name); add it to {user_catalog_path()} to know it",))


@dataclass(frozen=True)
class Estimate:
    n_epochs: int
    n_epochs_auto: bool
    billing_tokens_per_epoch: int
    billed_tokens: int
    usd: float | None
    over_context: int
    truncated_tokens: int
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "n_epochs": self.n_epochs,
            "n_epochs_auto": self.n_epochs_auto,
            "billing_tokens_per_epoch": self.billing_tokens_per_epoch,
            "billed_tokens": self.billed_tokens,
            "usd": None if self.usd is None else round(self.usd, 4),
            "examples_over_context": self.over_context,
            "truncated_tokens": self.truncated_tokens,
            "note": self.note,
        }


def auto_epochs(n_examples: int) -> int:
    """The cookbook's heuristic for ``n_epochs="auto"``."""
    n_epochs = TARGET_EPOCHS
    if n_examples <= 0:
        return n_epochs
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n_epochs


def estimate(tokens_per_example, model: ModelInfo, n_epochs: int | str = "auto",
             n_examples: int | None = None) -> Estimate:
    """Billing tokens = Σ min(context, tokens); billed = epochs × billing; dollars from the per-1M price."""
    import numpy as np  # not at import: the TUI reads the catalog before its first paint

    tokens = np.asarray(tokens_per_example)  # int32 from an analysis: no 64-bit copy, the sums are 64-bit
    if tokens.dtype.kind not in "iu":
        tokens = tokens.astype(np.int64)
    n = int(tokens.size) if n_examples is None else n_examples
    auto = n_epochs == "auto" or n_epochs is None
    epochs = auto_epochs(n) if auto else int(n_epochs)
    ctx = model.training_context
    if ctx:
        billing = int(np.minimum(tokens, ctx).sum(dtype=np.int64))
        over = int(np.count_nonzero(tokens > ctx))
        truncated = int(np.maximum(tokens - ctx, 0).sum(dtype=np.int64))
    else:
        billing, over, truncated = int(tokens.sum(dtype=np.int64)), 0, 0
    billed = epochs * billing
    note = ""
    if model.price_per_1m_tokens is not None:
        usd: float | None = billed * model.price_per_1m_tokens / 1e6
    else:
        usd = None
        if model.price_per_hour is not None:
            note = f"billed by the hour (${model.price_per_hour:g}/h of training), not by tokens"
        else:
            note = "no training price known for this model"
    return Estimate(epochs, auto, billing, billed, usd, over, truncated, note)


def inference_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for a fine-tuned model's (``ft:…``) answers at its base's fine-tuned inference price; None when the
    catalog has no such price (base models, unknown or local models)."""
    if not model.startswith("ft:"):
        return None
    m = resolve(model)
    if m.ft_input_per_1m is None or m.ft_output_per_1m is None:
        return None
    return (prompt_tokens * m.ft_input_per_1m + completion_tokens * m.ft_output_per_1m) / 1e6
