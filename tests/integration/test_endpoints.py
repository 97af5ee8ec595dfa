"""The three routes, driven by the events/ files through the real handler, moto and the OpenAI stub."""

import base64
import json
from http import HTTPStatus
from typing import Any

import pytest

from local.openai_schema import beta_errors, ga_errors
from local.openai_stub import OpenAIStub
from tests.conftest import TEST_API_KEY, LambdaContext, Output, load_event
from token_vending.app import lambda_handler
from token_vending.request_body import MAX_BODY_BYTES

pytestmark = pytest.mark.usefixtures("function_env")


def invoke(event: dict[str, Any], context: LambdaContext) -> tuple[int, dict[str, str], dict[str, Any]]:
    answer = lambda_handler(event, context)
    return answer["statusCode"], answer["headers"], json.loads(answer["body"])


def sent_upstream(stub: OpenAIStub) -> dict[str, Any]:
    """The one body the function sent to OpenAI, checked against the official GA schema."""
    assert len(stub.requests) == 1
    request = stub.requests[0]
    assert request.path == "/v1/realtime/client_secrets"
    assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    assert "openai-beta" not in request.headers
    assert ga_errors("RealtimeCreateClientSecretRequest", request.json) == []
    assert isinstance(request.json, dict)
    return request.json


