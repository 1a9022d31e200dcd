"""OpenAI's grader templates: ``{{ item.KEY }}``, ``{{ sample.output_text }}``, ``{{ sample.output_json.KEY }}``,
``{{ sample.output_tools[0].function.name }}`` — a namespace and a JSON-path-like path. A string value is put in as
is; any other value as JSON. Pure: a missing variable or a sample that is not JSON raises, naming what."""

from __future__ import annotations

import json
import re

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
PATH_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]")
NAMESPACES = ("item", "sample")


class InvalidVariable(LookupError):
    """A template names a variable the item or sample does not have (OpenAI's invalid_variable_error)."""


class SampleParseError(ValueError):
    """A template reads ``sample.output_json`` of a sample that is not JSON (OpenAI's sample_parse_error)."""


def parse_path(expr: str) -> list[str | int]:
    """``item.a.b[0]`` → ["item", "a", "b", 0]; ValueError when it is not a namespace and a path."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(expr):
        m = PATH_PART.match(expr, pos)
        if m is None or (pos == 0 and expr.startswith(".")):
            raise ValueError(f"{{{{ {expr} }}}} is not a variable (namespace.path, e.g. item.answer)")
        name, index, dq, sq = m.groups()
        parts.append(int(index) if index is not None else name if name is not None else dq if dq is not None else sq)
        pos = m.end()
    if not parts or parts[0] not in NAMESPACES:
        raise ValueError(f"{{{{ {expr} }}}}: the namespace must be item or sample")
    return parts


def variables(template: str) -> list[list[str | int]]:
    """Every variable of a template, parsed (ValueError names the first that is not one)."""
    return [parse_path(m.group(1)) for m in TEMPLATE.finditer(template)]


def lookup(path: list[str | int], sample: dict, item: dict):
    ns = path[0]
    value: object = sample if ns == "sample" else item
    if ns == "sample" and len(path) > 1 and path[1] == "output_json" and sample.get("output_json") is None:
        raise SampleParseError("the sample is not JSON, so sample.output_json has no value")
    for i, key in enumerate(path[1:], 1):
        try:
            if isinstance(key, int) and isinstance(value, list):
                value = value[key]
            elif isinstance(value, dict):
                value = value[key]
            else:
                raise KeyError(key)
        except (KeyError, IndexError, TypeError):
            raise InvalidVariable(f"{_show(path[:i + 1])} does not exist") from None
    return value


def render(template: str, sample: dict, item: dict) -> str:
    def one(m: re.Match) -> str:
        value = lookup(parse_path(m.group(1)), sample, item)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return TEMPLATE.sub(one, template)


def _show(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (p if i == 0 else f".{p}") for i, p in enumerate(path))


def make_sample(output_text: str, output_tools: list | None = None) -> dict:
    """The ``sample`` namespace of a model's answer: its text, its JSON when it is JSON, its tool calls."""
    try:
        output_json = json.loads(output_text)
    except ValueError:
        output_json = None
    return {"output_text": output_text, "output_json": output_json, "output_tools": output_tools or [],
            "choices": [{"message": {"role": "assistant", "content": output_text}}]}
