"""The OpenAI stub's sidebands: a server attaches to a Realtime call (`GET /v1/realtime?call_id=...`) or a GPT-Live
session (`GET /v1/live/sessions/{id}/attach`) with the API key, as the supervisor will, with the websockets sync
client it uses; every event of the call reaches it as the data channel's do, its client events act as the data
channel's, usage is what the peer's docstring says, hanging up (or any end) closes it, and the tests' hooks (a drop,
raw messages, a scripted response) do what they say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import openai
import pytest
from aiortc import RTCSessionDescription
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from openai_stub.live import server_event_errors
from openai_stub.realtime_peer import RESPONSE_USAGE, TRANSCRIPTION_USAGE, CallState
from openai_stub.schema import event_errors
from openai_stub.server import CALLS_PATH, OpenAIStub
from tests.keys import TEST_API_KEY
from tests.realtime_client import SERVER_EVENT_SCHEMAS, SESSION, STEP_SECONDS, TRANSCRIPTION, mint, post
from tests.webrtc_offers import offer
from tests.webrtc_pages import SAFETY, Page, live_session, page_connection, run

pytestmark = pytest.mark.usefixtures("websockets_quiet")

SCHEMAS = SERVER_EVENT_SCHEMAS | {
    "response.function_call_arguments.delta": "RealtimeServerEventResponseFunctionCallArgumentsDelta",
    "response.function_call_arguments.done": "RealtimeServerEventResponseFunctionCallArgumentsDone",
}
NEGATIVE_USAGE = {"total_tokens": -5, "input_tokens": -10, "output_tokens": 5}
TRIGGER = {"type": "decisions", "event_type": "session.input_transcript.delta", "decisions": {"questions": []}}


def sdk(stub: OpenAIStub) -> openai.OpenAI:
    return openai.OpenAI(api_key=TEST_API_KEY, base_url=stub.base_url + "/v1", max_retries=0)


def open_call(stub: OpenAIStub, session: dict[str, Any], sdp: str) -> tuple[str, str]:
    """A call a server opens for a page's offer, with the SDK and the key: its id and the SDP answer."""
    created = sdk(stub).realtime.calls.with_raw_response.create(sdp=sdp, session=session, extra_headers=SAFETY)  # type: ignore[arg-type]
    assert created.status_code == HTTPStatus.CREATED
    return created.headers["location"].rsplit("/", 1)[-1], created.text


def open_live_session(stub: OpenAIStub, session: dict[str, Any], sdp: str) -> tuple[str, str]:
    """A Live session a server opens for a page's offer: its id and the SDP answer."""
    transport: Any = {"type": "webrtc", "sdp": sdp}
    created = sdk(stub).live.create(session=session, transport=transport, extra_headers=SAFETY)  # type: ignore[arg-type]
    return created.session.id, created.transport.sdp


@dataclass
class OpenedPage(Page):
    """A page's side of a call or Live session its server opened, and the call's or session's id."""

    call_id: str = ""


