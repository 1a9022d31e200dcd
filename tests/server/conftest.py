"""A real `ftui serve` subprocess on a free loopback port, driven only through the official openai SDK."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.backend import Server, wait_for  # noqa: F401 — re-exported for the server tests

SCHEMAS = json.loads((Path(__file__).resolve().parent.parent / "data" / "openapi_schemas.json").read_text())
def _to_2020(node):
    """The spec keeps a few OpenAPI 3.0-isms (boolean exclusiveMinimum); turn them into JSON Schema 2020-12."""
    if isinstance(node, dict):
        if isinstance(node.get("allOf"), list) and any(isinstance(x, dict) and x.get("nullable") is True
                                                        and "type" not in x for x in node["allOf"]):
            # `allOf: [{$ref}, {nullable: true}]` (Upload.file): the referenced object or null
            rest = [x for x in node["allOf"] if not (isinstance(x, dict) and x.get("nullable") is True)]
            node = {k: v for k, v in node.items() if k != "allOf"}
            node["anyOf"] = [{"allOf": rest}, {"type": "null"}]
        node = {k: _to_2020(v) for k, v in node.items()}
        if node.get("exclusiveMinimum") is True:
            node["exclusiveMinimum"] = node.pop("minimum", 0)
        if node.pop("nullable", False) is True:
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            if isinstance(node.get("enum"), list):
                node["enum"] = [*node["enum"], None]
        if node.get("exclusiveMaximum") is True:
            node["exclusiveMaximum"] = node.pop("maximum", 0)
        return node
    if isinstance(node, list):
        return [_to_2020(v) for v in node]
    return node


SCHEMAS = _to_2020(SCHEMAS)


def check_schema(name: str, obj) -> None:
    """Validate a response object against OpenAI's OpenAPI component schema ``name``."""
    doc = {"components": {"schemas": SCHEMAS}, "$ref": f"#/components/schemas/{name}"}
    Draft202012Validator(doc).validate(obj if isinstance(obj, dict) else obj.model_dump(mode="json",
                                                                                        exclude_unset=True))


@pytest.fixture(scope="session")
def client(server):
    return server.client()


