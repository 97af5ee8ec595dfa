"""The local Realtime peer over WebSocket (`GET /v1/realtime` on the OpenAI stub), as a server-side client or a
browser opens it with a client secret the stub minted: the same events as a WebRTC call, the reply's audio as
`response.output_audio.delta` events; the refusals OpenAI gives at the upgrade; a secret opens sessions until it
expires, and a session outlives its secret."""

from __future__ import annotations

import array
import base64
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from openai_stub.realtime_peer import REPLY_TRANSCRIPT
from openai_stub.schema import event_errors
from openai_stub.server import REALTIME_PATH, OpenAIStub
from tests.keys import TEST_API_KEY
from tests.realtime_client import (
    LOUD,
    SERVER_EVENT_SCHEMAS,
    SESSION,
    STEP_SECONDS,
    TRANSCRIPTION,
    USER_TURN_EVENTS,
    AnHourLater,
    mint,
    user_turn,
)

# The events a WebRTC call has and a WebSocket has not (its audio comes as deltas, not on a track).
WEBRTC_ONLY = {"output_audio_buffer.started", "output_audio_buffer.stopped"}
SCHEMAS = SERVER_EVENT_SCHEMAS | {"response.output_audio.delta": "RealtimeServerEventResponseAudioDelta"}
pytestmark = pytest.mark.usefixtures("websockets_quiet")


def ws_url(stub: OpenAIStub) -> str:
    return stub.base_url.replace("http://", "ws://") + REALTIME_PATH


@contextmanager
def session(stub: OpenAIStub, secret: str | None, **options: Any) -> Iterator[Connection]:
    headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
    with connect(ws_url(stub), additional_headers=headers, open_timeout=STEP_SECONDS, **options) as websocket:
        yield websocket


