"""``ftui eval DATA -m MODEL…``: every held-out example to each model through the configured backend (the local one
by default), scored against its reference; the models compared on the same examples."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import EXIT_ERRORS, EXIT_OK, EXIT_UNREADABLE, backend, colour

FILTER = False
INTERRUPTED = "interrupted; the answers so far are cached (run it again to go on)"


def add_parser(sub) -> None:
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
    ev.add_argument("--grader", metavar="GRADER.json",
                    help="also score every answer with an OpenAI grader ({\"grader\": …} or the grader itself), as "
                    "reinforcement fine-tuning does; then lines without an answer (RFT data) are prompts too, and "
                    "the comparison counts an answer right when its reward reaches pass_threshold (default 0.5)")
    ev.add_argument("--json", action="store_true", help="print eval.json's content instead of the report")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..core.evalset import load
    from ..core.files import output_near
    from ..service.evaluate import disagreements, with_bases
    from .render import Style, render_eval

    grader = None
    if args.grader:
        from ..core.graders import load as load_grader

        grader = load_grader(args.grader)
    data = load(args.data, limit=args.limit, prompts=grader is not None)
    for issue in data.issues[:10]:
        print(f"ftui eval: skipped {issue}", file=sys.stderr)
    if data.n_issues > 10:
        print(f"ftui eval: … {data.n_issues - 10} more lines skipped", file=sys.stderr)
    if not data.examples:
        print(f"ftui eval: {args.data}: no example to evaluate", file=sys.stderr)
        return EXIT_UNREADABLE
    models = list(dict.fromkeys(args.models)) if args.no_base else with_bases(args.models)
    out = Path(args.out) if args.out else output_near(
        args.data, f"eval-{Path(args.data).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_, files = asyncio.run(_eval(args, data, models, out, grader))
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(files[2], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        dis = []
        if len(run_.models) >= 2:
            a, b = run_.models[0], run_.models[1]
            for i in disagreements(run_, a, b):
                ex = run_.data.examples[i]
                dis.append((ex.line, ex.reference, [(a, run_.answers[a][i].text), (b, run_.answers[b][i].text)]))
        print(render_eval(files[2], Style(colour()), dis))
        print(f"\nWrote {files[0]} and {files[1]}")
    if run_.stopped:
        print("ftui eval: stopped before every answer came; run the same command again to finish (answers are "
              "cached)", file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


async def _eval(args, data, models, out, grader=None):
    import asyncio

    from ..service.evaluate import EvalParams, run, write

    stop = asyncio.Event()
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
    async with backend() as svc:
        try:
            r = await run(svc, data, models, params, progress=progress, stop=stop,
                          teacher_forced=False if args.no_loss else None, grader=grader)
        except (KeyboardInterrupt, asyncio.CancelledError):
            stop.set()
            raise
        finally:
            if tty:
                sys.stderr.write("\r\x1b[K")
        files = write(r, out)
        return r, files
