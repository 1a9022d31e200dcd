"""``ftui prepare INPUT… --out DIR``: raw labelled data → clean train / validation / test JSONL, then each is checked.
The flags' defaults are the recipe's (``ftui.core.recipe``), the same the Prepare workspace starts from."""

from __future__ import annotations

import argparse
import sys

from ..core.recipe import DEDUP_KEYS, MAX_LABELS, PrepareError, Recipe, default, format_split, parse_split
from .common import EXIT_OK, EXIT_UNREADABLE, clear_line, colour, config_model

FILTER = True
INTERRUPTED = "interrupted (nothing half-written: outputs are written whole or not at all)"


def add_parser(sub) -> None:
    split = format_split(default("split"))
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
    g.add_argument("--dedup", choices=DEDUP_KEYS, default=default("dedup"),
                   help="exact de-duplication key (default: %(default)s — everything before the answer)")
    g.add_argument("--exact-case", action="store_true",
                   help="exact de-duplication minds case and whitespace (default: ignores them)")
    g.add_argument("--no-near", dest="near", action="store_false", help="keep near duplicates")
    g.add_argument("--near-threshold", type=float, default=default("near_threshold"), metavar="J",
                   help="Jaccard similarity for near duplicates (default %(default)s)")
    g.add_argument("--shingle", type=int, default=default("shingle"), metavar="WORDS",
                   help="shingle size in words (default %(default)s)")
    g.add_argument("--seed", type=int, default=default("seed"), help="shuffle and split seed (default %(default)s)")
    g.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep the input order")
    g.add_argument("--split", default=split, metavar="T/V/T",
                   help=f"train/validation/test shares: {split} (default), 90/10, 0.8,0.2")
    g.add_argument("--split-counts", metavar="N,N[,N]", help="exact counts instead of shares")
    g.add_argument("--stratify", choices=("auto", "on", "off"), default=default("stratify"),
                   help=f"keep the answer's distribution in every split (auto: when at most {MAX_LABELS} distinct "
                   "answers)")
    g.add_argument("--group-by", metavar="KEY", help="a column or key whose examples must share one split")
    g.add_argument("--max-per-label", type=int, metavar="N", help="balance: at most N examples per answer")
    g.add_argument("--max-examples", type=int, metavar="N", help="at most N examples in all")
    g.add_argument("--no-leakage", dest="leakage", action="store_false",
                   help="keep validation/test examples that also occur in train")
    g.add_argument("--sort-train-by-label", action="store_true",
                   help="write train sorted by the answer (to compare with a shuffled run)")
    prep.add_argument("--model", "-m", default=None,
                      help="model for validation, tokens and cost (default: the config's, else gpt-4.1-mini)")
    prep.add_argument("--rft", metavar="KEY", dest="rft_key",
                      help="write reinforcement fine-tuning data: each prompt without its answer, the answer under "
                      "KEY (a grader reads it as {{ item.KEY }})")
    prep.add_argument("--json", action="store_true", help="print prepare.json's content instead of the report")
    prep.set_defaults(func=run)


def recipe_of(args: argparse.Namespace) -> Recipe:
    counts = None
    if args.split_counts:
        try:
            counts = tuple(int(x) for x in args.split_counts.replace("/", ",").split(",") if x.strip())
        except ValueError:
            raise PrepareError(f"--split-counts {args.split_counts!r}: whole numbers like 1000,100,100") from None
    return Recipe(inputs=list(args.inputs), input_format=args.input_format,
                  delimiter="\t" if args.delimiter == "tab" else args.delimiter, user=args.user,
                  assistant=args.assistant, system=args.system, keep_errors=args.keep_errors,
                  dedup=args.dedup, normalize=not args.exact_case, near=args.near,
                  near_threshold=args.near_threshold, shingle=args.shingle, seed=args.seed,
                  shuffle=args.shuffle, split=parse_split(args.split), split_counts=counts,
                  stratify=args.stratify, group_by=args.group_by, max_per_label=args.max_per_label,
                  max_examples=args.max_examples, leakage=args.leakage,
                  sort_train_by_label=args.sort_train_by_label, model=args.model, rft_key=args.rft_key)


def _show_step(step: str, done: int) -> None:
    sys.stderr.write(f"\r\x1b[K  {step}… {done:,} rows" if done else f"\r\x1b[K  {step}…")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    import orjson

    from ..core.analysis import analyze
    from ..core.prepare import plan, write
    from ..core.report import Report
    from ..errors import FtuiError
    from .render import Style, render, render_plan

    if not args.out and not args.dry_run:
        print("ftui prepare: --out DIR is required (or --dry-run)", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.model is None:
        args.model = config_model()
    show = _show_step if sys.stderr.isatty() and not args.json else None
    try:
        p = plan(recipe_of(args), show)
        files = {} if args.dry_run else write(p, args.out, force=args.force)
    finally:
        if show:
            clear_line()
    if args.json:
        sys.stdout.write(orjson.dumps(p.report({k: v.name for k, v in files.items() if k != "report"}),
                                      option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    style = Style(colour())
    print(render_plan(p, style, {k: str(v) for k, v in files.items()}))
    for name in ("train", "valid", "test"):
        if name not in files:
            continue
        try:
            report = Report.of(analyze(files[name], args.model), args.model)
        except FtuiError as exc:
            print(f"ftui prepare: checking {files[name]}: {exc}", file=sys.stderr)
            continue
        print()
        print(render(report, style))
    return EXIT_OK
