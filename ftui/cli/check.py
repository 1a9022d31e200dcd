"""``ftui check FILE…``: validate JSONL fine-tuning files offline: every problem by line, exact token counts,
distributions, and the epochs and cost of a job."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import FtuiError
from .common import EXIT_ERRORS, EXIT_OK, EXIT_UNREADABLE, clear_line, colour, config_model

FILTER = True  # `ftui check … | head`: ends quietly when the reader goes, like any filter
INTERRUPTED = "interrupted"


def epochs(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be 'auto' or an integer from 1 to 50") from None
    if not 1 <= n <= 50:
        raise argparse.ArgumentTypeError("must be between 1 and 50")
    return n


def add_parser(sub) -> None:
    check = sub.add_parser("check", help="validate JSONL training files, count tokens, estimate cost",
                           description="Validate JSONL fine-tuning files offline: every problem by line, exact "
                           "token counts, distributions, and the epochs and cost of a job. Exit code 0: no errors "
                           "(warnings allowed); 1: errors; 2: a file could not be read, or bad usage.")
    check.add_argument("files", nargs="*", metavar="FILE")
    check.add_argument("--model", "-m", default=None,
                       help="model to count and price for (default: the config's, else gpt-4.1-mini)")
    check.add_argument("--epochs", type=epochs, default="auto", help="n_epochs for the estimate (default auto)")
    check.add_argument("--json", action="store_true", help="print one JSON document (an array for several files)")
    check.add_argument("--all", action="store_true", help="list every finding, not the first few per code")
    check.add_argument("--workers", type=int, default=None, help="processes to use (default: CPU count)")
    check.add_argument("--validation", action="append", default=[], metavar="FILE",
                       help="check FILE as validation data (no 10-example minimum, not billed); files named valid, "
                       "validation, val, test or eval (valid.jsonl, marv_valid.jsonl) are validation data anyway")
    check.set_defaults(func=run)


def _progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        sys.stderr.write(f"\r  analysing… {pct:3d}%")
        sys.stderr.flush()

    return show


def run(args: argparse.Namespace) -> int:
    try:
        code = _run(args)
        sys.stdout.flush()  # here: a report that cannot be written (a full disk) fails now, not at the exit
        return code
    except OSError as exc:  # the analysis turns read errors into messages: this is writing the report
        print(f"ftui check: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE


def _run(args: argparse.Namespace) -> int:
    import orjson

    from ..core.analysis import Analysis, analyze, mark_cross_file_duplicates
    from ..core.files import raw_table

    if args.model is None:
        args.model = config_model()
    if not args.files and not args.validation:
        print("ftui check: name at least one FILE (or --validation FILE)", file=sys.stderr)
        return EXIT_UNREADABLE
    tables = [p for p in [*args.files, *args.validation] if raw_table(p)]
    if tables:  # raw rows, not training examples: prepare turns them into JSONL
        for p in tables:
            print(f"ftui check: {p} is a {raw_table(p)} table, not JSONL training data; "
                  f"turn it into train/valid/test JSONL with `ftui prepare {p} --out DIR` (or open it in the app: "
                  f"`ftui {p}`)", file=sys.stderr)
        return EXIT_UNREADABLE
    validation = {os.path.realpath(p) for p in args.validation}
    files = list(args.files) + [p for p in args.validation if p not in args.files]
    progress = None if args.json else _progress_printer()
    analyses: list[tuple[str, Analysis | None, FtuiError | None]] = []
    for path in files:
        try:
            analyses.append((path, analyze(path, args.model, workers=args.workers, progress=progress), None))
        except FtuiError as e:  # unreadable, an unknown model, an encoding that cannot load: this file only
            analyses.append((path, None, e))
        if progress:
            clear_line()
    if len(files) > 1:  # validation examples that are also in train (the files in the order given)
        mark_cross_file_duplicates([a for _, a, _ in analyses if a is not None])
    # (imported after the analysis: the report loads numpy, which the analysis's worker process does not need)
    from ..core.report import Report
    from .render import Style, render

    style = Style(colour())
    code = EXIT_OK
    documents = []
    for path, analysis, failed in analyses:
        report = None
        if analysis is not None:
            try:
                role = "validation" if os.path.realpath(path) in validation else None  # else by name
                report = Report.of(analysis, args.model, args.epochs, role)
            except FtuiError as e:
                failed = e
        if report is None:
            code = EXIT_UNREADABLE
            if args.json:
                documents.append({"path": str(path), "error": str(failed)})
            else:
                print(f"ftui check: {failed}", file=sys.stderr)
            continue
        if report.n_errors and code == EXIT_OK:
            code = EXIT_ERRORS
        if args.json:
            documents.append(report.to_dict())
        else:
            if len(files) > 1 and path is not files[0]:
                print()
            print(render(report, style, show_all=args.all))
    if args.json:
        doc = documents[0] if len(files) == 1 else documents
        sys.stdout.flush()  # the bytes go straight out: no str copy of a document that can run to megabytes
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        sys.stdout.buffer.flush()
    return code
