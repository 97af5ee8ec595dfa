"""The OpenAI stub's routes for sessions a server opens with the API key: GPT-Live's `POST /v1/live/sessions` and a
multipart `POST /v1/realtime/calls`, driven by the official Python SDK (openai-python 3.63.0) as the function will
drive them; bad input gets OpenAI's envelope naming the param, and the mint's faults apply to both."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

import openai
import pytest

from openai_stub.server import CALLS_PATH, LIVE_SESSIONS_PATH, Fault, OpenAIStub
from tests.keys import TEST_API_KEY
from tests.realtime_client import Answer, mint, post
from tests.webrtc_offers import offer

SAFETY_ID = "3f1c" * 16
SAFETY = {"OpenAI-Safety-Identifier": SAFETY_ID}
LIVE_SESSION: dict[str, Any] = {
    "model": "gpt-live-1",
    "instructions": "Answer like a ship's captain.",
    "audio": {"output": {"voice": "cedar"}},
    "client": {"data_channel": {"allowed_client_events": ["session.input_audio.mute", "session.close"]}},
}
REALTIME_SESSION: dict[str, Any] = {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief."}
LIVE_ID = re.compile(r"live_[0-9a-f]{32}")
LOCATION = re.compile(re.escape(CALLS_PATH) + r"/rtc_[0-9a-f]{32}")
BOUNDARY = "stubboundary0123456789"


@pytest.fixture
def client(stub: OpenAIStub) -> openai.OpenAI:
    """The official SDK with the stub's key, as the function's server side holds it."""
    return openai.OpenAI(api_key=TEST_API_KEY, base_url=stub.base_url + "/v1", max_retries=0)


def transport(sdp: str | None = None) -> dict[str, Any]:
    return {"type": "webrtc", "sdp": offer() if sdp is None else sdp}


def post_live(stub: OpenAIStub, body: object, headers: dict[str, str] | None = None) -> Answer:
    sent = {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": "application/json", **SAFETY}
    return post(stub, LIVE_SESSIONS_PATH, json.dumps(body).encode(), sent | (headers or {}))


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of (name, content type or None, bytes) parts, as the SDK encodes one."""
    lines = b""
    for name, content_type, data in parts:
        lines += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'.encode()
        if content_type is not None:
            lines += f"Content-Type: {content_type}\r\n".encode()
        lines += b"\r\n" + data + b"\r\n"
    return lines + f"--{BOUNDARY}--\r\n".encode()


def post_form(stub: OpenAIStub, body: bytes, headers: dict[str, str] | None = None) -> Answer:
    sent = {
        "Authorization": f"Bearer {TEST_API_KEY}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        **SAFETY,
    }
    return post(stub, CALLS_PATH, body, sent | (headers or {}))


def assert_envelope(answer: Answer, status: HTTPStatus, code: str, param: str | None) -> None:
    assert answer.status == status, answer.body
    assert set(answer.error) == {"type", "message", "param", "code"}
    assert (answer.error["code"], answer.error["param"]) == (code, param), answer.error
    assert TEST_API_KEY not in answer.body.decode()


def test_the_sdks_live_create_opens_a_live_session(stub: OpenAIStub, client: openai.OpenAI) -> None:
    # Given a Live session's config and a WebRTC client's offer
    # When the official SDK creates the session with the API key
    created = client.live.create(session=LIVE_SESSION, transport=transport(), extra_headers=SAFETY)  # type: ignore[arg-type]

    # Then it gets the session's live_ id and the peer's SDP answer
    assert LIVE_ID.fullmatch(created.session.id)
    assert created.transport.type == "webrtc"
    assert created.transport.sdp.startswith("v=0")
    assert "m=audio" in created.transport.sdp
    assert "m=application" in created.transport.sdp
    # And the stub recorded the request as sent, valid, with its safety identifier
    [request] = stub.requests
    assert (request.method, request.path) == ("POST", LIVE_SESSIONS_PATH)
    assert request.json == {"session": LIVE_SESSION, "transport": transport()}
    assert request.schema_errors == []
    assert request.safety_identifier == SAFETY_ID
    assert request.headers["authorization"] == f"Bearer {TEST_API_KEY}"
    # And the peer holds the session
    assert [call.call_id for call in stub.calls] == [created.session.id]


