"""The beta session shapes, translated onto the GA client-secret call and back."""

import copy
from http import HTTPStatus
from typing import Any

import pytest

from openai_stub.schema import beta_errors, ga_errors
from voice_access.config.policy_file import load_policy
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.caller import Caller
from voice_access.domain.errors import InvalidRequest
from voice_access.domain.policy.model import Profile
from voice_access.domain.policy.rules import check_request
from voice_access.domain.session_fields import SessionType
from voice_access.domain.translation import FIELDS, REALTIME, TRANSCRIPTION, BetaNames, beta_to_ga, ga_to_beta
from voice_access.edge import answers

GA_REQUEST = "RealtimeCreateClientSecretRequest"
GA_RESPONSE = "RealtimeCreateClientSecretResponse"
BETA_RESPONSE: dict[SessionType, str] = {
    "realtime": "RealtimeSessionCreateResponse",
    "transcription": "RealtimeTranscriptionSessionCreateResponse",
}
EXPIRES_AT = 1756310470
CLIENT_SECRET = "ek_test_0123"

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}

# (beta request, expected GA request): one row per field and per value that changes shape.
REALTIME_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"model": "gpt-4o-realtime-preview"}, {"session": {"model": "gpt-4o-realtime-preview"}}),
    ({"modalities": ["text"]}, {"session": {"output_modalities": ["text"]}}),
    ({"modalities": ["audio"]}, {"session": {"output_modalities": ["audio"]}}),
    ({"modalities": ["audio", "text"]}, {"session": {"output_modalities": ["audio"]}}),
    ({"modalities": ["text", "audio"]}, {"session": {"output_modalities": ["audio"]}}),
    ({"instructions": "Be brief."}, {"session": {"instructions": "Be brief."}}),
    ({"voice": "verse"}, {"session": {"audio": {"output": {"voice": "verse"}}}}),
    ({"speed": 1.25}, {"session": {"audio": {"output": {"speed": 1.25}}}}),
    (
        {"input_audio_format": "pcm16"},
        {"session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}},
    ),
    ({"input_audio_format": "g711_ulaw"}, {"session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}),
    ({"input_audio_format": "g711_alaw"}, {"session": {"audio": {"input": {"format": {"type": "audio/pcma"}}}}}),
    (
        {"output_audio_format": "pcm16"},
        {"session": {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}}}},
    ),
    ({"output_audio_format": "g711_ulaw"}, {"session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}}}}),
    ({"output_audio_format": "g711_alaw"}, {"session": {"audio": {"output": {"format": {"type": "audio/pcma"}}}}}),
    (
        {"input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": "Ada"}},
        {"session": {"audio": {"input": {"transcription": {"model": "whisper-1", "language": "en", "prompt": "Ada"}}}}},
    ),
    (
        {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}},
        {"session": {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}}},
    ),
    (
        {"turn_detection": {"silence_duration_ms": 800}},
        {"session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}},
    ),
    ({"turn_detection": None}, {"session": {"audio": {"input": {"turn_detection": None}}}}),
    (
        {"input_audio_noise_reduction": {"type": "far_field"}},
        {"session": {"audio": {"input": {"noise_reduction": {"type": "far_field"}}}}},
    ),
    ({"input_audio_noise_reduction": None}, {"session": {"audio": {"input": {"noise_reduction": None}}}}),
    ({"tools": [TOOL]}, {"session": {"tools": [TOOL]}}),
    ({"tool_choice": "auto"}, {"session": {"tool_choice": "auto"}}),
    ({"tool_choice": "none"}, {"session": {"tool_choice": "none"}}),
    ({"tool_choice": "required"}, {"session": {"tool_choice": "required"}}),
    ({"tool_choice": "get_weather"}, {"session": {"tool_choice": {"type": "function", "name": "get_weather"}}}),
    ({"max_response_output_tokens": 1024}, {"session": {"max_output_tokens": 1024}}),
    ({"max_response_output_tokens": "inf"}, {"session": {"max_output_tokens": "inf"}}),
    ({"tracing": "auto"}, {"session": {"tracing": "auto"}}),
    ({"tracing": {"workflow_name": "support"}}, {"session": {"tracing": {"workflow_name": "support"}}}),
    (
        {"client_secret": {"expires_after": {"anchor": "created_at", "seconds": 120}}},
        {"expires_after": {"anchor": "created_at", "seconds": 120}},
    ),
    ({"temperature": 0.8}, {}),
]

