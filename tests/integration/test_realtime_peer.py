"""The OpenAI stub's local Realtime peer: a WebRTC client (aiortc, doing what a browser page does) opens a call
with a client secret the stub minted, and every event the peer sends passes the official schema."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import openai
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from openai_stub.realtime_peer import REPLY_TRANSCRIPT, offer_loopback_candidates
from openai_stub.schema import event_errors
from openai_stub.server import CALLS_PATH, OpenAIStub
from tests.keys import TEST_API_KEY
from tests.realtime_client import (
    SERVER_EVENT_SCHEMAS,
    SESSION,
    STEP_SECONDS,
    TRANSCRIPTION,
    USER_TURN_EVENTS,
    AnHourLater,
    Answer,
    mint,
    post,
    user_turn,
)
from tests.webrtc_pages import SAFETY, Page, page_connection, run


@dataclass
class Client(Page):
    """One WebRTC call from the client's side: its connection, the events it received, the audio it heard."""

    answer: Answer = field(kw_only=True)

    @property
    def call_id(self) -> str:
        return self.answer.headers["location"].rsplit("/", 1)[-1]


def offer_call(stub: OpenAIStub, secret: str | None, sdp: bytes, content_type: str = "application/sdp") -> Answer:
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return post(stub, CALLS_PATH, sdp, headers)


def open_server_call(stub: OpenAIStub, session: dict[str, Any], sdp: bytes) -> Answer:
    """A server opening a call for the page's offer: the SDK's calls.create with the key (multipart sdp + session)."""
    client = openai.OpenAI(api_key=TEST_API_KEY, base_url=stub.base_url + "/v1", max_retries=0)
    created = client.realtime.calls.with_raw_response.create(sdp=sdp.decode(), session=session, extra_headers=SAFETY)  # type: ignore[arg-type]
    return Answer(created.status_code, {k.lower(): v for k, v in created.headers.items()}, created.content)


async def connect(stub: OpenAIStub, secret: str, *, server_session: dict[str, Any] | None = None) -> Client:
    """What the page does: a microphone track, the `oai-events` channel, the offer POSTed with the secret (or, with
    `server_session`, handed to its server, which opens the call with the API key)."""
    pc = page_connection()
    channel = pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp.encode()
    if server_session is None:
        answer = await asyncio.to_thread(offer_call, stub, secret, offer)
    else:
        answer = await asyncio.to_thread(open_server_call, stub, server_session, offer)
    client = Client(pc, channel, answer=answer)
    if answer.status != HTTPStatus.CREATED:
        await pc.close()
        return client
    client.take_events()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.body.decode(), type="answer"))
    return client


