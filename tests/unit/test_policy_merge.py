"""A partial session update (``session.update``): merged into the session as OpenAI merges it, and checked against
the profile as the session of a request is, refused with the same errors."""

from typing import Any

import pytest

from tests.policies import nest, shipped, voice
from voice_access.domain.errors import InvalidRequest
from voice_access.domain.policy.rules import check_request, check_update, ga_param, merged

SESSION: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Be brief.",
    "audio": {
        "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}},
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ash"},
    },
}


def allowed_session() -> dict[str, Any]:
    """The small policy's voice profile's session for a caller who chose a voice and a turn detection."""
    request = {"session": {"audio": {"input": {"turn_detection": {"type": "server_vad"}}, "output": {"voice": "ash"}}}}
    session: dict[str, Any] = check_request(request, "voice", voice(), ga_param)["session"]
    return session


def test_an_update_replaces_each_field_it_names_and_keeps_the_others() -> None:
    # Given / When
    result = merged(SESSION, {"instructions": "Be thorough.", "output_modalities": ["text"]})

    # Then
    assert result == SESSION | {"instructions": "Be thorough.", "output_modalities": ["text"]}


def test_audio_input_and_output_are_merged_field_by_field() -> None:
    # Given / When an update names one field of the output and one of the input
    result = merged(SESSION, {"audio": {"output": {"speed": 1.2}, "input": {"noise_reduction": None}}})

    # Then both keep their other fields
    assert result["audio"] == {
        "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}, "noise_reduction": None},
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ash", "speed": 1.2},
    }


def test_an_object_below_audio_input_or_output_is_replaced_whole() -> None:
    # Given / When
    result = merged(SESSION, {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}})

    # Then
    assert result["audio"]["input"] == {"turn_detection": {"type": "semantic_vad"}}


@pytest.mark.parametrize(
    ("update", "audio"),
    [
        pytest.param({"audio": None}, None, id="audio-null"),
        pytest.param({"audio": "loud"}, "loud", id="audio-not-an-object"),
        pytest.param(
            {"audio": {"output": None}},
            {"input": SESSION["audio"]["input"], "output": None},
            id="a-direction-null",
        ),
    ],
)
def test_an_audio_that_is_not_an_object_replaces_what_was_there(update: dict[str, Any], audio: Any) -> None:
    # Given / When an update the checks will refuse
    result = merged(SESSION, update)

    # Then it is merged as it stands, for the checks to judge, not a crash
    assert result["audio"] == audio


def test_a_merge_changes_neither_the_session_nor_the_update() -> None:
    # Given
    session, update = allowed_session(), {"audio": {"output": {"speed": 1.2}}}
    before = (repr(session), repr(update))

    # When
    merged(session, update)

    # Then
    assert (repr(session), repr(update)) == before


def test_an_allowed_update_gives_the_merged_session_as_a_request_would() -> None:
    # Given the session a caller was allowed
    session = allowed_session()

    # When it updates the output's speed
    updated = check_update(session, {"audio": {"output": {"speed": 1.2}}}, "voice", voice(), ga_param)

    # Then the session keeps the caller's voice and turn detection, and the profile's fixed fields
    assert updated == {
        "type": "realtime",
        "model": "gpt-realtime",
        "audio": {
            "input": {"turn_detection": {"type": "server_vad"}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ash", "speed": 1.2},
        },
    }


@pytest.mark.parametrize("name", ["assistant", "premium", "transcription", "translation"])
def test_an_empty_update_of_a_session_the_profile_made_changes_nothing(name: str) -> None:
    # Given the session a shipped profile makes for an empty request (fixed fields and defaults)
    profile = shipped(name)
    session = check_request({}, name, profile, ga_param)["session"]

    # When / Then checking it again passes, and gives the same session
    assert check_update(session, {}, name, profile, ga_param) == session


@pytest.mark.parametrize(
    ("update", "code", "param"),
    [
        pytest.param(nest("audio.output.voice", "nova"), "invalid_value", "session.audio.output.voice", id="enum"),
        pytest.param(nest("audio.output.speed", "fast"), "invalid_type", "session.audio.output.speed", id="type"),
        pytest.param({"instructions": "Be rude."}, "parameter_not_allowed", "session.instructions", id="not-settable"),
        pytest.param({"model": "gpt-realtime-mini"}, "parameter_not_allowed", "session.model", id="fixed"),
        pytest.param(
            nest("audio.output.format.rate", 8000),
            "parameter_not_allowed",
            "session.audio.output.format.rate",
            id="under-a-fixed-object",
        ),
        pytest.param({"temperature": 0.5}, "unknown_parameter", "session.temperature", id="unknown"),
        pytest.param({"type": "transcription"}, "invalid_value", "session.type", id="another-session-type"),
    ],
)
def test_a_refused_update_is_refused_as_a_request_sending_it_is(update: dict[str, Any], code: str, param: str) -> None:
    # Given the session a caller was allowed, and what a request sending the update's fields is refused with
    with pytest.raises(InvalidRequest) as as_request:
        check_request({"session": update}, "voice", voice(), ga_param)

    # When the update is sent
    with pytest.raises(InvalidRequest) as as_update:
        check_update(allowed_session(), update, "voice", voice(), ga_param)

    # Then the refusal is the request's, word for word
    refusal = as_update.value
    assert (refusal.code, refusal.param) == (code, param)
    assert (refusal.message, refusal.code, refusal.param) == (
        as_request.value.message,
        as_request.value.code,
        as_request.value.param,
    )


def test_an_update_that_replaces_turn_detection_must_name_its_type() -> None:
    # Given a session with server VAD, and an update that sends turn detection without its type
    update = {"audio": {"input": {"turn_detection": {"silence_duration_ms": 800}}}}

    # When / Then the object is replaced whole, so the update lacks what OpenAI requires of it
    with pytest.raises(InvalidRequest) as caught:
        check_update(allowed_session(), update, "voice", voice(), ga_param)
    assert (caught.value.code, caught.value.param) == (
        "missing_required_parameter",
        "session.audio.input.turn_detection.type",
    )


@pytest.mark.parametrize("update", ["realtime", None, [], 1])
def test_an_update_that_is_not_an_object_is_refused_as_such_a_requests_session_is(update: Any) -> None:
    # Given / When
    with pytest.raises(InvalidRequest) as caught:
        check_update(allowed_session(), update, "voice", voice(), ga_param)

    # Then
    assert (caught.value.code, caught.value.param) == ("invalid_type", "session")
