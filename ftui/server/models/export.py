"""Taking a tuned model out of the local backend: ``ftui export MODEL --to FORMAT --out DIR``.

- ``adapter``: the PEFT adapter folder; its ``adapter_config.json`` names the base (the Hub id of a bundled base).
- ``safetensors``: the merged weights and the tokenizer (chat template included) as a Hugging Face folder that
  ``AutoModelForCausalLM.from_pretrained`` loads.
- ``gguf``: the merged weights in one GGUF file, quantised as asked (``bf16``, ``q8_0``, ``q4_0``), with the base
  GGUF's tokenizer, chat template and metadata. Written with the ``gguf`` package in Python: nothing is built.
- ``ollama``: the GGUF and a ``Modelfile`` (FROM, a TEMPLATE that renders the chat template, the system prompt the
  job trained with, stop parameters): ``ollama create NAME -f Modelfile``.
- ``vllm``: the adapter laid out by name for vLLM's LoRA resolvers (``base_model_name_or_path`` is the served base).

The model is read from the backend's data dir (its store and files), so an export works with the server running
or stopped. The output folder is written beside its final place and renamed into it when complete: a partial
export never looks finished, and an existing one is replaced only with ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ftui.errors import FtuiError
from ftui.serveinfo import export_name
from ftui.server.models import basemodels

FORMATS = ("gguf", "safetensors", "adapter", "ollama", "vllm")
QUANTS = ("bf16", "q8_0", "q4_0")
# the Hub id of each bundled base: what another tool loads it by (a local folder base is named by its path)
HUB_IDS = {basemodels.DEFAULT_BASE: "HuggingFaceTB/SmolLM2-135M-Instruct"}

Progress = Callable[[str, float], None]  # (what is being done, fraction done 0..1)


class ExportError(FtuiError):
    title = "ftui export"


@dataclass
class Source:
    """A tuned model or checkpoint of the local backend, as its files say."""

    model_id: str
    base: str
    adapter: Path
    job_id: str | None

    @property
    def safe_name(self) -> str:
        """The model id as a file or Ollama name: ``ft:base:local:marv:1a2b`` → ``ft-base-local-marv-1a2b``."""
        return export_name(self.model_id)


def find(data_dir: Path, model_id: str) -> Source:
    """The adapter of ``model_id`` (a fine-tuned model or one of its checkpoints) in the backend's data dir."""
    from ftui.server.store import Store

    if not (Path(data_dir) / "ftui.sqlite3").exists():
        raise ExportError(f"{data_dir}: no local backend data here (--data-dir names the one ftui serve uses)")
    store = Store(Path(data_dir))
    try:
        t = store.tuned(model_id)
        known = [r["id"] for r in store.list_models()] if t is None else []
    finally:
        store.close()
    if t is None:
        raise ExportError(f"no fine-tuned model or checkpoint {model_id!r} in {data_dir}"
                          + (f"; the models there: {', '.join(known)}" if known else "; it has none"))
    src = Source(model_id, t["base"], Path(t["path"]), t["job_id"])
    if not (src.adapter / "adapter_config.json").exists():
        raise ExportError(f"{model_id}: its adapter files are gone from {src.adapter}")
    return src


def base_reference(base: str, data_dir: Path) -> str:
    """What another tool loads the base by: its Hub id (bundled), or its local folder."""
    if base in HUB_IDS:
        return HUB_IDS[base]
    return str(basemodels.ensure(base, data_dir))


