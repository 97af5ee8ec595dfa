"""The local peer speaks GPT-Live: a WebRTC client (aiortc, doing what a page does with a server-created session)
gets `session.started`, the model's words and usage, and answers to its events; the session's
`allowed_client_events` lock holds. Every event the peer sends passes the official SDK's `ServerEvent` models
(openai-python 3.63.0), with no field they lack."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from aiortc import RTCSessionDescription

from openai_stub.live import server_event_errors
from openai_stub.realtime_peer import LIVE_TRANSCRIPT
from openai_stub.server import OpenAIStub
from tests.keys import TEST_API_KEY
from tests.realtime_client import STEP_SECONDS
from tests.webrtc_pages import SAFETY, Page, live_session, page_connection, run

BACKEND = {"model": "gpt-5.1", "instructions": "Look orders up.", "max_output_tokens": 800}
TRIGGER = {"type": "decisions", "event_type": "session.input_transcript.delta", "decisions": {"questions": []}}


@dataclass
class LiveClient(Page):
    """One Live session from the page's side: its connection, the events it received, the audio it heard."""

    session_id: str = ""

    def check(self, event: dict[str, Any]) -> None:
        """Each event is checked against the SDK's ServerEvent union."""
        assert server_event_errors(event) == [], event


async def connect(stub: OpenAIStub, session: dict[str, Any]) -> LiveClient:
    """What a page does with a session its server creates: a microphone, the `oai-events` channel, the offer
    handed to the server (here the SDK's live.create with the key), the answer applied."""
    pc = page_connection()
    client = LiveClient(pc, pc.createDataChannel("oai-events"))
    client.take_events()
    await pc.setLocalDescription(await pc.createOffer())
    sdk = openai.OpenAI(api_key=TEST_API_KEY, base_url=stub.base_url + "/v1", max_retries=0)
    created = await asyncio.to_thread(
        sdk.live.create,
        session=session,  # type: ignore[arg-type]
        transport={"type": "webrtc", "sdp": pc.localDescription.sdp},
        extra_headers=SAFETY,
    )
    client.session_id = created.session.id
    await pc.setRemoteDescription(RTCSessionDescription(sdp=created.transport.sdp, type="answer"))
    return client


def test_a_live_session_starts_with_its_config_speaks_and_reports_usage(openai_stub: OpenAIStub) -> None:
    # Given a Live session created for a voice, instructions and a locked frontend
    session = live_session(["session.close"], audio={"output": {"voice": "cedar"}}, delegation=None)

    async def scenario() -> None:
        # When the page connects
        client = await connect(openai_stub, session)

        # Then the first event is session.started with the session as created, server defaults filled in
        started = await client.next_event()
        assert started["type"] == "session.started"
        resource = started["session"]
        assert resource["id"] == client.session_id
        assert (resource["model"], resource["status"]) == ("gpt-live-1", "active")
        assert resource["instructions"] == session["instructions"]
        assert resource["audio"] == {"output": {"voice": "cedar"}}
        assert resource["client"] == session["client"]
        assert resource["store"] is False
        assert resource["expires_at"] > time.time()
        # And the model speaks: its transcript in deltas on the session's timeline, then the usage so far
        spoken = await client.until("session.usage.updated")
        deltas = [event for event in spoken if event["type"] == "session.output_transcript.delta"]
        assert "".join(delta["delta"] for delta in deltas) == LIVE_TRANSCRIPT
        assert all(delta["start_ms"] <= delta["end_ms"] for delta in deltas)
        assert [delta["start_ms"] for delta in deltas] == sorted(delta["start_ms"] for delta in deltas)
        usage = spoken[-1]["usage"]
        assert usage["active_seconds"] + usage["paused_seconds"] == usage["seconds"]
        # And its voice is heard on the outgoing track, and the microphone reaches the peer
        await asyncio.wait_for(client.loud_audio.wait(), STEP_SECONDS)
        call = await asyncio.to_thread(openai_stub.wait_for_call, client.session_id, until="audio")
        assert call.audio_frames_received > 0
        await client.pc.close()

    run(scenario)


