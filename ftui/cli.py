"""ftui's command line: ``ftui [PATH]`` (the full-screen app), ``ftui check`` and ``ftui serve``.

Only the standard library is imported at module level; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2


def _epochs(value: str):
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be 'auto' or an integer from 1 to 50") from None
    if not 1 <= n <= 50:
        raise argparse.ArgumentTypeError("must be between 1 and 50")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftui", usage="ftui [PATH] | ftui COMMAND ...",
        description="A terminal workbench for fine-tuning language models in the OpenAI format. "
        "`ftui [PATH]` opens the full-screen app on a dataset file or a directory (default: the current one).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="validate JSONL training files, count tokens, estimate cost",
                           description="Validate JSONL fine-tuning files offline: every problem by line, exact "
                           "token counts, distributions, and the epochs and cost of a job. Exit code 0: no errors "
                           "(warnings allowed); 1: errors; 2: a file could not be read, or bad usage.")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--model", "-m", default=None,
                       help="model to count and price for (default: the config's, else gpt-4.1-mini)")
    check.add_argument("--epochs", type=_epochs, default="auto", help="n_epochs for the estimate (default auto)")
    check.add_argument("--json", action="store_true", help="print one JSON document (an array for several files)")
    check.add_argument("--all", action="store_true", help="list every finding, not the first few per code")
    check.add_argument("--workers", type=int, default=None, help="processes to use (default: CPU count)")

    serve = sub.add_parser("serve", help="run the local OpenAI-compatible fine-tuning backend",
                           description="Serve /v1/files, /v1/fine_tuning/jobs, /v1/models and /v1/chat/completions "
                           "on this machine, training LoRA adapters on a local model (needs the 'local' extra).")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--data-dir", default=None, help="state and models (default: XDG data dir)/ftui/server")
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' (also $FTUI_SERVE_API_KEY; prefer --api-key-file: "
                       "a command line is visible to every local user)")
    serve.add_argument("--api-key-file", default=None, metavar="PATH",
                       help="read the key from this file (keep it 0600)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer to this Host name (default: the bound loopback address only)")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                       help="accept browser requests from this origin (default: none)")
    serve.add_argument("--base-model", action="append", default=[], metavar="NAME=FOLDER",
                       help="add a local Hugging Face causal-LM folder as a base model")
    serve.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                       help="stop once no job is live and no request came for this long (the app starts its "
                       "backend with 300)")
    serve.add_argument("--gc", action="store_true",
                       help="free the space no job or model needs any more (state of ended jobs, folders of "
                       "deleted models), report it, and exit")
    serve.add_argument("--test-hooks", action="store_true", help=argparse.SUPPRESS)  # fault injection for tests
    return parser


def _progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        sys.stderr.write(f"\r  analysing… {pct:3d}%")
        sys.stderr.flush()

    return show


def _config_model() -> str | None:
    """The config file's default_model (what `--model` defaults to); a broken config is reported, not fatal."""
    from .tui.config import load

    config, error = load()
    if error:
        print(f"ftui: {error}", file=sys.stderr)
    return config.default_model


def cmd_check(args: argparse.Namespace) -> int:
    import orjson

    from .core.analysis import DatasetError, analyze
    from .core.catalog import CatalogError
    from .core.render import Style, render
    from .core.tokens import EncodingError

    if args.model is None:
        args.model = _config_model()
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    style = Style(color)
    documents = []
    code = EXIT_OK
    progress = None if args.json else _progress_printer()
    for path in args.files:
        try:
            analysis = analyze(path, args.model, workers=args.workers, progress=progress)
            report = analysis.report(args.model, args.epochs)
        except (DatasetError, CatalogError, EncodingError) as exc:
            if progress:
                sys.stderr.write("\r\x1b[K")
            code = EXIT_UNREADABLE
            if args.json:
                documents.append({"path": str(path), "error": str(exc)})
            else:
                print(f"ftui check: {exc}", file=sys.stderr)
            continue
        if progress:
            sys.stderr.write("\r\x1b[K")
        if report.n_errors and code == EXIT_OK:
            code = EXIT_ERRORS
        if args.json:
            documents.append(report.to_dict())
        else:
            if len(args.files) > 1 and path is not args.files[0]:
                print()
            print(render(report, style, show_all=args.all))
    if args.json:
        doc = documents[0] if len(args.files) == 1 else documents
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return code


COMMANDS = ("check", "serve")


def tui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftui", description="Open the full-screen app.")
    parser.add_argument("path", nargs="?", default=None, metavar="PATH",
                        help="a dataset file to open, or a directory to browse (default: the current directory)")
    parser.add_argument("--model", "-m", default=None, help="model for limits and cost (default: the config's)")
    return parser


def cmd_tui(argv: list[str]) -> int:
    args = tui_parser().parse_args(argv)
    path = args.path
    if path is not None and not os.path.exists(path):
        print(f"ftui: {path}: no such file or directory", file=sys.stderr)
        return EXIT_UNREADABLE
    from .tui.app import FtuiApp

    app = FtuiApp(path)
    if args.model:
        app.model_id = args.model
    app.run()
    return app.return_code or EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        return cmd_tui(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check":
        if hasattr(signal, "SIGPIPE"):  # `ftui check … | head`: end quietly when the reader goes, like any filter
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            return cmd_check(args)
        except KeyboardInterrupt:
            print("\nftui check: interrupted", file=sys.stderr)
            return 130
    if args.command == "serve":
        return cmd_serve(args)
    parser.print_help()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .serveinfo import API_KEY_ENV, default_data_dir

    try:
        from .server.serve import run_gc, serve
    except ImportError as exc:
        print(f"ftui serve needs the 'local' extra (pip install 'ftui[local]'): {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            print(f"ftui serve: --api-key-file {args.api_key_file}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        if key is None:
            print(f"ftui serve: --api-key-file {args.api_key_file} is empty", file=sys.stderr)
            return EXIT_UNREADABLE
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if args.gc:
        return run_gc(data_dir)
    return serve(args.host, args.port, data_dir, key, args.base_model, test_hooks=args.test_hooks,
                 idle_exit=args.idle_exit, allow_hosts=args.allow_host, allow_origins=args.allow_origin)


if __name__ == "__main__":
    sys.exit(main())
