"""oneMKL's memory manager is off in the processes that train and answer (ftui/server/mkl.py): MKL itself says so."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ftui.server import mkl

ATTEND = ("import torch, torch.nn.functional as F\n"
          "q, k, v = torch.randn(1, 9, 500, 64), torch.randn(1, 3, 500, 64), torch.randn(1, 3, 500, 64)\n"
          "with torch.autocast('cpu', dtype=torch.bfloat16):\n"
          "    F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)\n")


def _fast_mm(setup: str, **env: str) -> set[str]:
    """The FastMM flags oneMKL's verbose mode prints for the calls of PyTorch's bf16 CPU attention (MKL's bf16
    products) after ``setup`` runs in a fresh interpreter."""
    environ = {k: v for k, v in os.environ.items() if k != "MKL_DISABLE_FAST_MM"}
    out = subprocess.run([sys.executable, "-c", setup + "\n" + ATTEND], capture_output=True, text=True, check=True,
                         env={**environ, "MKL_VERBOSE": "1", **env}, timeout=120)
    flags = {w for line in out.stdout.splitlines() if "GEMM" in line for w in line.split() if w.startswith("FastMM:")}
    assert flags, out.stdout[-2000:] + out.stderr[-2000:]
    return flags


@pytest.mark.slow
def test_the_memory_manager_is_off_once_set_and_a_users_choice_stands(monkeypatch):
    assert _fast_mm("") == {"FastMM:1"}  # MKL's default, which the server and workers turn off
    assert _fast_mm("from ftui.server import mkl; mkl.without_its_memory_manager()") == {"FastMM:0"}
    # a user's own setting is kept (any value turns MKL's manager off; the function never overwrites one)
    monkeypatch.setenv(mkl.VARIABLE, "yes")
    mkl.without_its_memory_manager()
    assert os.environ[mkl.VARIABLE] == "yes"
    monkeypatch.delenv(mkl.VARIABLE)
    mkl.without_its_memory_manager()
    assert os.environ[mkl.VARIABLE] == "1"