def test_an_allowed_session_update_changes_delegation_and_triggers_only(openai_stub: OpenAIStub) -> None:
    # Given a session delegating to Responses whose frontend may update it
    session = live_session(["session.update", "session.close"], delegation={"type": "responses", "responses": BACKEND})

    async def scenario() -> None:
        client = await connect(openai_stub, session)
        started = (await client.until("session.started"))[-1]["session"]

        # When the page updates the delegation and the triggers
        update = {
            "delegation": {
                "type": "responses",
                "acknowledgement_delay_ms": 250,
                "responses": {"max_output_tokens": 400},
            },
            "triggers": [TRIGGER],
        }
        client.send({"type": "session.update", "event_id": "evt_update_1", "session": update})
        updated = (await client.until("session.updated"))[-1]

        # Then session.updated answers that event, the delegation merged and the triggers replaced
        assert updated["client_event_id"] == "evt_update_1"
        delegation = updated["session"]["delegation"]
        assert delegation["acknowledgement_delay_ms"] == 250
        assert delegation["responses"] == {**BACKEND, "max_output_tokens": 400}
        assert updated["session"]["triggers"] == [TRIGGER]
        # And the rest is as started
        rest = {key: value for key, value in updated["session"].items() if key not in ("delegation", "triggers")}
        assert rest == {key: value for key, value in started.items() if key not in ("delegation", "triggers")}
        await client.pc.close()

    run(scenario)


def test_a_client_event_the_lock_forbids_gets_error_and_changes_nothing(openai_stub: OpenAIStub) -> None:
    # Given a session whose frontend may only mute, unmute and close
    allowed = ["session.input_audio.mute", "session.input_audio.unmute", "session.close"]
    session = live_session(allowed, delegation={"type": "responses", "responses": BACKEND})

    async def scenario() -> None:
        client = await connect(openai_stub, session)
        started = (await client.until("session.started"))[-1]

        # When the page tries to change the session, and to make the model answer
        client.send({"type": "session.update", "event_id": "evt_2", "session": {"triggers": [TRIGGER]}})
        refused_update = (await client.until("error"))[-1]
        client.send({"type": "response.create", "event_id": "evt_3"})
        refused_response = (await client.until("error"))[-1]

        # Then each gets OpenAI's error event, naming the event it refuses
        for refused, event_id in [(refused_update, "evt_2"), (refused_response, "evt_3")]:
            assert refused["error"]["type"] == "invalid_request_error"
            assert refused["error"]["code"] == "client_event_not_allowed"
            assert refused["error"]["param"] == "type"
            assert refused["error"]["client_event_id"] == refused["client_event_id"] == event_id
        # And what it may send still works
        client.send({"type": "session.input_audio.mute", "event_id": "evt_4"})
        muted = (await client.until("session.input_audio.muted"))[-1]
        assert muted["client_event_id"] == "evt_4"
        client.send({"type": "session.input_audio.unmute"})
        assert (await client.until("session.input_audio.unmuted"))[-1].get("client_event_id") is None

        # When it closes the session
        client.send({"type": "session.close", "event_id": "evt_5"})
        closed = (await client.until("session.closed"))[-1]

        # Then session.closed says why, with the final usage, and the session is as it started: nothing changed
        assert closed["reason"] == "close_requested"
        assert closed["client_event_id"] == "evt_5"
        assert closed["session"] == started["session"]
        assert closed["usage"]["seconds"] >= 0
        # And the channel, then the session, end
        await asyncio.wait_for(client.closed.wait(), STEP_SECONDS)
        call = await asyncio.to_thread(openai_stub.wait_for_call, client.session_id, until="ended")
        assert call.ended == "close_requested"
        await client.pc.close()

    run(scenario)


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        pytest.param({"type": "session.dance", "event_id": "evt_9"}, "invalid_value", "type", id="unknown type"),
        pytest.param({"event_id": "evt_9"}, "missing_required_parameter", "type", id="no type"),
        pytest.param("{not json", "invalid_json", None, id="not JSON"),
        pytest.param(
            {"type": "session.update", "event_id": "evt_9", "session": {"instructions": "Whisper."}},
            "unknown_parameter",
            "session.instructions",
            id="instructions are immutable",
        ),
        pytest.param(
            {"type": "session.update", "event_id": "evt_9", "session": {"delegation": {"type": "responses"}}},
            "invalid_value",
            "session.delegation.type",
            id="delegation type change",
        ),
        pytest.param(
            {"type": "session.start", "event_id": "evt_9"}, "missing_required_parameter", "session", id="start"
        ),
        pytest.param(
            {"type": "session.start", "event_id": "evt_9", "session": {"model": "gpt-live-1"}},
            "session_already_started",
            "type",
            id="start again",
        ),
    ],
)
def test_an_invalid_client_event_gets_error_and_the_session_goes_on(
    openai_stub: OpenAIStub, event: dict[str, Any] | str, code: str, param: str | None
) -> None:
    # Given a session whose frontend may send anything (no lock)
    async def scenario() -> None:
        client = await connect(openai_stub, live_session())
        started = (await client.until("session.started"))[-1]
        assert "client" not in started["session"]

        # When the page sends an event OpenAI would refuse
        client.send(event)
        error = (await client.until("error"))[-1]

        # Then it gets OpenAI's error event naming what is wrong
        assert error["error"]["code"] == code, error
        assert error["error"].get("param") == param
        if isinstance(event, dict) and "event_id" in event:
            assert error["error"]["client_event_id"] == event["event_id"]
        # And the session goes on, unchanged
        client.send({"type": "session.update", "session": {"triggers": []}})
        updated = (await client.until("session.updated"))[-1]["session"]
        assert {**updated, "triggers": None} == {**started["session"], "triggers": None}
        await client.pc.close()

    run(scenario)


