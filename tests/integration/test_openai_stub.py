"""The OpenAI stub answers like the official schema says, and its faults do what they promise."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.client import HTTPConnection, IncompleteRead
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from openai_stub.schema import GA_DOCUMENT, beta_errors, ga_errors, load_document
from openai_stub.server import (
    BETA_DISABLED_ERROR,
    CALLS_PATH,
    CLIENT_SECRETS_PATH,
    MAX_BODY_BYTES,
    MAX_OFFER_BYTES,
    MAX_TRAILER_BYTES,
    MAX_TRAILER_LINES,
    TRANSLATION_CLIENT_SECRETS_PATH,
    Fault,
    OpenAIStub,
)

API_KEY = "sk-test-stub"
# The read timeout of the tests that see it strike: long enough that a busy machine rarely trips it early.
SHORT_READ_TIMEOUT = 2.0
# What the function sends: an HMAC in hex.
SAFETY_ID = "3f1c" * 16
RESPONSE_SCHEMA = "RealtimeCreateClientSecretResponse"
REQUEST_SCHEMA = "RealtimeCreateClientSecretRequest"
TRANSLATION_RESPONSE_SCHEMA = "RealtimeTranslationClientSecretCreateResponse"
TRANSLATION_REQUEST_SCHEMA = "RealtimeTranslationClientSecretCreateRequest"

REALTIME_REQUEST: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 600},
    "session": {"type": "realtime", "model": "gpt-realtime", "instructions": "You are a friendly assistant."},
}
TRANSCRIPTION_REQUEST: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 120},
    "session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}},
}
FULL_REALTIME_REQUEST: dict[str, Any] = {
    "session": {
        "type": "realtime",
        "model": "gpt-realtime",
        "output_modalities": ["text"],
        "instructions": "Be brief.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "whisper-1", "language": "en"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
            },
            "output": {"format": {"type": "audio/pcma"}, "voice": "marin", "speed": 1.25},
        },
        "include": ["item.input_audio_transcription.logprobs"],
        "tracing": "auto",
        "tools": [{"type": "function", "name": "lookup", "description": "Look up", "parameters": {"type": "object"}}],
        "tool_choice": "required",
        "max_output_tokens": 512,
        "truncation": "disabled",
    }
}


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(API_KEY) as running:
        yield running
    assert running.handler_errors == []


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    # No retries: every test sees exactly what the stub did to one request.
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=10.0))
    yield pool
    pool.clear()


def post(
    http: urllib3.PoolManager,
    stub: OpenAIStub,
    body: object,
    *,
    path: str = CLIENT_SECRETS_PATH,
    api_key: str | None = API_KEY,
    safety_identifier: str | None = SAFETY_ID,
    timeout: urllib3.Timeout | None = None,
) -> urllib3.BaseHTTPResponse:
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    if safety_identifier is not None:
        headers["OpenAI-Safety-Identifier"] = safety_identifier
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.request("POST", stub.base_url + path, body=raw, headers=headers, timeout=timeout)


def auth_headers() -> dict[str, str]:
    return {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "OpenAI-Safety-Identifier": SAFETY_ID,
    }


def error_of(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    payload = response.json()
    assert ga_errors("ErrorResponse", payload) == []
    error: dict[str, Any] = payload["error"]
    return error


# --- success ---------------------------------------------------------------------------------------


def test_realtime_secret_matches_the_official_response_schema(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given the official example request
    # When it is sent with the right key
    before = int(time.time())
    response = post(http, stub, REALTIME_REQUEST)
    after = int(time.time())

    # Then the answer is a spec-valid realtime client secret
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])
    answer = response.json()
    assert ga_errors(RESPONSE_SCHEMA, answer) == []
    assert re.fullmatch(r"ek_[0-9a-f]{32}", answer["value"])
    assert before + 600 <= answer["expires_at"] <= after + 600
    session = answer["session"]
    assert session["type"] == "realtime"
    assert session["object"] == "realtime.session"
    assert re.fullmatch(r"sess_[A-Za-z0-9]{21}", session["id"])
    assert session["instructions"] == "You are a friendly assistant."
    assert session["audio"]["output"]["voice"] == "alloy"
    # And the stub remembers the secret and the request
    assert stub.minted == [answer["value"]]
    [recorded] = stub.requests
    assert (recorded.method, recorded.path) == ("POST", CLIENT_SECRETS_PATH)
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"
    assert recorded.json == REALTIME_REQUEST
    assert recorded.schema_errors == []


def test_transcription_secret_matches_the_official_response_schema(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a transcription session request expiring after 120 s
    # When it is sent
    before = int(time.time())
    response = post(http, stub, TRANSCRIPTION_REQUEST)
    after = int(time.time())

    # Then the answer is a spec-valid transcription client secret
    assert response.status == HTTPStatus.OK
    answer = response.json()
    assert ga_errors(RESPONSE_SCHEMA, answer) == []
    assert before + 120 <= answer["expires_at"] <= after + 120
    session = answer["session"]
    assert (session["type"], session["object"]) == ("transcription", "realtime.transcription_session")
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    assert stub.minted == [answer["value"]]


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param({}, id="empty-body-defaults"),
        pytest.param({"session": {"type": "realtime"}}, id="bare-realtime"),
        pytest.param({"session": {"type": "transcription"}}, id="bare-transcription"),
        pytest.param(FULL_REALTIME_REQUEST, id="every-realtime-field"),
        pytest.param(
            {"session": {"type": "realtime", "tracing": None, "audio": {"input": {"turn_detection": None}}}},
            id="nulls-that-switch-off",
        ),
    ],
)
def test_every_valid_request_gets_a_schema_valid_answer(
    stub: OpenAIStub, http: urllib3.PoolManager, request_body: dict[str, Any]
) -> None:
    # Given a request the official schema accepts
    assert ga_errors(REQUEST_SCHEMA, request_body) == []

    # When it is sent
    response = post(http, stub, request_body)

    # Then the answer validates and echoes the requested session type
    assert response.status == HTTPStatus.OK
    answer = response.json()
    assert ga_errors(RESPONSE_SCHEMA, answer) == []
    assert answer["session"]["type"] == request_body.get("session", {}).get("type", "realtime")


def test_chunked_request_body_is_read(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a request body sent in chunks
    chunks = [b'{"session": ', b'{"type": "realtime"}}']

    # When it is posted without a Content-Length
    response = http.request(
        "POST",
        stub.base_url + CLIENT_SECRETS_PATH,
        body=iter(chunks),
        chunked=True,
        headers=auth_headers(),
    )

    # Then the stub parsed it whole
    assert response.status == HTTPStatus.OK
    assert stub.requests[0].json == {"session": {"type": "realtime"}}


# --- translation client secrets ----------------------------------------------------------------------


def _translation_example() -> dict[str, Any]:
    """The request of the spec's own curl example for the translation route."""
    curl = load_document(GA_DOCUMENT)["paths"]["/realtime/translations/client_secrets"]["post"]["x-oaiMeta"]
    example: dict[str, Any] = json.loads(curl["examples"]["request"]["curl"].split("-d '", 1)[1].rsplit("'", 1)[0])
    return example


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param(_translation_example(), id="official-example"),
        pytest.param({"session": {"model": "gpt-realtime-translate"}}, id="model-only"),
        pytest.param(
            {
                "expires_after": {"anchor": "created_at", "seconds": 120},
                "session": {
                    "model": "gpt-realtime-translate",
                    "audio": {
                        "input": {"transcription": None, "noise_reduction": {"type": "far_field"}},
                        "output": {"language": "de"},
                    },
                },
            },
            id="noise-reduction-no-transcription",
        ),
    ],
)
def test_a_translation_secret_matches_the_official_response_schema(
    stub: OpenAIStub, http: urllib3.PoolManager, request_body: dict[str, Any]
) -> None:
    # Given a translation request the official schema accepts
    assert ga_errors(TRANSLATION_REQUEST_SCHEMA, request_body) == []

    # When it is sent to the translation route
    before = int(time.time())
    response = post(http, stub, request_body, path=TRANSLATION_CLIENT_SECRETS_PATH)

    # Then the answer is a spec-valid translation client secret echoing the requested session
    assert response.status == HTTPStatus.OK
    answer = response.json()
    assert ga_errors(TRANSLATION_RESPONSE_SCHEMA, answer) == []
    assert re.fullmatch(r"ek_[0-9a-f]{32}", answer["value"])
    seconds = request_body.get("expires_after", {}).get("seconds", 600)
    assert before + seconds <= answer["expires_at"] <= int(time.time()) + seconds
    session, requested = answer["session"], request_body["session"]
    assert (session["type"], session["model"], session["expires_at"]) == (
        "translation",
        requested["model"],
        answer["expires_at"],
    )
    requested_audio = requested.get("audio", {})
    assert session["audio"]["output"] == requested_audio.get("output", {})
    for name in ("transcription", "noise_reduction"):
        assert session["audio"]["input"][name] == requested_audio.get("input", {}).get(name)
    # And the stub remembers the secret, and the request with the translation schema's verdict
    assert stub.minted == [answer["value"]]
    [recorded] = stub.requests
    assert (recorded.path, recorded.schema_errors) == (TRANSLATION_CLIENT_SECRETS_PATH, [])


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        pytest.param({"session": {}}, "session", id="no-model"),
        pytest.param({}, None, id="no-session"),
        pytest.param({"session": {"model": 7}}, "session.model", id="model-not-a-string"),
        pytest.param(
            {"session": {"model": "gpt-realtime-translate", "audio": {"input": {"transcription": {}}}}},
            "session.audio.input.transcription",
            id="transcription-without-model",
        ),
        pytest.param(
            {"session": {"model": "gpt-realtime-translate"}, "expires_after": {"seconds": 5}},
            "expires_after.seconds",
            id="ttl-below-10",
        ),
    ],
)
def test_a_schema_invalid_translation_request_is_a_400(
    stub: OpenAIStub, http: urllib3.PoolManager, request_body: dict[str, Any], param: str | None
) -> None:
    # Given a body the translation request schema rejects
    assert ga_errors(TRANSLATION_REQUEST_SCHEMA, request_body) != []

    # When it is sent to the translation route
    response = post(http, stub, request_body, path=TRANSLATION_CLIENT_SECRETS_PATH)

    # Then OpenAI's 400 envelope names the parameter, and nothing is minted
    assert response.status == HTTPStatus.BAD_REQUEST
    error = error_of(response)
    assert (error["code"], error["param"]) == ("invalid_value", param)
    assert stub.requests[0].schema_errors
    assert stub.minted == []


