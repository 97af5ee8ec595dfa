"""Validate JSON bodies against OpenAI's official Realtime schemas (copied in openai_stub/openapi/).

`ga_errors` checks components of the current spec (OpenAPI 3.1, JSON Schema 2020-12), `beta_errors`
components of the 2025-04-29 beta spec (OpenAPI 3.0, `nullable`). Both return one string per problem,
"<JSON path>: <message>", and an empty list for a valid instance. Nothing is stricter than the schema:
these schemas allow unknown properties, so an unknown property is not an error.

`sdk_violations` checks an instance against a request type of the official Python SDK (a TypedDict of
openai-python 3.63.0, for GPT-Live, which the vendored OpenAPI document predates), strictly: an unknown
field is refused, as OpenAI refuses it on Live sessions.
"""

from __future__ import annotations

import collections.abc
import functools
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT202012
from typing_extensions import is_typeddict

if TYPE_CHECKING:  # pydantic loads for the SDK's types only (Live sessions)
    import pydantic

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
    code: str = "invalid_value"  # OpenAI's error code for it (the schemas' checks all say invalid_value)

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


def sdk_violations(annotation: Any, instance: object, location: Location = ()) -> list[Violation]:
    """What the SDK type `annotation` (a TypedDict, a union of them, a list of them, a scalar) refuses in
    `instance`, with OpenAI's codes and wording: `unknown_parameter`, `missing_required_parameter`,
    `invalid_type`, `invalid_value`.

    Pydantic validates the scalars (strictly: "5" is no integer); the structure is walked here, because a
    TypedDict ignores unknown keys and pydantic checks an `Iterable[...]` field's items only when iterated."""
    branches = _sdk_branches(annotation)
    if instance is None:
        if type(None) in branches or Any in branches or object in branches:
            return []
        return [_invalid_type(location, branches, instance)]
    if any(branch is Any or branch is object for branch in branches):
        return []
    if isinstance(instance, dict):
        return _sdk_object(branches, instance, location)
    if isinstance(instance, list):
        items = [typing.get_args(branch)[0] for branch in branches if _is_list_type(branch)]
        if not items:
            return [_invalid_type(location, branches, instance)]
        return [v for index, item in enumerate(instance) for v in sdk_violations(items[0], item, (*location, index))]
    scalars = [b for b in branches if not is_typeddict(b) and not _is_list_type(b) and not _is_mapping_type(b)]
    if scalars and _accepts(tuple(scalars), instance):
        return []
    literals = [
        value for branch in scalars if typing.get_origin(branch) is typing.Literal for value in typing.get_args(branch)
    ]
    if literals and not any(typing.get_origin(branch) is not typing.Literal for branch in scalars):
        supported = ", ".join(repr(value) for value in literals)
        return [Violation(location, f"Invalid value: {_shown(instance)}. Supported values are: {supported}.")]
    return [_invalid_type(location, branches, instance)]


def _sdk_object(branches: list[Any], instance: dict[str, Any], location: Location) -> list[Violation]:
    if any(_is_mapping_type(branch) for branch in branches):
        return []
    candidates = [branch for branch in branches if is_typeddict(branch)]
    if not candidates:
        return [_invalid_type(location, branches, instance)]
    kinds = {id(c): _literal_values(c, "type") for c in candidates}
    if "type" in instance and len(candidates) > 1 and all(kinds.values()):
        matching = [c for c in candidates if instance["type"] in kinds[id(c)]]
        if not matching:
            supported = ", ".join(repr(value) for c in candidates for value in kinds[id(c)])
            message = f"Invalid value: {_shown(instance['type'])}. Supported values are: {supported}."
            return [Violation((*location, "type"), message)]
        candidates = matching
    verdicts = [_typed_dict_violations(candidate, instance, location) for candidate in candidates]
    return min(verdicts, key=len)