def test_a_live_sessions_safety_identifier_may_come_in_the_session(stub: OpenAIStub, client: openai.OpenAI) -> None:
    # Given a session carrying the end user's safety identifier, the Live way, and no header
    session = {**LIVE_SESSION, "safety_identifier": SAFETY_ID}

    # When it is created
    created = client.live.create(session=session, transport=transport())  # type: ignore[arg-type]

    # Then it opens, and the stub records that identifier
    assert LIVE_ID.fullmatch(created.session.id)
    assert stub.requests[-1].safety_identifier == SAFETY_ID
    assert "openai-safety-identifier" not in stub.requests[-1].headers


@pytest.mark.parametrize(
    ("headers", "in_session"),
    [
        pytest.param({}, None, id="neither"),
        pytest.param({}, "x" * 65, id="too long in the session"),
        pytest.param(SAFETY, "another-user", id="header and session differ"),
    ],
)
def test_a_live_session_without_a_usable_safety_identifier_is_a_400(
    stub: OpenAIStub, headers: dict[str, str], in_session: str | None
) -> None:
    # Given a Live request whose safety identifier is missing, malformed or contradicted
    session = LIVE_SESSION if in_session is None else {**LIVE_SESSION, "safety_identifier": in_session}
    sent = {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": "application/json", **headers}

    # When it is posted
    answer = post(stub, LIVE_SESSIONS_PATH, json.dumps({"session": session, "transport": transport()}).encode(), sent)

    # Then the stub refuses it, naming the session's field, and opens nothing
    assert_envelope(answer, HTTPStatus.BAD_REQUEST, "invalid_safety_identifier", "session.safety_identifier")
    assert stub.calls == []


@pytest.mark.parametrize(
    ("session", "sdp", "code", "param"),
    [
        pytest.param(
            {**LIVE_SESSION, "voice": "cedar"}, None, "unknown_parameter", "session.voice", id="unknown field"
        ),
        pytest.param(
            {**LIVE_SESSION, "audio": {"output": {"voice": "cedar", "speed": 1.2}}},
            None,
            "unknown_parameter",
            "session.audio.output.speed",
            id="unknown nested field",
        ),
        pytest.param(
            {**LIVE_SESSION, "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi", "x": 1}]}]},
            None,
            "unknown_parameter",
            "session.input[0].content[0].x",
            id="unknown field in a list",
        ),
        pytest.param({"instructions": "Hi."}, None, "missing_required_parameter", "session.model", id="no model"),
        pytest.param(
            {**LIVE_SESSION, "idle_timeout_s": "30"}, None, "invalid_type", "session.idle_timeout_s", id="type"
        ),
        pytest.param(
            {**LIVE_SESSION, "delegation": {"type": "everyone"}},
            None,
            "invalid_value",
            "session.delegation.type",
            id="unknown delegation",
        ),
        pytest.param(LIVE_SESSION, "hello", "invalid_offer", "transport.sdp", id="not SDP"),
        pytest.param(LIVE_SESSION, "audio only", "invalid_offer", "transport.sdp", id="offer without events channel"),
    ],
)
def test_a_bad_live_session_gets_openais_400_naming_the_param(
    stub: OpenAIStub, client: openai.OpenAI, session: dict[str, Any], sdp: str | None, code: str, param: str
) -> None:
    # Given a Live request the SDK sends as given, with a field OpenAI refuses or an offer that is no offer
    offered = offer(data_channel=False) if sdp == "audio only" else sdp

    # When it is created
    with pytest.raises(openai.BadRequestError) as refused:
        client.live.create(session=session, transport=transport(offered), extra_headers=SAFETY)  # type: ignore[arg-type]

    # Then the stub answers 400 in OpenAI's envelope, naming the param, and opens nothing
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert param in error["message"] or code in ("invalid_offer", "invalid_value")
    assert stub.requests[-1].schema_errors != [] or code == "invalid_offer"
    assert stub.calls == []


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        pytest.param(
            {"session": LIVE_SESSION, "transport": {"type": "websocket", "sdp": "v=0"}},
            "invalid_value",
            "transport.type",
            id="transport",
        ),
        pytest.param({"session": LIVE_SESSION}, "missing_required_parameter", "transport", id="no transport"),
        pytest.param(
            {"session": LIVE_SESSION, "transport": {"type": "webrtc"}},
            "missing_required_parameter",
            "transport.sdp",
            id="no sdp",
        ),
        pytest.param(
            {"session": LIVE_SESSION, "transport": {"type": "webrtc", "sdp": "v=0"}, "model": "gpt-live-1"},
            "unknown_parameter",
            "model",
            id="top-level field",
        ),
        pytest.param([LIVE_SESSION], "invalid_type", None, id="not an object"),
    ],
)
def test_a_bad_live_request_body_gets_openais_400_naming_the_param(
    stub: OpenAIStub, body: object, code: str, param: str | None
) -> None:
    # Given a body that is no LiveCreateParams
    # When it is posted
    answer = post_live(stub, body)

    # Then the stub refuses it in OpenAI's envelope, naming the param
    assert_envelope(answer, HTTPStatus.BAD_REQUEST, code, param)
    assert answer.error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", b"{not json"), ("text/plain", b"{}")],
    ids=["not JSON", "not declared JSON"],
)
def test_a_live_body_that_is_not_json_is_a_400(stub: OpenAIStub, content_type: str, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": content_type, **SAFETY}
    answer = post(stub, LIVE_SESSIONS_PATH, body, headers)
    assert answer.status == HTTPStatus.BAD_REQUEST
    assert answer.error["type"] == "invalid_request_error"


@pytest.mark.parametrize("bearer", ["ek_", "sk-not-the-key", None], ids=["client secret", "another key", "none"])
def test_a_live_session_needs_the_api_key(stub: OpenAIStub, bearer: str | None) -> None:
    # Given a bearer that is not the API key: a client secret the stub minted, another key, or none
    secret = mint(stub) if bearer == "ek_" else bearer
    headers = {"Authorization": f"Bearer {secret}"} if secret else {"Authorization": ""}

    # When a Live session is requested with it
    answer = post_live(stub, {"session": LIVE_SESSION, "transport": transport()}, headers)

    # Then the stub answers OpenAI's 401, without echoing it, and opens nothing
    assert_envelope(answer, HTTPStatus.UNAUTHORIZED, "invalid_api_key", None)
    assert secret is None or secret not in answer.body.decode()
    assert stub.calls == []


def test_the_sdks_live_hangup_ends_the_session(stub: OpenAIStub, client: openai.OpenAI) -> None:
    # Given an open Live session
    created = client.live.create(session=LIVE_SESSION, transport=transport(), extra_headers=SAFETY)  # type: ignore[arg-type]

    # When the server hangs it up with the SDK
    client.live.sessions.hangup(created.session.id)

    # Then it has ended
    assert stub.wait_for_call(created.session.id, until="ended").ended == "hang_up"
    # And it cannot be hung up again, nor through the Realtime calls' route, nor without the key
    with pytest.raises(openai.NotFoundError) as again:
        client.live.sessions.hangup(created.session.id)
    assert isinstance(again.value.body, dict)
    assert again.value.body["code"] == "session_not_found"
    other = client.live.create(session=LIVE_SESSION, transport=transport(), extra_headers=SAFETY)  # type: ignore[arg-type]
    hangup = f"{CALLS_PATH}/{other.session.id}/hangup"
    assert post(stub, hangup, b"", {"Authorization": f"Bearer {TEST_API_KEY}"}).status == HTTPStatus.NOT_FOUND
    live_hangup = f"{LIVE_SESSIONS_PATH}/{other.session.id}/hangup"
    assert post(stub, live_hangup, b"", {"Authorization": "Bearer sk-other"}).status == HTTPStatus.UNAUTHORIZED
    assert stub.calls[-1].ended is None


def test_the_sdks_calls_create_opens_a_call_with_a_multipart_session(stub: OpenAIStub, client: openai.OpenAI) -> None:
    # Given a WebRTC client's offer and a Realtime session
    # When the official SDK opens a call with the API key
    answer = client.realtime.calls.with_raw_response.create(
        sdp=offer(),
        session=REALTIME_SESSION,  # type: ignore[arg-type]
        extra_headers=SAFETY,
    )

    # Then the stub answers as OpenAI does: 201, the SDP answer, the call's Location
    assert answer.status_code == HTTPStatus.CREATED
    assert answer.headers["content-type"] == "application/sdp"
    assert LOCATION.fullmatch(answer.headers["location"])
    assert answer.content.startswith(b"v=0")
    assert answer.headers["access-control-expose-headers"] == "Location"
    # And it recorded the form's parts as the SDK sent them, and the safety identifier
    request = stub.requests[-1]
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.form is not None
    assert request.form["sdp"] == offer()
    assert json.loads(request.form["session"]) == REALTIME_SESSION
    assert request.schema_errors == []
    assert request.safety_identifier == SAFETY_ID
    assert [call.call_id for call in stub.calls] == [answer.headers["location"].rsplit("/", 1)[-1]]


def test_a_multipart_call_without_a_session_part_opens_with_the_defaults(stub: OpenAIStub) -> None:
    # Given a form with the offer only (RealtimeCallCreateRequest requires `sdp` alone)
    # When it is posted with the key
    answer = post_form(stub, form(("sdp", "application/sdp", offer().encode())))

    # Then a call opens
    assert answer.status == HTTPStatus.CREATED, answer.body
    assert LOCATION.fullmatch(answer.headers["location"])


SDP_PART = ("sdp", "application/sdp", b"")  # the offer goes in at run time
SESSION_PART = ("session", "application/json", json.dumps(REALTIME_SESSION).encode())


@pytest.mark.parametrize(
    ("parts", "code", "param"),
    [
        pytest.param([SESSION_PART], "missing_required_parameter", "sdp", id="no sdp"),
        pytest.param([SDP_PART, SDP_PART, SESSION_PART], "invalid_request_error", "sdp", id="two sdp"),
        pytest.param([SDP_PART, SESSION_PART, SESSION_PART], "invalid_request_error", "session", id="two sessions"),
        pytest.param([SDP_PART, ("model", "text/plain", b"gpt-realtime")], "unknown_parameter", "model", id="other"),
        pytest.param([("sdp", "text/plain", b"")], "invalid_content_type", "sdp", id="sdp not application/sdp"),
        pytest.param([SDP_PART, ("session", "application/json", b"{")], "invalid_json", "session", id="not JSON"),
        pytest.param(
            [SDP_PART, ("session", "application/json", b'{"type": "translation"}')],
            "invalid_value",
            "session.type",
            id="bad session",
        ),
        pytest.param([("sdp", "application/sdp", b"hello"), SESSION_PART], "invalid_offer", "sdp", id="not SDP"),
    ],
)
def test_a_bad_multipart_call_gets_openais_400_naming_the_param(
    stub: OpenAIStub, parts: list[tuple[str, str | None, bytes]], code: str, param: str
) -> None:
    # Given a form OpenAI would refuse
    filled = [
        (name, kind, data or offer().encode()) if name == "sdp" else (name, kind, data) for name, kind, data in parts
    ]

    # When it is posted with the key
    answer = post_form(stub, form(*filled))

    # Then the stub refuses it in OpenAI's envelope, naming the part or field, and opens nothing
    assert_envelope(answer, HTTPStatus.BAD_REQUEST, code, param)
    assert stub.calls == []
    # And a session the schema refuses is recorded as such
    assert bool(stub.requests[-1].schema_errors) == param.startswith("session.")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"no boundary here", f"multipart/form-data; boundary={BOUNDARY}"),
        (b"--x\r\n\r\n", "multipart/form-data"),
        (form(("sdp", "application/sdp", b"v=0")).replace(b"form-data; ", b"attachment; "), None),
    ],
    ids=["no parts", "no boundary", "not form-data"],
)
def test_a_body_that_is_no_multipart_form_is_a_400(stub: OpenAIStub, body: bytes, content_type: str | None) -> None:
    answer = post_form(stub, body, {} if content_type is None else {"Content-Type": content_type})
    assert_envelope(answer, HTTPStatus.BAD_REQUEST, "invalid_multipart", None)


