"""ftui export: each format re-loaded by the tool that would use it, and compared with the model the local backend
serves (ModelCache, the server's own code) on the same prompts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SAMPLES, TUNED_MODEL as MODEL

BASE = "smollm2-135m-instruct"
PROMPTS = [
    [{"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
     {"role": "user", "content": "What's the capital of France?"}],
    [{"role": "user", "content": "Who wrote Romeo and Juliet?"}],
]


@pytest.fixture(scope="module")
def tuned(tuned_data_dir):
    return tuned_data_dir


@pytest.fixture(scope="module")
def served(tuned):
    """The model as `ftui serve` answers with it (its cache: merged, in the inference dtype)."""
    from ftui.server.models.export import find
    from ftui.server.models.inference import ModelCache

    src = find(tuned, MODEL)
    return ModelCache(tuned).get(MODEL, BASE, str(src.adapter))


@pytest.fixture(scope="module")
def reference(tuned):
    """The base with the adapter merged in, float32: what every export is made from."""
    from ftui.server.models.export import find, merged_float32

    return merged_float32(find(tuned, MODEL), tuned)


def _greedy(model, tok, messages, n: int = 16) -> list[int]:
    import torch

    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    with torch.no_grad():
        out = model.generate(ids.to(model.device), attention_mask=torch.ones_like(ids), max_new_tokens=n,
                             do_sample=False, pad_token_id=tok.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


class Done:
    """What an export gave back: its folder, and what the CLI prints to run next."""

    def __init__(self, folder: Path, then: str) -> None:
        self.returncode, self.stdout, self.stderr, self.folder = 0, then, "", folder


def _export(data, tmp_path, to, quant="q8_0") -> tuple[Done, Path]:
    """The exporter in this process (the CLI around it is tested once, below: a subprocess costs seconds)."""
    from ftui.server.models.export import export

    folder, then = export(data, MODEL, to, tmp_path / f"out-{to}-{quant}", quant=quant)
    return Done(folder, then), folder


@pytest.fixture(scope="module")
def bf16_export(tuned, tmp_path_factory) -> tuple[Done, Path]:
    """The bf16 GGUF export (read back by two tests)."""
    return _export(tuned, tmp_path_factory.mktemp("bf16"), "gguf", "bf16")


def test_safetensors_and_bf16_gguf_answer_as_the_served_model(tuned, served, reference, bf16_export, tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from ftui.server.models import basemodels

    entry = served
    dtype = next(entry.model.parameters()).dtype
    want = [_greedy(entry.model, entry.tok, m) for m in PROMPTS]
    name = "model.layers.0.self_attn.q_proj.weight"
    with safe_open(str(basemodels.ensure(BASE, tuned) / "model.safetensors"), "pt") as f:
        assert not torch.allclose(f.get_tensor(name), reference.state_dict()[name]), "the adapter must be merged in"

    res, out = _export(tuned, tmp_path, "safetensors")
    assert res.returncode == 0, res.stderr
    assert "AutoModelForCausalLM.from_pretrained" in res.stdout
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=dtype)
    assert [_greedy(model, entry.tok, m) for m in PROMPTS] == want

    res, out = bf16_export
    assert res.returncode == 0, res.stderr
    [gguf] = out.glob("*.gguf")
    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=gguf.name, dtype=dtype)
    assert [_greedy(model, entry.tok, m) for m in PROMPTS] == want
    meta = json.loads((out / "ftui-export.json").read_text())
    assert meta["model"] == MODEL and meta["format"] == "gguf" and meta["quant"] == "bf16"


def test_q8_0_gguf_agrees_on_the_next_token_almost_everywhere(tuned, reference, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from ftui.server.models import basemodels

    res, out = _export(tuned, tmp_path, "gguf", "q8_0")
    assert res.returncode == 0, res.stderr
    [gguf] = out.glob("*.q8_0.gguf")
    exported = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=gguf.name, dtype=torch.float32)
    tok = basemodels.tokenizer(BASE, tuned)
    rows = [json.loads(line) for line in (SAMPLES / "marv.jsonl").read_text().splitlines()][:10]
    same = total = 0
    with torch.no_grad():
        for row in rows:
            ids = tok.apply_chat_template(row["messages"], return_tensors="pt")
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            a = exported(ids).logits.argmax(-1)
            b = reference(ids).logits.argmax(-1)
            same += int((a == b).sum())
            total += a.numel()
    assert total > 500 and same / total >= 0.95, f"top-1 agreement {same}/{total}"


def test_the_adapter_and_the_vllm_layout_name_their_base_and_load_with_peft(tuned, reference, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ftui.server.models import basemodels
    from ftui.server.models.export import HUB_IDS

    res, out = _export(tuned, tmp_path, "adapter")
    assert res.returncode == 0, res.stderr
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == HUB_IDS[BASE] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert not any(p.name.startswith("merged") for p in out.iterdir())
    base = AutoModelForCausalLM.from_pretrained(str(basemodels.ensure(BASE, tuned)), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out)).eval()
    ids = torch.tensor([[1, 4093, 314, 253, 1345, 30]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-4)

    res, out = _export(tuned, tmp_path, "vllm")
    assert res.returncode == 0, res.stderr
    [folder] = [p for p in out.iterdir() if p.is_dir()]
    assert (folder / "adapter_model.safetensors").exists()
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_IDS[BASE]
    assert f"vllm serve {HUB_IDS[BASE]} --enable-lora --lora-modules {folder.name}={folder}" in res.stdout


def _render_go(template: str, system: str | None, messages: list[dict]) -> str:
    """The subset of Go's text/template the Modelfile uses (if, ne, range, fields), as Ollama runs it: a
    conversation's system message is .System, else the Modelfile's SYSTEM."""
    tokens = re.split(r"({{.*?}})", template)

    def run(i: int, scope: dict, out: list[str], emit: bool = True) -> int:
        while i < len(tokens):
            t = tokens[i]
            if not t.startswith("{{"):
                if emit:
                    out.append(t)
                i += 1
                continue
            body = t[2:-2].strip()
            if body == "end":
                return i + 1
            if body.startswith("if "):
                cond = body[3:]
                if cond.startswith("ne "):
                    field, lit = cond[3:].split(" ", 1)
                    ok = scope.get(field.lstrip(".")) != json.loads(lit)
                else:
                    ok = bool(scope.get(cond.lstrip(".")))
                i = run(i + 1, scope, out, emit and ok)
            elif body == "range .Messages":
                start = i + 1
                end = start
                for m in scope["Messages"] if emit else [None]:
                    end = run(start, {"Role": m["role"], "Content": m["content"]} if m else {}, out, emit and bool(m))
                i = end
            else:
                if emit:
                    out.append(str(scope.get(body.lstrip("."), "")))
                i += 1
        return i

    sys_msgs = [m["content"] for m in messages if m["role"] == "system"]
    out: list[str] = []
    run(0, {"System": sys_msgs[0] if sys_msgs else system, "Messages": messages}, out)
    return "".join(out)


def test_the_ollama_modelfile_renders_conversations_as_the_chat_template_does(tuned, tmp_path):
    res, out = _export(tuned, tmp_path, "ollama", "q4_0")
    assert res.returncode == 0, res.stderr
    text = (out / "Modelfile").read_text()
    [gguf] = out.glob("*.q4_0.gguf")
    assert text.startswith(f"FROM ./{gguf.name}\n")
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    system = re.search(r'SYSTEM """(.*?)"""', text, re.S).group(1)
    assert system == "Marv is a factual chatbot that is also sarcastic."  # every Marv example begins with it
    assert 'PARAMETER stop "<|im_end|>"' in text
    from ftui.server.models import basemodels

    tok = basemodels.tokenizer(BASE, tuned)
    conversations = PROMPTS + [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                                {"role": "user", "content": "Again?"}]]
    for messages in conversations:
        want = tok.apply_chat_template(messages if messages[0]["role"] == "system" else
                                       [{"role": "system", "content": system}, *messages],
                                       tokenize=False, add_generation_prompt=True)
        assert _render_go(template, system, messages) == want
    assert f"ollama create {MODEL.replace(':', '-').lower()}" in res.stdout


def test_an_export_never_overwrites_and_never_looks_finished_when_it_failed(tuned, tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ftui.cli", "export", *args, "--data-dir", str(tuned)],
                              capture_output=True, text=True, timeout=300)

    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    res = cli(MODEL, "--to", "adapter", "--out", str(out))
    assert res.returncode == 2 and "already exists; nothing was written (--force replaces it)" in res.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    res = cli("ft:nope", "--to", "gguf", "--out", str(tmp_path / "nope"))
    assert res.returncode == 2 and "no fine-tuned model or checkpoint 'ft:nope'" in res.stderr and MODEL in res.stderr
    assert not (tmp_path / "nope").exists() and not list(tmp_path.glob(".nope*"))
    res = cli(MODEL, "--to", "adapter", "--out", str(out), "--force")
    assert res.returncode == 0, res.stderr
    assert f"Exported {MODEL} as adapter into {out}:" in res.stdout and "adapter_config.json" in res.stdout
    assert "PeftModel.from_pretrained" in res.stdout
    assert not (out / "mine.txt").exists() and not list(tmp_path.glob(".taken*"))


def test_a_folder_base_exports_the_gguf_its_gguf_file_gives(tuned, bf16_export, tmp_path):
    """A base given as a Hugging Face folder has no GGUF to copy metadata from: its header is written from its
    config and tokenizer files. The bundled base's own converted folder, named as a folder base, must give the very
    file the GGUF route gives: every tokenizer and hyperparameter key, every tensor's bytes."""
    import gguf

    from ftui.server.models import basemodels
    from ftui.server.models.export import Source, find, write_gguf

    src = find(tuned, MODEL)
    other = tmp_path / "data"
    other.mkdir()
    (other / "base_models.json").write_text(json.dumps({"as-folder": {
        "kind": "folder", "source": "a folder", "path": str(basemodels.ensure(BASE, tuned))}}))
    write_gguf(Source(MODEL, "as-folder", src.adapter, None), other, tmp_path / "from-folder.gguf", "bf16",
               lambda *_: None)
    [from_gguf] = bf16_export[1].glob("*.gguf")
    a, b = gguf.GGUFReader(str(from_gguf)), gguf.GGUFReader(str(tmp_path / "from-folder.gguf"))
    keys = [k for k in a.fields if k.startswith(("tokenizer.", "llama.")) and k != "tokenizer.ggml.add_space_prefix"]
    assert "tokenizer.ggml.merges" in keys and "tokenizer.chat_template" in keys and "llama.context_length" in keys
    differ = [k for k in keys if k not in b.fields or not (
        b.fields[k].contents() == pytest.approx(a.fields[k].contents(), rel=1e-6)
        if isinstance(a.fields[k].contents(), float) else b.fields[k].contents() == a.fields[k].contents())]
    assert differ == []
    tensors = {t.name: t for t in b.tensors}
    assert sorted(tensors) == sorted(t.name for t in a.tensors)
    for t in a.tensors:
        assert tensors[t.name].tensor_type == t.tensor_type and bytes(tensors[t.name].data) == bytes(t.data), t.name


