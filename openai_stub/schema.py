"""Validate JSON bodies against OpenAI's official Realtime schemas (copied in openai_stub/openapi/).

`ga_errors` checks components of the current spec (OpenAPI 3.1, JSON Schema 2020-12), `beta_errors`
components of the 2025-04-29 beta spec (OpenAPI 3.0, `nullable`). Both return one string per problem,
"<JSON path>: <message>", and an empty list for a valid instance. Nothing is stricter than the schema:
these schemas allow unknown properties, so an unknown property is not an error.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012

OPENAPI_DIR = Path(__file__).resolve().parent / "openapi"
GA_DOCUMENT = OPENAPI_DIR / "realtime-token-endpoints.openapi.json"
BETA_DOCUMENT = OPENAPI_DIR / "realtime-sessions-beta-2025-04-29.openapi.json"
EVENTS_DOCUMENT = OPENAPI_DIR / "realtime-events.openapi.json"

# jsonschema messages embed the offending value; a long one (a whole session) would drown the point.
_MAX_MESSAGE_CHARS = 300
_COMBINATORS = frozenset({"oneOf", "anyOf"})
_DISCRIMINATING = frozenset({"enum", "const"})
_NOT_NULLABLE = "None for not nullable"

type Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing the schema rejects: where (a path into the instance) and why."""

    location: Location
    message: str

    @property
    def json_path(self) -> str:
        """The location as a JSON path: `$.session.tools[0].type`."""
        return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in self.location)

    @property
    def param(self) -> str | None:
        """The location as OpenAI names it in an error's `param` (`session.type`), None for the root."""
        if not self.location:
            return None
        return self.json_path.removeprefix("$").removeprefix(".")

    def __str__(self) -> str:
        return f"{self.json_path}: {self.message}"


def ga_violations(schema_name: str, instance: object) -> list[Violation]:
    """What `#/components/schemas/<schema_name>` of the current (GA) spec rejects in `instance`."""
    return _violations(_ga_validator(schema_name), instance)


def beta_violations(schema_name: str, instance: object) -> list[Violation]:
    """What `#/components/schemas/<schema_name>` of the 2025-04-29 beta spec rejects in `instance`."""
    return _violations(_beta_validator(schema_name), instance)


def event_violations(schema_name: str, instance: object) -> list[Violation]:
    """What `#/components/schemas/<schema_name>` (a Realtime client or server event) rejects in `instance`."""
    return _violations(_event_validator(schema_name), instance)


def event_errors(schema_name: str, instance: object) -> list[str]:
    """`event_violations` as "<JSON path>: <message>" strings; empty when `instance` is valid."""
    return [str(violation) for violation in event_violations(schema_name, instance)]


def ga_errors(schema_name: str, instance: object) -> list[str]:
    """`ga_violations` as "<JSON path>: <message>" strings; empty when `instance` is valid."""
    return [str(violation) for violation in ga_violations(schema_name, instance)]


def beta_errors(schema_name: str, instance: object) -> list[str]:
    """`beta_violations` as "<JSON path>: <message>" strings; empty when `instance` is valid."""
    return [str(violation) for violation in beta_violations(schema_name, instance)]


@functools.cache
def load_document(path: Path) -> dict[str, Any]:
    """The parsed OpenAPI document at `path`, read once."""
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


@functools.cache
def _ga_validator(schema_name: str) -> Any:
    return _validator(GA_DOCUMENT, schema_name, OAS31Validator, DRAFT202012)


@functools.cache
def _event_validator(schema_name: str) -> Any:
    return _validator(EVENTS_DOCUMENT, schema_name, OAS31Validator, DRAFT202012)


@functools.cache
def _beta_validator(schema_name: str) -> Any:
    return _validator(BETA_DOCUMENT, schema_name, OAS30Validator, DRAFT4)


def _validator(path: Path, schema_name: str, validator_class: Any, specification: Any) -> Any:
    document = load_document(path)
    if schema_name not in document["components"]["schemas"]:
        raise KeyError(f"{path.name} has no components.schemas.{schema_name}")
    # The whole document is one resource, so every nested "#/components/..." $ref resolves inside it.
    uri = f"urn:openai-openapi:{path.stem}"
    resource = Resource.from_contents(document, default_specification=specification)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return validator_class(
        {"$ref": f"{uri}#/components/schemas/{schema_name}"},
        registry=registry,
        format_checker=validator_class.FORMAT_CHECKER,
    )


def _violations(validator: Any, instance: object) -> list[Violation]:
    found: list[Violation] = []
    for error in validator.iter_errors(instance):
        found.extend(_explain(error))
    return _unique(found)


def _explain(error: ValidationError) -> list[Violation]:
    """The leaf reasons behind `error`: for oneOf/anyOf, those of the branches the instance was meant for.

    A bare "is not valid under any of the given schemas" hides the reason. A branch whose `type`,
    `enum` or `const` rejects the instance itself (or a constant property of it, like `type`) is not
    the one the caller meant; the reasons of the other branches are the useful ones.
    """
    if error.validator not in _COMBINATORS or not error.context:
        return [_violation(error)]
    branches: dict[object, list[ValidationError]] = {}
    for sub_error in error.context:
        branches.setdefault(sub_error.relative_schema_path[0], []).append(sub_error)
    depth = len(error.absolute_path)
    meant = [errors for errors in branches.values() if not any(_rules_out(e, depth) for e in errors)]
    if meant:
        return [violation for errors in meant for sub_error in errors for violation in _explain(sub_error)]
    ruling = [e for errors in branches.values() for e in errors if _rules_out(e, depth)]
    return _merge_enums(ruling) or [_violation(e) for e in ruling]


def _rules_out(error: ValidationError, depth: int) -> bool:
    own_path = len(error.absolute_path) == depth
    if error.validator == "type":
        return own_path
    return error.validator in _DISCRIMINATING and (own_path or len(error.absolute_path) == depth + 1)


def _merge_enums(errors: list[ValidationError]) -> list[Violation]:
    """One "is not one of [...]" listing every allowed constant, when all branches failed on one."""
    locations = {tuple(e.absolute_path) for e in errors}
    if len(locations) != 1 or any(e.validator not in _DISCRIMINATING for e in errors):
        return []
    allowed: list[object] = []
    for e in errors:
        values = e.validator_value if e.validator == "enum" else [e.validator_value]
        allowed.extend(value for value in values if value not in allowed)
    message = _shorten(f"{errors[0].instance!r} is not one of {allowed!r}")
    return [Violation(locations.pop(), message)]


def _violation(error: ValidationError) -> Violation:
    return Violation(tuple(error.absolute_path), _shorten(error.message))


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE_CHARS else message[: _MAX_MESSAGE_CHARS - 1] + "…"


def _unique(violations: list[Violation]) -> list[Violation]:
    """Drop repeats; OAS 3.0 reports a null twice ("None for not nullable", then the type error)."""
    ordered: list[Violation] = []
    for violation in violations:
        shadowed = violation.message == _NOT_NULLABLE and any(
            other.location == violation.location and other.message != _NOT_NULLABLE for other in violations
        )
        if not shadowed and violation not in ordered:
            ordered.append(violation)
    return ordered