TRANSCRIPTION_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"modalities": ["text"]}, {}),
    ({"modalities": ["audio", "text"]}, {}),
    (
        {"input_audio_format": "pcm16"},
        {"session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}},
    ),
    ({"input_audio_format": "g711_ulaw"}, {"session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}),
    ({"input_audio_format": "g711_alaw"}, {"session": {"audio": {"input": {"format": {"type": "audio/pcma"}}}}}),
    (
        {"input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "de"}},
        {"session": {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe", "language": "de"}}}}},
    ),
    (
        {"turn_detection": {"type": "server_vad", "silence_duration_ms": 400}},
        {"session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 400}}}}},
    ),
    (
        {"turn_detection": {"threshold": 0.7}},
        {"session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}}}},
    ),
    (
        {"input_audio_noise_reduction": {"type": "near_field"}},
        {"session": {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}}},
    ),
    (
        {"include": ["item.input_audio_transcription.logprobs"]},
        {"session": {"include": ["item.input_audio_transcription.logprobs"]}},
    ),
    (
        {"client_secret": {"expires_at": {"anchor": "created_at", "seconds": 300}}},
        {"expires_after": {"anchor": "created_at", "seconds": 300}},
    ),
]


def beta_names_in(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> set[str]:
    names = set()
    for beta, _ in cases:
        for key, value in beta.items():
            names |= {f"client_secret.{sub}" for sub in value} if key == "client_secret" else {key}
    return names


def refusal(request: dict[str, Any], session_type: SessionType = "realtime") -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        beta_to_ga(request, session_type)
    assert answers.status_of(caught.value) == HTTPStatus.BAD_REQUEST
    return caught.value


def bundled(session_type: SessionType) -> tuple[str, Profile]:
    return load_policy(BUNDLED_POLICY).select(
        None, session_type, Caller("https://issuer.example", "user-1"), param="X-Profile"
    )


def mint_body(request: dict[str, Any], session_type: SessionType) -> dict[str, Any]:
    """What the service sends upstream for a beta request: translated, then checked by the bundled policy."""
    profile_name, profile = bundled(session_type)
    return check_request(beta_to_ga(request, session_type), profile_name, profile, BetaNames(FIELDS[session_type]))


def policy_refusal(request: dict[str, Any], session_type: SessionType = "realtime") -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        mint_body(request, session_type)
    return caught.value


# --- beta request to GA request ---


@pytest.mark.parametrize(("beta", "expected"), REALTIME_CASES)
def test_a_beta_realtime_field_lands_in_its_ga_place(beta: dict[str, Any], expected: dict[str, Any]) -> None:
    # Given / When
    ga = beta_to_ga(beta, "realtime")

    # Then
    assert ga == expected


@pytest.mark.parametrize(("beta", "expected"), TRANSCRIPTION_CASES)
def test_a_beta_transcription_field_lands_in_its_ga_place(beta: dict[str, Any], expected: dict[str, Any]) -> None:
    # Given / When
    ga = beta_to_ga(beta, "transcription")

    # Then
    assert ga == expected


@pytest.mark.parametrize(
    ("fields", "cases"),
    [(REALTIME, REALTIME_CASES), (TRANSCRIPTION, TRANSCRIPTION_CASES)],
    ids=["realtime", "transcription"],
)
def test_every_translated_beta_field_has_a_row_in_the_table(
    fields: tuple[Any, ...], cases: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    # Given the fields translation.py knows
    known = {field.beta for field in fields}

    # When the table's beta names are collected
    covered = beta_names_in(cases) - {"temperature"}

    # Then each known field is exercised, and the table names no field translation.py lacks
    assert covered == known


def test_beta_fields_merge_into_one_ga_session() -> None:
    # Given
    beta = {
        "voice": "ash",
        "output_audio_format": "g711_alaw",
        "input_audio_format": "pcm16",
        "input_audio_noise_reduction": {"type": "near_field"},
        "turn_detection": {"type": "server_vad"},
    }

    # When
    ga = beta_to_ga(beta, "realtime")

    # Then
    assert ga == {
        "session": {
            "audio": {
                "output": {"voice": "ash", "format": {"type": "audio/pcma"}},
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "noise_reduction": {"type": "near_field"},
                    "turn_detection": {"type": "server_vad"},
                },
            }
        }
    }


def test_each_translated_format_is_a_fresh_object() -> None:
    # Given a translated format changed by whoever holds it
    first = beta_to_ga({"input_audio_format": "pcm16"}, "realtime")
    first["session"]["audio"]["input"]["format"]["rate"] = 8000

    # When
    second = beta_to_ga({"input_audio_format": "pcm16"}, "realtime")

    # Then
    assert second["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.2, 1, 0, True, False, "0.8", None, [0.8]])
def test_a_temperature_other_than_the_beta_default_is_unsupported(temperature: Any) -> None:
    # Given / When
    error = refusal({"voice": "alloy", "temperature": temperature})

    # Then
    assert (error.code, error.param) == ("unsupported_parameter", "temperature")


def test_the_beta_default_temperature_is_accepted_and_dropped() -> None:
    # Given / When
    ga = beta_to_ga({"temperature": 0.8, "voice": "alloy"}, "realtime")

    # Then
    assert ga == {"session": {"audio": {"output": {"voice": "alloy"}}}}


@pytest.mark.parametrize(
    ("session_type", "key"),
    [
        ("realtime", "voise"),
        ("realtime", "session"),
        ("realtime", "type"),
        ("realtime", "output_modalities"),
        ("realtime", "include"),
        ("realtime", "expires_after"),
        ("transcription", "voice"),
        ("transcription", "model"),
        ("transcription", "temperature"),
        ("transcription", "tools"),
        ("transcription", "max_response_output_tokens"),
    ],
)
def test_a_field_the_beta_shape_does_not_have_is_unknown(session_type: SessionType, key: str) -> None:
    # Given / When
    error = refusal({key: "x"}, session_type)

    # Then
    assert (error.code, error.param) == ("unknown_parameter", key)


@pytest.mark.parametrize(
    ("session_type", "client_secret", "param"),
    [
        ("realtime", {"expires_at": {"seconds": 60}}, "client_secret.expires_at"),
        ("realtime", {"value": "ek_mine"}, "client_secret.value"),
        ("transcription", {"expires_after": {"seconds": 60}}, "client_secret.expires_after"),
    ],
)
def test_an_unknown_client_secret_field_is_named_in_full(
    session_type: SessionType, client_secret: dict[str, Any], param: str
) -> None:
    # Given / When
    error = refusal({"client_secret": client_secret}, session_type)

    # Then
    assert (error.code, error.param) == ("unknown_parameter", param)


@pytest.mark.parametrize("client_secret", ["ek_mine", None, [], 60])
def test_a_client_secret_that_is_not_an_object_is_refused(client_secret: Any) -> None:
    # Given / When
    error = refusal({"client_secret": client_secret})

    # Then
    assert (error.code, error.param) == ("invalid_type", "client_secret")


def test_a_long_unknown_field_is_clipped() -> None:
    # Given / When
    error = refusal({"x" * 500: 1})

    # Then
    assert error.param == "x" * 64


@pytest.mark.parametrize(
    ("session_type", "field", "value", "code"),
    [
        ("realtime", "input_audio_format", "pcm24", "invalid_value"),
        ("realtime", "input_audio_format", "audio/pcm", "invalid_value"),
        ("realtime", "input_audio_format", None, "invalid_value"),
        ("realtime", "output_audio_format", "g722", "invalid_value"),
        ("realtime", "input_audio_format", ["pcm16"], "invalid_value"),
        ("realtime", "output_audio_format", {"type": "audio/pcm"}, "invalid_value"),
        ("transcription", "input_audio_format", "opus", "invalid_value"),
        ("realtime", "modalities", [], "invalid_value"),
        ("realtime", "modalities", ["video"], "invalid_value"),
        ("realtime", "modalities", "text", "invalid_value"),
        ("realtime", "modalities", None, "invalid_value"),
        ("transcription", "modalities", ["text", "video"], "invalid_value"),
        ("realtime", "tool_choice", 1, "invalid_type"),
        ("realtime", "tool_choice", None, "invalid_type"),
        ("realtime", "tool_choice", "", "invalid_value"),
        ("realtime", "tool_choice", {"type": "function", "name": "get_weather"}, "invalid_type"),
    ],
)
def test_a_value_that_cannot_be_translated_is_refused_naming_the_beta_field(
    session_type: SessionType, field: str, value: Any, code: str
) -> None:
    # Given / When
    error = refusal({field: value}, session_type)

    # Then
    assert (error.code, error.param) == (code, field)


# --- GA paths named the beta way ---


@pytest.mark.parametrize(
    ("session_type", "ga_path", "beta_name"),
    [
        ("realtime", "session.audio.output.voice", "voice"),
        ("realtime", "session.audio.output.speed", "speed"),
        ("realtime", "session.audio.input.turn_detection", "turn_detection"),
        ("realtime", "session.audio.input.turn_detection.eagerness", "turn_detection.eagerness"),
        ("realtime", "session.audio.input.format", "input_audio_format"),
        ("realtime", "session.audio.input.format.type", "input_audio_format"),
        ("realtime", "session.audio.output.format.rate", "output_audio_format"),
        ("realtime", "session.audio.input.transcription.model", "input_audio_transcription.model"),
        ("realtime", "session.audio.input.noise_reduction.type", "input_audio_noise_reduction.type"),
        ("realtime", "session.output_modalities", "modalities"),
        ("realtime", "session.max_output_tokens", "max_response_output_tokens"),
        ("realtime", "session.tool_choice", "tool_choice"),
        ("realtime", "session.tool_choice.name", "tool_choice"),
        ("realtime", "session.tools", "tools"),
        ("realtime", "session.model", "model"),
        ("realtime", "session.instructions", "instructions"),
        ("realtime", "session.tracing.workflow_name", "tracing.workflow_name"),
        ("realtime", "expires_after", "client_secret.expires_after"),
        ("realtime", "expires_after.seconds", "client_secret.expires_after.seconds"),
        ("realtime", "session.truncation", "session.truncation"),
        ("realtime", "session.modelx", "session.modelx"),
        ("transcription", "session.audio.input.format.type", "input_audio_format"),
        ("transcription", "session.include", "include"),
        ("transcription", "expires_after.seconds", "client_secret.expires_at.seconds"),
        ("transcription", "expires_after.anchor", "client_secret.expires_at.anchor"),
        ("transcription", "session.audio.output.voice", "session.audio.output.voice"),
    ],
)
def test_beta_names_spell_a_ga_path_the_way_a_beta_caller_did(
    session_type: SessionType, ga_path: str, beta_name: str
) -> None:
    # Given
    name = BetaNames(FIELDS[session_type])

    # When / Then
    assert name(ga_path) == beta_name


@pytest.mark.parametrize(
    ("session_type", "beta", "code", "param"),
    [
        ("realtime", {"voice": "nova"}, "invalid_value", "voice"),
        ("realtime", {"speed": 3}, "invalid_value", "speed"),
        ("realtime", {"model": "gpt-4o-realtime-preview"}, "invalid_value", "model"),
        ("realtime", {"tool_choice": "get_weather"}, "parameter_not_allowed", "tool_choice"),
        ("realtime", {"max_response_output_tokens": 5000}, "invalid_value", "max_response_output_tokens"),
        (
            "realtime",
            {"turn_detection": {"type": "server_vad", "silence_duration_ms": 50}},
            "invalid_value",
            "turn_detection.silence_duration_ms",
        ),
        (
            "realtime",
            {"input_audio_transcription": {"model": "parakeet"}},
            "invalid_value",
            "input_audio_transcription.model",
        ),
        (
            "realtime",
            {"client_secret": {"expires_after": {"anchor": "created_at", "seconds": 5}}},
            "invalid_value",
            "client_secret.expires_after.seconds",
        ),
        (
            "realtime",
            {"client_secret": {"expires_after": {"minutes": 1}}},
            "unknown_parameter",
            "client_secret.expires_after.minutes",
        ),
        (
            "transcription",
            {"client_secret": {"expires_at": {"seconds": 7200}}},
            "invalid_value",
            "client_secret.expires_at.seconds",
        ),
        (
            "transcription",
            {"turn_detection": {"type": "server_vad", "create_response": True}},
            "parameter_not_allowed",
            "turn_detection.create_response",
        ),
    ],
)
def test_policy_errors_for_a_beta_request_name_the_beta_field(
    session_type: SessionType, beta: dict[str, Any], code: str, param: str
) -> None:
    # Given / When
    error = policy_refusal(beta, session_type)

    # Then
    assert (error.code, error.param) == (code, param)
    assert f"'{param}'" in error.message


@pytest.mark.parametrize(
    ("beta", "model"),
    [
        pytest.param({"voice": "verse"}, "gpt-realtime-2.1", id="no-model-gets-the-default"),
        pytest.param({"model": "gpt-realtime", "voice": "verse"}, "gpt-realtime", id="openai-python-beta-sample"),
        pytest.param({"model": "gpt-realtime-2.1-mini", "tracing": "auto"}, "gpt-realtime-2.1-mini", id="mini-traced"),
    ],
)
def test_a_beta_request_gets_the_model_it_names_or_the_policys_default(beta: dict[str, Any], model: str) -> None:
    # Given a beta request as today's SDKs send it (their beta call has no model of its own)
    # When
    body = mint_body(beta, "realtime")

    # Then the GA body carries the model, and is valid
    assert body["session"]["model"] == model
    assert ga_errors(GA_REQUEST, body) == []


def test_a_first_beta_clients_model_is_refused_naming_the_models_offered() -> None:
    # Given the model an early beta client had to send (the 2024-12-18 schema required one)
    # When
    error = policy_refusal({"model": "gpt-4o-realtime-preview-2024-12-17"})

    # Then the refusal names the beta field and the models the profile offers
    assert (error.code, error.param) == ("invalid_value", "model")
    assert "must be one of 'gpt-realtime-2.1', 'gpt-realtime-2.1-mini', 'gpt-realtime'" in error.message


# --- beta request through the bundled policy to the GA body ---

RICH_REALTIME = {
    "voice": "coral",
    "speed": 1.1,
    "modalities": ["text", "audio"],
    "input_audio_format": "pcm16",
    "output_audio_format": "g711_ulaw",
    "input_audio_transcription": {"model": "gpt-4o-mini-transcribe", "language": "en", "prompt": "Ada, Grace"},
    "turn_detection": {
        "type": "server_vad",
        "threshold": 0.6,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 700,
        "create_response": True,
        "interrupt_response": True,
    },
    "input_audio_noise_reduction": {"type": "far_field"},
    "max_response_output_tokens": 2048,
    "temperature": 0.8,
    "client_secret": {"expires_after": {"anchor": "created_at", "seconds": 300}},
}

RICH_TRANSCRIPTION = {
    "modalities": ["text"],
    "input_audio_format": "g711_alaw",
    "input_audio_transcription": {"model": "whisper-1", "language": "fr", "prompt": "Bonjour"},
    "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
    "input_audio_noise_reduction": {"type": "near_field"},
    "include": ["item.input_audio_transcription.logprobs"],
    "client_secret": {"expires_at": {"anchor": "created_at", "seconds": 120}},
}


def test_a_rich_beta_realtime_request_becomes_a_valid_ga_body() -> None:
    # Given / When
    body = mint_body(RICH_REALTIME, "realtime")

    # Then
    assert ga_errors(GA_REQUEST, body) == []
    assert body == {
        "expires_after": {"anchor": "created_at", "seconds": 300},
        "session": {
            "type": "realtime",
            "model": "gpt-realtime-2.1",
            "instructions": "You are a friendly, concise voice assistant.",
            "tools": [],
            "output_modalities": ["audio"],
            "max_output_tokens": 2048,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": RICH_REALTIME["input_audio_transcription"],
                    "turn_detection": RICH_REALTIME["turn_detection"],
                    "noise_reduction": {"type": "far_field"},
                },
                "output": {"voice": "coral", "speed": 1.1, "format": {"type": "audio/pcmu"}},
            },
        },
    }


def test_a_rich_beta_transcription_request_becomes_a_valid_ga_body() -> None:
    # Given / When
    body = mint_body(RICH_TRANSCRIPTION, "transcription")

    # Then
    assert ga_errors(GA_REQUEST, body) == []
    assert body == {
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {
            "type": "transcription",
            "include": ["item.input_audio_transcription.logprobs"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcma"},
                    "transcription": RICH_TRANSCRIPTION["input_audio_transcription"],
                    "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                    "noise_reduction": {"type": "near_field"},
                }
            },
        },
    }


@pytest.mark.parametrize(
    ("session_type", "beta"),
    [
        ("realtime", {}),
        ("realtime", {"modalities": ["text"], "max_response_output_tokens": "inf"}),
        ("realtime", {"turn_detection": None, "input_audio_noise_reduction": None, "voice": "alloy"}),
        ("realtime", {"input_audio_format": "g711_alaw", "output_audio_format": "pcm16"}),
        ("transcription", {}),
        ("transcription", {"turn_detection": None, "input_audio_format": "g711_ulaw"}),
        ("transcription", {"turn_detection": {"prefix_padding_ms": 200}}),
    ],
)
def test_plain_beta_requests_become_valid_ga_bodies(session_type: SessionType, beta: dict[str, Any]) -> None:
    # Given / When
    body = mint_body(beta, session_type)

    # Then
    assert ga_errors(GA_REQUEST, body) == []


def test_a_beta_turn_detection_without_a_type_gets_the_beta_default_and_a_valid_ga_body() -> None:
    # Given a beta request that relies on the beta default turn detection type
    beta = {"turn_detection": {"silence_duration_ms": 800}}

    # When
    body = mint_body(beta, "realtime")

    # Then
    assert ga_errors(GA_REQUEST, body) == []


# --- GA answer to beta answer ---

GA_REALTIME_ANSWER: dict[str, Any] = {
    "value": CLIENT_SECRET,
    "expires_at": EXPIRES_AT,
    "session": {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_C9CiUVUzUzYIssh3ELY1d",
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "You are a friendly assistant.",
        "tools": [TOOL],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": 0,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": True,
                    "interrupt_response": True,
                    "idle_timeout_ms": None,
                },
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy", "speed": 1.0},
        },
    },
}

GA_TRANSCRIPTION_ANSWER: dict[str, Any] = {
    "value": CLIENT_SECRET,
    "expires_at": EXPIRES_AT,
    "session": {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": "sess_C9CiUVUzUzYIssh3ELY1e",
        "expires_at": 0,
        "include": ["item.input_audio_transcription.logprobs"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcma"},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": ""},
                "noise_reduction": {"type": "far_field"},
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
            }
        },
    },
}


@pytest.mark.parametrize("answer", [GA_REALTIME_ANSWER, GA_TRANSCRIPTION_ANSWER], ids=["realtime", "transcription"])
def test_the_hand_built_ga_answers_are_what_openai_sends(answer: dict[str, Any]) -> None:
    # Given / When / Then: the fixtures below are only as good as their likeness to OpenAI's answers
    assert ga_errors(GA_RESPONSE, answer) == []


def test_a_ga_realtime_answer_becomes_the_beta_session_answer() -> None:
    # Given / When
    answer = ga_to_beta(copy.deepcopy(GA_REALTIME_ANSWER), "realtime")

    # Then
    assert answer == {
        "id": "sess_C9CiUVUzUzYIssh3ELY1d",
        "object": "realtime.session",
        "client_secret": {"value": CLIENT_SECRET, "expires_at": EXPIRES_AT},
        "expires_at": EXPIRES_AT,
        "model": "gpt-realtime",
        "modalities": ["audio", "text"],
        "instructions": "You are a friendly assistant.",
        "voice": "alloy",
        "speed": 1.0,
        "input_audio_format": "pcm16",
        "output_audio_format": "g711_ulaw",
        "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": GA_REALTIME_ANSWER["session"]["audio"]["input"]["turn_detection"],
        "input_audio_noise_reduction": {"type": "near_field"},
        "tools": [TOOL],
        "tool_choice": "auto",
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
    }
    assert beta_errors(BETA_RESPONSE["realtime"], answer) == []


def test_a_ga_transcription_answer_becomes_the_beta_transcription_session_answer() -> None:
    # Given / When
    answer = ga_to_beta(copy.deepcopy(GA_TRANSCRIPTION_ANSWER), "transcription")

    # Then
    assert answer == {
        "id": "sess_C9CiUVUzUzYIssh3ELY1e",
        "object": "realtime.transcription_session",
        "client_secret": {"value": CLIENT_SECRET, "expires_at": EXPIRES_AT},
        "modalities": ["text"],
        "input_audio_format": "g711_alaw",
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": ""},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
        "input_audio_noise_reduction": {"type": "far_field"},
        "include": ["item.input_audio_transcription.logprobs"],
    }
    assert beta_errors(BETA_RESPONSE["transcription"], answer) == []


@pytest.mark.parametrize(
    ("session_changes", "field", "expected"),
    [
        ({"output_modalities": ["text"]}, "modalities", ["text"]),
        ({"tool_choice": {"type": "function", "name": "get_weather"}}, "tool_choice", "get_weather"),
        ({"audio": {"output": {"voice": {"id": "voice_1234"}}}}, "voice", "voice_1234"),
        ({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, "input_audio_format", "g711_ulaw"),
        ({"max_output_tokens": 512}, "max_response_output_tokens", 512),
    ],
)
def test_ga_values_that_changed_shape_are_given_back_the_beta_way(
    session_changes: dict[str, Any], field: str, expected: Any
) -> None:
    # Given
    minted = copy.deepcopy(GA_REALTIME_ANSWER)
    minted["session"] |= session_changes

    # When
    answer = ga_to_beta(minted, "realtime")

    # Then
    assert answer[field] == expected
    assert beta_errors(BETA_RESPONSE["realtime"], answer) == []


def test_nulls_in_the_ga_answer_are_left_out_of_the_beta_answer() -> None:
    # Given an answer with nulls, some of which (include) OpenAI's own schema does not allow
    minted = copy.deepcopy(GA_REALTIME_ANSWER)
    minted["session"] |= {"include": None, "instructions": None, "model": None}
    minted["session"]["audio"]["input"] |= {"transcription": None, "turn_detection": None, "noise_reduction": None}

    # When
    answer = ga_to_beta(minted, "realtime")

    # Then
    assert not {"input_audio_transcription", "turn_detection", "input_audio_noise_reduction"} & set(answer)
    assert None not in answer.values()
    assert beta_errors(BETA_RESPONSE["realtime"], answer) == []


@pytest.mark.parametrize(
    ("session_type", "expected"),
    [
        (
            "realtime",
            {
                "object": "realtime.session",
                "client_secret": {"value": CLIENT_SECRET, "expires_at": EXPIRES_AT},
                "expires_at": EXPIRES_AT,
                "modalities": ["audio", "text"],
                "temperature": 0.8,
            },
        ),
        (
            "transcription",
            {
                "object": "realtime.transcription_session",
                "client_secret": {"value": CLIENT_SECRET, "expires_at": EXPIRES_AT},
                "modalities": ["text"],
            },
        ),
    ],
)
@pytest.mark.parametrize("session", ["absent", None, "sess_1", {}])
def test_a_ga_answer_with_only_the_secret_still_gives_a_valid_beta_answer(
    session_type: SessionType, expected: dict[str, Any], session: Any
) -> None:
    # Given an answer whose session is missing or unusable
    minted: dict[str, Any] = {"value": CLIENT_SECRET, "expires_at": EXPIRES_AT}
    if session != "absent":
        minted["session"] = session

    # When
    answer = ga_to_beta(minted, session_type)

    # Then
    assert answer == expected
    assert beta_errors(BETA_RESPONSE[session_type], answer) == []