def test_a_gguf_export_of_an_architecture_it_cannot_write_says_what_to_do(tuned, tmp_path):
    from ftui.server.models import basemodels
    from ftui.server.models.export import ExportError, Source, find, write_gguf

    folder = tmp_path / "qwen"
    folder.mkdir()
    for f in basemodels.ensure(BASE, tuned).iterdir():
        if f.name != "config.json":
            (folder / f.name).symlink_to(f)
    config = json.loads((basemodels.ensure(BASE, tuned) / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen2ForCausalLM"],
                                                    "model_type": "qwen2"}))
    other = tmp_path / "data"
    other.mkdir()
    (other / "base_models.json").write_text(json.dumps({"q": {"kind": "folder", "source": "q", "path": str(folder)}}))
    with pytest.raises(ExportError, match="GGUF export knows the llama architecture; q is qwen2: export --to "
                                          "safetensors and convert it with llama.cpp's convert_hf_to_gguf.py"):
        write_gguf(Source(MODEL, "q", find(tuned, MODEL).adapter, None), other, tmp_path / "x.gguf", "bf16",
                   lambda *_: None)
    assert not (tmp_path / "x.gguf").exists()


def test_the_cli_offers_the_formats_the_exporter_has():
    from ftui.cli import export as cli_export
    from ftui.server.models import export

    assert cli_export.FORMATS == export.FORMATS and cli_export.QUANTS == export.QUANTS
