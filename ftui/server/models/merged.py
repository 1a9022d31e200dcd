"""Merged weights of a fine-tuned model, cached on disk beside its adapter (for chat and scoring)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ftui.server.models import basemodels

log = logging.getLogger("ftui.inference")


MERGED_STAMP = "ftui-merged.json"
KEEP = 2  # merged copies kept on disk, the most recently used: as many as the server keeps loaded (540 MB each here)


def _adapter_stamp(adapter: Path) -> dict:
    stats = {f.name: f.stat() for f in sorted(adapter.iterdir()) if f.is_file() and f.name.startswith("adapter_")}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}


def merged(base: str, adapter: Path, data_dir: Path, dtype):
    """The base model with the LoRA adapter merged in, in ``dtype`` on the best device.

    The merge (float32, then cast) is done once and cached beside a fine-tuned model's adapter as ``merged-<dtype>/``
    (safetensors, written atomically, stamped with the adapter files' sizes and times), so its first request after a
    restart reads one file instead of loading the base, importing peft and merging. The cache goes with the model's
    folder; a stale or broken one is rebuilt, and one that cannot be written is only logged. Checkpoints
    (``…/checkpoints/step-N``) are merged in memory only: a full copy of the weights for each (540 MB for the
    default model) would outweigh the seconds it saves on what is chatted with now and then. For the same reason
    only the :data:`KEEP` most recently used fine-tuned models keep their copy: the disk a server uses does not grow
    with the number of models chatted with."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM

    name = str(dtype).removeprefix("torch.")
    folder = adapter / f"merged-{name}"
    stamp = _adapter_stamp(adapter)
    try:
        if json.loads((folder / MERGED_STAMP).read_text()) == stamp:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).to(basemodels.device())
            os.utime(folder / MERGED_STAMP)  # its last use: what the eviction keeps
            log.info("loaded merged weights from %s", folder)
            return model
    except (OSError, ValueError):
        pass  # none yet, or unreadable: merge again
    except Exception:  # noqa: BLE001 — a damaged cache (truncated safetensors) is rebuilt, never fatal
        log.warning("merged weights in %s unreadable; merging again", folder, exc_info=True)
    model = merge_float32(base, adapter, data_dir).to(dtype)
    log.info("merged the adapter in %s into %s", adapter, base)
    if adapter.parent.name == "checkpoints":
        return model
    try:
        tmp = Path(tempfile.mkdtemp(dir=adapter, prefix=".merged."))
        try:
            model.save_pretrained(tmp)
            (tmp / MERGED_STAMP).write_text(json.dumps(stamp))
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        log.warning("could not cache merged weights in %s", adapter, exc_info=True)
    evict(data_dir)
    return model


def evict(data_dir: Path, keep: int = KEEP) -> None:
    """Remove all but the ``keep`` most recently used merged copies of the fine-tuned models in ``data_dir``."""
    import shutil

    def last_use(folder: Path) -> float:
        try:
            return (folder / MERGED_STAMP).stat().st_mtime
        except OSError:
            return 0.0  # no stamp: a broken copy, the first to go

    copies = sorted(data_dir.glob("jobs/*/model/merged-*"), key=last_use, reverse=True)
    for folder in copies[keep:]:
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed merged weights in %s (only the %d most recently used are kept)", folder, keep)


def merge_float32(base: str, adapter: Path, data_dir: Path):
    """The base with the LoRA adapter merged in, float32, on the best device (chat casts it; exports start from it)."""
    import torch
    from peft import PeftModel

    model, _ = basemodels.load(base, data_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