def test_ga_client_secret_is_minted_with_the_policy_applied(
    openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given a GA request that sets only what the default profile lets a caller set
    event = load_event("client_secrets.json")

    # When it is invoked
    status, headers, body = invoke(event, lambda_context)

    # Then the caller gets OpenAI's GA answer, uncached
    assert status == HTTPStatus.OK
    assert body["value"].startswith("ek_")
    assert ga_errors("RealtimeCreateClientSecretResponse", body) == []
    assert headers["Cache-Control"] == "no-store"
    assert headers["x-request-id"] == event["requestContext"]["requestId"]
    # And OpenAI got the caller's choices merged under the server's fixed fields
    upstream = sent_upstream(openai_stub)
    assert upstream["expires_after"] == {"anchor": "created_at", "seconds": 120}
    assert upstream["session"]["model"] == "gpt-realtime"
    assert upstream["session"]["audio"]["output"]["voice"] == "marin"
    assert upstream["session"]["instructions"]


def test_ga_transcription_session_uses_the_transcription_profile(
    openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given a GA request for a transcription session
    event = load_event("client_secrets_transcription.json")

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then a transcription secret is minted with the profile's default TTL
    assert status == HTTPStatus.OK
    assert body["session"]["type"] == "transcription"
    assert ga_errors("RealtimeCreateClientSecretResponse", body) == []
    assert sent_upstream(openai_stub)["expires_after"]["seconds"] == 60


def test_a_translation_client_secret_is_minted_with_the_policy_applied(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given OpenAI's own sample request for a translation client secret
    event = load_event("translation_client_secrets.json")

    # When it is invoked
    answer = lambda_handler(event, lambda_context)

    # Then the caller gets OpenAI's answer as it came, and the mint is counted under its endpoint
    assert answer["statusCode"] == HTTPStatus.OK
    body = json.loads(answer["body"])
    assert body["value"].startswith("ek_")
    assert ga_errors("RealtimeTranslationClientSecretCreateResponse", body) == []
    assert answer["body"].encode() == openai_stub.answers[-1]
    assert output.metric_count("ClientSecretsMinted", endpoint="translation_client_secrets", profile="translation") == 1
    # And OpenAI's translation call got the profile's model and the caller's language, with no session type
    [request] = openai_stub.requests
    assert request.path == "/v1/realtime/translations/client_secrets"
    assert ga_errors("RealtimeTranslationClientSecretCreateRequest", request.json) == []
    assert isinstance(request.json, dict)
    assert request.json["session"]["model"] == "gpt-realtime-translate"
    assert request.json["session"]["audio"]["output"] == {"language": "es"}
    assert "type" not in request.json["session"]
    assert request.json["expires_after"] == {"anchor": "created_at", "seconds": 300}


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        (
            {"model": "gpt-realtime-translate", "audio": {"output": {"language": "xx"}}},
            "invalid_value",
            "session.audio.output.language",
        ),
        ({"model": "gpt-realtime-translate-mini"}, "parameter_not_allowed", "session.model"),
        ({"type": "translation"}, "unknown_parameter", "session.type"),
        (
            {"audio": {"input": {"transcription": {}}}},
            "missing_required_parameter",
            "session.audio.input.transcription.model",
        ),
        ({"instructions": "Translate freely."}, "unknown_parameter", "session.instructions"),
    ],
)
def test_a_translation_request_outside_the_policy_is_refused(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, session: dict[str, Any], code: str, param: str
) -> None:
    # Given a translation request the policy or OpenAI's schema does not allow
    event = load_event("translation_client_secrets.json", body={"session": session})

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then a 400 naming the field, and nothing reached OpenAI
    assert status == HTTPStatus.BAD_REQUEST
    assert (body["error"]["code"], body["error"]["param"]) == (code, param)
    assert openai_stub.requests == []


def test_the_ga_answer_is_openais_own(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given a GA request
    event = load_event("client_secrets.json")

    # When it is invoked
    answer = lambda_handler(event, lambda_context)

    # Then the body is OpenAI's answer byte for byte, not parsed and written again
    assert answer["statusCode"] == HTTPStatus.OK
    assert answer["body"].encode() == openai_stub.answers[-1]


def test_a_profile_is_chosen_with_the_x_profile_header(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a request that names its profile in the X-Profile header
    event = load_event("client_secrets_profile.json")

    # When it is invoked
    status, _, _ = invoke(event, lambda_context)

    # Then it is minted under that profile, and counted so
    assert status == HTTPStatus.OK
    assert output.metric_count("ClientSecretsMinted", endpoint="client_secrets", profile="transcription") == 1


def test_beta_session_is_translated_to_ga_and_back(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given a beta createRealtimeSession request
    event = load_event("sessions.json")

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then the caller gets the beta answer, the secret nested under client_secret
    assert status == HTTPStatus.OK
    assert beta_errors("RealtimeSessionCreateResponse", body) == []
    assert body["client_secret"]["value"].startswith("ek_")
    assert body["voice"] == "marin"
    assert body["modalities"] == ["audio", "text"]
    assert body["input_audio_format"] == "pcm16"
    # And OpenAI got the GA shape
    session = sent_upstream(openai_stub)["session"]
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"] == {"type": "server_vad", "silence_duration_ms": 500}


def test_beta_transcription_session_is_translated_to_ga_and_back(
    openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given a beta transcription session request
    event = load_event("transcription_sessions.json")

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then the answer has the beta transcription shape
    assert status == HTTPStatus.OK
    assert beta_errors("RealtimeTranscriptionSessionCreateResponse", body) == []
    assert body["input_audio_format"] == "g711_ulaw"
    session = sent_upstream(openai_stub)["session"]
    assert session["type"] == "transcription"
    assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}


def test_a_base64_body_from_api_gateway_is_decoded(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given an event whose body API Gateway base64-encoded
    event = load_event("client_secrets_base64.json")

    # When it is invoked
    status, _, _ = invoke(event, lambda_context)

    # Then it is minted like any other
    assert status == HTTPStatus.OK
    sent_upstream(openai_stub)


def test_an_sdk_call_without_a_body_gets_the_profile_defaults(
    openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given a beta call with no body at all
    event = load_event("sessions.json", body="")

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then the default profile decides everything
    assert status == HTTPStatus.OK
    assert beta_errors("RealtimeSessionCreateResponse", body) == []
    assert sent_upstream(openai_stub)["session"]["model"] == "gpt-realtime"


@pytest.mark.parametrize(
    ("event_name", "changes", "status", "code", "param"),
    [
        pytest.param(
            "client_secrets_rejected.json",
            {},
            HTTPStatus.BAD_REQUEST,
            "parameter_not_allowed",
            "session.model",
            id="fixed-field",
        ),
        pytest.param(
            "sessions_rejected.json",
            {},
            HTTPStatus.BAD_REQUEST,
            "unsupported_parameter",
            "temperature",
            id="beta-temperature",
        ),
        pytest.param(
            "client_secrets.json", {"body": "{not json"}, HTTPStatus.BAD_REQUEST, "invalid_json", None, id="not-json"
        ),
        pytest.param(
            "client_secrets.json", {"body": "[1, 2]"}, HTTPStatus.BAD_REQUEST, "invalid_type", None, id="not-an-object"
        ),
        pytest.param(
            "client_secrets.json",
            {"body": json.dumps({"session": {"instructions": "x" * MAX_BODY_BYTES}})},
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "request_too_large",
            None,
            id="oversized",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"type": "realtime", "voice": "marin"}}},
            HTTPStatus.BAD_REQUEST,
            "unknown_parameter",
            "session.voice",
            id="unknown-field",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"audio": {"output": {"speed": "fast"}}}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_type",
            "session.audio.output.speed",
            id="wrong-type",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"audio": {"output": {"voice": "shouty"}}}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "session.audio.output.voice",
            id="outside-policy",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"tools": [{"type": "function", "name": "lookup"}]}}},
            HTTPStatus.BAD_REQUEST,
            "parameter_not_allowed",
            "session.tools",
            id="server-fixed-tools",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"prompt": {"id": "pmpt_1"}}}},
            HTTPStatus.BAD_REQUEST,
            "parameter_not_allowed",
            "session.prompt.id",
            id="not-settable",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"expires_after": {"anchor": "created_at", "seconds": 7200}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "expires_after.seconds",
            id="ttl-above-profile",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"expires_after": {"seconds": 5}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "expires_after.seconds",
            id="ttl-below-openai",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"type": "translation"}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "session.type",
            id="unknown-session-type",
        ),
        pytest.param(
            "sessions.json",
            {"body": {"voice": "ash", "speed": 3}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "speed",
            id="beta-outside-policy",
        ),
        pytest.param(
            "sessions.json",
            {"body": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "turn_detection.eagerness",
            id="beta-nested-name",
        ),
        pytest.param(
            "sessions.json",
            {"body": {"input_audio_format": "mp3"}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "input_audio_format",
            id="beta-format",
        ),
        pytest.param(
            "sessions.json",
            {"body": {"instructions": "Be evil."}},
            HTTPStatus.BAD_REQUEST,
            "parameter_not_allowed",
            "instructions",
            id="beta-fixed-field",
        ),
        pytest.param(
            "transcription_sessions.json",
            {"body": {"voice": "ash"}},
            HTTPStatus.BAD_REQUEST,
            "unknown_parameter",
            "voice",
            id="beta-transcription-unknown",
        ),
    ],
)
def test_bad_input_gets_a_4xx_envelope_and_nothing_reaches_openai(
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    event_name: str,
    changes: dict[str, Any],
    status: HTTPStatus,
    code: str,
    param: str | None,
) -> None:
    # Given a request the service must refuse
    event = load_event(event_name, **changes)

    # When it is invoked
    got_status, headers, body = invoke(event, lambda_context)

    # Then it gets OpenAI's error envelope naming the field
    assert got_status == status
    assert body == {
        "error": {"type": "invalid_request_error", "message": body["error"]["message"], "param": param, "code": code}
    }
    assert body["error"]["message"]
    assert headers["Content-Type"] == "application/json"
    assert beta_errors("ErrorResponse", body) == []
    # And nothing went upstream, and the rejection was counted by reason
    assert openai_stub.requests == []
    assert output.metric_count("RequestsRejected", reason=code) == 1


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
        ("application/x-www-form-urlencoded", HTTPStatus.UNSUPPORTED_MEDIA_TYPE),
        ("application/json; charset=utf-8", HTTPStatus.OK),
    ],
)
def test_the_body_must_be_sent_as_json(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, content_type: str, status: HTTPStatus
) -> None:
    # Given a request with this content type
    event = load_event("client_secrets.json")
    event["headers"]["content-type"] = content_type

    # When it is invoked
    got_status, _, body = invoke(event, lambda_context)

    # Then only JSON is accepted
    assert got_status == status
    if status != HTTPStatus.OK:
        assert body["error"]["param"] == "Content-Type"
        assert openai_stub.requests == []