def test_a_translation_request_needs_the_key(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a valid translation request
    # When it is sent with a wrong key
    response = post(http, stub, _translation_example(), path=TRANSLATION_CLIENT_SECRETS_PATH, api_key="sk-test-x")

    # Then it is OpenAI's 401, and nothing is minted
    assert response.status == HTTPStatus.UNAUTHORIZED
    assert stub.minted == []


# --- request validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        pytest.param({"session": {"type": "bogus"}}, "session.type", id="unknown-session-type"),
        pytest.param({"session": {}}, "session", id="session-without-type"),
        pytest.param({"expires_after": {"seconds": 5}}, "expires_after.seconds", id="ttl-below-10"),
        pytest.param({"expires_after": {"seconds": 7201}}, "expires_after.seconds", id="ttl-above-7200"),
        pytest.param({"expires_after": {"anchor": "now"}}, "expires_after.anchor", id="unknown-anchor"),
        pytest.param(
            {"session": {"type": "realtime", "audio": {"output": {"speed": 3}}}},
            "session.audio.output.speed",
            id="nested-in-the-realtime-branch",
        ),
        pytest.param(["not", "an", "object"], None, id="not-an-object"),
    ],
)
def test_schema_invalid_request_is_rejected_and_recorded(
    stub: OpenAIStub, http: urllib3.PoolManager, request_body: object, param: str | None
) -> None:
    # Given a body the official request schema rejects
    # When it is sent
    response = post(http, stub, request_body)

    # Then OpenAI's 400 envelope names the offending parameter
    assert response.status == HTTPStatus.BAD_REQUEST
    error = error_of(response)
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_value", param)
    # And the request is recorded with the schema's verdict, and nothing is minted
    [recorded] = stub.requests
    assert recorded.schema_errors
    assert recorded.schema_errors[0].startswith("$." + param if param else "$:")
    assert stub.minted == []