# -- writing a folder atomically --------------------------------------------------------------------------------------
class _Target:
    """The export's folder: built in a hidden sibling, renamed into place when complete."""

    def __init__(self, out: Path, force: bool) -> None:
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())) and not force:
            raise ExportError(f"{self.out} already exists; nothing was written (--force replaces it)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}.partial-"))

    def commit(self) -> Path:
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        return self.out

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def export(data_dir: Path, model_id: str, to: str, out: Path, quant: str = "q8_0", force: bool = False,
           progress: Progress | None = None) -> tuple[Path, str]:
    """Export ``model_id`` as ``to`` into the folder ``out``; -> (the folder, what to run next)."""
    if to not in FORMATS:
        raise ExportError(f"--to must be one of {', '.join(FORMATS)}, not {to!r}")
    if quant not in QUANTS:
        raise ExportError(f"--quant must be one of {', '.join(QUANTS)}, not {quant!r}")
    data_dir = Path(data_dir)
    src = find(data_dir, model_id)
    basemodels.no_progress_monitor()
    say = progress or (lambda what, frac: None)
    target = _Target(out, force)
    try:
        if to == "adapter":
            _adapter(src, data_dir, target.tmp)
        elif to == "vllm":
            _adapter(src, data_dir, target.tmp / src.safe_name)
        elif to == "safetensors":
            _safetensors(src, data_dir, target.tmp, say)
        else:
            gguf_path = target.tmp / f"{src.safe_name}.{quant}.gguf"
            write_gguf(src, data_dir, gguf_path, quant, say)
            if to == "ollama":
                (target.tmp / "Modelfile").write_text(modelfile(src, data_dir, gguf_path.name), encoding="utf-8")
        _describe(src, data_dir, target.tmp, to, quant)
        done = target.commit()
    except BaseException:
        target.abandon()
        raise
    say("done", 1.0)
    return done, next_steps(src, data_dir, done, to, quant)