def assert_valid(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert event["type"] in SERVER_EVENT_SCHEMAS, event["type"]
        assert event_errors(SERVER_EVENT_SCHEMAS[event["type"]], event) == [], event["type"]


def test_a_minted_secret_opens_a_call_with_the_minted_session(openai_stub: OpenAIStub) -> None:
    # Given a client secret minted for a voice and instructions
    secret = mint(openai_stub)

    async def scenario() -> None:
        # When a WebRTC client offers a call with it
        client = await connect(openai_stub, secret)

        # Then the peer answers 201 with SDP and the call's Location
        assert client.answer.status == HTTPStatus.CREATED
        assert client.answer.headers["content-type"] == "application/sdp"
        assert client.answer.headers["location"].startswith(CALLS_PATH + "/rtc_")
        assert client.answer.body.startswith(b"v=0")
        # And the first event is session.created with the minted session
        created = await client.next_event()
        assert_valid([created])
        assert created["type"] == "session.created"
        assert created["session"]["instructions"] == SESSION["instructions"]
        assert created["session"]["audio"]["output"]["voice"] == "marin"
        # And the microphone's audio reaches the peer
        call = await asyncio.to_thread(openai_stub.wait_for_call, client.call_id, until="audio")
        assert call.audio_frames_received > 0
        assert call.ended is None
        await client.pc.close()

    run(scenario)


def test_a_call_a_server_opens_with_the_api_key_starts_with_the_forms_session(openai_stub: OpenAIStub) -> None:
    async def scenario() -> None:
        # When a page's offer is handed to a server that opens the call with the key and a session (multipart)
        client = await connect(openai_stub, "", server_session=SESSION)

        # Then the peer answers 201 with SDP and the call's Location
        assert client.answer.status == HTTPStatus.CREATED
        assert client.answer.headers["location"].startswith(CALLS_PATH + "/rtc_")
        # And the page's first event is session.created with that session, as a client secret minted for it would
        created = await client.next_event()
        assert_valid([created])
        assert created["type"] == "session.created"
        assert created["session"]["instructions"] == SESSION["instructions"]
        assert created["session"]["audio"]["output"]["voice"] == "marin"
        # And the call is the page's: it can ask for a response
        client.send({"type": "response.create"})
        assert_valid(await client.until("response.done"))
        await client.pc.close()

    run(scenario)


def test_session_update_and_response_create_answer_with_ga_events_and_audio(openai_stub: OpenAIStub) -> None:
    # Given a connected call
    secret = mint(openai_stub)

    async def scenario() -> None:
        client = await connect(openai_stub, secret)
        await client.until("session.created")

        # When the client updates the session's instructions
        client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Whisper."}})
        updated = await client.next_event()

        # Then session.updated carries the change and keeps the minted voice
        assert updated["type"] == "session.updated"
        assert updated["session"]["instructions"] == "Whisper."
        assert updated["session"]["audio"]["output"]["voice"] == "marin"

        # When it asks for a response
        client.send({"type": "response.create", "event_id": "evt_client_1"})
        events = await client.until("response.done")
        events += await client.until("output_audio_buffer.stopped")

        # Then the GA response events come in order, schema-valid, and the transcript adds up
        assert_valid([updated, *events])
        types = [event["type"] for event in events]
        assert types[:3] == ["response.created", "response.output_item.added", "response.content_part.added"]
        # (the session has no input transcription: no user's turn)
        assert not USER_TURN_EVENTS & set(types)
        assert types[-2:] == ["response.done", "output_audio_buffer.stopped"]
        assert types.index("response.output_audio.done") < types.index("response.output_audio_transcript.done")
        deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
        assert deltas.strip() == REPLY_TRANSCRIPT
        done = events[types.index("response.done")]["response"]
        assert done["status"] == "completed"
        assert done["audio"]["output"]["voice"] == "marin"
        # And the reply was heard on the outgoing track
        await asyncio.wait_for(client.loud_audio.wait(), STEP_SECONDS)
        await client.pc.close()

    run(scenario)


def test_with_input_transcription_each_response_follows_the_users_turn_and_its_transcript(
    openai_stub: OpenAIStub,
) -> None:
    # Given a call with a secret minted for input transcription
    secret = mint(openai_stub, {**SESSION, "audio": {**SESSION["audio"], "input": {"transcription": TRANSCRIPTION}}})

    async def scenario() -> None:
        client = await connect(openai_stub, secret)
        created = await client.until("session.created")
        assert created[-1]["session"]["audio"]["input"]["transcription"] == TRANSCRIPTION

        # When the client asks for two responses
        turns = []
        for _ in range(2):
            client.send({"type": "response.create"})
            turns.append(await client.until("response.done") + await client.until("output_audio_buffer.stopped"))

        # Then each opens with the user's audio message and the peer's fixed transcript of it, schema-valid
        for events in turns:
            assert_valid(events)
        first_id, first_turn = user_turn(turns[0])
        second_id, second_turn = user_turn(turns[1])
        assert first_id != second_id
        # And each user's message follows what came before it in the conversation: nothing, then the first reply
        first_reply = next(event for event in turns[0] if event["type"] == "response.output_item.added")
        assert first_turn[0]["previous_item_id"] is None
        assert second_turn[0]["previous_item_id"] == first_reply["item"]["id"]
        await client.pc.close()

    run(scenario)


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"type": "conversation.dance", "event_id": "evt_9"}, "invalid_value"),
        ({"event_id": "evt_9"}, "invalid_event"),
        (
            {"type": "session.update", "event_id": "evt_9", "session": {"type": "realtime", "instructions": 7}},
            "invalid_value",
        ),
    ],
    ids=["unknown type", "no type", "invalid session.update"],
)
def test_an_event_the_peer_does_not_take_gets_an_error_event_and_the_call_goes_on(
    openai_stub: OpenAIStub, event: dict[str, Any], code: str
) -> None:
    # Given a connected call
    secret = mint(openai_stub)

    async def scenario() -> None:
        client = await connect(openai_stub, secret)
        await client.until("session.created")

        # When the client sends an event the peer does not take
        client.send(event)
        error = await client.next_event()

        # Then an error event says why, naming the client's event
        assert_valid([error])
        assert error["type"] == "error"
        assert error["error"]["code"] == code
        if "event_id" in event and "type" in event:
            assert error["error"]["event_id"] == "evt_9"
        # And the call goes on
        client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Still here?"}})
        assert (await client.next_event())["type"] == "session.updated"
        assert openai_stub.calls[-1].ended is None
        await client.pc.close()

    run(scenario)