def next_event(websocket: Connection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(websocket.recv(timeout=STEP_SECONDS))
    return event


def until(websocket: Connection, event_type: str) -> list[dict[str, Any]]:
    seen = [next_event(websocket)]
    while seen[-1]["type"] != event_type:
        seen.append(next_event(websocket))
    return seen


def assert_valid(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert event["type"] in SCHEMAS, event["type"]
        assert event_errors(SCHEMAS[event["type"]], event) == [], event["type"]


def refusal(stub: OpenAIStub, secret: str | None, **options: Any) -> tuple[int, dict[str, Any]]:
    """The status and error envelope of an upgrade the stub refuses."""
    with pytest.raises(InvalidStatus) as refused, session(stub, secret, **options):
        pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


def test_a_minted_secret_opens_a_session_that_answers_with_ga_events_and_audio_deltas(openai_stub: OpenAIStub) -> None:
    # Given a client secret minted for a voice and instructions
    secret = mint(openai_stub)

    # When a server-side client opens a WebSocket with it, as a bearer token
    with session(openai_stub, secret) as websocket:
        # Then the first event is session.created with the minted session
        created = next_event(websocket)
        assert created["type"] == "session.created"
        assert created["session"]["instructions"] == SESSION["instructions"]
        assert created["session"]["audio"]["output"]["voice"] == "marin"

        # When it updates the session and asks for a response
        websocket.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Hi"}}))
        updated = next_event(websocket)
        websocket.send(json.dumps({"type": "response.create"}))
        events = until(websocket, "response.done")

    # Then session.updated carries the change, and the GA response events come in order, schema-valid
    assert updated["type"] == "session.updated"
    assert updated["session"]["instructions"] == "Hi"
    assert_valid([created, updated, *events])
    types = [event["type"] for event in events]
    assert types[:3] == ["response.created", "response.output_item.added", "response.content_part.added"]
    assert types.index("response.output_audio.delta") < types.index("response.output_audio.done")
    assert not WEBRTC_ONLY & set(types)
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript.strip() == REPLY_TRANSCRIPT
    # And the audio is about a second of PCM16 at 24 kHz, and it is not silence
    audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
    assert len(audio) == 2 * 24_000
    assert max(array.array("h", audio)) > LOUD


def test_a_session_update_that_sets_input_transcription_brings_the_users_turn_before_each_response(
    openai_stub: OpenAIStub,
) -> None:
    # Given a session minted without input transcription, which answers a response.create with no user's turn
    with session(openai_stub, mint(openai_stub)) as websocket:
        next_event(websocket)
        websocket.send(json.dumps({"type": "response.create"}))
        untranscribed = until(websocket, "response.done")
        assert not USER_TURN_EVENTS & {event["type"] for event in untranscribed}

        # When a session.update sets input transcription, and the client asks for a response
        update = {"type": "realtime", "audio": {"input": {"transcription": TRANSCRIPTION}}}
        websocket.send(json.dumps({"type": "session.update", "session": update}))
        updated = next_event(websocket)
        websocket.send(json.dumps({"type": "response.create"}))
        events = until(websocket, "response.done")

    # Then the response opens with the user's audio message and the peer's fixed transcript of it, schema-valid,
    # after the earlier reply
    assert updated["session"]["audio"]["input"]["transcription"] == TRANSCRIPTION
    assert_valid([*untranscribed, updated, *events])
    _, turn = user_turn(events)
    earlier_reply = next(event for event in untranscribed if event["type"] == "response.output_item.added")
    assert turn[0]["previous_item_id"] == earlier_reply["item"]["id"]


def test_a_browser_opens_a_session_with_the_subprotocols_openai_documents(openai_stub: OpenAIStub) -> None:
    # Given a minted secret, offered as a browser's WebSocket must (it cannot set headers)
    secret = mint(openai_stub)
    offered = ["realtime", f"openai-insecure-api-key.{secret}", "openai-agents-sdk.0.20.0"]

    # When it connects
    with connect(ws_url(openai_stub), subprotocols=offered, open_timeout=STEP_SECONDS) as websocket:  # type: ignore[arg-type]
        # Then the peer chose the realtime subprotocol (a browser fails a connection without one) and the session opened
        assert websocket.subprotocol == "realtime"
        assert next_event(websocket)["type"] == "session.created"


def test_a_secret_opens_two_sessions_at_once(openai_stub: OpenAIStub) -> None:
    # Given a minted secret
    secret = mint(openai_stub)

    # When two WebSockets are opened with it
    with session(openai_stub, secret) as first, session(openai_stub, secret) as second:
        # Then both sessions open, and each goes its own way
        assert next_event(first)["type"] == next_event(second)["type"] == "session.created"
        first.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "One"}}))
        second.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Two"}}))
        assert next_event(first)["session"]["instructions"] == "One"
        assert next_event(second)["session"]["instructions"] == "Two"


def test_a_session_outlives_its_secret_which_then_opens_none(
    openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a session opened with a secret
    secret = mint(openai_stub, seconds=10)
    with session(openai_stub, secret) as websocket:
        next_event(websocket)

        # When the secret expires
        monkeypatch.setattr("openai_stub.server.time", AnHourLater)

        # Then the open session goes on
        websocket.send(json.dumps({"type": "response.create"}))
        assert until(websocket, "response.done")[-1]["response"]["status"] == "completed"
        # And the secret opens no other: 401 at the upgrade
        status, envelope = refusal(openai_stub, secret)
        assert status == HTTPStatus.UNAUTHORIZED
        assert "expired" in envelope["error"]["message"]


@pytest.mark.parametrize("case", ["no secret", "unknown secret", "API key", "expired secret", "empty subprotocol"])
def test_a_secret_the_stub_did_not_mint_or_that_expired_gets_401_at_the_upgrade(
    openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # Given a secret that opens no session
    secret = {
        "no secret": None,
        "unknown secret": "ek_" + "0" * 32,
        "API key": TEST_API_KEY,
        "expired secret": mint(openai_stub, seconds=10),
        "empty subprotocol": None,
    }[case]
    options = {"subprotocols": ["realtime", "openai-insecure-api-key."]} if case == "empty subprotocol" else {}
    if case == "expired secret":
        monkeypatch.setattr("openai_stub.server.time", AnHourLater)
    sessions_before = len(openai_stub.calls)

    # When a WebSocket is opened with it
    status, envelope = refusal(openai_stub, secret, **options)

    # Then the upgrade is refused with 401 in OpenAI's envelope, which does not echo the secret
    assert status == HTTPStatus.UNAUTHORIZED
    assert set(envelope["error"]) == {"type", "message", "param", "code"}
    assert envelope["error"]["code"] == "invalid_api_key"
    assert secret is None or secret not in json.dumps(envelope)
    # And no session opened
    assert len(openai_stub.calls) == sessions_before


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "invalid_json"),
        (json.dumps({"event_id": "evt_9"}), "invalid_event"),
        (json.dumps({"type": "conversation.dance", "event_id": "evt_9"}), "invalid_value"),
        (json.dumps({"type": "session.update", "event_id": "evt_9", "session": {"instructions": 7}}), "invalid_value"),
    ],
    ids=["not JSON", "no type", "unknown type", "invalid session.update"],
)
def test_a_malformed_event_gets_an_error_event_and_the_session_goes_on(
    openai_stub: OpenAIStub, message: str, code: str
) -> None:
    # Given an open session
    with session(openai_stub, mint(openai_stub)) as websocket:
        next_event(websocket)

        # When the client sends an event the peer does not take
        websocket.send(message)
        error = next_event(websocket)

        # Then an error event says why
        assert_valid([error])
        assert error["error"]["code"] == code
        # And the session goes on
        websocket.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Hm"}}))
        assert next_event(websocket)["type"] == "session.updated"