def test_a_multipart_call_needs_the_api_key_and_the_safety_identifier(stub: OpenAIStub) -> None:
    # Given a valid form
    body = form(("sdp", "application/sdp", offer().encode()), SESSION_PART)

    # When it comes with a client secret, or without the end user's safety identifier
    with_secret = post_form(stub, body, {"Authorization": f"Bearer {mint(stub)}"})
    without_safety = post(
        stub,
        CALLS_PATH,
        body,
        {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )

    # Then the first is OpenAI's 401, the second the stub's 400, and no call opens
    assert_envelope(with_secret, HTTPStatus.UNAUTHORIZED, "invalid_api_key", None)
    assert_envelope(without_safety, HTTPStatus.BAD_REQUEST, "invalid_safety_identifier", None)
    assert stub.calls == []


def test_a_raw_offer_with_the_api_key_is_told_to_send_the_form(stub: OpenAIStub) -> None:
    # Given the API key and a raw application/sdp offer: no session to open the call with
    headers = {"Authorization": f"Bearer {TEST_API_KEY}", "Content-Type": "application/sdp", **SAFETY}

    # When it is posted
    answer = post(stub, CALLS_PATH, offer().encode(), headers)

    # Then the stub refuses it, saying what to send instead
    assert_envelope(answer, HTTPStatus.UNAUTHORIZED, "invalid_api_key", None)
    assert "multipart/form-data" in answer.error["message"]
    assert stub.calls == []


ROUTES = ["live", "calls"]


def open_session(client: openai.OpenAI, route: str) -> Any:
    if route == "live":
        return client.live.with_raw_response.create(session=LIVE_SESSION, transport=transport(), extra_headers=SAFETY)  # type: ignore[arg-type]
    return client.realtime.calls.with_raw_response.create(sdp=offer(), session=REALTIME_SESSION, extra_headers=SAFETY)  # type: ignore[arg-type]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        pytest.param(Fault.server_error(), HTTPStatus.INTERNAL_SERVER_ERROR, None, None, id="500"),
        pytest.param(Fault.unavailable(retry_after=3), HTTPStatus.SERVICE_UNAVAILABLE, None, "3", id="503"),
        pytest.param(Fault.rate_limited(), HTTPStatus.TOO_MANY_REQUESTS, "rate_limit_exceeded", "7", id="429"),
        pytest.param(Fault.unauthorized(), HTTPStatus.UNAUTHORIZED, "invalid_api_key", None, id="revoked key"),
    ],
)
def test_an_error_fault_answers_a_server_opened_session_in_openais_envelope(
    stub: OpenAIStub,
    client: openai.OpenAI,
    route: str,
    fault: Fault,
    status: HTTPStatus,
    code: str | None,
    retry_after: str | None,
) -> None:
    # Given a queued error fault
    stub.inject(fault)

    # When a server opens a session
    with pytest.raises(openai.APIStatusError) as failed:
        open_session(client, route)

    # Then it gets the fault's status and envelope, once, and nothing opens
    assert failed.value.status_code == status
    assert failed.value.response.headers.get("retry-after") == retry_after
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["code"] == code
    assert stub.calls == []
    # And the next request opens one as usual
    assert open_session(client, route).status_code in (HTTPStatus.OK, HTTPStatus.CREATED)