def test_hang_up_ends_the_call_and_its_secret_opens_another_until_it_expires(openai_stub: OpenAIStub) -> None:
    # Given a connected call
    secret = mint(openai_stub)

    async def scenario() -> None:
        client = await connect(openai_stub, secret)
        await client.until("session.created")

        # When the client hangs up
        await client.pc.close()

        # Then the peer ends the call
        call = await asyncio.to_thread(openai_stub.wait_for_call, client.call_id, until="ended")
        assert call.ended == "hang_up"
        # And the secret, not yet expired, opens another call with the minted session (as OpenAI's does)
        again = await connect(openai_stub, secret)
        assert again.answer.status == HTTPStatus.CREATED
        created = await again.until("session.created")
        assert created[-1]["session"]["instructions"] == SESSION["instructions"]
        await again.pc.close()

    run(scenario)


def test_a_secret_opens_two_calls_at_once_and_each_has_its_own_session(openai_stub: OpenAIStub) -> None:
    # Given a minted secret
    secret = mint(openai_stub)

    async def scenario() -> None:
        # When two calls are opened with it
        first, second = await connect(openai_stub, secret), await connect(openai_stub, secret)
        assert (first.answer.status, second.answer.status) == (HTTPStatus.CREATED, HTTPStatus.CREATED)
        await first.until("session.created")
        await second.until("session.created")

        # Then a session.update on one leaves the other's session as minted
        first.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Whisper."}})
        assert (await first.next_event())["session"]["instructions"] == "Whisper."
        second.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": 1.1}}}})
        assert (await second.next_event())["session"]["instructions"] == SESSION["instructions"]
        assert first.call_id != second.call_id
        await first.pc.close()
        await second.pc.close()

    run(scenario)


