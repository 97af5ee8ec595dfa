"""The GA session field lists stay in step with OpenAI's official schema."""

import pytest

from tests.schema_paths import session_paths
from token_vending.session_fields import REALTIME_FIELDS, SESSION_FIELDS, TRANSCRIPTION_FIELDS, TRANSLATION_FIELDS


@pytest.mark.parametrize(
    ("schema_name", "fields"),
    [
        ("RealtimeSessionCreateRequestGA", REALTIME_FIELDS),
        ("RealtimeTranscriptionSessionCreateRequestGA", TRANSCRIPTION_FIELDS),
        ("RealtimeTranslationSessionCreateRequest", TRANSLATION_FIELDS),
    ],
    ids=["realtime", "transcription", "translation"],
)
def test_field_list_equals_the_paths_of_the_official_schema(schema_name: str, fields: frozenset[str]) -> None:
    # Given the official GA request schema for one session type
    # When its dotted field paths are derived
    official = session_paths(schema_name)

    # Then the function's list has exactly those paths, no more and no fewer
    assert sorted(official - fields) == [], "fields OpenAI has that session_fields.py lacks"
    assert sorted(fields - official) == [], "fields session_fields.py lists that OpenAI does not have"


def test_session_fields_are_keyed_by_session_type() -> None:
    # Given / When the lookup the policy uses
    # Then each session type finds its own list
    assert SESSION_FIELDS == {
        "realtime": REALTIME_FIELDS,
        "transcription": TRANSCRIPTION_FIELDS,
        "translation": TRANSLATION_FIELDS,
    }
