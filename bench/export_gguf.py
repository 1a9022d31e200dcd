#!/usr/bin/env python3
"""How long `ftui export` takes, per format, for the Marv model trained by a real local backend.

    python bench/export_gguf.py            # trains marv.jsonl (3 epochs) once, then exports it in each format

No peer runs in the same minute: the usual route (clone and build llama.cpp, convert_hf_to_gguf.py, llama-quantize)
cannot run on a machine without a compiler or network; the figure is against the issue's budget (≤ 30 s for q8_0).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    from ftui.service.local import LocalBackend
    from tests.backend import start_job, wait_for

    work = Path(tempfile.mkdtemp(prefix="ftui-export-bench-"))
    local = LocalBackend(work / "server")
    local.start()
    try:
        import openai

        client = openai.OpenAI(base_url=local.base_url, api_key=local.api_key or "local")
        t0 = time.perf_counter()
        job = wait_for(client, start_job(client, "marv", n_epochs=3).id)
        print(f"trained {job.fine_tuned_model} in {time.perf_counter() - t0:.1f} s ({job.status})")
    finally:
        local.release()
    for to, quant in (("gguf", "q8_0"), ("gguf", "bf16"), ("gguf", "q4_0"), ("ollama", "q8_0"),
                      ("safetensors", "q8_0"), ("adapter", "q8_0"), ("vllm", "q8_0")):
        out = work / f"export-{to}-{quant}"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ftui.cli", "export", job.fine_tuned_model, "--to", to, "--quant",
                        quant, "--out", str(out), "--data-dir", str(work / "server")], check=True,
                       capture_output=True)
        took = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"{to:12s} {quant if to in ('gguf', 'ollama') else '':5s} {took:6.1f} s  {size / 2**20:7.1f} MB")


if __name__ == "__main__":
    main()
