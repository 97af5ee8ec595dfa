"""Checking a GA request against a profile: the body it builds (the fixed fields, the caller's own, the defaults),
each refusal naming the field as the caller spelled it, and the client secret's lifetime."""

from http import HTTPStatus
from typing import Any

import pytest

from tests.policies import SETTABLE, SMALL_POLICY, VOICE, changed, nest, shipped, small_policy, validated, voice
from voice_access.domain.errors import InvalidRequest
from voice_access.domain.policy.model import Profile
from voice_access.domain.policy.rules import check_request, ga_param
from voice_access.domain.translation import FIELDS, BetaNames, beta_to_ga
from voice_access.edge import answers


def refusal(request: dict[str, Any], profile: Profile | None = None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check_request(request, "voice", profile or voice(), ga_param)
    assert answers.status_of(caught.value) == HTTPStatus.BAD_REQUEST
    assert answers.envelope(caught.value)["error"]["type"] == "invalid_request_error"
    return caught.value


def test_the_body_merges_fixed_fields_with_the_callers_nested_fields() -> None:
    # Given
    request = {"session": {"type": "realtime", "audio": {"output": {"voice": "ash", "speed": 1.2}}}}

    # When
    body = check_request(request, "voice", voice(), ga_param)

    # Then
    assert body == {
        "expires_after": {"anchor": "created_at", "seconds": 60},
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "ash", "speed": 1.2}},
        },
    }


def test_the_session_type_comes_from_the_profile() -> None:
    # Given a request that names no session type
    # When
    body = check_request({"session": {}}, "notes", small_policy().profiles["notes"], ga_param)

    # Then
    assert body["session"] == {"type": "transcription"}


def test_fixed_values_are_copied_into_each_body() -> None:
    # Given a body built once and then changed by whoever holds it
    profile = voice()
    first = check_request({}, "voice", profile, ga_param)
    first["session"]["audio"]["output"]["format"]["rate"] = 8000

    # When
    second = check_request({}, "voice", profile, ga_param)

    # Then the profile's fixed value is untouched
    assert second["session"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("audio.output.voice", "alloy"),
        ("audio.output.speed", 0.25),
        ("audio.output.speed", 1.5),
        ("audio.output.speed", 1),
        ("audio.input.turn_detection", None),
        ("audio.input.turn_detection.create_response", False),
        ("audio.input.turn_detection.silence_duration_ms", 100),
        ("audio.input.turn_detection.silence_duration_ms", 3000),
        ("audio.input.noise_reduction", None),
        ("audio.input.noise_reduction.type", None),
        ("audio.input.transcription.prompt", "12345"),
        ("output_modalities", ["text"]),
        ("max_output_tokens", "inf"),
        ("max_output_tokens", 1),
        ("max_output_tokens", 4096),
    ],
)
def test_a_value_within_the_rule_is_placed_at_its_path(path: str, value: Any) -> None:
    # Given (a turn_detection object needs its type, as OpenAI requires)
    request = {"session": nest(path, value)}
    if path.startswith("audio.input.turn_detection.") and not path.endswith(".type"):
        request["session"]["audio"]["input"]["turn_detection"]["type"] = "server_vad"

    # When
    body = check_request(request, "voice", voice(), ga_param)

    # Then
    node = body["session"]
    for part in path.split("."):
        node = node[part]
    assert node == value


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("audio.output.voice", "nova", "invalid_value"),
        ("audio.output.voice", None, "invalid_type"),
        ("audio.output.voice", {"id": "voice_123"}, "invalid_type"),
        ("audio.output.speed", 0.2, "invalid_value"),
        ("audio.output.speed", 1.51, "invalid_value"),
        ("audio.output.speed", "fast", "invalid_type"),
        ("audio.output.speed", True, "invalid_type"),
        ("audio.input.turn_detection", "off", "invalid_type"),
        ("audio.input.turn_detection", [], "invalid_type"),
        ("audio.input.turn_detection.type", "push_to_talk", "invalid_value"),
        ("audio.input.turn_detection.create_response", "yes", "invalid_type"),
        ("audio.input.turn_detection.create_response", 1, "invalid_type"),
        ("audio.input.turn_detection.silence_duration_ms", 99, "invalid_value"),
        ("audio.input.turn_detection.silence_duration_ms", 3001, "invalid_value"),
        ("audio.input.turn_detection.silence_duration_ms", 500.5, "invalid_type"),
        ("audio.input.turn_detection.silence_duration_ms", True, "invalid_type"),
        ("audio.input.noise_reduction.type", "far_field", "invalid_value"),
        ("audio.input.transcription.prompt", "123456", "invalid_value"),
        ("audio.input.transcription.prompt", 12345, "invalid_type"),
        ("output_modalities", ["audio", "text"], "invalid_value"),
        ("output_modalities", [], "invalid_value"),
        ("output_modalities", ["video"], "invalid_value"),
        ("output_modalities", [1], "invalid_type"),
        ("output_modalities", "audio", "invalid_type"),
        ("max_output_tokens", True, "invalid_type"),
        ("max_output_tokens", 0, "invalid_value"),
        ("max_output_tokens", 4097, "invalid_value"),
        ("max_output_tokens", 2.5, "invalid_type"),
        ("max_output_tokens", "infinite", "invalid_type"),
        ("max_output_tokens", None, "invalid_type"),
    ],
)
def test_a_value_outside_the_rule_is_refused_naming_its_ga_path(path: str, value: Any, code: str) -> None:
    # Given
    request = {"session": nest(path, value)}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == (code, f"session.{path}")