def test_unknown_session_property_is_not_an_error() -> None:
    # Given a realtime session with a property the schema does not list
    body = {"session": {"type": "realtime", "foo": 1}}

    # When it is validated
    errors = ga_errors(REQUEST_SCHEMA, body)

    # Then it passes: the schema does not forbid additional properties
    assert errors == []


def test_unknown_session_type_lists_both_allowed_types() -> None:
    # Given a session whose type matches neither oneOf branch
    body = {"session": {"type": "bogus"}}

    # When it is validated
    errors = ga_errors(REQUEST_SCHEMA, body)

    # Then the error names the path and both allowed values
    assert errors == ["$.session.type: 'bogus' is not one of ['realtime', 'transcription']"]


def test_official_example_answer_fails_its_own_schema() -> None:
    # Given the example answer printed in the spec for RealtimeCreateClientSecretResponse
    schema = load_document(GA_DOCUMENT)["components"]["schemas"][RESPONSE_SCHEMA]
    example = json.loads(schema["x-oaiMeta"]["example"])

    # When it is validated against that very schema
    errors = ga_errors(RESPONSE_SCHEMA, example)

    # Then its nulls are rejected (which is why the stub leaves those keys out)
    assert errors == [
        "$.session.audio.input.transcription: None is not of type 'object'",
        "$.session.include: None is not of type 'array'",
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"{not json", "application/json", id="malformed-json"),
        pytest.param(b"", "application/json", id="empty-body"),
        pytest.param(b"{}", "text/plain", id="wrong-content-type"),
    ],
)
def test_unparsable_request_is_a_400(
    stub: OpenAIStub, http: urllib3.PoolManager, body: bytes, content_type: str
) -> None:
    # Given a body that is not a JSON document
    headers = {**auth_headers(), "Content-Type": content_type}

    # When it is sent
    response = http.request("POST", stub.base_url + CLIENT_SECRETS_PATH, body=body, headers=headers)

    # Then it gets OpenAI's 400 envelope without a param
    assert response.status == HTTPStatus.BAD_REQUEST
    error = error_of(response)
    assert (error["type"], error["param"]) == ("invalid_request_error", None)
    assert stub.minted == []