def _typed_dict_violations(typed_dict: Any, instance: dict[str, Any], location: Location) -> list[Violation]:
    hints = _hints(typed_dict)
    found: list[Violation] = []
    for key in instance:
        if key not in hints:
            param = Violation((*location, key), "").param
            found.append(Violation((*location, key), f"Unknown parameter: '{param}'.", "unknown_parameter"))
    for key, (annotation, required) in hints.items():
        if key in instance:
            found.extend(sdk_violations(annotation, instance[key], (*location, key)))
        elif required:
            param = Violation((*location, key), "").param
            message = f"Missing required parameter: '{param}'."
            found.append(Violation((*location, key), message, "missing_required_parameter"))
    return found


@functools.cache
def _hints(typed_dict: Any) -> dict[str, tuple[Any, bool]]:
    """Each key of a TypedDict: its annotation and whether it is required (the SDK marks them `Required`)."""
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    keys: dict[str, tuple[Any, bool]] = {}
    for key, annotation in hints.items():
        origin = typing.get_origin(annotation)
        marked = getattr(origin, "_name", None)
        required = marked == "Required" or (marked != "NotRequired" and bool(getattr(typed_dict, "__total__", True)))
        keys[key] = (annotation, required)
    return keys


def _sdk_branches(annotation: Any) -> list[Any]:
    """The types an annotation may hold: unions split; Required, NotRequired, Optional, Annotated and type
    aliases unwrapped."""
    if isinstance(annotation, typing.TypeAliasType):
        return _sdk_branches(annotation.__value__)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [branch for arg in typing.get_args(annotation) for branch in _sdk_branches(arg)]
    if origin is typing.Annotated or getattr(origin, "_name", None) in ("Required", "NotRequired"):
        return _sdk_branches(typing.get_args(annotation)[0])
    if annotation is None:
        return [type(None)]
    return [annotation]


def _is_list_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (list, collections.abc.Iterable, collections.abc.Sequence)


def _is_mapping_type(annotation: Any) -> bool:
    return annotation is dict or typing.get_origin(annotation) in (dict, collections.abc.Mapping)


def _literal_values(typed_dict: Any, key: str) -> tuple[object, ...]:
    annotation = _hints(typed_dict).get(key, (None, False))[0]
    return tuple(
        value
        for branch in _sdk_branches(annotation)
        if typing.get_origin(branch) is typing.Literal
        for value in typing.get_args(branch)
    )


@functools.cache
def _adapter(scalars: tuple[Any, ...]) -> pydantic.TypeAdapter[Any]:
    import pydantic

    union: Any = typing.Union[scalars]  # noqa: UP007 - a union built at run time
    return pydantic.TypeAdapter(union)


def _accepts(scalars: tuple[Any, ...], instance: object) -> bool:
    import pydantic

    try:
        _adapter(scalars).validate_python(instance, strict=True)
    except pydantic.ValidationError:
        return False
    return True


_JSON_KINDS = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    dict: "an object",
    list: "an array",
}


def _kind(annotation: Any) -> str:
    if is_typeddict(annotation) or _is_mapping_type(annotation):
        return "an object"
    if _is_list_type(annotation):
        return "an array"
    if typing.get_origin(annotation) is typing.Literal:
        return "a string" if all(isinstance(v, str) for v in typing.get_args(annotation)) else "a value"
    if annotation is type(None):
        return "null"
    return _JSON_KINDS.get(annotation, "a value")


def _invalid_type(location: Location, branches: list[Any], instance: object) -> Violation:
    expected = " or ".join(dict.fromkeys(_kind(branch) for branch in branches))
    got = "null" if instance is None else _JSON_KINDS.get(type(instance), "a value")
    param = Violation(location, "").param or "body"
    return Violation(
        location, f"Invalid type for '{param}': expected {expected}, but got {got} instead.", "invalid_type"
    )


def _shown(value: object) -> str:
    return _shorten(repr(value))