def test_an_array_rule_checks_every_item_against_its_enum() -> None:
    # Given
    profile = small_policy().profiles["notes"]

    # When
    with pytest.raises(InvalidRequest) as caught:
        check_request({"session": {"include": ["item.logprobs"]}}, "notes", profile, ga_param)

    # Then
    assert (caught.value.code, caught.value.param) == ("invalid_value", "session.include")


@pytest.mark.parametrize(
    "path", ["audio.output.colour", "temperature", "audio.speakers", "audio.input.gain", "", "audio."]
)
def test_a_field_openai_does_not_have_is_unknown(path: str) -> None:
    # Given
    request = {"session": nest(path, "x")} if path else {"session": {"": "x"}}

    # When
    error = refusal(request)

    # Then
    assert error.code == "unknown_parameter"
    assert error.param == f"session.{path}"


def test_a_known_field_the_policy_does_not_list_is_not_allowed() -> None:
    # Given a GA field that the profile neither fixes nor lets the caller set
    request = {"session": {"instructions": "Speak like a pirate."}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("parameter_not_allowed", "session.instructions")


def test_a_known_field_under_a_settable_parent_is_not_allowed() -> None:
    # Given turn detection is settable, but not its idle timeout
    request = {"session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 6000}}}}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("parameter_not_allowed", "session.audio.input.turn_detection.idle_timeout_ms")


def test_a_known_parent_sent_whole_instead_of_its_settable_fields_is_not_allowed() -> None:
    # Given transcription.prompt is settable, transcription itself is not
    request = {"session": {"audio": {"input": {"transcription": "whisper-1"}}}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("parameter_not_allowed", "session.audio.input.transcription")


def test_a_misspelt_field_under_a_settable_parent_is_unknown() -> None:
    # Given
    request = {"session": {"audio": {"input": {"turn_detection": {"tpye": "server_vad"}}}}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("unknown_parameter", "session.audio.input.turn_detection.tpye")


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"tracing": {"metadata": {"k": "v"}}}, "session.tracing.metadata"),
        ({"prompt": {"variables": {"name": "x"}}}, "session.prompt.variables"),
    ],
)
def test_a_free_form_ga_object_the_policy_does_not_list_is_not_allowed(session: dict[str, Any], param: str) -> None:
    # Given a GA object whose keys OpenAI leaves to the caller
    request = {"session": session}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("parameter_not_allowed", param)


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"model": "gpt-realtime-mini"}, "session.model"),
        ({"model": "GPT-REALTIME"}, "session.model"),
        ({"audio": {"output": {"format": {"type": "audio/pcmu"}}}}, "session.audio.output.format.type"),
        ({"audio": {"output": {"format": None}}}, "session.audio.output.format"),
        ({"audio": {"output": {"format": {"rate": 16000}}}}, "session.audio.output.format.rate"),
        ({"audio": {"output": {"format": {"type": "audio/pcm", "rate": True}}}}, "session.audio.output.format.rate"),
        ({"audio": {"output": {"format": {"type": "audio/pcm", "extra": 1}}}}, "session.audio.output.format.extra"),
    ],
)
def test_a_fixed_field_cannot_be_sent_with_another_value(session: dict[str, Any], param: str) -> None:
    # Given / When
    error = refusal({"session": session})

    # Then a refusal that says whose rule it is and what an operator changes
    assert (error.code, error.param) == ("parameter_not_allowed", param)
    assert "profile 'voice'" in error.message
    assert "send exactly the fixed value" in error.message
    assert '"fixed"' in error.message
    assert "policy file" in error.message