def test_the_hangup_route_closes_a_live_session(openai_stub: OpenAIStub) -> None:
    async def scenario() -> None:
        # Given a connected Live session
        client = await connect(openai_stub, live_session(["session.close"]))
        await client.until("session.started")

        # When the server hangs it up with the SDK
        sdk = openai.OpenAI(api_key=TEST_API_KEY, base_url=openai_stub.base_url + "/v1", max_retries=0)
        await asyncio.to_thread(sdk.live.sessions.hangup, client.session_id)

        # Then the page gets session.closed (an application's hangup request), and the channel closes
        closed = (await client.until("session.closed"))[-1]
        assert closed["reason"] == "close_requested"
        assert "client_event_id" not in closed
        await asyncio.wait_for(client.closed.wait(), STEP_SECONDS)
        assert openai_stub.wait_for_call(client.session_id, until="ended", timeout=STEP_SECONDS).ended == "hang_up"
        await client.pc.close()

    run(scenario)


def test_allowed_server_events_limit_what_the_channel_carries(openai_stub: OpenAIStub) -> None:
    # Given a session whose frontend receives only session.started and session.closed
    selectors = [{"type": "session.started"}, {"type": "session.closed"}]
    session = live_session("all")
    session["client"]["data_channel"]["allowed_server_events"] = selectors

    async def scenario() -> None:
        client = await connect(openai_stub, session)
        await client.until("session.started")

        # When the page updates the session, then closes it
        client.send({"type": "session.update", "session": {"triggers": []}})
        client.send({"type": "session.close"})

        # Then the next event it receives is session.closed: no words, no usage, no session.updated
        assert (await client.next_event())["type"] == "session.closed"
        assert [event["type"] for event in client.received] == ["session.started", "session.closed"]
        await client.pc.close()

    run(scenario)


def test_a_live_session_expires_at_its_time_limit(openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Live sessions bounded to two seconds
    monkeypatch.setattr(openai_stub, "max_call_seconds", 2.0)

    async def scenario() -> None:
        # When one is opened and left alone
        client = await connect(openai_stub, live_session())
        await client.until("session.started")

        # Then it closes as expired
        closed = (await client.until("session.closed"))[-1]
        assert closed["reason"] == "expired"
        call = await asyncio.to_thread(openai_stub.wait_for_call, client.session_id, until="ended")
        assert call.ended == "time_limit"
        await client.pc.close()

    run(scenario)