# --- the safety identifier -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CLIENT_SECRETS_PATH, TRANSLATION_CLIENT_SECRETS_PATH])
def test_a_mint_records_the_safety_identifier_it_was_sent(
    stub: OpenAIStub, http: urllib3.PoolManager, path: str
) -> None:
    # Given a valid request carrying the end user's identifier
    body = REALTIME_REQUEST if path == CLIENT_SECRETS_PATH else {"session": {"model": "gpt-realtime-translate"}}

    # When it is sent
    response = post(http, stub, body, path=path)

    # Then it mints, and the history says for whom
    assert response.status == HTTPStatus.OK
    assert [request.safety_identifier for request in stub.requests] == [SAFETY_ID]


@pytest.mark.parametrize(
    "safety_identifier",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("a" * 65, id="over-64"),
        pytest.param("user\x7f", id="not-printable"),
        pytest.param("usér", id="not-ascii"),
    ],
)
def test_a_mint_without_a_usable_safety_identifier_is_a_400(
    stub: OpenAIStub, http: urllib3.PoolManager, safety_identifier: str | None
) -> None:
    # Given a valid body with the right key
    # When it is sent without a usable OpenAI-Safety-Identifier
    response = post(http, stub, REALTIME_REQUEST, safety_identifier=safety_identifier)

    # Then OpenAI's envelope says what is wrong, without echoing the value, and nothing is minted
    assert response.status == HTTPStatus.BAD_REQUEST
    error = error_of(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_safety_identifier")
    assert "OpenAI-Safety-Identifier" in error["message"]
    if safety_identifier:
        assert safety_identifier not in error["message"]
    assert stub.minted == []
    assert [request.safety_identifier for request in stub.requests] == [safety_identifier]


# --- authentication and routing ----------------------------------------------------------------------


@pytest.mark.parametrize("api_key", ["sk-test-wrong", None], ids=["wrong-key", "no-key"])
def test_bad_key_is_a_401_that_does_not_echo_it(
    stub: OpenAIStub, http: urllib3.PoolManager, api_key: str | None
) -> None:
    # Given a valid body
    # When it is sent with a wrong key, or none
    response = post(http, stub, REALTIME_REQUEST, api_key=api_key)

    # Then OpenAI's 401 comes back, without the key in it, and nothing is minted
    assert response.status == HTTPStatus.UNAUTHORIZED
    error = error_of(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
    assert b"sk-test" not in response.data
    assert stub.minted == []


@pytest.mark.parametrize("path", ["/v1/realtime/sessions", "/v1/realtime/transcription_sessions"])
def test_beta_paths_answer_beta_api_shape_disabled(stub: OpenAIStub, http: urllib3.PoolManager, path: str) -> None:
    # Given a beta-shaped body
    body = {"model": "gpt-4o-realtime-preview", "modalities": ["audio", "text"]}

    # When it is sent to a beta path
    response = post(http, stub, body, path=path)

    # Then it gets the real "beta switched off" 400, valid in both specs
    assert response.status == HTTPStatus.BAD_REQUEST
    assert response.json() == BETA_DISABLED_ERROR
    assert error_of(response)["code"] == "beta_api_shape_disabled"
    assert beta_errors("ErrorResponse", response.json()) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/realtime/calls"), ("POST", "/realtime/client_secrets"), ("GET", CLIENT_SECRETS_PATH)],
)
def test_anything_else_is_unknown_url(stub: OpenAIStub, http: urllib3.PoolManager, method: str, path: str) -> None:
    # Given a route the stub does not serve
    # When it is called
    response = http.request(method, stub.base_url + path, headers={"Authorization": f"Bearer {API_KEY}"})

    # Then it is OpenAI's 404
    assert response.status == HTTPStatus.NOT_FOUND
    error = error_of(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "unknown_url")


# --- faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        pytest.param(Fault.rate_limited(), HTTPStatus.TOO_MANY_REQUESTS, "rate_limit_exceeded", "7", id="429"),
        pytest.param(Fault.server_error(), HTTPStatus.INTERNAL_SERVER_ERROR, None, None, id="500"),
        pytest.param(Fault.unavailable(retry_after=3), HTTPStatus.SERVICE_UNAVAILABLE, None, "3", id="503"),
        pytest.param(Fault.unauthorized(), HTTPStatus.UNAUTHORIZED, "invalid_api_key", None, id="401"),
        pytest.param(
            Fault.error(HTTPStatus.BAD_GATEWAY, headers={"x-custom": "1"}), HTTPStatus.BAD_GATEWAY, None, None, id="502"
        ),
    ],
)
def test_error_fault_answers_once_with_openai_envelope(
    stub: OpenAIStub,
    http: urllib3.PoolManager,
    fault: Fault,
    status: HTTPStatus,
    code: str | None,
    retry_after: str | None,
) -> None:
    # Given an error fault queued
    stub.inject(fault)

    # When two valid requests are sent
    failed = post(http, stub, REALTIME_REQUEST)
    recovered = post(http, stub, REALTIME_REQUEST)

    # Then the first gets the error with its headers, the second succeeds
    assert failed.status == status
    assert error_of(failed)["code"] == code
    assert failed.headers.get("Retry-After") == retry_after
    assert recovered.status == HTTPStatus.OK
    assert stub.minted == [recovered.json()["value"]]
    assert len(stub.requests) == 2