def _describe(src: Source, data_dir: Path, folder: Path, to: str, quant: str) -> None:
    info = {"ftui_export": 1, "model": src.model_id, "base": src.base, "base_reference": base_reference(
        src.base, data_dir), "job": src.job_id, "format": to, "quant": quant if to in ("gguf", "ollama") else None}
    (folder / "ftui-export.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def next_steps(src: Source, data_dir: Path, folder: Path, to: str, quant: str) -> str:
    base = base_reference(src.base, data_dir)
    if to == "gguf":
        gguf = next(folder.glob("*.gguf"))
        return f"llama-cli -m {gguf} -cnv   (or llama-server -m {gguf})"
    if to == "ollama":
        name = src.safe_name.lower()
        return f"cd {folder} && ollama create {name} -f Modelfile && ollama run {name}"
    if to == "vllm":
        return (f"vllm serve {base} --enable-lora --lora-modules {src.safe_name}={folder / src.safe_name}\n"
                f"  (or by name at run time: VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
                f"VLLM_PLUGINS=lora_filesystem_resolver VLLM_LORA_RESOLVER_CACHE_DIR={folder} vllm serve {base} "
                f"--enable-lora, then ask for model {src.safe_name!r})")
    if to == "adapter":
        return (f"PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}), {str(folder)!r})")
    return f"AutoModelForCausalLM.from_pretrained({str(folder)!r})"


# -- the formats ------------------------------------------------------------------------------------------------------
def _adapter(src: Source, data_dir: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in src.adapter.iterdir():  # the adapter's own files: never the merged-weights cache chat leaves beside it
        if f.is_file() and f.name.startswith("adapter_"):
            shutil.copyfile(f, folder / f.name)
    cfg_path = folder / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = base_reference(src.base, data_dir)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    basemodels.tokenizer(src.base, data_dir).save_pretrained(folder)  # the chat template goes with it


def merged_float32(src: Source, data_dir: Path):
    """The base with the adapter merged in, float32 on the CPU (exports are exact from here)."""
    from ftui.server.models.merged import merge_float32

    return merge_float32(src.base, src.adapter, data_dir).cpu().eval()


def _safetensors(src: Source, data_dir: Path, folder: Path, say: Progress) -> None:
    say("merging the adapter", 0.1)
    model = merged_float32(src, data_dir)
    say("writing safetensors", 0.5)
    model.save_pretrained(folder)
    basemodels.tokenizer(src.base, data_dir).save_pretrained(folder)


def base_gguf(base: str, data_dir: Path) -> Path | None:
    """The GGUF file a base came from (its tokenizer and metadata are copied into a GGUF export), or None for a
    Hugging Face folder (they are written from its config and tokenizer files)."""
    if base == basemodels.DEFAULT_BASE:
        return basemodels._gguf_dir() / basemodels.GGUF_FILE
    extra = basemodels.configured(data_dir).get(base)
    if extra is None:
        raise ExportError(f"unknown base model {base!r}")
    return Path(extra["path"]) if extra["kind"] == "gguf" else None


def _permute(w, n_head: int, n_head_kv: int | None):
    """llama.cpp's order of the rotary halves in Q and K (convert_hf_to_gguf.py's LlamaModel.permute); transformers'
    GGUF loader undoes it when it reads the file."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# llama.cpp names a BPE tokenizer's pre-tokenizer (its split regex) in the header; its converter recognises them by
# a hash of sample tokenisations. The llama-architecture families ftui knows, by their vocabulary size:
PRE_TOKENIZERS = {49152: "smollm", 128256: "llama-bpe"}


def write_gguf(src: Source, data_dir: Path, path: Path, quant: str, say: Progress) -> None:
    import gguf
    import numpy as np

    qtype = {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0,
             "q4_0": gguf.GGMLQuantizationType.Q4_0}[quant]
    ftype = {"bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
             "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[quant]
    from_gguf = base_gguf(src.base, data_dir)
    reader = gguf.GGUFReader(str(from_gguf)) if from_gguf is not None else None
    if reader is not None:
        arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    else:
        config = json.loads((basemodels.ensure(src.base, data_dir) / "config.json").read_text())
        arch = "llama" if "LlamaForCausalLM" in (config.get("architectures") or []) else config.get("model_type")
        if config.get("rope_scaling") or (config.get("rope_parameters") or {}).get("rope_type", "default") != \
                "default":
            raise ExportError(f"{src.base} scales its rotary positions (rope_scaling); ftui's GGUF export does not "
                              "write that yet: export --to safetensors and convert it with llama.cpp's "
                              "convert_hf_to_gguf.py")
    if arch != "llama":
        raise ExportError(f"GGUF export knows the llama architecture; {src.base} is {arch}: export --to "
                          "safetensors and convert it with llama.cpp's convert_hf_to_gguf.py")
    say("merging the adapter", 0.05)
    model = merged_float32(src, data_dir)
    cfg = model.config
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    by_gguf = {}
    for hf_name in weights:
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # tied to the embedding: llama.cpp reuses token_embd
        g = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if g is not None:
            by_gguf[g] = hf_name

    writer = gguf.GGUFWriter(str(path), "llama")
    if reader is not None:
        _copy_metadata(reader, writer)
        order = [t.name for t in reader.tensors]
    else:
        _folder_metadata(basemodels.ensure(src.base, data_dir), cfg, writer)
        order = list(by_gguf)
    writer.add_name(src.model_id)
    writer.add_file_type(ftype)

    for i, name in enumerate(order):
        hf_name = by_gguf.get(name)
        if hf_name is None:
            raise ExportError(f"the merged model has no weight for the base's tensor {name}")
        w = weights[hf_name].astype(np.float32, copy=False)
        if hf_name.endswith("q_proj.weight"):
            w = _permute(w, cfg.num_attention_heads, cfg.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            w = _permute(w, cfg.num_attention_heads, cfg.num_key_value_heads)
        if w.ndim == 1:  # norms stay float32, as every converter keeps them
            writer.add_tensor(name, np.ascontiguousarray(w))
        else:
            q = gguf.quants.quantize(np.ascontiguousarray(w), qtype)
            writer.add_tensor(name, q, raw_dtype=qtype)
        say("quantising" if quant != "bf16" else "converting", 0.1 + 0.7 * (i + 1) / len(order))
    say("writing the GGUF file", 0.85)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _copy_metadata(reader, writer) -> None:
    """The base GGUF's metadata and tokenizer, as llama.cpp's gguf_new_metadata.py copies them."""
    import gguf

    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name in (gguf.Keys.General.NAME, gguf.Keys.General.FILE_TYPE):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)


def _folder_metadata(folder: Path, cfg, writer) -> None:
    """A Hugging Face folder's hyperparameters, tokenizer and chat template in llama.cpp's keys, read with the
    ``gguf`` package's own vocabulary readers (the ones convert_hf_to_gguf.py uses). A GPT-2-style BPE tokenizer
    (SmolLM, Llama 3); a SentencePiece one is refused."""
    import gguf
    from gguf.vocab import BpeVocab, SpecialVocab

    heads = cfg.num_attention_heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(float(rope.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    try:
        vocab = BpeVocab(folder)
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(f"{folder}: ftui's GGUF export reads GPT-2-style BPE tokenizers ({e}); export --to "
                          "safetensors and convert it with llama.cpp's convert_hf_to_gguf.py") from None
    tokens, types = [], []
    for text, _score, kind in vocab.all_tokens():
        tokens.append(text if isinstance(text, str) else text.decode("utf-8"))
        types.append(kind)
    try:  # the added tokens marked special are control tokens, as llama.cpp's converter marks them
        special = {a["id"] for a in json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
                   .get("added_tokens", []) if a.get("special")}
    except (OSError, ValueError):
        special = set()
    types = [gguf.TokenType.CONTROL if i in special else t for i, t in enumerate(types)]
    for i in range(len(tokens), cfg.vocab_size):  # an embedding larger than the vocabulary: padding tokens
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZERS.get(cfg.vocab_size, "default"))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special_vocab = SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    if "bos" not in special_vocab.add_special_token:  # llama.cpp's default differs by tokenizer: say it
        try:
            tok_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tok_config = {}
        special_vocab.add_special_token["bos"] = bool(tok_config.get("add_bos_token", False))
    special_vocab.add_to_gguf(writer, quiet=True)


# -- Ollama -----------------------------------------------------------------------------------------------------------
CHATML = ('{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
          '{{ range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
          '{{ end }}<|im_start|>assistant\n')  # Ollama gives a conversation's system message as .System


def trained_system_prompt(src: Source, data_dir: Path) -> str | None:
    """The system prompt the job's training examples share, if they do."""
    from ftui.core.system_prompt import sample_lines, shared_system_prompt
    from ftui.server.store import Store

    store = Store(data_dir)
    try:
        job = store.get_job(src.job_id) if src.job_id else None
        path = store.file_path(job["training_file"]) if job else None
    finally:
        store.close()
    if path is None or not Path(path).exists():
        return None
    found = shared_system_prompt(sample_lines(path))  # the same default the Chat workspace offers
    return found[0] if found else None


def modelfile(src: Source, data_dir: Path, gguf_name: str) -> str:
    """An Ollama Modelfile for the exported GGUF: its chat template as Ollama's Go template (ChatML for the bundled
    base), the job's system prompt, and the stop sequences of the template."""
    tok = basemodels.tokenizer(src.base, data_dir)
    template = tok.chat_template or ""
    if "<|im_start|>" not in template:
        raise ExportError(f"{src.base}'s chat template is not ChatML; ftui writes Ollama templates for ChatML "
                          "models only (export --to gguf and write the TEMPLATE by hand)")
    # the job's system prompt, else the one the chat template adds when a conversation has none
    system = trained_system_prompt(src, data_dir) or _template_default_system(tok)
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{CHATML}"""']
    if system:
        lines.append('SYSTEM """' + system.replace('"""', '\\"\\"\\"') + '"""')
    lines += ['PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"']
    return "\n".join(lines) + "\n"


def _template_default_system(tok) -> str | None:
    """The system prompt the chat template writes for a conversation that has none (SmolLM2's does)."""
    probe = tok.apply_chat_template([{"role": "user", "content": "\x00"}], tokenize=False)
    head = probe.split("<|im_start|>user", 1)[0]
    if "<|im_start|>system\n" not in head:
        return None
    return head.split("<|im_start|>system\n", 1)[1].split("<|im_end|>", 1)[0]