def test_closing_the_websocket_ends_the_session(openai_stub: OpenAIStub) -> None:
    # Given an open session that has sent audio
    with session(openai_stub, mint(openai_stub)) as websocket:
        next_event(websocket)
        websocket.send(
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(960)).decode()})
        )
        live = openai_stub.calls[-1]  # the session opened last
        assert openai_stub.wait_for_call(live.call_id, until="audio").audio_frames_received == 1

    # When the client has closed it, then the peer ends the session
    assert openai_stub.wait_for_call(live.call_id, until="ended").ended == "hang_up"


def test_a_session_ends_at_its_time_limit_with_an_error_event(
    openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given sessions bounded to half a second
    monkeypatch.setattr(openai_stub, "max_call_seconds", 0.5)

    # When a session is opened and left alone
    with session(openai_stub, mint(openai_stub)) as websocket:
        next_event(websocket)

        # Then the peer says why, then closes the WebSocket
        expired = next_event(websocket)
        assert_valid([expired])
        assert expired["error"]["code"] == "session_expired"
        with pytest.raises(ConnectionClosed):
            websocket.recv(timeout=STEP_SECONDS)


def test_a_request_that_is_no_websocket_upgrade_gets_an_error_in_openais_envelope(openai_stub: OpenAIStub) -> None:
    # Given a minted secret
    secret = mint(openai_stub)
    host, port = openai_stub.base_url.removeprefix("http://").split(":")

    # When a plain GET (no Upgrade) is sent to the WebSocket route with it
    with socket.create_connection((host, int(port)), timeout=STEP_SECONDS) as sock:
        sock.sendall(f"GET {REALTIME_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk

    # Then the answer is a 4xx with OpenAI's envelope, and the connection closes
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] in (b"400", b"426"), head
    assert set(json.loads(body)["error"]) == {"type", "message", "param", "code"}
    assert secret.encode() not in answer


def test_a_sideband_is_refused_to_a_client_secret(openai_stub: OpenAIStub) -> None:
    # When a WebSocket asks for a call's sideband with a client secret, not the API key
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(
            ws_url(openai_stub) + "?call_id=rtc_123",
            additional_headers={"Authorization": f"Bearer {mint(openai_stub)}"},
            open_timeout=STEP_SECONDS,
        ),
    ):
        pass

    # Then the stub refuses it as OpenAI refuses a credential that is not an API key (a sideband is the server's)
    assert refused.value.response.status_code == HTTPStatus.UNAUTHORIZED
    assert json.loads(refused.value.response.body or b"")["error"]["code"] == "invalid_api_key"