def test_faults_apply_first_in_first_out(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given two faults queued
    stub.inject(Fault.server_error())
    stub.inject(Fault.rate_limited())

    # When three requests are sent
    statuses = [post(http, stub, REALTIME_REQUEST).status for _ in range(3)]

    # Then the faults apply in order, once each
    assert statuses == [HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.OK]


def test_delay_fault_trips_the_read_timeout_and_stop_is_prompt(http: urllib3.PoolManager) -> None:
    # Given a stub told to sit on the next request for a minute
    stub = OpenAIStub(API_KEY).start()
    stub.inject(Fault.delay(60))

    # When a client with a short read timeout calls it
    with pytest.raises(ReadTimeoutError):
        post(http, stub, REALTIME_REQUEST, timeout=urllib3.Timeout(connect=2.0, read=0.2))

    # Then the request arrived but nothing was minted, and stop() does not wait out the delay
    assert len(stub.requests) == 1
    assert stub.minted == []
    started = time.monotonic()
    stub.stop()
    assert time.monotonic() - started < 5
    assert stub.minted == []


def test_reset_drops_a_delayed_answer(stub: OpenAIStub) -> None:
    # Given a request held by a long delay, sent on a raw connection whose read times out quickly
    stub.inject(Fault.delay(60))
    host, port = stub.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=0.2)
    body = json.dumps(REALTIME_REQUEST)
    connection.request("POST", CLIENT_SECRETS_PATH, body=body, headers=auth_headers())
    with pytest.raises(TimeoutError):
        connection.getresponse()
    assert len(stub.requests) == 1  # recorded, so the handler holds the fault

    # When the stub is reset (as between tests sharing one stub)
    stub.reset()

    # Then the held request is dropped at once, without an answer or a secret
    assert connection.sock is not None
    connection.sock.settimeout(5)
    assert connection.sock.recv(1) == b""
    connection.close()
    assert stub.minted == []


