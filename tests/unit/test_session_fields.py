"""The GA session field lists stay in step with OpenAI's official schema and the official SDK's types."""

import types
import typing

import pytest
from openai.types.live.media_session_config_param import MediaSessionConfigParam
from openai.types.realtime.realtime_session_create_request_param import RealtimeSessionCreateRequestParam
from openai.types.realtime.realtime_transcription_session_create_request_param import (
    RealtimeTranscriptionSessionCreateRequestParam,
)
from openai.types.realtime.realtime_translation_session_create_request_param import (
    RealtimeTranslationSessionCreateRequestParam,
)
from typing_extensions import is_typeddict

from tests.schema_paths import session_paths
from voice_access.domain.session_fields import (
    LIVE_FIELDS,
    REALTIME_FIELDS,
    REQUIRED_KEYS,
    SESSION_FIELDS,
    TRANSCRIPTION_FIELDS,
    TRANSLATION_FIELDS,
)

SESSION_TYPES = [
    ("RealtimeSessionCreateRequestGA", RealtimeSessionCreateRequestParam, REALTIME_FIELDS),
    (
        "RealtimeTranscriptionSessionCreateRequestGA",
        RealtimeTranscriptionSessionCreateRequestParam,
        TRANSCRIPTION_FIELDS,
    ),
    ("RealtimeTranslationSessionCreateRequest", RealtimeTranslationSessionCreateRequestParam, TRANSLATION_FIELDS),
]
IDS = ["realtime", "transcription", "translation"]

# Fields the SDK's types (openai-python 3.63.0, generated from a newer spec) have and the vendored schema
# (openai-openapi f85dbe22) does not: when a newer schema is vendored, this empties.
NEWER_THAN_THE_SCHEMA = {"audio.input.noise_reduction.strength"}


def _branches(annotation: typing.Any) -> list[typing.Any]:
    """The types an annotation may hold: unions split, Required/NotRequired/Optional unwrapped."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [branch for arg in typing.get_args(annotation) for branch in _branches(arg)]
    if origin is not None and getattr(origin, "_name", None) in ("Required", "NotRequired"):
        return _branches(typing.get_args(annotation)[0])
    return [annotation]


def sdk_paths(typed_dict: typing.Any, prefix: str = "") -> set[str]:
    """The dotted paths of a TypedDict of the SDK, entering nested TypedDicts (lists and free-form objects are
    leaves, as in the schema's paths)."""
    paths: set[str] = set()
    for key, annotation in typing.get_type_hints(typed_dict).items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        for branch in _branches(annotation):
            if is_typeddict(branch):
                paths |= sdk_paths(branch, path)
    return paths


@pytest.mark.parametrize(("schema_name", "sdk_type", "fields"), SESSION_TYPES, ids=IDS)
def test_field_list_equals_the_paths_of_the_official_schema_and_sdk(
    schema_name: str, sdk_type: typing.Any, fields: frozenset[str]
) -> None:
    # Given the official GA request schema for one session type, and the official SDK's type for it
    # When their dotted field paths are derived
    official = session_paths(schema_name)
    sdk = sdk_paths(sdk_type)

    # Then the function's list has exactly the paths of either, no more and no fewer
    assert sorted((official | sdk) - fields) == [], "fields OpenAI has that session_fields.py lacks"
    assert sorted(fields - (official | sdk)) == [], "fields session_fields.py lists that OpenAI does not have"
    # and the SDK differs from the vendored schema only by the fields known to be newer
    assert official <= sdk, "the vendored schema has fields the SDK's types lack"
    assert sdk - official == NEWER_THAN_THE_SCHEMA


def test_the_sdk_walk_enters_nested_types() -> None:
    # Given / When the SDK's realtime session type walked
    paths = sdk_paths(RealtimeSessionCreateRequestParam)

    # Then it reaches fields several objects deep, under a union (turn detection's two kinds)
    assert {"audio.input.turn_detection.idle_timeout_ms", "audio.input.turn_detection.eagerness"} <= paths


def test_session_fields_are_keyed_by_session_type() -> None:
    # Given / When the lookup the policy uses
    # Then each session type finds its own list
    assert SESSION_FIELDS == {
        "realtime": REALTIME_FIELDS,
        "transcription": TRANSCRIPTION_FIELDS,
        "translation": TRANSLATION_FIELDS,
        "live": LIVE_FIELDS,
    }


def test_live_field_list_equals_the_paths_of_the_official_sdk() -> None:
    # Given the official SDK's type for a GPT-Live session's configuration (the vendored schema predates GPT-Live)
    # When its dotted field paths are derived
    sdk = sdk_paths(MediaSessionConfigParam)

    # Then the function's list has exactly those paths
    assert sorted(sdk - LIVE_FIELDS) == [], "fields OpenAI has that session_fields.py lacks"
    assert sorted(LIVE_FIELDS - sdk) == [], "fields session_fields.py lists that OpenAI does not have"


def _required(typed_dict: typing.Any) -> set[str]:
    """The keys a TypedDict of the SDK marks Required (its annotations are strings, so its own
    ``__required_keys__`` is empty)."""
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    return {key for key, hint in hints.items() if getattr(typing.get_origin(hint), "_name", None) == "Required"}


def _objects(typed_dict: typing.Any, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """Each nested TypedDict of the SDK's type with its dotted path ("" for the session itself)."""
    found = [(prefix, typed_dict)]
    for key, annotation in typing.get_type_hints(typed_dict).items():
        for branch in _branches(annotation):
            if is_typeddict(branch):
                found += _objects(branch, f"{prefix}.{key}" if prefix else key)
    return found


def test_live_required_keys_are_ones_the_sdk_requires() -> None:
    # Given the keys the function checks before a Live session leaves, and the SDK's Required keys of each object
    required = REQUIRED_KEYS["live"]
    sdk: dict[str, set[str]] = {}
    for path, typed_dict in _objects(MediaSessionConfigParam):
        sdk.setdefault(path, set()).update(_required(typed_dict))

    # Then each is one the SDK requires of its object (of some branch, for a union such as delegation's kinds),
    # and the session's own model is among them
    assert required[""] == "model"
    for parent, key in required.items():
        assert key in sdk.get(parent, set()), f"{parent or 'the session'}: the SDK does not require '{key}'"
