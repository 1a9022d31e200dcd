"""``ftui export MODEL --to FORMAT --out DIR``: a tuned model of the local backend as GGUF, safetensors, a PEFT
adapter, an Ollama model or a vLLM LoRA (needs the ``local`` extra)."""

from __future__ import annotations

import argparse
import signal
import sys

from .common import EXIT_OK, EXIT_UNREADABLE, clear_line

FILTER = False
INTERRUPTED = "interrupted (nothing half-written: an export is renamed into place only when complete)"
FORMATS = ("gguf", "safetensors", "adapter", "ollama", "vllm")  # ftui.server.models.export.FORMATS (tested equal)
QUANTS = ("bf16", "q8_0", "q4_0")


def add_parser(sub) -> None:
    ex = sub.add_parser(
        "export", help="take a fine-tuned model out: GGUF, safetensors, adapter, Ollama, vLLM",
        description="Export a fine-tuned model or checkpoint of the local backend (read from its data dir: the "
        "server may be running or not) into --out: gguf (merged, quantised with --quant, with the base's tokenizer "
        "and chat template), safetensors (a merged Hugging Face folder), adapter (the PEFT adapter naming its base), "
        "ollama (the GGUF and a Modelfile), vllm (the adapter laid out for vLLM's LoRA resolvers). Prints what to "
        "run next. Exit code 0: written; 2: no such model, bad usage, or --out exists (nothing written).")
    ex.add_argument("model", metavar="MODEL", help="a fine-tuned model id (ft:…) or a checkpoint id (ft:…:ckpt-step-N)")
    ex.add_argument("--to", required=True, choices=FORMATS)
    ex.add_argument("--quant", choices=QUANTS, default="q8_0", help="GGUF weights (gguf, ollama; default q8_0)")
    ex.add_argument("--out", "-o", required=True, metavar="DIR", help="the folder to write (created)")
    ex.add_argument("--force", action="store_true", help="replace --out if it exists")
    ex.add_argument("--data-dir", default=None, help="the local backend's data dir (default: the app's)")
    # the app runs this command and reads its progress: one "progress FRACTION WHAT" line each on stderr
    ex.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)
    ex.set_defaults(func=run)


def _show(what: str, frac: float) -> None:
    sys.stderr.write(f"\r\x1b[K  {what}… {100 * frac:3.0f}%")
    sys.stderr.flush()


def _line(what: str, frac: float) -> None:
    sys.stderr.write(f"progress {frac:.3f} {what}\n")
    sys.stderr.flush()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # a terminated export (the app's Cancel) removes its partial folder as Ctrl+C does


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..serveinfo import default_data_dir

    try:
        from ..server.models.export import export
    except ImportError as exc:
        print(f"ftui export needs the 'local' extra (pip install 'ftui[local]'): {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    signal.signal(signal.SIGTERM, _interrupt)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    progress = _line if args.progress_lines else _show if sys.stderr.isatty() else None
    try:
        folder, then = export(data_dir, args.model, args.to, Path(args.out), quant=args.quant, force=args.force,
                              progress=progress)
    finally:
        clear_line()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    print(f"Exported {args.model} as {args.to} into {folder}:")
    for p in files:
        print(f"  {p.relative_to(folder)}  ({p.stat().st_size:,} bytes)")
    print(f"Next: {then}")
    return EXIT_OK