def test_a_call_ends_at_its_time_limit(openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given calls bounded to half a second
    monkeypatch.setattr(openai_stub, "max_call_seconds", 0.5)
    secret = mint(openai_stub)

    async def scenario() -> None:
        # When a call is opened and left alone
        client = await connect(openai_stub, secret)
        await client.until("session.created")

        # Then the peer says why and ends it
        expired = await client.until("error")
        assert_valid(expired[-1:])
        assert expired[-1]["error"]["code"] == "session_expired"
        call = await asyncio.to_thread(openai_stub.wait_for_call, client.call_id, until="ended")
        assert call.ended == "time_limit"
        await asyncio.wait_for(client.closed.wait(), STEP_SECONDS)
        await client.pc.close()

    run(scenario)


@pytest.mark.parametrize("case", ["no secret", "unknown secret", "API key", "expired secret"])
def test_a_secret_the_stub_did_not_mint_or_that_expired_gets_401(
    openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # Given a secret that cannot open a call
    secret = {
        "no secret": None,
        "unknown secret": "ek_" + "0" * 32,
        "API key": TEST_API_KEY,
        "expired secret": mint(openai_stub, seconds=10),
    }[case]
    if case == "expired secret":
        monkeypatch.setattr("openai_stub.server.time", AnHourLater)
    calls_before = len(openai_stub.calls)

    # When an offer is sent with it
    answer = offer_call(openai_stub, secret, b"v=0\r\n")

    # Then the stub answers 401 in OpenAI's envelope, without echoing it
    assert answer.status == HTTPStatus.UNAUTHORIZED
    assert set(answer.error) == {"type", "message", "param", "code"}
    assert answer.error["code"] == "invalid_api_key"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert secret is None or secret not in answer.body.decode()
    assert len(openai_stub.calls) == calls_before


@pytest.mark.parametrize(
    ("sdp", "content_type", "code"),
    [
        (b"v=0\r\n", "application/json", "invalid_content_type"),
        (b"hello", "application/sdp", "invalid_offer"),
        (b"\xff\xfe", "application/sdp", "invalid_offer"),
        (b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "application/sdp", "invalid_offer"),
        # what aiortc's parser raises on, besides ValueError (found in review)
        (b"v=0\r\nm=audio x\r\n", "application/sdp", "invalid_offer"),
        (b"v=0\r\nc=IN\r\n", "application/sdp", "invalid_offer"),
        (b"v=0\r\na=fingerprint\r\n", "application/sdp", "invalid_offer"),
    ],
    ids=["wrong content type", "not SDP", "not UTF-8", "no media", "bad m-line", "bad c-line", "bare fingerprint"],
)
def test_a_malformed_offer_gets_400_and_keeps_the_secret(
    openai_stub: OpenAIStub, sdp: bytes, content_type: str, code: str
) -> None:
    # Given a minted secret
    secret = mint(openai_stub)

    # When a malformed offer is sent with it
    answer = offer_call(openai_stub, secret, sdp, content_type)

    # Then the stub answers 400 in OpenAI's envelope
    assert answer.status == HTTPStatus.BAD_REQUEST
    assert set(answer.error) == {"type", "message", "param", "code"}
    assert answer.error["type"] == "invalid_request_error"
    assert answer.error["code"] == code
    assert secret not in answer.body.decode()

    # And the secret still opens a call
    async def scenario() -> None:
        client = await connect(openai_stub, secret)
        assert client.answer.status == HTTPStatus.CREATED
        await client.pc.close()

    run(scenario)


def test_an_offer_without_the_events_channel_gets_400(openai_stub: OpenAIStub) -> None:
    # Given a minted secret and an offer with audio only
    secret = mint(openai_stub)

    async def scenario() -> None:
        offer_loopback_candidates()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())

        # When it is sent
        answer = await asyncio.to_thread(offer_call, openai_stub, secret, pc.localDescription.sdp.encode())
        await pc.close()

        # Then the message says what the page must add
        assert answer.status == HTTPStatus.BAD_REQUEST
        assert "oai-events" in answer.error["message"]

    run(scenario)


def test_a_browser_may_preflight_a_call_from_any_origin(openai_stub: OpenAIStub) -> None:
    # Given a page on another origin
    headers = {
        "Origin": "http://127.0.0.1:5173",
        "Access-Control-Request-Method": "POST",
        # What the Agents SDK for JavaScript sends with its offer (@openai/agents-realtime, openaiRealtimeWebRtc)
        "Access-Control-Request-Headers": "authorization, content-type, x-openai-agents-sdk",
    }

    # When its browser sends the preflight
    answer = post(openai_stub, CALLS_PATH, b"", headers, method="OPTIONS")

    # Then the stub allows the call with each of those headers, and lets the page read the Location
    assert answer.status == HTTPStatus.NO_CONTENT
    assert answer.headers["access-control-allow-origin"] == "*"
    allowed = {name.strip().lower() for name in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-openai-agents-sdk"} <= allowed
    assert answer.headers["access-control-expose-headers"] == "Location"