@pytest.mark.parametrize("route", ROUTES)
def test_a_delay_fault_holds_the_answer_past_the_clients_read_timeout(stub: OpenAIStub, route: str) -> None:
    # Given a long delay and a client that waits a second at most
    stub.inject(Fault.delay(60))
    impatient = openai.OpenAI(api_key=TEST_API_KEY, base_url=stub.base_url + "/v1", max_retries=0, timeout=1.0)

    # When a server opens a session
    # Then its read times out
    with pytest.raises(openai.APITimeoutError):
        open_session(impatient, route)
    stub.reset()  # drops the delayed answer


@pytest.mark.parametrize("route", ROUTES)
def test_a_drip_fault_drips_the_routes_own_answer(stub: OpenAIStub, client: openai.OpenAI, route: str) -> None:
    # Given a fault that sends the status line and headers a byte at a time
    stub.inject(Fault.drip_headers(0.001))

    # When a server opens a session
    answer = open_session(client, route)

    # Then the answer still arrives whole, the route's own
    assert answer.status_code == (HTTPStatus.OK if route == "live" else HTTPStatus.CREATED)
    if route == "live":
        assert LIVE_ID.fullmatch(answer.parse().session.id)
    else:
        assert LOCATION.fullmatch(answer.headers["location"])
        assert answer.headers["access-control-allow-origin"] == "*"