@pytest.mark.parametrize(
    "session",
    [
        pytest.param({"model": "gpt-realtime"}, id="openai-samples-model"),
        pytest.param({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}}}, id="whole-object"),
        pytest.param({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000.0}}}}, id="same-number"),
        pytest.param({"audio": {"output": {"format": {"rate": 24000}}}}, id="one-key-of-it"),
    ],
)
def test_a_fixed_field_may_be_sent_with_its_own_value(session: dict[str, Any]) -> None:
    # Given a request that repeats what the profile fixes (OpenAI's documentation samples send the model)
    # When
    body = check_request({"session": session}, "voice", voice(), ga_param)

    # Then it passes, and the fixed values are what goes upstream
    assert body["session"]["model"] == "gpt-realtime"
    assert body["session"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}


def test_a_fixed_field_is_compared_after_beta_translation() -> None:
    # Given a profile that fixes the GA output modalities, and a beta request that says the same in beta words
    document = changed(SMALL_POLICY, (*VOICE, "fixed"), {"model": "gpt-realtime", "output_modalities": ["audio"]})
    del document["profiles"]["voice"]["settable"]["output_modalities"]
    profile = validated(document).profiles["voice"]
    request = beta_to_ga({"model": "gpt-realtime", "modalities": ["audio", "text"]}, "realtime")

    # When
    body = check_request(request, "voice", profile, BetaNames(FIELDS["realtime"]))

    # Then
    assert body["session"]["output_modalities"] == ["audio"]


def test_a_parent_of_a_fixed_field_cannot_be_sent_either() -> None:
    # Given the output format is fixed, and the caller sends the whole output as null
    request = {"session": {"audio": {"output": None}}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("parameter_not_allowed", "session.audio.output")


def test_a_session_type_other_than_the_profiles_is_refused() -> None:
    # Given
    request = {"session": {"type": "transcription"}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("invalid_value", "session.type")


@pytest.mark.parametrize("key", ["sesion", "client_secret", "model"])
def test_an_unknown_top_level_key_is_refused(key: str) -> None:
    # Given
    request: dict[str, Any] = {"session": {}, key: {}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("unknown_parameter", key)


@pytest.mark.parametrize("session", ["realtime", None, [], 1])
def test_a_session_that_is_not_an_object_is_refused(session: Any) -> None:
    # Given / When
    error = refusal({"session": session})

    # Then
    assert (error.code, error.param) == ("invalid_type", "session")


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"audio.output.voice": "ash"}, "session.audio.output.voice"),
        ({"audio.input": {"turn_detection": None}}, "session.audio.input"),
        ({"audio": {"output.voice": "ash"}}, "session.audio.output.voice"),
    ],
)
def test_a_key_containing_a_dot_is_unknown(session: dict[str, Any], param: str) -> None:
    # Given a flat key spelling a nested path
    request = {"session": session}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("unknown_parameter", param)


def test_a_dotted_key_overlapping_a_nested_one_is_refused_not_a_crash() -> None:
    # Given
    request = {
        "session": {
            "audio.input.turn_detection": None,
            "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
        }
    }

    # When
    error = refusal(request)

    # Then
    assert error.code == "unknown_parameter"


def test_errors_name_the_path_the_way_the_caller_spelled_it() -> None:
    # Given a caller whose names differ from GA paths
    def spelled(path: str) -> str:
        return {"session.audio.output.voice": "voice"}.get(path, path)

    # When
    with pytest.raises(InvalidRequest) as caught:
        check_request({"session": {"audio": {"output": {"voice": "nova"}}}}, "voice", voice(), spelled)

    # Then
    assert caught.value.param == "voice"
    assert "'voice'" in caught.value.message


def test_a_long_unknown_path_is_clipped() -> None:
    # Given
    key = "k" * 500

    # When
    error = refusal({"session": {key: 1}})

    # Then
    assert error.param is not None
    assert len(error.param) <= 70


@pytest.mark.parametrize("expires_after", [None, {}, {"anchor": "created_at"}])
def test_without_seconds_the_profiles_default_lifetime_is_used(expires_after: dict[str, Any] | None) -> None:
    # Given
    request: dict[str, Any] = {} if expires_after is None else {"expires_after": expires_after}

    # When
    body = check_request(request, "voice", voice(), ga_param)

    # Then
    assert body["expires_after"] == {"anchor": "created_at", "seconds": 60}


