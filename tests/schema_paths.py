"""Derive the dotted field paths of a session configuration from the official OpenAPI schema.

Arrays and free-form objects are leaves; the branches of oneOf/anyOf are merged.
"""

import json
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parent.parent / "openai_stub" / "openapi" / "realtime-token-endpoints.openapi.json"


def _load() -> dict[str, Any]:
    return json.loads(SPEC.read_text())  # type: ignore[no-any-return]


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = {**spec["components"]["schemas"][name], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _walk(schema: dict[str, Any], prefix: str, spec: dict[str, Any], out: set[str]) -> None:
    schema = _resolve(schema, spec)
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        _walk(branch, prefix, spec, out)
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        sub = _resolve(sub, spec)
        if sub.get("type") != "array":
            _walk(sub, path, spec, out)


def session_paths(schema_name: str) -> set[str]:
    spec = _load()
    out: set[str] = set()
    _walk(spec["components"]["schemas"][schema_name], "", spec, out)
    return out
