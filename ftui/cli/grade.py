"""``ftui grade GRADER.json --sample TEXT [--item JSON]``: one sample graded by an OpenAI grader, as RFT jobs and
``/fine_tuning/alpha/graders/run`` grade it. String, similarity, python and multi graders run here; a grader that
asks a model (score_model, label_model) is sent to the configured backend's graders API."""

from __future__ import annotations

import argparse
import json
import sys

from .common import EXIT_ERRORS, EXIT_OK, EXIT_UNREADABLE, backend

FILTER = True
INTERRUPTED = "interrupted"


def add_parser(sub) -> None:
    gr = sub.add_parser(
        "grade", help="grade one sample with an OpenAI grader (string_check, text_similarity, python, score_model, "
        "label_model, multi)",
        description="Grade TEXT as a model's answer with the grader in GRADER.json ({\"grader\": …} or the grader "
        "itself), the way reinforcement fine-tuning and /fine_tuning/alpha/graders/run grade it. Prints the reward, "
        "each sub-grader's reward and any error in OpenAI's categories. Graders that ask a model are sent to the "
        "configured backend (the local one by default). Exit code 0: graded; 1: graded with an error (the reward "
        "is 0); 2: a bad grader, item or backend.")
    gr.add_argument("grader", metavar="GRADER.json")
    gr.add_argument("--sample", "-s", required=True, metavar="TEXT", help="the model's answer (- reads stdin)")
    gr.add_argument("--item", "-i", metavar="JSON", help="the dataset row the {{ item.* }} templates read")
    gr.add_argument("--json", action="store_true", help="print the whole /graders/run answer as JSON")
    gr.set_defaults(func=run)


def _uses_a_model(grader: dict) -> bool:
    from ..core.graders import walk

    return any(g["type"] in ("score_model", "label_model") for _, g in walk(grader))


def run(args: argparse.Namespace) -> int:
    import asyncio

    from ..core import graders

    grader = graders.load(args.grader)
    sample = sys.stdin.read() if args.sample == "-" else args.sample
    item = None
    if args.item is not None:
        try:
            item = json.loads(args.item)
        except ValueError as e:
            print(f"ftui grade: --item is not JSON: {e}", file=sys.stderr)
            return EXIT_UNREADABLE
        if not isinstance(item, dict):
            print("ftui grade: --item must be a JSON object (the dataset row)", file=sys.stderr)
            return EXIT_UNREADABLE
    if _uses_a_model(grader):
        result = asyncio.run(_on_backend(grader, sample, item))
    else:
        with graders.Engine(grader) as engine:
            result = engine.run(sample, item)
    # the SDK also names model_grader_* fields api_model_grader_* (its aliases): one flag, shown once
    errors = {k: v for k, v in result["metadata"]["errors"].items() if v is True and not k.startswith("api_")}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        meta = result["metadata"]
        ms = meta["execution_time"] * 1000
        print(f"reward {result['reward']:.4g}  ({meta['name']}, {meta['type']}, {ms:.0f} ms)")
        for key, value in (result.get("sub_rewards") or {}).items():
            print(f"  {key:<20} {value:.4g}")
        details = meta.get("ftui_error_details") or {}
        for flag in errors:
            detail = details.get(flag) or ""
            print(f"error: {flag}" + (f": {detail.strip().splitlines()[-1]}" if detail.strip() else ""))
        for model, tokens in (result.get("model_grader_token_usage_per_model") or {}).items():
            print(f"  judge {model}: {tokens} tokens")
    return EXIT_ERRORS if errors else EXIT_OK


async def _on_backend(grader: dict, sample: str, item: dict | None) -> dict:
    async with backend() as svc:
        return await svc.run_grader(grader, sample, item)
