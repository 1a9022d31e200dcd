"""ftui's command line: ``ftui [PATH]`` (the full-screen app), ``ftui check``, ``ftui prepare``, ``ftui eval`` and
``ftui serve``.

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
    check.add_argument("files", nargs="*", metavar="FILE")
    check.add_argument("--model", "-m", default=None,
                       help="model to count and price for (default: the config's, else gpt-4.1-mini)")
    check.add_argument("--epochs", type=_epochs, default="auto", help="n_epochs for the estimate (default auto)")
    check.add_argument("--json", action="store_true", help="print one JSON document (an array for several files)")
    check.add_argument("--all", action="store_true", help="list every finding, not the first few per code")
    check.add_argument("--workers", type=int, default=None, help="processes to use (default: CPU count)")
    check.add_argument("--validation", action="append", default=[], metavar="FILE",
                       help="check FILE as validation data (no 10-example minimum, not billed); files named valid, "
                       "validation, val, test or eval (valid.jsonl, marv_valid.jsonl) are validation data anyway")

    prep = sub.add_parser(
        "prepare", help="turn raw labelled data into clean train / validation / test JSONL files",
        description="Read CSV, TSV, JSON, JSON Lines or Parquet; map rows to chat examples; drop examples with "
        "errors; remove exact and near duplicates; shuffle; split into train / validation / test (stratified by "
        "the answer when it is a small label set); remove validation and test examples that leak from train; write "
        "train.jsonl, valid.jsonl, test.jsonl and prepare.json (every step's counts) into --out, then check each. "
        "The same recipe and seed give byte-identical files. Exit code 0: written; 2: bad input or usage, or an "
        "output exists (nothing written).")
    prep.add_argument("inputs", nargs="+", metavar="INPUT")
    prep.add_argument("--out", "-o", metavar="DIR", help="folder for the outputs (required unless --dry-run)")
    prep.add_argument("--force", action="store_true", help="overwrite outputs that exist")
    prep.add_argument("--dry-run", action="store_true", help="run every step and report; write nothing")
    prep.add_argument("--format", dest="input_format", choices=("csv", "tsv", "json", "jsonl", "parquet"),
                      help="input format (default: by extension, else sniffed)")
    prep.add_argument("--delimiter", choices=(",", ";", "|", "tab"), default=None,
                      help="a CSV's separator (default: sniffed from its first lines: spreadsheets in many locales "
                      "write ';')")
    g = prep.add_argument_group("mapping (tabular inputs; chat and preference JSONL pass through unchanged)")
    g.add_argument("--user", metavar="COLUMN|TEMPLATE",
                   help="the user message: a column, or a template like '{title}\n{review}'")
    g.add_argument("--assistant", metavar="COLUMN|TEMPLATE", help="the assistant answer: a column or a template")
    g.add_argument("--system", metavar="TEXT", help="a system prompt for every example (added where none is)")
    g = prep.add_argument_group("steps")
    g.add_argument("--keep-errors", action="store_true", help="keep examples with errors (default: dropped)")
    g.add_argument("--dedup", choices=("prompt", "example", "none"), default="prompt",
                   help="exact de-duplication key (default: prompt — everything before the answer)")
    g.add_argument("--exact-case", action="store_true",
                   help="exact de-duplication minds case and whitespace (default: ignores them)")
    g.add_argument("--no-near", dest="near", action="store_false", help="keep near duplicates")
    g.add_argument("--near-threshold", type=float, default=0.7, metavar="J",
                   help="Jaccard similarity for near duplicates (default 0.7)")
    g.add_argument("--shingle", type=int, default=3, metavar="WORDS", help="shingle size in words (default 3)")
    g.add_argument("--seed", type=int, default=0, help="shuffle and split seed (default 0)")
    g.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep the input order")
    g.add_argument("--split", default="80/10/10", metavar="T/V/T",
                   help="train/validation/test shares: 80/10/10 (default), 90/10, 0.8,0.2")
    g.add_argument("--split-counts", metavar="N,N[,N]", help="exact counts instead of shares")
    g.add_argument("--stratify", choices=("auto", "on", "off"), default="auto",
                   help="keep the answer's distribution in every split (auto: when at most 50 distinct answers)")
    g.add_argument("--group-by", metavar="KEY", help="a column or key whose examples must share one split")
    g.add_argument("--max-per-label", type=int, metavar="N", help="balance: at most N examples per answer")
    g.add_argument("--max-examples", type=int, metavar="N", help="at most N examples in all")
    g.add_argument("--no-leakage", dest="leakage", action="store_false",
                   help="keep validation/test examples that also occur in train")
    g.add_argument("--sort-train-by-label", action="store_true",
                   help="write train sorted by the answer (to compare with a shuffled run)")
    prep.add_argument("--model", "-m", default=None,
                      help="model for validation, tokens and cost (default: the config's, else gpt-4.1-mini)")
    prep.add_argument("--json", action="store_true", help="print prepare.json's content instead of the report")

    ev = sub.add_parser(
        "eval", help="measure models on held-out examples: exact match, accuracy per label, paired comparison",
        description="Send every example of DATA (chat JSONL whose last assistant message is the reference; "
        "prompt/completion and preference files too) to each model through the configured backend (the local one "
        "by default), score the answers against the references and compare the models on the same examples. "
        "Answers are cached: a re-run or a resumed run asks only for what is missing. Writes eval.jsonl (one line "
        "per example per model) and eval.json (the summary) into --out. Exit code 0: done; 1: stopped before "
        "every answer came (what came is written); 2: bad input or no backend.")
    ev.add_argument("data", metavar="DATA")
    ev.add_argument("--model", "-m", action="append", required=True, dest="models",
                    help="a model to evaluate (repeat to compare); a fine-tuned model brings its base model along")
    ev.add_argument("--no-base", action="store_true", help="do not add the base model of a fine-tuned model")
    ev.add_argument("--out", "-o", metavar="DIR", help="folder for eval.jsonl and eval.json (default: "
                    "eval-<data name>-<time> beside DATA)")
    ev.add_argument("--concurrency", "-j", type=int, default=4, help="requests in flight (default 4)")
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    ev.add_argument("--max-tokens", type=int, metavar="N", help="answer length cap (default: from the references)")
    ev.add_argument("--temperature", type=float, default=0.0, help="default 0")
    ev.add_argument("--seed", type=int, default=0, help="default 0")
    ev.add_argument("--no-loss", action="store_true",
                    help="skip the teacher-forced loss of the references (local backend only)")
    ev.add_argument("--json", action="store_true", help="print eval.json's content instead of the report")

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
    serve.add_argument("--deployment", action="append", default=[], metavar="NAME=MODEL",
                       help="Azure shape: chat through /openai/deployments/NAME/... answers with MODEL (without "
                       "one, a deployment named like a model id is that model)")
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
    from .config import load

    config, error = load()
    if error:
        print(f"ftui: {error}", file=sys.stderr)
    return config.default_model


def cmd_check(args: argparse.Namespace) -> int:
    import orjson

    from .core.analysis import DatasetError, analyze, mark_cross_file_duplicates
    from .core.catalog import CatalogError
    from .core.tokens import EncodingError

    if args.model is None:
        args.model = _config_model()
    documents = []
    code = EXIT_OK
    progress = None if args.json else _progress_printer()
    analyses = []
    if not args.files and not args.validation:
        print("ftui check: name at least one FILE (or --validation FILE)", file=sys.stderr)
        return EXIT_UNREADABLE
    from .core.files import raw_table

    tables = [p for p in [*args.files, *args.validation] if raw_table(p)]
    if tables:  # raw rows, not training examples: prepare turns them into JSONL
        for p in tables:
            print(f"ftui check: {p} is a {raw_table(p)} table, not JSONL training data; "
                  f"turn it into train/valid/test JSONL with `ftui prepare {p} --out DIR` (or open it in the app: "
                  f"`ftui {p}`)", file=sys.stderr)
        return EXIT_UNREADABLE
    validation = {os.path.realpath(p) for p in args.validation}
    args.files = list(args.files) + [p for p in args.validation if p not in args.files]
    for path in args.files:
        try:
            analyses.append((path, analyze(path, args.model, workers=args.workers, progress=progress), None))
        except (DatasetError, CatalogError, EncodingError) as exc:
            analyses.append((path, None, exc))
        if progress:
            sys.stderr.write("\r\x1b[K")
    if len(args.files) > 1:  # validation examples that are also in train (the files in the order given)
        mark_cross_file_duplicates([a for _, a, _ in analyses if a is not None])
    # (imported after the analysis: the report loads numpy, which the analysis's worker process does not need)
    from .core.render import Style, render
    from .core.report import Report

    style = Style(sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    for path, analysis, exc in analyses:
        report = None
        if exc is None:
            try:
                role = "validation" if os.path.realpath(path) in validation else None  # else by name
                report = Report.of(analysis, args.model, args.epochs, role)
            except (CatalogError, EncodingError) as e:
                exc = e
        if exc is not None:
            code = EXIT_UNREADABLE
            if args.json:
                documents.append({"path": str(path), "error": str(exc)})
            else:
                print(f"ftui check: {exc}", file=sys.stderr)
            continue
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
        sys.stdout.flush()  # the bytes go straight out: no str copy of a document that can run to megabytes
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        sys.stdout.buffer.flush()
    return code


def cmd_prepare(args: argparse.Namespace) -> int:
    import orjson

    from .core.analysis import DatasetError, analyze
    from .core.catalog import CatalogError
    from .core.prepare import PrepareError, Recipe, parse_split, plan, write
    from .core.render import Style, render, render_plan
    from .core.report import Report
    from .core.tokens import EncodingError

    if not args.out and not args.dry_run:
        print("ftui prepare: --out DIR is required (or --dry-run)", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.model is None:
        args.model = _config_model()
    try:
        counts = None
        if args.split_counts:
            try:
                counts = tuple(int(x) for x in args.split_counts.replace("/", ",").split(",") if x.strip())
            except ValueError:
                raise PrepareError(f"--split-counts {args.split_counts!r}: whole numbers like 1000,100,100") \
                    from None
        recipe = Recipe(inputs=list(args.inputs), input_format=args.input_format,
                        delimiter="\t" if args.delimiter == "tab" else args.delimiter, user=args.user,
                        assistant=args.assistant, system=args.system, keep_errors=args.keep_errors,
                        dedup=args.dedup, normalize=not args.exact_case, near=args.near,
                        near_threshold=args.near_threshold, shingle=args.shingle, seed=args.seed,
                        shuffle=args.shuffle, split=parse_split(args.split), split_counts=counts,
                        stratify=args.stratify, group_by=args.group_by, max_per_label=args.max_per_label,
                        max_examples=args.max_examples, leakage=args.leakage,
                        sort_train_by_label=args.sort_train_by_label, model=args.model)
        progress = None
        if sys.stderr.isatty() and not args.json:
            def progress(step: str, done: int) -> None:
                sys.stderr.write(f"\r\x1b[K  {step}… {done:,} rows" if done else f"\r\x1b[K  {step}…")
                sys.stderr.flush()
        p = plan(recipe, progress)
        if progress:
            sys.stderr.write("\r\x1b[K")
        files = {} if args.dry_run else write(p, args.out, force=args.force)
    except (PrepareError, CatalogError, EncodingError) as exc:
        if sys.stderr.isatty() and not args.json:
            sys.stderr.write("\r\x1b[K")
        print(f"ftui prepare: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        sys.stdout.write(orjson.dumps(p.report({k: v.name for k, v in files.items() if k != "report"}),
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    style = Style(color)
    print(render_plan(p, style, {k: str(v) for k, v in files.items()}))
    for name in ("train", "valid", "test"):
        if name not in files:
            continue
        try:
            report = Report.of(analyze(files[name], args.model), args.model)
        except (DatasetError, CatalogError, EncodingError) as exc:
            print(f"ftui prepare: checking {files[name]}: {exc}", file=sys.stderr)
            continue
        print()
        print(render(report, style))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    import asyncio
    import time as _time
    from pathlib import Path

    from .core.evalset import EvalDataError, load
    from .core.render import Style, render_eval

    try:
        data = load(args.data, limit=args.limit)
    except EvalDataError as exc:
        print(f"ftui eval: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    for issue in data.issues[:10]:
        print(f"ftui eval: skipped {issue}", file=sys.stderr)
    if data.n_issues > 10:
        print(f"ftui eval: … {data.n_issues - 10} more lines skipped", file=sys.stderr)
    if not data.examples:
        print(f"ftui eval: {args.data}: no example to evaluate", file=sys.stderr)
        return EXIT_UNREADABLE
    from .service.evaluate import base_of

    models = list(dict.fromkeys(args.models))
    if not args.no_base:
        for m in list(models):
            b = base_of(m)
            if b and b not in models:
                models.append(b)
    from .core.files import output_near

    out = Path(args.out) if args.out else output_near(
        args.data, f"eval-{Path(args.data).stem}-{_time.strftime('%Y%m%d-%H%M%S')}")
    try:
        run, files = asyncio.run(_eval(args, data, models, out))
    except _NoBackend as exc:
        print(f"ftui eval: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(files[2], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        from .service.evaluate import disagreements

        style = Style(sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
        dis = []
        if len(run.models) >= 2:
            a, b = run.models[0], run.models[1]
            for i in disagreements(run, a, b):
                ex = run.data.examples[i]
                dis.append((ex.line, ex.reference, [(a, run.answers[a][i].text), (b, run.answers[b][i].text)]))
        print(render_eval(files[2], style, dis))
        print(f"\nWrote {files[0]} and {files[1]}")
    if run.stopped:
        print("ftui eval: stopped before every answer came; run the same command again to finish (answers are "
              "cached)", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


class _NoBackend(Exception):
    pass


async def _eval(args, data, models, out):
    from .config import load as load_config
    from .service import profiles
    from .service.errors import ServiceError
    from .service.evaluate import EvalParams, run, write

    config, error = load_config()
    if error:
        print(f"ftui: {error}", file=sys.stderr)
    try:
        profile = profiles.resolve(config.backend, config.profiles)
    except profiles.ProfileError as exc:
        raise _NoBackend(str(exc)) from None
    if profile.kind == "off":
        raise _NoBackend("the config says backend = \"off\": no backend to ask")
    local = None
    base_url = None
    if profile.kind == "local":
        from .service.local import LocalBackend, LocalBackendError

        local = LocalBackend(profile.data_dir)
        try:
            base_url = await asyncio_to_thread(local.start)
        except LocalBackendError as exc:
            raise _NoBackend(f"the local backend did not start: {exc}") from None
        profile.base_url = base_url
        profile.api_key = local.api_key
    from .service.client import Service

    svc = Service(profile, base_url=base_url)
    stop = __import__("asyncio").Event()
    tty = sys.stderr.isatty() and not args.json

    def progress(p) -> None:
        if not tty:
            return
        eta = f", ~{p.eta_s:.0f} s left" if p.eta_s is not None else ""
        eta += f", ${p.cost_usd:,.4f}" if p.cost_usd is not None else ""
        wait = f"  ({p.waiting})" if p.waiting else ""
        sys.stderr.write(f"\r\x1b[K  {p.done:,}/{p.total:,} answers ({p.cached:,} cached, {p.rate:.1f}/s{eta})"
                         f"{wait}")
        sys.stderr.flush()

    params = EvalParams(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens,
                        concurrency=max(1, args.concurrency))
    try:
        try:
            r = await run(svc, data, models, params, progress=progress, stop=stop,
                          teacher_forced=False if args.no_loss else None)
        except (KeyboardInterrupt, __import__("asyncio").CancelledError):
            stop.set()
            raise
        finally:
            if tty:
                sys.stderr.write("\r\x1b[K")
        files = write(r, out)
        return r, files
    except ServiceError as exc:
        raise _NoBackend(str(exc)) from None
    finally:
        await svc.close()
        if local is not None and local.owned:
            local.release()


async def asyncio_to_thread(fn, *a):
    import asyncio

    return await asyncio.to_thread(fn, *a)


COMMANDS = ("check", "prepare", "eval", "serve")


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
    # a hang-up before the app has mounted (it installs its own handler then) ends it at once, with the same code:
    # nothing has started yet that needs stopping (the backend starts after the first paint)
    signal.signal(signal.SIGHUP, lambda sig, _frame: os._exit(128 + sig))
    from .tui.app import FtuiApp

    app = FtuiApp(path)
    if args.model:
        app.model_id = args.model
    try:
        app.run()
    except OSError:  # the terminal went away under the driver (EIO)
        if not app.hung_up_by:
            raise
    if app.hung_up_by:
        # a dropped terminal ends the app with 128 + the signal, whatever else went on meanwhile; nothing more is
        # written to a terminal that is gone (a flush of stdout/stderr there fails with EIO: exit code 1 or 120)
        import logging

        logging.shutdown()
        os._exit(128 + app.hung_up_by)
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
            code = cmd_check(args)
            sys.stdout.flush()  # here: a report that cannot be written (a full disk) fails now, not at the exit
            return code
        except KeyboardInterrupt:
            print("\nftui check: interrupted", file=sys.stderr)
            return 130
        except OSError as exc:  # the analysis turns read errors into messages: this is writing the report
            print(f"ftui check: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    if args.command == "prepare":
        if hasattr(signal, "SIGPIPE"):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            return cmd_prepare(args)
        except KeyboardInterrupt:
            print("\nftui prepare: interrupted (nothing half-written: outputs are written whole or not at all)",
                  file=sys.stderr)
            return 130
    if args.command == "eval":
        try:
            return cmd_eval(args)
        except KeyboardInterrupt:
            print("\nftui eval: interrupted; the answers so far are cached (run it again to go on)", file=sys.stderr)
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
    deployments = {}
    for spec in args.deployment:
        name, sep, model = spec.partition("=")
        if not sep or not name.strip() or not model.strip():
            print(f"ftui serve: --deployment {spec!r}: expected NAME=MODEL", file=sys.stderr)
            return EXIT_UNREADABLE
        deployments[name.strip()] = model.strip()
    return serve(args.host, args.port, data_dir, key, args.base_model, test_hooks=args.test_hooks,
                 idle_exit=args.idle_exit, allow_hosts=args.allow_host, allow_origins=args.allow_origin,
                 deployments=deployments)


def entry() -> None:
    """The `ftui` command and `python -m ftui.cli`: :func:`main`, then the exit."""
    code = main()
    if sys.argv[1:2] == ["check"]:
        # `ftui check` ends with large structures alive (quicktok's tables, the columns, the findings), and the
        # interpreter's teardown freed them one by one: ~90 ms of a 0.9 s check of 100 MB. main has flushed the report
        # and the worker processes were joined before it, so the process leaves at once, as mypy does
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # the report that could not be written: main said so
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