def test_an_unknown_profile_is_refused(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given a request naming a profile the policy does not have
    event = load_event("client_secrets.json")
    event["headers"]["x-profile"] = "admin"

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then it is refused, naming the header
    assert status == HTTPStatus.BAD_REQUEST
    assert body["error"]["code"] == "unknown_profile"
    assert body["error"]["param"] == "X-Profile"
    assert openai_stub.requests == []


def test_a_profile_of_the_other_session_type_is_refused(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given a beta realtime request that names the transcription profile
    event = load_event("sessions.json")
    event["headers"]["x-profile"] = "transcription"

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then it is refused
    assert status == HTTPStatus.BAD_REQUEST
    assert body["error"]["param"] == "X-Profile"
    assert openai_stub.requests == []


def test_an_invalid_policy_fails_closed(
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    # Given a deployment whose policy lets callers set a field OpenAI does not have
    broken = tmp_path / "policy.json"
    broken.write_text(
        json.dumps(
            {
                "version": 1,
                "default_profiles": {"realtime": "open"},
                "profiles": {
                    "open": {
                        "session_type": "realtime",
                        "expires_after": {"default_seconds": 60, "max_seconds": 60},
                        "settable": {"temperature": {"type": "number"}},
                    }
                },
            }
        )
    )
    monkeypatch.setenv("POLICY_PATH", str(broken))

    # When a request comes in
    status, _, body = invoke(load_event("client_secrets.json"), lambda_context)

    # Then nothing is minted, the log says why, and it is counted
    assert status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert body["error"]["code"] == "policy_invalid"
    assert openai_stub.requests == []
    refusal = next(line for line in output.logs() if line["message"].startswith("refusing to mint"))
    assert "temperature" in refusal["problem"]
    assert output.metric_count("ConfigurationErrors", reason="policy_invalid") == 1


def test_a_mint_is_logged_with_the_request_id_and_counted(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a GA request
    event = load_event("client_secrets.json")

    # When it is invoked
    invoke(event, lambda_context)

    # Then one structured line tells what was minted, correlated with API Gateway's request id
    minted = [line for line in output.logs() if line["message"] == "client secret minted"]
    assert len(minted) == 1
    assert minted[0]["correlation_id"] == event["requestContext"]["requestId"]
    assert minted[0]["profile"] == "assistant"
    assert minted[0]["model"] == "gpt-realtime"
    # And the metrics say which endpoint and profile minted, and how long OpenAI took
    assert output.metric_count("ClientSecretsMinted", endpoint="client_secrets", profile="assistant") == 1
    metrics = output.metrics()
    assert any("UpstreamLatency" in m for m in metrics)
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TokenVending" for m in metrics)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'{"session": {"type": "realtime", "audio": {"input": {"transcription": {"prompt": "\xed\xa0\x80"}}}}}',
            id="encoded-surrogate-in-a-value",
        ),
        pytest.param(b'{"session": {"type": "realtime", "\xed\xa0\x80": 1}}', id="encoded-surrogate-in-a-name"),
        pytest.param('{"session": {"type": "realtime"}}'.encode("utf-16"), id="utf-16"),
        pytest.param('{"session": {"type": "realtime"}}'.encode("utf-32"), id="utf-32"),
    ],
)
def test_a_body_that_is_not_utf8_is_refused_logged_and_never_sent(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, raw: bytes
) -> None:
    # Given API Gateway's base64 form of a body that is not strict UTF-8
    event = load_event("client_secrets.json", body=base64.b64encode(raw).decode(), isBase64Encoded=True)

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then a 400 in the envelope, nothing went upstream, and the rejection was logged and counted
    assert status == HTTPStatus.BAD_REQUEST
    assert body["error"]["code"] == "invalid_json"
    assert openai_stub.requests == []
    assert [line["reason"] for line in output.logs() if line["message"] == "request rejected"] == ["invalid_json"]
    assert output.metric_count("RequestsRejected", reason="invalid_json") == 1
