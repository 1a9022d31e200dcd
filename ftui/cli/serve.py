"""``ftui serve``: the local OpenAI-compatible fine-tuning backend (needs the ``local`` extra)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import EXIT_UNREADABLE

FILTER = False
INTERRUPTED = "interrupted"


def add_parser(sub) -> None:
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
    serve.add_argument("--base-model", action="append", default=[], metavar="NAME=SOURCE",
                       help="add a base model: a Hugging Face folder, a .gguf file, or a Hub id (owner/name) found "
                       "in the Hugging Face cache (nothing is downloaded unless HF_HUB_OFFLINE=0)")
    serve.add_argument("--deployment", action="append", default=[], metavar="NAME=MODEL",
                       help="Azure shape: chat through /openai/deployments/NAME/... answers with MODEL (without "
                       "one, a deployment named like a model id is that model)")
    serve.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                       help="stop once no job is live and no request came for this long (the app starts its "
                       "backend with 300)")
    serve.add_argument("--gc", action="store_true",
                       help="free the space no job or model needs any more (state of ended jobs, folders of "
                       "deleted models), report it, and exit")
    serve.add_argument("--python-graders", action="store_true",
                       help="run python graders without an API key (they run code as you on this machine; with a "
                       "key they always run)")
    serve.add_argument("--executor", choices=("local", "ray", "skypilot"), default="local",
                       help="where jobs train: here (local, the default), on a Ray cluster (ray; the 'ray' extra, "
                       "and ftui[local] on the cluster's nodes) or as SkyPilot managed jobs (skypilot: the sky CLI, "
                       "--sky-bucket and --sky-dir)")
    serve.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="the Ray cluster: HOST:PORT of its head, ray://HOST:10001, or auto (default: $RAY_ADDRESS,"
                       " else auto)")
    serve.add_argument("--ray-cpus", type=float, default=1.0, metavar="N", help="CPUs a job's Ray worker asks for")
    serve.add_argument("--ray-gpus", type=float, default=0.0, metavar="N", help="GPUs a job's Ray worker asks for")
    serve.add_argument("--ray-tries", type=int, default=3, metavar="N",
                       help="Ray workers a job may lose (node lost, out of memory) before it fails (default 3)")
    serve.add_argument("--sky-bucket", default=None, metavar="URI",
                       help="skypilot: the bucket each task mounts at /ftui (s3://…, gs://…, r2://…)")
    serve.add_argument("--sky-dir", default=None, metavar="PATH",
                       help="skypilot: where this machine sees that bucket (a FUSE mount or a shared filesystem)")
    serve.add_argument("--sky-accelerators", default=None, metavar="SPEC",
                       help="skypilot: the accelerators a job's task asks for (e.g. L4:1; default: CPUs only)")
    serve.add_argument("--sky-spot", action="store_true",
                       help="skypilot: spot instances (a preempted task is recovered and resumes from its state)")
    serve.add_argument("--test-hooks", action="store_true", help=argparse.SUPPRESS)  # fault injection for tests
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..serveinfo import API_KEY_ENV, default_data_dir

    try:
        from ..server.serve import run_gc, serve
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
    executor = {"name": args.executor}
    if args.executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ftui serve --executor ray needs Ray (pip install 'ftui[ray]')", file=sys.stderr)
            return EXIT_UNREADABLE
        if args.ray_cpus <= 0 or args.ray_gpus < 0 or args.ray_tries < 1:
            print("ftui serve: --ray-cpus must be > 0, --ray-gpus >= 0 and --ray-tries >= 1", file=sys.stderr)
            return EXIT_UNREADABLE
        executor.update(address=args.ray_address or os.environ.get("RAY_ADDRESS") or "auto", cpus=args.ray_cpus,
                        gpus=args.ray_gpus, tries=args.ray_tries)
    if args.executor == "skypilot":
        import shutil

        if not args.sky_bucket or not args.sky_dir:
            print("ftui serve --executor skypilot needs --sky-bucket (what the tasks mount) and --sky-dir (where "
                  "this machine sees it)", file=sys.stderr)
            return EXIT_UNREADABLE
        if not Path(args.sky_dir).is_dir():
            print(f"ftui serve: --sky-dir {args.sky_dir}: no such folder", file=sys.stderr)
            return EXIT_UNREADABLE
        if shutil.which("sky") is None:
            print("ftui serve --executor skypilot needs SkyPilot's `sky` command (pip install skypilot, then "
                  "`sky check`)", file=sys.stderr)
            return EXIT_UNREADABLE
        executor.update(bucket=args.sky_bucket, shared_dir=str(Path(args.sky_dir).resolve()),
                        accelerators=args.sky_accelerators, spot=args.sky_spot, tries=args.ray_tries)
    return serve(args.host, args.port, data_dir, key, args.base_model, test_hooks=args.test_hooks,
                 idle_exit=args.idle_exit, allow_hosts=args.allow_host, allow_origins=args.allow_origin,
                 deployments=deployments, python_graders=args.python_graders, executor=executor)