def test_an_explicit_null_lifetime_is_the_default() -> None:
    # Given / When
    body = check_request({"expires_after": None}, "voice", voice(), ga_param)

    # Then
    assert body["expires_after"] == {"anchor": "created_at", "seconds": 60}


@pytest.mark.parametrize("seconds", [30, 300, 600])
def test_a_lifetime_within_the_bounds_is_kept(seconds: int) -> None:
    # Given
    request = {"expires_after": {"seconds": seconds}}

    # When
    body = check_request(request, "voice", voice(), ga_param)

    # Then
    assert body["expires_after"] == {"anchor": "created_at", "seconds": seconds}


@pytest.mark.parametrize(
    ("expires_after", "code", "param"),
    [
        ({"seconds": 29}, "invalid_value", "expires_after.seconds"),
        ({"seconds": 601}, "invalid_value", "expires_after.seconds"),
        ({"seconds": 7200}, "invalid_value", "expires_after.seconds"),
        ({"seconds": "60"}, "invalid_type", "expires_after.seconds"),
        ({"seconds": 60.0}, "invalid_type", "expires_after.seconds"),
        ({"seconds": True}, "invalid_type", "expires_after.seconds"),
        ({"seconds": None}, "invalid_type", "expires_after.seconds"),
        ({"anchor": "now", "seconds": 60}, "invalid_value", "expires_after.anchor"),
        ({"anchor": None}, "invalid_value", "expires_after.anchor"),
        ({"seconds": 60, "minutes": 1}, "unknown_parameter", "expires_after.minutes"),
        (60, "invalid_type", "expires_after"),
        ("60s", "invalid_type", "expires_after"),
    ],
)
def test_a_lifetime_outside_the_rules_is_refused(expires_after: Any, code: str, param: str) -> None:
    # Given / When
    error = refusal({"expires_after": expires_after})

    # Then
    assert (error.code, error.param) == (code, param)


def test_a_turn_detection_without_its_type_is_refused_before_openai() -> None:
    # Given a turn_detection object without the type OpenAI requires
    request = {"session": {"audio": {"input": {"turn_detection": {"silence_duration_ms": 500}}}}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("missing_required_parameter", "session.audio.input.turn_detection.type")


def test_a_huge_integer_for_a_number_is_a_value_error_not_a_crash() -> None:
    # Given an integer too large for a float, where the rule wants a number
    request = {"session": {"audio": {"output": {"speed": 10**400}}}}

    # When
    error = refusal(request)

    # Then
    assert (error.code, error.param) == ("invalid_value", "session.audio.output.speed")


def _with_default(path: str, rule: dict[str, Any]) -> Profile:
    return validated(changed(SMALL_POLICY, (*SETTABLE, path), rule)).profiles["voice"]


def test_a_default_is_sent_when_the_request_leaves_the_field_out() -> None:
    # Given a settable voice with a default
    profile = _with_default("audio.output.voice", {"type": "string", "enum": ["alloy", "ash"], "default": "ash"})

    # When a request leaves the voice out, and when it sends one
    left_out = check_request({"session": {"audio": {"output": {"speed": 1.2}}}}, "voice", profile, ga_param)
    chosen = check_request({"session": {"audio": {"output": {"voice": "alloy"}}}}, "voice", profile, ga_param)

    # Then the default fills in only what was left out
    assert left_out["session"]["audio"]["output"] == {
        "speed": 1.2,
        "voice": "ash",
        "format": {"type": "audio/pcm", "rate": 24000},
    }
    assert chosen["session"]["audio"]["output"]["voice"] == "alloy"


def test_what_the_policy_fixed_or_filled_in_is_the_policys_and_a_callers_own_choice_is_not() -> None:
    # Given the shipped assistant (instructions fixed, the model settable with a default) and the bodies it built
    profile = shipped("assistant")
    defaulted = check_request({}, "assistant", profile, ga_param)["session"]
    chosen = check_request({"session": {"model": "gpt-realtime-2.1-mini"}}, "assistant", profile, ga_param)["session"]
    voiced = check_request({"session": {"audio": {"output": {"voice": "ash"}}}}, "assistant", profile, ga_param)

    # When / Then OpenAI refusing a fixed field, or a default the caller left to the policy, is the operator's to
    # fix; refusing a model or voice the caller chose is the caller's
    assert profile.sets("instructions", defaulted)
    assert profile.sets("model", defaulted)
    assert not profile.sets("model", chosen)
    assert not profile.sets("audio.output.voice", voiced["session"])
