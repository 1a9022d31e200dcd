"""Vendor the part of OpenAI's OpenAPI spec that tests/server/test_conformance.py generates requests from: the paths
of the operations the local backend implements and every component they reference, written to
tests/data/openai-openapi-subset.json. Run it when the spec in ../shared/openapi changes; the tests then read
nothing outside the repository (a user's clone has no ../shared).

    python scripts/vendor_openapi.py [SPEC.yaml]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "openai-openapi-subset.json"
sys.path.insert(0, str(ROOT))
from tests.server.conformance_ops import IMPLEMENTED  # noqa: E402  (one list, shared with the test)


def refs(node, found: set[tuple[str, str]]) -> None:
    """Every `#/components/KIND/NAME` referenced anywhere below node."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            kind, name = ref[len("#/components/"):].split("/", 1)
            found.add((kind, name))
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def subset(spec: dict) -> dict:
    paths = {}
    for path, item in spec["paths"].items():
        kept = {m: op for m, op in item.items()
                if not isinstance(op, dict) or op.get("operationId") in IMPLEMENTED or m == "parameters"}
        if any(isinstance(op, dict) and op.get("operationId") in IMPLEMENTED for op in kept.values()):
            paths[path] = kept
    comps: dict[str, dict] = {}
    todo: set[tuple[str, str]] = set()
    refs(paths, todo)
    refs({k: v for k, v in spec.get("components", {}).items() if k == "securitySchemes"}, todo)
    done: set[tuple[str, str]] = set()
    while todo:
        kind, name = todo.pop()
        if (kind, name) in done:
            continue
        done.add((kind, name))
        node = spec["components"][kind][name]
        comps.setdefault(kind, {})[name] = node
        refs(node, todo)
    comps["securitySchemes"] = spec["components"].get("securitySchemes", {})
    top = {k: spec[k] for k in ("openapi", "info", "servers", "security") if k in spec}
    return {**top, "paths": paths, "components": comps}


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "openapi" / "openai-openapi.yaml"
    spec = yaml.load(src.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = subset(spec)
    found = {op.get("operationId") for item in out["paths"].values() for op in item.values() if isinstance(op, dict)}
    missing = set(IMPLEMENTED) - found
    if missing:
        sys.exit(f"operations not in {src}: {sorted(missing)}")
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    tmp.replace(OUT)
    n = sum(len(v) for v in out["components"].values())
    print(f"{OUT.relative_to(ROOT)}: {len(out['paths'])} paths, {n} components")


if __name__ == "__main__":
    main()
