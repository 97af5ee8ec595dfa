"""The four routes, driven by the events/ files through the real handler, moto and the OpenAI stub; the
caller each event's authorizer names, its safety identifier, and the profiles its claims open."""

import base64
import copy
import json
import os
import re
from http import HTTPStatus
from typing import Any

import pytest

from openai_stub.schema import beta_errors, ga_errors
from openai_stub.server import OpenAIStub
from tests import function_caches
from tests.callers import expected_safety_identifier
from tests.events import load_event
from tests.keys import TEST_API_KEY
from tests.lambda_context import LambdaContext
from tests.output import Output
from voice_access.edge.app import lambda_handler
from voice_access.edge.request_body import MAX_BODY_BYTES

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
    assert upstream["session"]["model"] == "gpt-realtime-2.1"
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
    assert sent_upstream(openai_stub)["session"]["model"] == "gpt-realtime-2.1"


@pytest.mark.parametrize(
    ("event_name", "changes", "status", "code", "param"),
    [
        pytest.param(
            "client_secrets_rejected.json",
            {},
            HTTPStatus.BAD_REQUEST,
            "parameter_not_allowed",
            "session.instructions",
            id="fixed-field",
        ),
        pytest.param(
            "client_secrets.json",
            {"body": {"session": {"type": "realtime", "model": "gpt-realtime-mini"}}},
            HTTPStatus.BAD_REQUEST,
            "invalid_value",
            "session.model",
            id="model-outside-the-list",
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
    assert minted[0]["model"] == "gpt-realtime-2.1"
    # And the metrics say which endpoint and profile minted, and how long OpenAI took
    assert output.metric_count("ClientSecretsMinted", endpoint="client_secrets", profile="assistant") == 1
    metrics = output.metrics()
    assert any("UpstreamLatency" in m for m in metrics)
    # in the stack's own namespace (template.yaml: TokenVending/${AWS::StackName}; the local stack is "local")
    namespace = os.environ["POWERTOOLS_METRICS_NAMESPACE"]
    assert namespace == "TokenVending/local"
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == namespace for m in metrics)


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


# --- the caller ---------------------------------------------------------------------------------------


def with_claims(event: dict[str, Any], **claims: str) -> dict[str, Any]:
    """The event with these JWT claims set, as API Gateway passes them (every value a string)."""
    changed = copy.deepcopy(event)
    changed["requestContext"]["authorizer"]["jwt"]["claims"].update(claims)
    return changed


def premium_member(event: dict[str, Any]) -> dict[str, Any]:
    """The event's user, in the user pool's premium group (API Gateway flattens the array)."""
    return with_claims(event, **{"cognito:groups": "[premium]"})


@pytest.mark.parametrize(
    "event_name",
    [
        "client_secrets.json",
        "client_secrets_transcription.json",
        "sessions.json",
        "transcription_sessions.json",
        "translation_client_secrets.json",
    ],
)
def test_every_mint_names_its_caller_to_openai_by_safety_identifier(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, event_name: str
) -> None:
    # Given an event whose authorizer vouched for a signed-in user
    event = load_event(event_name)

    # When it is invoked twice
    statuses = [invoke(event, lambda_context)[0] for _ in range(2)]

    # Then OpenAI got the HMAC of the user's issuer and subject both times, and never the subject itself
    assert statuses == [HTTPStatus.OK] * 2
    expected = expected_safety_identifier(event)
    assert [request.safety_identifier for request in openai_stub.requests] == [expected] * 2
    subject = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    assert not [request for request in openai_stub.requests if subject in request.body.decode()]
    # And the mint's log line names the user by the same identifier
    minted = [line for line in output.logs() if line["message"] == "client secret minted"]
    assert [line["user"] for line in minted] == [expected] * 2


def test_one_user_has_one_identifier_and_another_user_another(
    openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given two requests by the same user (other groups, another token) and one by someone else
    same_user = [load_event("client_secrets.json"), premium_member(load_event("sessions.json"))]
    other_user = with_claims(load_event("client_secrets.json"), sub="0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5")

    # When each is invoked
    for event in [*same_user, other_user]:
        assert invoke(event, lambda_context)[0] == HTTPStatus.OK

    # Then the user is stable across calls, and the other user differs
    first, second, third = (request.safety_identifier for request in openai_stub.requests)
    assert first == second != third
    assert third == expected_safety_identifier(other_user)


def test_an_iam_caller_mints_with_its_own_identifier(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a SigV4 request (CallerAuth=iam): the IAM principal is the caller
    event = load_event("client_secrets_iam.json")

    # When it is invoked
    status, _, _ = invoke(event, lambda_context)

    # Then it mints, naming the principal by the HMAC of its account and ARN
    assert status == HTTPStatus.OK
    [request] = openai_stub.requests
    assert request.safety_identifier == expected_safety_identifier(event)
    assert "arn:aws:sts" not in output.text()


def test_a_premium_member_gets_the_premium_profile_by_default(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a member of the premium group asking without naming a profile
    event = premium_member(load_event("client_secrets.json", body={"session": {"type": "realtime"}}))

    # When it is invoked
    status, _, _ = invoke(event, lambda_context)

    # Then the first default the caller may use is theirs: premium, with its longer default TTL
    assert status == HTTPStatus.OK
    assert output.metric_count("ClientSecretsMinted", endpoint="client_secrets", profile="premium") == 1
    assert sent_upstream(openai_stub)["expires_after"]["seconds"] == 300


def test_an_ordinary_caller_gets_the_open_default(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a user in no group, asking without naming a profile
    event = load_event("client_secrets.json", body={"session": {"type": "realtime"}})

    # When it is invoked
    status, _, _ = invoke(event, lambda_context)

    # Then the profile open to everyone is theirs
    assert status == HTTPStatus.OK
    assert output.metric_count("ClientSecretsMinted", endpoint="client_secrets", profile="assistant") == 1
    assert sent_upstream(openai_stub)["expires_after"]["seconds"] == 60


@pytest.mark.parametrize("event_name", ["client_secrets.json", "sessions.json", "client_secrets_iam.json"])
def test_a_profile_the_caller_may_not_use_is_a_403_and_nothing_goes_upstream(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, event_name: str
) -> None:
    # Given a caller outside the premium group naming the premium profile
    event = load_event(event_name)
    event["headers"]["x-profile"] = "premium"

    # When it is invoked
    status, headers, body = invoke(event, lambda_context)

    # Then OpenAI's permission error envelope (the SDKs' PermissionDeniedError), naming the header
    assert status == HTTPStatus.FORBIDDEN
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "message": body["error"]["message"],
            "param": "X-Profile",
            "code": "permission_denied",
        }
    }
    assert "premium" in body["error"]["message"]
    assert headers["Content-Type"] == "application/json"
    # And nothing went upstream; the refusal is logged with the caller's pseudonymous id and counted
    assert openai_stub.requests == []
    [rejected] = [line for line in output.logs() if line["message"] == "request rejected"]
    assert (rejected["reason"], rejected["user"]) == ("permission_denied", expected_safety_identifier(event))
    assert output.metric_count("RequestsRejected", reason="permission_denied") == 1


def test_a_request_the_policy_refuses_is_logged_with_its_caller(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a request the policy refuses
    event = load_event("client_secrets_rejected.json")

    # When it is invoked
    status, _, _ = invoke(event, lambda_context)

    # Then the refusal names the caller by its safety identifier
    assert status == HTTPStatus.BAD_REQUEST
    [rejected] = [line for line in output.logs() if line["message"] == "request rejected"]
    assert rejected["user"] == expected_safety_identifier(event)


def test_an_invalid_request_is_refused_even_when_the_secret_cannot_be_read(
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a secret the function cannot read (no such secret)
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ID", "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf")
    function_caches.reread_settings()

    # When an invalid request and a valid one come in
    rejected, _, rejected_body = invoke(load_event("client_secrets_rejected.json"), lambda_context)
    valid, _, valid_body = invoke(load_event("client_secrets.json"), lambda_context)

    # Then the invalid one is told what is wrong with it; the valid one gets the deployment's 500
    assert (rejected, rejected_body["error"]["code"]) == (HTTPStatus.BAD_REQUEST, "parameter_not_allowed")
    assert (valid, valid_body["error"]["code"]) == (HTTPStatus.INTERNAL_SERVER_ERROR, "api_key_missing")
    assert openai_stub.requests == []


@pytest.mark.parametrize(
    "authorizer",
    [pytest.param(None, id="no-authorizer"), pytest.param({}, id="empty"), pytest.param({"lambda": {}}, id="lambda")],
)
def test_a_request_without_a_caller_is_the_deployments_fault(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, authorizer: dict[str, Any] | None
) -> None:
    # Given a route that reached the function without an authorizer
    event = load_event("client_secrets.json")
    if authorizer is None:
        del event["requestContext"]["authorizer"]
    else:
        event["requestContext"]["authorizer"] = authorizer

    # When it is invoked
    status, _, body = invoke(event, lambda_context)

    # Then a 500 telling the operator to fix the deployment; nothing went upstream
    assert status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert body == {
        "error": {
            "type": "server_error",
            "message": body["error"]["message"],
            "param": None,
            "code": "caller_unidentified",
        }
    }
    assert "operator must fix its deployment" in body["error"]["message"]
    assert openai_stub.requests == []
    # And the operator sees why, as an error, counted as a configuration error
    [logged] = [line for line in output.logs() if line["level"] == "ERROR"]
    assert logged["reason"] == "caller_unidentified"
    assert output.metric_count("ConfigurationErrors", reason="caller_unidentified") == 1


HOSTILE = '\n\r\x00\u2028\u2029\x1b[31m"}{'


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"cognito:groups": "[" + "premium-" * 131_072 + "]"}, id="a-1-MB-groups-claim"),
        pytest.param({"cognito:groups": "[" + "g " * 524_288 + "premium]"}, id="half-a-million-groups"),
        pytest.param({"sub": f"user{HOSTILE}", "iss": f"https://issuer.example{HOSTILE}"}, id="control-characters"),
        pytest.param({"sub": "s" * 1_000_000}, id="a-1-MB-subject"),
        pytest.param({"username": HOSTILE * 1000, "scope": HOSTILE}, id="other-claims"),
    ],
)
def test_a_hostile_claim_never_breaks_a_log_line_or_a_metric(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, claims: dict[str, str]
) -> None:
    # Given a token whose claims are huge or hold control and line-separator characters
    event = with_claims(load_event("client_secrets.json"), **claims)
    refused = copy.deepcopy(event)
    refused["headers"]["x-profile"] = "premium"

    # When it mints, and asks for a profile it may not use
    minted_status, _, _ = invoke(event, lambda_context)
    refused_status, _, _ = invoke(refused, lambda_context)

    # Then the mint went through as for anyone (no group of the huge claims counts), named by a hex identifier
    assert (minted_status, refused_status) == (HTTPStatus.OK, HTTPStatus.FORBIDDEN)
    [request] = openai_stub.requests
    assert request.safety_identifier == expected_safety_identifier(event)
    # And every line written is one JSON object, small, carrying no claim
    lines = output.text().splitlines()
    assert lines
    for line in lines:
        assert line.startswith("{")
        assert len(line) < 4096
        json.loads(line)
    for value in claims.values():
        assert value[:12] not in output.text()
        assert json.dumps(value)[1:13] not in output.text()  # nor its escaped form
    # And the metrics carry only this service's own dimensions: short names of its own
    for document in output.metrics():
        for dimension in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]:
            assert re.fullmatch(r"[a-z0-9_-]{1,64}", document[dimension]), dimension


def test_a_warm_container_never_names_the_previous_caller(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a warm container that has just minted for a user
    assert invoke(load_event("client_secrets.json"), lambda_context)[0] == HTTPStatus.OK

    # When the next request has a body that is not JSON (refused before the caller is named)
    status, _, _ = invoke(load_event("client_secrets.json", body="{not json"), lambda_context)

    # Then its refusal carries no user: not the previous caller's
    assert status == HTTPStatus.BAD_REQUEST
    [rejected] = [line for line in output.logs() if line["message"] == "request rejected"]
    assert "user" not in rejected