def test_short_delay_fault_still_answers(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a delay shorter than the client's read timeout
    stub.inject(Fault.delay(0.05))

    # When a request is sent
    response = post(http, stub, REALTIME_REQUEST)

    # Then it is answered as usual
    assert response.status == HTTPStatus.OK
    assert ga_errors(RESPONSE_SCHEMA, response.json()) == []


def test_non_json_fault_answers_200_html(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a non-JSON fault queued
    stub.inject(Fault.non_json())

    # When a valid request is sent
    response = post(http, stub, REALTIME_REQUEST)

    # Then the 200 body is not JSON
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError, match="Expecting value"):
        json.loads(response.data)
    assert stub.minted == []


def test_missing_value_fault_answers_200_without_value(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a missing-value fault queued
    stub.inject(Fault.missing_value())

    # When a valid request is sent
    response = post(http, stub, REALTIME_REQUEST)

    # Then the 200 body lacks exactly `value`, and no secret counts as issued
    assert response.status == HTTPStatus.OK
    answer = response.json()
    assert "value" not in answer
    assert ga_errors(RESPONSE_SCHEMA, answer) == ["$: 'value' is a required property"]
    assert stub.minted == []


@pytest.mark.parametrize("request_body", [REALTIME_REQUEST, TRANSCRIPTION_REQUEST], ids=["realtime", "transcription"])
def test_oversized_fault_answers_a_huge_valid_body(
    stub: OpenAIStub, http: urllib3.PoolManager, request_body: dict[str, Any]
) -> None:
    # Given an oversized fault queued
    stub.inject(Fault.oversized())

    # When a valid request is sent
    response = post(http, stub, request_body)

    # Then the body is over 2 MiB, still spec-valid, and its secret counts as minted
    assert response.status == HTTPStatus.OK
    assert len(response.data) >= 2 * 1024 * 1024
    answer = response.json()
    assert ga_errors(RESPONSE_SCHEMA, answer) == []
    assert stub.minted == [answer["value"]]


def test_drop_fault_closes_without_answer(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a drop fault queued
    stub.inject(Fault.drop())

    # When a request is sent, then another
    with pytest.raises(ProtocolError):
        post(http, stub, REALTIME_REQUEST)
    recovered = post(http, stub, REALTIME_REQUEST)

    # Then the first got no answer, the second succeeds on a new connection
    assert recovered.status == HTTPStatus.OK
    assert len(stub.requests) == 2
    assert stub.connections == 2


# --- connections and bookkeeping ---------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given one urllib3 pool
    # When two requests are sent through it, one of them an error
    first = post(http, stub, REALTIME_REQUEST)
    second = post(http, stub, {"session": {"type": "bogus"}})

    # Then both went over a single TCP connection
    assert (first.status, second.status) == (HTTPStatus.OK, HTTPStatus.BAD_REQUEST)
    assert stub.connections == 1


def test_reset_forgets_requests_secrets_and_faults(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a stub that minted a secret and holds a queued fault
    post(http, stub, REALTIME_REQUEST)
    stub.inject(Fault.server_error())

    # When it is reset
    stub.reset()

    # Then nothing is remembered and the fault is gone
    assert (stub.requests, stub.minted) == ([], [])
    assert post(http, stub, REALTIME_REQUEST).status == HTTPStatus.OK


def test_base_url_is_loopback_without_v1(stub: OpenAIStub) -> None:
    # Given a running stub
    # When its base URL is read
    url = stub.base_url

    # Then it is a loopback origin, the value for OPENAI_UPSTREAM_URL
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)


# --- dripping answers, altered answers, bounded history --------------------------------------------


def read_answer(sock: socket.socket) -> tuple[bytes, bytes, list[int]]:
    """The head and body of one answer, and the size of each read it took, up to its Content-Length."""
    received, sizes = b"", []
    while chunk := sock.recv(65536):
        received += chunk
        sizes.append(len(chunk))
        head, _, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"Content-Length: (\d+)", head)
        if length and len(body) >= int(length.group(1)):
            return head, body, sizes
    raise AssertionError("the connection closed before the answer was whole")


@pytest.mark.parametrize(
    ("fault", "dripped"),
    [
        pytest.param(Fault.drip_headers(0.002), "head", id="headers"),
        pytest.param(Fault.drip_body(0.002), "body", id="body"),
    ],
)
def test_a_drip_fault_sends_its_answer_a_byte_at_a_time(stub: OpenAIStub, fault: Fault, dripped: str) -> None:
    # Given a drip fault queued
    stub.inject(fault)

    # When a valid request is sent on a raw socket, and the answer read as it comes
    host, port = stub.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=5)
    connection.request("POST", CLIENT_SECRETS_PATH, body=json.dumps(REALTIME_REQUEST), headers=auth_headers())
    assert connection.sock is not None
    head, body, sizes = read_answer(connection.sock)
    connection.close()

    # Then the dripped part came a byte at a time (reads of one byte, most of them), and the whole is a
    # spec-valid client secret
    assert sizes.count(1) > len(head if dripped == "head" else body) // 2
    assert head.startswith(b"HTTP/1.1 200 OK")
    answer = json.loads(body)
    assert ga_errors(RESPONSE_SCHEMA, answer) == []
    assert stub.minted == [answer["value"]]


def test_reset_cuts_a_drip_short(stub: OpenAIStub) -> None:
    # Given an answer dripping a byte a minute
    stub.inject(Fault.drip_body(60))
    host, port = stub.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=5)
    connection.request("POST", CLIENT_SECRETS_PATH, body=json.dumps(REALTIME_REQUEST), headers=auth_headers())
    response = connection.getresponse()  # the headers come at once

    # When the stub is reset (as between tests sharing one stub)
    stub.reset()

    # Then the connection is dropped at once, the body unfinished
    with pytest.raises(IncompleteRead):
        response.read()
    connection.close()