def test_an_altered_fault_replaces_a_live_answers_fields_or_a_calls_headers(
    stub: OpenAIStub, client: openai.OpenAI
) -> None:
    # Given faults that drop the Live answer's transport and the call's Location
    stub.inject(Fault.altered(transport={"type": "webrtc"}))
    stub.inject(Fault.altered(Location=None))

    # When a server opens a Live session, then a call
    live = open_session(client, "live")
    call = open_session(client, "calls")

    # Then each answer is as OpenAI's would be, but for what the fault changed
    assert json.loads(live.content)["transport"] == {"type": "webrtc"}
    assert LIVE_ID.fullmatch(json.loads(live.content)["session"]["id"])
    assert call.status_code == HTTPStatus.CREATED
    assert "location" not in call.headers
    assert call.content.startswith(b"v=0")


@pytest.mark.parametrize("route", ROUTES)
def test_an_oversized_fault_pads_the_sdp_answer(stub: OpenAIStub, client: openai.OpenAI, route: str) -> None:
    # Given a fault padding the answer to 300 KiB
    stub.inject(Fault.oversized(300 * 1024))

    # When a server opens a session
    answer = open_session(client, route)

    # Then the answer is that large, and still the route's shape
    assert len(answer.content) >= 300 * 1024
    sdp = answer.parse().transport.sdp if route == "live" else answer.content.decode()
    assert sdp.startswith("v=0")