async def open_page(stub: OpenAIStub, session: dict[str, Any], *, live: bool = False) -> OpenedPage:
    """What a page does with a session its server opens: a microphone, the `oai-events` channel, the offer handed to
    the server (here the SDK with the key), the answer applied."""
    pc = page_connection()
    page = OpenedPage(pc, pc.createDataChannel("oai-events"))
    page.take_events()
    await pc.setLocalDescription(await pc.createOffer())
    opening = open_live_session if live else open_call
    page.call_id, answer = await asyncio.to_thread(opening, stub, session, pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return page


def sideband_url(stub: OpenAIStub, call_id: str, *, live: bool = False) -> str:
    path = f"/v1/live/sessions/{call_id}/attach" if live else f"/v1/realtime?call_id={call_id}"
    return stub.base_url.replace("http://", "ws://") + path


@contextmanager
def attached(
    stub: OpenAIStub, call_id: str, *, live: bool = False, credential: str | None = TEST_API_KEY
) -> Iterator[Connection]:
    """A sideband as the supervisor opens one: the sync client, the API key as a bearer token, no size bound."""
    headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
    url = sideband_url(stub, call_id, live=live)
    with connect(url, additional_headers=headers, open_timeout=STEP_SECONDS, max_size=None) as sideband:
        yield sideband


def refusal(stub: OpenAIStub, call_id: str, *, live: bool = False, credential: str | None = TEST_API_KEY) -> Response:
    """The HTTP answer that refused a sideband's upgrade."""
    with pytest.raises(InvalidStatus) as refused, attached(stub, call_id, live=live, credential=credential):
        pass
    return refused.value.response


def received(sideband: Connection, event_type: str) -> list[dict[str, Any]]:
    """The sideband's events up to and including the next one of `event_type`."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != event_type:
        seen.append(json.loads(sideband.recv(timeout=STEP_SECONDS)))
    return seen


def until_closed(sideband: Connection) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    """The sideband's events until it closes, and how it closed."""
    seen: list[dict[str, Any]] = []
    while True:
        try:
            seen.append(json.loads(sideband.recv(timeout=STEP_SECONDS)))
        except ConnectionClosed as closed:
            return seen, closed


def send(sideband: Connection, event: dict[str, Any]) -> None:
    sideband.send(json.dumps(event))


def open_unconnected_call(stub: OpenAIStub) -> str:
    """A call a server opens for a page's offer that the page never connects (it lives until hung up): its id."""
    return open_call(stub, SESSION, offer())[0]


def open_unconnected_live_session(stub: OpenAIStub) -> str:
    return open_live_session(stub, live_session(["session.close"]), offer())[0]


def assert_valid(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert event["type"] in SCHEMAS, event["type"]
        assert event_errors(SCHEMAS[event["type"]], event) == [], event


def test_a_sideband_gets_every_event_of_the_call_as_its_data_channel_does(openai_stub: OpenAIStub) -> None:
    # Given a call a server opened for a page, with input transcription, the page connected
    session = SESSION | {"audio": {"input": {"transcription": TRANSCRIPTION}, "output": {"voice": "marin"}}}

    async def scenario() -> None:
        page = await open_page(openai_stub, session)
        await page.until("session.created")
        # And the server's sideband attached
        with attached(openai_stub, page.call_id) as sideband:
            # When the page asks for a response
            page.send({"type": "response.create"})

            # Then the sideband gets the same events, the same messages in the same order, and nothing from before
            # it attached (no session.created)
            on_page = await page.until("response.done")
            on_sideband = await asyncio.to_thread(received, sideband, "response.done")
            assert on_sideband == on_page
            assert_valid(on_sideband)
            # And the response's usage is the peer's fixed one, as is the input transcription's
            done = on_sideband[-1]["response"]
            assert done["usage"] == RESPONSE_USAGE
            completed = [e for e in on_sideband if e["type"].endswith("input_audio_transcription.completed")]
            assert [event["usage"] for event in completed] == [TRANSCRIPTION_USAGE]
        await page.pc.close()

    run(scenario)


def test_a_sidebands_client_events_act_as_the_data_channels_and_are_recorded(openai_stub: OpenAIStub) -> None:
    async def scenario() -> None:
        # Given a connected call and its sideband
        page = await open_page(openai_stub, SESSION)
        await page.until("session.created")
        with attached(openai_stub, page.call_id) as sideband:
            # When the sideband puts instructions back and asks for a response
            restoring = {"type": "session.update", "session": {"type": "realtime", "instructions": "Restored."}}
            send(sideband, restoring)
            send(sideband, {"type": "response.create"})

            # Then the page and the sideband see the session updated, then a response
            updated = (await page.until("session.updated"))[-1]
            assert updated["session"]["instructions"] == "Restored."
            assert (await asyncio.to_thread(received, sideband, "session.updated"))[-1] == updated
            assert (await page.until("response.done"))[-1]["response"]["status"] == "completed"
            # And the peer recorded what the sideband sent, in order
            state = await asyncio.to_thread(
                openai_stub.peer.wait_until,
                page.call_id,
                lambda call: len(call.sideband_events) == 2,
                timeout=STEP_SECONDS,
            )
            assert state.sideband_events == (restoring, {"type": "response.create"})
            assert (state.sidebands, state.attachments, state.responses) == (1, 1, 1)
        await page.pc.close()

    run(scenario)


def test_sidebands_overlap_a_dropped_one_loses_its_connection_and_one_attaches_again(
    openai_stub: OpenAIStub,
) -> None:
    # Given a call a page opened with a client secret (never connected), and two sidebands on it
    headers = {"Authorization": f"Bearer {mint(openai_stub)}", "Content-Type": "application/sdp"}
    answer = post(openai_stub, CALLS_PATH, offer().encode(), headers)
    assert answer.status == HTTPStatus.CREATED
    call_id = answer.headers["location"].rsplit("/", 1)[-1]
    with attached(openai_stub, call_id) as first, attached(openai_stub, call_id) as second:
        assert openai_stub.peer.wait_until(call_id, lambda call: call.sidebands == 2, timeout=STEP_SECONDS)
        # When one of them updates the session
        send(first, {"type": "session.update", "session": {"type": "realtime", "instructions": "Be terse."}})

        # Then both get the one session.updated
        assert received(first, "session.updated")[-1] == received(second, "session.updated")[-1]

        # When the network drops them
        assert openai_stub.peer.drop_sidebands(call_id) == 2

        # Then each connection ends without a close frame, and the call goes on
        for dropped in (first, second):
            _, closed = until_closed(dropped)
            assert isinstance(closed, ConnectionClosedError)
            assert closed.rcvd is None
        state = openai_stub.peer.wait_until(call_id, lambda call: call.sidebands == 0, timeout=STEP_SECONDS)
        assert state.ended is None
    # And a sideband attaches again and takes part
    with attached(openai_stub, call_id) as again:
        send(again, {"type": "session.update", "session": {"type": "realtime", "instructions": "Be kind."}})
        assert received(again, "session.updated")[-1]["session"]["instructions"] == "Be kind."
    assert openai_stub.peer.wait_until(call_id, lambda call: call.attachments == 3, timeout=STEP_SECONDS)
    assert openai_stub.peer.hang_up(call_id)


def test_hanging_up_ends_the_call_closes_its_sidebands_and_then_it_is_not_found(openai_stub: OpenAIStub) -> None:
    async def scenario() -> None:
        # Given a connected call with a sideband
        page = await open_page(openai_stub, SESSION)
        await page.until("session.created")
        with attached(openai_stub, page.call_id) as sideband:
            # When the server hangs it up with the SDK
            await asyncio.to_thread(sdk(openai_stub).realtime.calls.hangup, page.call_id)

            # Then the sideband is closed with a close frame, and the page's channel closes
            _, closed = await asyncio.to_thread(until_closed, sideband)
            assert isinstance(closed, ConnectionClosedOK)
            await asyncio.wait_for(page.closed.wait(), STEP_SECONDS)
        # And the call ended as hung up, with no sideband left
        state = await asyncio.to_thread(
            openai_stub.peer.wait_until, page.call_id, lambda call: call.ended is not None, timeout=STEP_SECONDS
        )
        assert (state.ended, state.sidebands) == ("hang_up", 0)
        assert state.ended_at is not None
        # And the ended call is not found, to hang up or to attach to
        again = await asyncio.to_thread(
            post,
            openai_stub,
            f"{CALLS_PATH}/{page.call_id}/hangup",
            b"",
            {"Authorization": f"Bearer {TEST_API_KEY}"},
        )
        assert again.status == HTTPStatus.NOT_FOUND
        refused = await asyncio.to_thread(refusal, openai_stub, page.call_id)
        assert refused.status_code == HTTPStatus.NOT_FOUND
        assert json.loads(refused.body)["error"]["code"] == "call_not_found"
        await page.pc.close()

    run(scenario)


def test_a_call_its_client_hangs_up_closes_its_sidebands(openai_stub: OpenAIStub) -> None:
    async def scenario() -> None:
        # Given a connected call with a sideband
        page = await open_page(openai_stub, SESSION)
        await page.until("session.created")
        with attached(openai_stub, page.call_id) as sideband:
            # When the page hangs up
            await page.pc.close()

            # Then the sideband is closed
            _, closed = await asyncio.to_thread(until_closed, sideband)
            assert isinstance(closed, ConnectionClosedOK)
        state = await asyncio.to_thread(openai_stub.wait_for_call, page.call_id, until="ended")
        assert state.ended == "hang_up"

    run(scenario)


def test_a_call_at_its_time_limit_tells_its_sidebands_then_closes_them(
    openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given calls bounded to three seconds, and one with a sideband
    monkeypatch.setattr(openai_stub, "max_call_seconds", 3.0)
    call_id = open_unconnected_call(openai_stub)
    with attached(openai_stub, call_id) as sideband:
        # When the time is up
        events, closed = until_closed(sideband)

    # Then the sideband got OpenAI's session_expired error, then its close
    assert [event["error"]["code"] for event in events] == ["session_expired"]
    assert isinstance(closed, ConnectionClosedOK)
    assert openai_stub.wait_for_call(call_id, until="ended").ended == "time_limit"


def test_a_scripted_response_carries_its_usage_or_calls_a_function_tool(openai_stub: OpenAIStub) -> None:
    # Given a call with a sideband, whose next responses are scripted: a function call with negative usage, then
    # another with the peer's usage
    call_id = open_unconnected_call(openai_stub)
    openai_stub.peer.next_response(call_id, usage=NEGATIVE_USAGE, function="lookup_order", arguments='{"order": 42}')
    openai_stub.peer.next_response(call_id, function="hang_up_now")
    with attached(openai_stub, call_id) as sideband:
        # When two responses are asked for
        send(sideband, {"type": "response.create"})
        first = received(sideband, "response.done")
        send(sideband, {"type": "response.create"})
        second = received(sideband, "response.done")

    # Then the first calls the tool, with the events OpenAI streams for a function call, and carries the usage given
    assert_valid(first + second)
    assert [event["type"] for event in first] == [
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.done",
    ]
    response = first[-1]["response"]
    assert response["usage"] == NEGATIVE_USAGE
    [item] = response["output"]
    assert (item["type"], item["name"], item["arguments"], item["status"]) == (
        "function_call",
        "lookup_order",
        '{"order": 42}',
        "completed",
    )
    assert first[3]["call_id"] == item["call_id"]
    # And the second calls its tool with the peer's own usage
    assert second[-1]["response"]["output"][0]["name"] == "hang_up_now"
    assert second[-1]["response"]["usage"] == RESPONSE_USAGE
    assert openai_stub.peer.hang_up(call_id)


def test_raw_messages_reach_the_sidebands_as_given_and_not_the_data_channel(openai_stub: OpenAIStub) -> None:
    raw = ["{not json", json.dumps({"type": "stub.unknown"}), json.dumps({"type": "x", "pad": "x" * 3 * 2**20})]

    async def scenario() -> None:
        # Given a connected call and its sideband
        page = await open_page(openai_stub, SESSION)
        await page.until("session.created")
        with attached(openai_stub, page.call_id) as sideband:
            # When the hook sends malformed, unknown and huge messages on the call's sidebands
            for message in raw:
                assert await asyncio.to_thread(openai_stub.peer.send_on_sidebands, page.call_id, message) == 1
            send(sideband, {"type": "session.update", "session": {"type": "realtime", "instructions": "Go on."}})

            # Then the sideband gets each as it was, in order, before the call's next event
            arrived = [await asyncio.to_thread(sideband.recv, STEP_SECONDS) for _ in raw]
            assert arrived == raw
            assert (await asyncio.to_thread(received, sideband, "session.updated"))[0]["type"] == "session.updated"
            # And the page's next event is that session.updated: none of them reached it
            assert (await page.next_event())["type"] == "session.updated"
        await page.pc.close()

    run(scenario)


@pytest.mark.parametrize(
    ("path_kind", "code"),
    [
        pytest.param("realtime", "call_not_found", id="unknown call"),
        pytest.param("live", "session_not_found", id="unknown Live session"),
    ],
)
def test_an_unknown_call_is_not_found_in_openais_envelope(openai_stub: OpenAIStub, path_kind: str, code: str) -> None:
    # When a sideband asks for a call that never was
    live = path_kind == "live"
    answer = refusal(openai_stub, ("live_" if live else "rtc_") + "0" * 32, live=live)

    # Then it is a 404 in OpenAI's envelope
    assert answer.status_code == HTTPStatus.NOT_FOUND
    error = json.loads(answer.body)["error"]
    assert (set(error), error["type"], error["code"]) == (
        {"type", "message", "param", "code"},
        "invalid_request_error",
        code,
    )


def test_a_sideband_of_the_other_kind_is_not_found(openai_stub: OpenAIStub) -> None:
    # Given a Realtime call and a Live session
    call_id = open_unconnected_call(openai_stub)
    session_id = open_unconnected_live_session(openai_stub)

    # When each is asked for on the other's route, then both are not found
    assert refusal(openai_stub, session_id).status_code == HTTPStatus.NOT_FOUND
    assert refusal(openai_stub, call_id, live=True).status_code == HTTPStatus.NOT_FOUND
    assert openai_stub.peer.hang_up(call_id)
    assert openai_stub.peer.hang_up(session_id)


@pytest.mark.parametrize("credential", ["client secret", "wrong key", None], ids=["client secret", "wrong key", "none"])
@pytest.mark.parametrize("live", [False, True], ids=["call", "Live"])
def test_a_sideband_attaches_with_the_api_key_only(openai_stub: OpenAIStub, credential: str | None, live: bool) -> None:
    # Given a call or Live session, and a credential that is not the API key
    call_id = open_unconnected_live_session(openai_stub) if live else open_unconnected_call(openai_stub)
    given = {"client secret": mint(openai_stub), "wrong key": "sk-not-the-key", None: None}[credential]

    # When a sideband asks for it with that
    answer = refusal(openai_stub, call_id, live=live, credential=given)

    # Then it is a 401 invalid_api_key, as the hangup routes answer, that does not echo the credential
    assert answer.status_code == HTTPStatus.UNAUTHORIZED
    assert json.loads(answer.body)["error"]["code"] == "invalid_api_key"
    assert given is None or given.encode() not in answer.body
    assert openai_stub.peer.wait_until(call_id, lambda call: call.attachments == 0, timeout=0)
    assert openai_stub.peer.hang_up(call_id)


def test_the_sdks_own_sideband_clients_attach(openai_stub: OpenAIStub) -> None:
    # Given a call and a Live session
    call_id = open_unconnected_call(openai_stub)
    session_id = open_unconnected_live_session(openai_stub)
    client = sdk(openai_stub)

    # When the SDK's realtime.connect(call_id=...) and live.sideband.connect attach and update each
    with client.realtime.connect(call_id=call_id) as realtime:
        realtime.session.update(session={"type": "realtime", "instructions": "From the SDK."})
        event = realtime.recv()
    with client.live.sideband.connect(session_id=session_id) as live:
        live.send({"type": "session.update", "session": {"triggers": []}})
        live_event = live.recv()
        while live_event.type == "session.usage.updated":
            live_event = live.recv()

    # Then each gets its session.updated
    assert event.type == "session.updated"
    assert event.session.instructions == "From the SDK."  # type: ignore[union-attr]
    assert live_event.type == "session.updated"
    assert openai_stub.peer.hang_up(call_id)
    assert openai_stub.peer.hang_up(session_id)


def test_a_live_sideband_gets_usage_each_second_acts_past_the_lock_and_closes_the_session(
    openai_stub: OpenAIStub,
) -> None:
    # Given a Live session whose page may only close it and receives only session.started and session.closed
    session = live_session(["session.close"])
    session["client"]["data_channel"]["allowed_server_events"] = [
        {"type": "session.started"},
        {"type": "session.closed"},
    ]

    async def scenario() -> None:
        page = await open_page(openai_stub, session, live=True)
        await page.until("session.started")
        with attached(openai_stub, page.call_id, live=True) as sideband:
            # When two seconds of session time pass
            ticks = [(await asyncio.to_thread(received, sideband, "session.usage.updated"))[-1] for _ in range(2)]

            # Then the sideband got session.usage.updated with the cumulative whole seconds, one more each time
            assert [server_event_errors(tick) for tick in ticks] == [[], []]
            first = ticks[0]["usage"]["seconds"]
            assert [tick["usage"] for tick in ticks] == [
                {"seconds": seconds, "active_seconds": int(seconds), "paused_seconds": 0}
                for seconds in (first, first + 1)
            ]

            # When the sideband changes the triggers (which the page may not), then closes the session
            send(sideband, {"type": "session.update", "event_id": "evt_sb_1", "session": {"triggers": [TRIGGER]}})
            updated = (await asyncio.to_thread(received, sideband, "session.updated"))[-1]
            send(sideband, {"type": "session.close", "event_id": "evt_sb_2"})
            events, closed_connection = await asyncio.to_thread(until_closed, sideband)

        # Then the update took, answering its event
        assert (updated["client_event_id"], updated["session"]["triggers"]) == ("evt_sb_1", [TRIGGER])
        # And session.closed answered the close, with the final usage, then the sideband closed
        closed = events[-1]
        assert server_event_errors(closed) == []
        assert (closed["type"], closed["reason"], closed["client_event_id"]) == (
            "session.closed",
            "close_requested",
            "evt_sb_2",
        )
        assert closed["usage"]["seconds"] >= first + 1
        assert isinstance(closed_connection, ConnectionClosedOK)
        # And the page got session.closed after session.started, and nothing between (no usage, no update)
        assert (await page.until("session.closed"))[-1]["reason"] == "close_requested"
        assert [event["type"] for event in page.received] == ["session.started", "session.closed"]
        state = await asyncio.to_thread(openai_stub.wait_for_call, page.call_id, until="ended")
        assert state.ended == "close_requested"
        await page.pc.close()

    run(scenario)


@pytest.mark.parametrize(
    ("how", "reason"),
    [pytest.param("hangup", "close_requested", id="hangup route"), pytest.param("page", "remote_hangup", id="page")],
)
def test_a_live_session_that_ends_tells_its_sideband_why_and_closes_it(
    openai_stub: OpenAIStub, how: str, reason: str
) -> None:
    async def scenario() -> None:
        # Given a connected Live session with a sideband
        page = await open_page(openai_stub, live_session(["session.close"]), live=True)
        await page.until("session.started")
        with attached(openai_stub, page.call_id, live=True) as sideband:
            # When the server hangs it up, or the page closes its connection
            if how == "hangup":
                await asyncio.to_thread(sdk(openai_stub).live.sessions.hangup, page.call_id)
            else:
                await page.pc.close()

            # Then the sideband gets session.closed with the reason, then its close
            events, closed = await asyncio.to_thread(until_closed, sideband)
        assert (events[-1]["type"], events[-1]["reason"]) == ("session.closed", reason)
        assert server_event_errors(events[-1]) == []
        assert isinstance(closed, ConnectionClosedOK)
        # And the session is over: not found to hang up or attach to
        state: CallState = await asyncio.to_thread(openai_stub.wait_for_call, page.call_id, until="ended")
        assert state.ended == "hang_up"
        with pytest.raises(openai.NotFoundError):
            await asyncio.to_thread(sdk(openai_stub).live.sessions.hangup, page.call_id)
        refused = await asyncio.to_thread(refusal, openai_stub, page.call_id, live=True)
        assert refused.status_code == HTTPStatus.NOT_FOUND
        await page.pc.close()

    run(scenario)