@pytest.mark.parametrize("fields", [{"expires_at": True}, {"value": "", "expires_at": "soon"}])
def test_an_altered_fault_replaces_top_level_fields(
    stub: OpenAIStub, http: urllib3.PoolManager, fields: dict[str, Any]
) -> None:
    # Given an altered answer queued
    stub.inject(Fault.altered(**fields))

    # When a valid request is sent
    answer = post(http, stub, REALTIME_REQUEST).json()

    # Then the 200 carries those fields in place of the spec's, and a secret counts as issued only if sent
    assert {name: answer[name] for name in fields} == fields
    assert answer["session"]["type"] == "realtime"
    assert stub.minted == ([] if "value" in fields else [answer["value"]])


def test_an_error_fault_can_name_a_param(stub: OpenAIStub, http: urllib3.PoolManager) -> None:
    # Given a 400 naming a parameter queued
    stub.inject(Fault.error(HTTPStatus.BAD_REQUEST, code="invalid_value", param="session.audio.output.voice"))

    # When a valid request is sent
    response = post(http, stub, REALTIME_REQUEST)

    # Then the envelope names it
    assert error_of(response)["param"] == "session.audio.output.voice"


def test_history_keeps_the_most_recent_requests_and_answers(http: urllib3.PoolManager) -> None:
    # Given a stub that keeps three of each
    with OpenAIStub(API_KEY, history=3) as stub:
        # When five requests are answered
        values = [post(http, stub, REALTIME_REQUEST).json()["value"] for _ in range(5)]

        # Then the last three requests and answers are kept, and every minted secret is still known
        assert len(stub.requests) == 3
        assert [json.loads(answer)["value"] for answer in stub.answers] == values[2:]
        assert stub.minted == values


# --- bounded bodies, timeouts, origins -----------------------------------------------------------------


def raw_exchange(stub: OpenAIStub, request: bytes) -> bytes:
    """What the stub sends back on a raw connection for `request`, up to its closing the connection."""
    host, port = stub.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def head_and_error(received: bytes) -> tuple[bytes, dict[str, Any]]:
    head, _, body = received.partition(b"\r\n\r\n")
    error: dict[str, Any] = json.loads(body)["error"]
    return head, error


@pytest.mark.parametrize(
    ("path", "limit", "content_type"),
    [(CALLS_PATH, MAX_OFFER_BYTES, "application/sdp"), (CLIENT_SECRETS_PATH, MAX_BODY_BYTES, "application/json")],
    ids=["an offer", "a mint"],
)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_routes_bound_is_a_413_unread(
    stub: OpenAIStub, path: str, limit: int, content_type: str, framing: str
) -> None:
    # Given a request whose body is one byte over the route's bound (announced, then sent in part only)
    if framing == "content-length":
        framed = f"Content-Length: {limit + 1}\r\n\r\n".encode() + b"x" * 1024
    else:
        framed = b"Transfer-Encoding: chunked\r\n\r\n" + f"{limit + 1:x}\r\n".encode() + b"x" * 1024
    head = f"POST {path} HTTP/1.1\r\nHost: stub\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: {content_type}\r\n"

    # When it is sent
    received = raw_exchange(stub, head.encode() + framed)

    # Then the stub answers 413 in OpenAI's envelope without waiting for the rest, and closes the connection
    status_line, error = head_and_error(received)
    assert status_line.startswith(b"HTTP/1.1 413 "), status_line
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
    assert f"{limit // 1024} KiB" in error["message"]
    # And nothing reached the peer or the mint
    assert stub.calls == []
    assert stub.minted == []


def chunked_exchange(stub: OpenAIStub, framed: bytes) -> bytes:
    """What the stub sends back for a mint whose chunked body is `framed` (the connection closed after it)."""
    headers = {**auth_headers(), "Transfer-Encoding": "chunked", "Connection": "close"}
    head = f"POST {CLIENT_SECRETS_PATH} HTTP/1.1\r\nHost: stub\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return raw_exchange(stub, head.encode() + b"\r\n" + framed)


def test_chunk_extensions_and_trailers_are_taken(stub: OpenAIStub) -> None:
    # Given a body in two chunks, one with extensions (RFC 9112 7.1.1), and a trailer section
    body = json.dumps(REALTIME_REQUEST).encode()
    first, second = body[:10], body[10:]
    framed = (
        f'{len(first):x};name=value ; quoted="a \\"b\\""\r\n'.encode()
        + first
        + b"\r\n"
        + f"{len(second):X}\r\n".encode()
        + second
        + b"\r\n"
        + b"0\r\nX-Checksum: abc\r\n\r\n"
    )

    # When it is sent
    received = chunked_exchange(stub, framed)

    # Then the stub read it whole
    assert received.startswith(b"HTTP/1.1 200 "), received[:40]
    assert stub.requests[0].json == REALTIME_REQUEST


@pytest.mark.parametrize("size", [b"-1", b"+5", b"0x10", b"1_0", b" 5", b"5 ", b"", b"123456789", b"5;"])
def test_a_chunk_size_other_than_1_to_8_hex_digits_is_a_400(stub: OpenAIStub, size: bytes) -> None:
    # Given a chunk whose size line Python's int(..., 16) would take, or one no HTTP client sends
    framed = size + b"\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"

    # When it is sent
    received = chunked_exchange(stub, framed)

    # Then the stub answers 400 in OpenAI's envelope, saying how to frame a chunk, and nothing is recorded
    status_line, error = head_and_error(received)
    assert status_line.startswith(b"HTTP/1.1 400 "), status_line
    assert error["type"] == "invalid_request_error"
    assert "hexadecimal digits" in error["message"]
    assert stub.requests == []


def test_a_chunk_without_its_crlf_is_a_400(stub: OpenAIStub) -> None:
    # Given a chunk with more bytes than its size says
    received = chunked_exchange(stub, b"5\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n")

    # Then the stub answers 400, and nothing is recorded
    status_line, _ = head_and_error(received)
    assert status_line.startswith(b"HTTP/1.1 400 "), status_line
    assert stub.requests == []


@pytest.mark.parametrize(
    "trailers",
    [b"X-Trailer: y\r\n" * (MAX_TRAILER_LINES + 1), b"X-Trailer: ".ljust(MAX_TRAILER_BYTES + 1, b"y")],
    ids=["endless", "too large"],
)
def test_a_trailer_section_past_its_bound_is_a_400(stub: OpenAIStub, trailers: bytes) -> None:
    # Given a chunked body whose trailer section goes on past 16 lines, or past 8 KiB, with no end in sight (all
    # of it read by the stub: unread bytes at its close would reset the connection before its answer is read)
    received = chunked_exchange(stub, b"2\r\n{}\r\n0\r\n" + trailers)

    # Then the stub answers 400 in OpenAI's envelope without waiting for the section's end, and records nothing
    status_line, error = head_and_error(received)
    assert status_line.startswith(b"HTTP/1.1 400 "), status_line
    assert "trailer" in error["message"]
    assert stub.requests == []


def exchange_within_the_read_timeout(stub: OpenAIStub, request: bytes) -> bytes:
    """raw_exchange, again if the stub closed the connection with nothing (or reset it): its read timeout struck
    before the request arrived (this process was descheduled between connect and send), which says nothing of the
    test."""
    for _ in range(5):
        with contextlib.suppress(ConnectionResetError):
            if received := raw_exchange(stub, request):
                return received
    return b""


def test_a_body_shorter_than_announced_is_a_408_after_the_read_timeout() -> None:
    # Given a stub whose connections time out after a short while (30 s in make run)
    with OpenAIStub(API_KEY, read_timeout=SHORT_READ_TIMEOUT) as stub:
        # When a request announces 100 bytes of body and sends 10
        request = f"POST {CLIENT_SECRETS_PATH} HTTP/1.1\r\nHost: stub\r\nContent-Length: 100\r\n\r\n".encode()
        received = exchange_within_the_read_timeout(stub, request + b"x" * 10)

    # Then the stub gives up on it: 408 in OpenAI's envelope, and the connection (and its thread) is let go
    status_line, error = head_and_error(received)
    assert status_line.startswith(b"HTTP/1.1 408 "), status_line
    assert "Content-Length" in error["message"]
    assert stub.requests == []


def test_an_idle_connection_is_closed_after_the_read_timeout(http: urllib3.PoolManager) -> None:
    # Given a stub whose connections time out after a short while
    with OpenAIStub(API_KEY, read_timeout=SHORT_READ_TIMEOUT) as stub:
        # When a client connects and sends nothing, then the stub closes the connection (recv sees its end)
        assert raw_exchange(stub, b"") == b""
        # And it still serves the next request
        assert post(http, stub, REALTIME_REQUEST).status == HTTPStatus.OK


@pytest.mark.parametrize("path", [CLIENT_SECRETS_PATH, TRANSLATION_CLIENT_SECRETS_PATH, "/v1/realtime/sessions"])
def test_the_minting_routes_answer_no_other_web_origin(stub: OpenAIStub, http: urllib3.PoolManager, path: str) -> None:
    # Given a page on another origin
    origin = {"Origin": "http://127.0.0.1:5173"}

    # When its browser preflights a mint, or sends one
    preflight = http.request(
        "OPTIONS",
        stub.base_url + path,
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    body = json.dumps(REALTIME_REQUEST).encode()
    minted = http.request("POST", stub.base_url + path, body=body, headers={**auth_headers(), **origin})

    # Then neither answer lets the page in (OpenAI's key never belongs in a page)
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in minted.headers
