"""A local stand-in for OpenAI's Realtime peer: WebRTC calls behind the OpenAI stub's `POST /v1/realtime/calls`,
and WebSocket sessions behind its `GET /v1/realtime`.

A call answers a browser's (or any WebRTC client's) SDP offer with aiortc and speaks on the `oai-events` data
channel; a WebSocket session speaks on the socket itself. Both speak the same small part of the GA protocol:
`session.created` with the session the client secret was minted with, `session.update` -> `session.updated`,
`response.create` -> the GA response events with about a second of tone (on the outgoing track of a call; as
`response.output_audio.delta` events on a WebSocket), an `error` event for what the peer does not know (the
session goes on). When the session has input transcription (`audio.input.transcription` with a model), each
response follows the user's turn: their audio message (`conversation.item.added`, `conversation.item.done`) and
its transcript (`conversation.item.input_audio_transcription.delta`, `.completed`), a fixed one. A session ends
when the client hangs up (closing its connection, or the stub's hangup route for a call) or after
`max_call_seconds`. Event shapes follow the official schemas in
openai_stub/openapi/realtime-events.openapi.json.

A GPT-Live session (the stub's `POST /v1/live/sessions`) is a call that speaks Live's events instead, as
openai-python 3.63.0 defines them (`openai.types.live`; the OpenAPI document predates Live): `_LiveCall`.

Sidebands: a server attaches to a call (`GET /v1/realtime?call_id=rtc_...`) or a Live session
(`GET /v1/live/sessions/live_.../attach`) with the API key, any number at once (sideband.py). Every server event
of the call goes to its data channel (a Live session's as its `allowed_server_events` lets through) and, the same
message, to every sideband attached then (unfiltered: a sideband is trusted); attaching replays nothing. A
sideband's client events act as the data channel's (Live: `ConnectClientEventParam`, no `allowed_client_events`
lock). A call that ends, however it ends, closes its sidebands after its last events (a Live session's
`session.closed`: also `remote_hangup` when the client closed its connection, `connection_lost` when it failed).

Usage, fixed so that a test can compute what it costs:
- every `response.done` carries RESPONSE_USAGE: input 468 tokens (text 123, of which 64 cached; audio 345, of which
  128 cached; no image), output 243 (text 27, audio 216), total 711; the same for every response (a function call's
  too), unless a test scripted another (`RealtimePeer.next_response`).
- every `conversation.item.input_audio_transcription.completed` carries TRANSCRIPTION_USAGE: tokens, input 12
  (text 2, audio 10), output 8, total 20.
- a Live session sends `session.usage.updated` at each whole second of session time since it was created (the
  k-th: seconds k, all active: `active_seconds` k, `paused_seconds` 0), to the data channel and every sideband;
  `session.closed` carries the whole seconds elapsed.

Test hooks (RealtimePeer; `OpenAIStub.peer` is the stub's): `next_response` (the next response's usage, or a call of
a named function tool), `drop_sidebands` (as a network drop), `send_on_sidebands` (any raw message, as if the call
sent it), and `wait_until` (a condition on the call's `CallState`: its sidebands, what they sent, its responses,
whether, why and when it ended).

aiortc is not thread-safe: one asyncio loop, on a daemon thread, owns every aiortc object and every session's
state; the stub's HTTP threads reach it only through the loop's thread-safe calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fractions
import functools
import json
import logging
import math
import queue
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription
from av import AudioFrame
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.sync.server import ServerConnection
from websockets.typing import Subprotocol

from openai_stub import live
from openai_stub.schema import event_violations
from openai_stub.sideband import Sideband

# The function's rules for session.update; its code is on sys.path wherever the peer runs (make run's gateway
# puts it there before the first call, as Lambda does; pytest's pythonpath).
from voice_access.domain.policy.rules import merged

logger = logging.getLogger(__name__)
# websockets' debug lines show the upgrade's headers, a client secret among them: never below INFO.
_WEBSOCKET_LOG = logging.getLogger(__name__ + ".websocket")
_WEBSOCKET_LOG.setLevel(logging.INFO)

EVENTS_CHANNEL = "oai-events"
# OpenAI ends a Realtime session after 60 minutes; locally a call is a test or a developer's try.
MAX_CALL_SECONDS = 300.0
REPLY_TRANSCRIPT = "Hello from the local Realtime peer."
# The user's turn, when the session asks for input transcription: the peer hears the microphone but recognises
# no speech, and says so rather than invent words.
INPUT_TRANSCRIPT = "(make run's peer does not recognise speech)"
REPLY_SECONDS = 1.0
# The GA client events (RealtimeClientEvent): those the peer does not act on are accepted and ignored.
CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.clear",
        "input_audio_buffer.commit",
        "output_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "response.create",
        "response.cancel",
    }
)
# What a browser's WebSocket offers (with `openai-insecure-api-key.<secret>`) and OpenAI answers.
REALTIME_SUBPROTOCOL = "realtime"
# OpenAI takes up to 15 MiB of audio in one input_audio_buffer.append: as base64, with the event around it.
MAX_EVENT_BYTES = 21 * 2**20
_SAMPLE_RATE = 48_000
_FRAME_SAMPLES = 960  # 20 ms


def _tone(rate: int) -> bytes:
    """20 ms of a 400 Hz tone, PCM16 at `rate`: 400 Hz fits 20 ms exactly (8 periods), so it repeats without a
    click."""
    samples = rate // 50
    return struct.pack(f"<{samples}h", *(round(6000 * math.sin(2 * math.pi * 400 * i / rate)) for i in range(samples)))


_TONE = _tone(_SAMPLE_RATE)
_SILENCE = bytes(2 * _FRAME_SAMPLES)
# A WebSocket gets the reply as GA audio deltas in the session's output format: the tone in PCM16 at 24 kHz;
# G.711 (8 kHz) as its silence, which is all a client needs to see the bytes arrive in its format.
_REPLY_AUDIO = {
    "audio/pcm": _tone(24_000) * int(REPLY_SECONDS * 50),
    "audio/pcmu": b"\xff" * int(REPLY_SECONDS * 8000),
    "audio/pcma": b"\xd5" * int(REPLY_SECONDS * 8000),
}
_AUDIO_DELTAS = 5
_TIME_BASE = fractions.Fraction(1, _SAMPLE_RATE)
_ANSWER_TIMEOUT_SECONDS = 10.0
# What a Live session's model says when it starts (see _LiveCall).
LIVE_TRANSCRIPT = "Hello from the local Live peer."
# Why a Live session ends, as session.closed says it (openai-python 3.63.0, SessionClosedEvent.reason): an
# application's close or hangup request is `close_requested`, the duration limit `expired` (a client that closed its
# connection: see _LiveCall._connection_ended). A peer that stops sends no event.
_LIVE_CLOSE_REASONS = {"close_requested": "close_requested", "hang_up": "close_requested", "time_limit": "expired"}
# How long a closing Live session waits for its last events to reach the client (its channel's stream reset
# follows them), at most.
_DRAIN_SECONDS = 2.0
# Ended calls kept for `calls` (make run never resets the stub).
_ENDED_CALLS_KEPT = 100
# What every response.done and input transcription carries, unless a test scripted another (module docstring).
RESPONSE_USAGE: dict[str, Any] = {
    "total_tokens": 711,
    "input_tokens": 468,
    "output_tokens": 243,
    "input_token_details": {
        "text_tokens": 123,
        "audio_tokens": 345,
        "image_tokens": 0,
        "cached_tokens": 192,
        "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 128, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 27, "audio_tokens": 216},
}
TRANSCRIPTION_USAGE: dict[str, Any] = {
    "type": "tokens",
    "total_tokens": 20,
    "input_tokens": 12,
    "output_tokens": 8,
    "input_token_details": {"text_tokens": 2, "audio_tokens": 10},
}


class OfferError(ValueError):
    """The SDP offer cannot start a call; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class CallState:
    """One session as the peer sees it (a snapshot): a WebRTC call (`rtc_...`), a WebSocket (`ws_...`) or a GPT-Live
    session (`live_...`)."""

    call_id: str
    audio_frames_received: int
    events_received: int
    # Why it ended ("hang_up", "time_limit", "connection_failed", "peer_stopped"; a Live session's
    # "close_requested" for its session.close), None if live.
    ended: str | None
    ended_at: float | None = None  # time.monotonic() when it ended
    sidebands: int = 0  # attached now
    attachments: int = 0  # sidebands attached since it opened
    # Every message its sidebands sent, in order: the parsed JSON, or the text (or bytes) when it does not parse.
    sideband_events: tuple[object, ...] = ()
    responses: int = 0  # response.done events sent


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """What a response does instead of speaking (RealtimePeer.next_response)."""

    usage: object  # response.done's `usage`, whatever it is
    function: str | None = None  # the function tool it calls (a function_call output item), None: it speaks
    arguments: str = "{}"  # the call's arguments, a JSON text


def offer_problem(sdp: str) -> str | None:
    """What is wrong with an offer, or None. aiortc accepts almost anything (garbage gives an answer without
    m-lines), so the offer is checked here for what a Realtime call needs."""
    if not sdp.lstrip().startswith("v=0"):
        return "an SDP offer starts with 'v=0'"
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as error:  # aiortc's parser raises what it meets (assertions, attributes)
        return f"the SDP does not parse ({type(error).__name__})"
    kinds = [media.kind for media in parsed.media]
    if "audio" not in kinds:
        return "the offer has no audio m-line: add an audio transceiver (the microphone) before creating the offer"
    if "application" not in kinds:
        return "the offer has no data channel: create the 'oai-events' data channel before creating the offer"
    for media in parsed.media:
        ice, dtls = media.ice, media.dtls
        if not (ice and ice.usernameFragment and ice.password) or not (dtls and dtls.fingerprints):
            return f"the m={media.kind} line lacks ICE credentials or a DTLS fingerprint"
    return None


def offer_loopback_candidates() -> None:
    """Make aioice offer 127.0.0.1, which it skips: on a machine whose only interface is `lo` (a CI sandbox)
    neither side would have a candidate. Harmless where other interfaces exist; idempotent."""
    if getattr(aioice.ice.get_host_addresses, "offers_loopback", False):
        return
    original = aioice.ice.get_host_addresses

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4, use_ipv6)
        return ["127.0.0.1", *addresses] if use_ipv4 and "127.0.0.1" not in addresses else addresses

    get_host_addresses.offers_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


class RealtimePeer:
    """The loop thread and its sessions: `peer.start()`, `peer.open_call(offer, session)` (WebRTC),
    `peer.serve_websocket(sock, request, session)` (WebSocket), `peer.stop()`."""

    max_call_seconds: float = MAX_CALL_SECONDS

    def __init__(self, *, max_call_seconds: float | None = None) -> None:
        if max_call_seconds is not None:
            self.max_call_seconds = max_call_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._calls: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def start(self) -> RealtimePeer:
        if self._loop is not None:
            return self
        offer_loopback_candidates()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="realtime-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every session, then the loop and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(_ANSWER_TIMEOUT_SECONDS)
        with self._lock:
            self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def open_call(
        self, offer_sdp: str, session: Mapping[str, Any], *, max_call_seconds: float | None = None
    ) -> tuple[str, str]:
        """A new call for `offer_sdp` with `session` (ending after `max_call_seconds`, by default the peer's):
        its id and the SDP answer. Raises OfferError."""
        if problem := offer_problem(offer_sdp):
            raise OfferError(problem)
        call = _Call("rtc_" + secrets.token_hex(16), dict(session), max_call_seconds or self.max_call_seconds)
        return self._open(call, offer_sdp)

    def open_live_session(
        self, offer_sdp: str, session: Mapping[str, Any], *, max_call_seconds: float | None = None
    ) -> tuple[str, str]:
        """A new GPT-Live session for `offer_sdp`, created with `session` (a valid MediaSessionConfigParam): its
        `live_...` id and the SDP answer. Raises OfferError."""
        if problem := offer_problem(offer_sdp):
            raise OfferError(problem)
        call = _LiveCall("live_" + secrets.token_hex(16), dict(session), max_call_seconds or self.max_call_seconds)
        return self._open(call, offer_sdp)

    def _open(self, call: _Call, offer_sdp: str) -> tuple[str, str]:
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(call.answer(offer_sdp), loop)
        try:
            answer = future.result(_ANSWER_TIMEOUT_SECONDS)
        except ValueError as error:  # aiortc's own complaint about an offer that passed the checks above
            raise OfferError(str(error)) from None
        except TimeoutError:
            asyncio.run_coroutine_threadsafe(call.end("offer_refused"), loop)
            raise
        self._keep(call)
        logger.info("realtime call opened call_id=%s", call.call_id)
        return call.call_id, answer

    def serve_websocket(
        self, sock: socket.socket, request: bytes, session: Mapping[str, Any], *, max_call_seconds: float | None = None
    ) -> None:
        """A WebSocket session with `session` on `sock`, whose upgrade `request` (its bytes, up to the blank line)
        the caller has read and authorised: the handshake, then the session's events until either side closes.
        Blocks the calling thread until then."""
        loop = self._running_loop()
        sock.settimeout(None)  # the connection's pings find a peer that went away; an idle client may stay
        connection = _handshake(sock, request)
        if connection is None:
            return
        conversation = _Socket("ws_" + secrets.token_hex(16), dict(session), max_call_seconds or self.max_call_seconds)
        conversation.attach(connection)
        self._keep(conversation)
        try:
            asyncio.run_coroutine_threadsafe(conversation.open(), loop).result(_ANSWER_TIMEOUT_SECONDS)
            logger.info("realtime websocket opened session=%s", conversation.call_id)
            for message in connection:
                self._on_loop(conversation.receive, message)
        except ConnectionClosed:
            pass  # closed without a close frame, or with an error code: the session ends all the same
        finally:
            self._submit(conversation.end("hang_up"))
            conversation.join()

    def serve_sideband(self, sock: socket.socket, request: bytes, call_id: str, *, live: bool) -> bool:
        """A sideband of the call `call_id` (with `live`, a GPT-Live session) on `sock`, whose upgrade `request` the
        caller has read and authorised: attached, then the handshake, then the call's events out and the sideband's
        client events in, until either side closes or the call ends. Blocks the calling thread until then. False,
        having sent nothing, when there is no such call to attach to (unknown, ended, or of the other kind)."""
        call = self._attachable(call_id, live=live)
        if call is None:
            return False
        sideband = Sideband(sock)
        attached = asyncio.run_coroutine_threadsafe(call.attach_sideband(sideband), self._running_loop())
        if not attached.result(_ANSWER_TIMEOUT_SECONDS):
            return False
        try:
            sock.settimeout(None)  # the connection's pings find a server that went away
            connection = _handshake(sock, request)
            if connection is not None:
                sideband.start(connection)
                logger.info("realtime sideband attached call_id=%s", call_id)
                for message in connection:
                    self._on_loop(functools.partial(call.receive, sideband=sideband), message)
        except ConnectionClosed:
            pass  # dropped, or closed with an error code
        finally:
            self._submit(call.detach_sideband(sideband))
            sideband.close()
            sideband.join()
        return True

    def next_response(
        self, call_id: str, *, usage: object = RESPONSE_USAGE, function: str | None = None, arguments: str = "{}"
    ) -> None:
        """Script the call's next unscripted response (scripts apply first in, first out): its response.done
        carries `usage` as given (negative counts, a string, None), and with `function` it calls that function tool
        (response.function_call_arguments.delta and .done, then a function_call output item) instead of speaking.
        KeyError for an unknown id."""
        script = ScriptedResponse(usage, function, arguments)
        self._on_call(call_id, lambda call: call.scripts.append(script))

    def drop_sidebands(self, call_id: str) -> int:
        """Cut every sideband of the call as a network drop would (no close frame; what was queued is lost); the call
        goes on and a sideband may attach again. How many were cut."""
        dropped = self._on_call(call_id, lambda call: call.detach_all())
        for sideband in dropped:
            sideband.drop()
        return len(dropped)

    def send_on_sidebands(self, call_id: str, message: str | bytes) -> int:
        """`message` as it is (malformed JSON, an unknown type, megabytes; bytes as a binary frame) on every sideband
        of the call, as if the call had sent it, and not on its data channel. How many sidebands it went to."""
        return self._on_call(call_id, lambda call: call.to_sidebands(message))

    def wait_until(self, call_id: str, condition: Callable[[CallState], bool], *, timeout: float) -> CallState:
        """The call's state once `condition` holds for it (checked now, then on each change of its sidebands, what
        they sent, its responses or its end; it holds up those changes while it runs, so it only reads the state);
        TimeoutError after `timeout` seconds, KeyError for an unknown id."""
        with self._lock:
            call = self._calls[call_id]
        deadline = time.monotonic() + timeout
        with call.changes:
            while not condition(state := call.state()):
                left = deadline - time.monotonic()
                if left <= 0:
                    summary = (
                        f"ended={state.ended} sidebands={state.sidebands} attachments={state.attachments} "
                        f"sideband_events={len(state.sideband_events)} responses={state.responses}"
                    )
                    raise TimeoutError(f"call {call_id}: the condition did not hold within {timeout:g} s ({summary})")
                call.changes.wait(left)
        return state

    def hang_up(self, call_id: str) -> bool:
        """End a live call; False if there is none with that id (or it is ending: a Live session closing)."""
        with self._lock:
            call = self._calls.get(call_id)
            loop = self._loop
        if call is None or not call.active or loop is None:
            return False
        asyncio.run_coroutine_threadsafe(call.end("hang_up"), loop).result(_ANSWER_TIMEOUT_SECONDS)
        return True

    def wait(self, call_id: str, *, until: Literal["audio", "ended"], timeout: float) -> CallState:
        """The session once the client's first audio has arrived (a microphone frame, or an
        `input_audio_buffer.append`), or once it has ended; TimeoutError after `timeout` seconds, KeyError for an
        unknown id."""
        with self._lock:
            call = self._calls[call_id]
        event = call.audio_arrived if until == "audio" else call.has_ended
        if not event.wait(timeout):
            raise TimeoutError(f"call {call_id}: no {until} within {timeout:g} s")
        return call.state()

    @property
    def calls(self) -> list[CallState]:
        """Every session opened since start, oldest first."""
        with self._lock:
            calls = list(self._calls.values())
        return [call.state() for call in calls]

    def forget_ended(self) -> None:
        with self._lock:
            self._calls = {key: call for key, call in self._calls.items() if call.ended is None}

    def _attachable(self, call_id: str, *, live: bool) -> _Call | None:
        with self._lock:
            call = self._calls.get(call_id)
        if not isinstance(call, _Call) or isinstance(call, _LiveCall) != live or not call.active:
            return None
        return call

    def _on_call[T](self, call_id: str, action: Callable[[_Session], T]) -> T:
        """`action(call)` on the loop, and its result; KeyError for an unknown id or a stopped peer."""
        with self._lock:
            call, loop = self._calls[call_id], self._loop
        if loop is None:
            raise KeyError(call_id)

        async def act() -> T:
            return action(call)

        return asyncio.run_coroutine_threadsafe(act(), loop).result(_ANSWER_TIMEOUT_SECONDS)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.start()._loop
        assert loop is not None
        return loop

    def _submit(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` on the loop, unless the peer has stopped (then every session has ended already)."""
        with self._lock:
            if self._loop is not None:
                asyncio.run_coroutine_threadsafe(coroutine, self._loop)
                return
        coroutine.close()

    def _on_loop(self, callback: Callable[[str | bytes], None], message: str | bytes) -> None:
        """`callback(message)` on the loop, unless the peer has stopped."""
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(callback, message)

    def _keep(self, session: _Session) -> None:
        with self._lock:
            self._calls[session.call_id] = session
            ended = [key for key, kept in self._calls.items() if kept.ended is not None]
            for key in ended[: max(0, len(ended) - _ENDED_CALLS_KEPT)]:
                del self._calls[key]

    async def _close_all(self) -> None:
        with self._lock:
            calls = list(self._calls.values())
        await asyncio.gather(*(call.end("peer_stopped") for call in calls))
        # A call whose ICE never connected leaves aiortc's connect task pending after close(); cancel what is
        # left, and join the default executor (aioice resolves addresses in it).
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        loop = asyncio.get_running_loop()
        await loop.shutdown_default_executor()


def _handshake(sock: socket.socket, request: bytes) -> ServerConnection | None:
    """The WebSocket on `sock` once its opening handshake is done; None when the request cannot open one (its
    refusal, in OpenAI's envelope, is sent)."""
    protocol = ServerProtocol(select_subprotocol=_realtime_if_offered, max_size=MAX_EVENT_BYTES, logger=_WEBSOCKET_LOG)
    connection = ServerConnection(sock, protocol)
    # The stub's HTTP server has read the request: the connection parses it as if it had.
    # websockets 16.1.1's internals (pinned): its sync API has no public way to take a request already read.
    with connection.protocol_mutex:
        connection.protocol.receive_data(request)
        for event in connection.protocol.events_received():
            connection.process_event(event)
    try:
        connection.handshake(process_response=_refusal_in_envelope, server_header=None)
    except InvalidHandshake:
        connection.close_socket()
        connection.recv_events_thread.join()
        return None
    return connection


def _realtime_if_offered(_: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """`realtime` when a browser offers it (a browser fails a connection whose offered subprotocols all go
    unanswered); none for a client that offers none."""
    return Subprotocol(REALTIME_SUBPROTOCOL) if REALTIME_SUBPROTOCOL in offered else None


def _refusal_in_envelope(_: ServerConnection, request: Request, response: Response) -> Response | None:
    """websockets' plain-text refusal of a request that is no WebSocket upgrade, in OpenAI's error envelope."""
    if response.status_code == 101:
        return None
    reason = response.body.decode(errors="replace").strip().rstrip(".")
    message = f"This route opens a WebSocket: {reason}. Connect with a WebSocket client."
    body = json.dumps(
        {"error": {"type": "invalid_request_error", "message": message, "param": None, "code": "websocket_required"}}
    ).encode()
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
    )
    return Response(response.status_code, response.reason_phrase, headers, body)


class _ReplyTrack(MediaStreamTrack):
    """The model's voice: 20 ms frames of silence, a tone while a reply is spoken."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._started: float | None = None
        self._tone_until = 0
        self._spoken = asyncio.Event()

    def speak(self, seconds: float) -> asyncio.Event:
        """Play the tone for `seconds` from now; the event is set once it has been sent."""
        self._tone_until = self._pts + int(seconds * _SAMPLE_RATE)
        self._spoken = asyncio.Event()
        return self._spoken

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
        else:
            self._pts += _FRAME_SAMPLES
            await asyncio.sleep(max(0.0, self._started + self._pts / _SAMPLE_RATE - loop.time()))
        speaking = self._pts < self._tone_until
        if not speaking:
            self._spoken.set()
        frame = AudioFrame(format="s16", layout="mono", samples=_FRAME_SAMPLES)
        frame.planes[0].update(_TONE if speaking else _SILENCE)
        frame.pts, frame.sample_rate, frame.time_base = self._pts, _SAMPLE_RATE, _TIME_BASE
        return frame


class _Session:
    """One Realtime session's state and the GA events it speaks, whatever carries them: a subclass sends the
    events (`_deliver`), plays the reply (`_start_audio`, `_finish_audio`) and closes its transport."""

    def __init__(self, call_id: str, session: dict[str, Any], max_call_seconds: float) -> None:
        self.call_id = call_id
        self.session = session
        self.max_call_seconds = max_call_seconds
        self.audio_frames_received = 0
        self.events_received = 0
        self.ended: str | None = None
        # For threads that wait on the session (tests, the stub): set on the loop, read anywhere.
        self.audio_arrived = threading.Event()
        self.has_ended = threading.Event()
        self.responding = False
        self.ended_at: float | None = None
        self.sidebands: list[Sideband] = []
        self.attachments = 0
        self.sideband_events: list[object] = []
        self.responses = 0
        self.scripts: deque[ScriptedResponse] = deque()
        # Notified on the loop at each change wait_until waits on.
        self.changes = threading.Condition()
        self._last_item_id: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._time_limit: asyncio.TimerHandle | None = None

    def state(self) -> CallState:
        return CallState(
            self.call_id,
            self.audio_frames_received,
            self.events_received,
            self.ended,
            self.ended_at,
            len(self.sidebands),
            self.attachments,
            tuple(self.sideband_events),
            self.responses,
        )

    @property
    def active(self) -> bool:
        """Neither ended nor ending: a sideband may attach, a hangup ends it."""
        return self.ended is None

    async def attach_sideband(self, sideband: Sideband) -> bool:
        """Fan the session's events out to `sideband` from now on; False when it has ended (or is ending)."""
        if not self.active:
            return False
        self.sidebands.append(sideband)
        self.attachments += 1
        self._changed()
        return True

    async def detach_sideband(self, sideband: Sideband) -> None:
        if sideband in self.sidebands:
            self.sidebands.remove(sideband)
            self._changed()

    def detach_all(self) -> list[Sideband]:
        detached, self.sidebands = self.sidebands, []
        self._changed()
        return detached

    def to_sidebands(self, message: str | bytes) -> int:
        for sideband in self.sidebands:
            sideband.deliver(message)
        return len(self.sidebands)

    def _changed(self) -> None:
        with self.changes:
            self.changes.notify_all()

    def start_time_limit(self) -> None:
        loop = asyncio.get_running_loop()
        self._time_limit = loop.call_later(self.max_call_seconds, self._time_is_up)

    async def end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended, self.ended_at = reason, time.monotonic()
        if self._time_limit is not None:
            self._time_limit.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self._close()
        for sideband in self.detach_all():
            sideband.close()
        self.has_ended.set()
        logger.info("realtime session ended session=%s reason=%s", self.call_id, reason)

    def send(self, event: dict[str, Any]) -> None:
        """A server event, to the client (when it takes that type) and every sideband, the same message."""
        text = json.dumps({"event_id": _random_id("event_"), **event})
        if self._client_takes(event["type"]):
            self._deliver(text)
        self.to_sidebands(text)

    def _client_takes(self, event_type: str) -> bool:
        return True

    def _recorded(self, message: str | bytes) -> None:
        """Keep what a sideband sent, parsed when it parses."""
        try:
            self.sideband_events.append(json.loads(message))
        except ValueError:
            self.sideband_events.append(message)
        self._changed()

    def receive(self, message: str | bytes, *, sideband: Sideband | None = None) -> None:
        """One client event, as received from the client or a `sideband`."""
        if sideband is not None:
            self._recorded(message)
        if self.ended is not None:
            return
        if sideband is None:
            self.events_received += 1
        try:
            event = json.loads(message)
        except ValueError:
            self.send(_error("invalid_json", "The event is not valid JSON: send one JSON object per message."))
            return
        if not isinstance(event, dict) or "type" not in event:
            self.send(_error("invalid_event", "The 'type' field is missing."))
            return
        kind, client_event_id = event["type"], event.get("event_id")
        if kind not in CLIENT_EVENTS:
            supported = ", ".join(f"'{name}'" for name in sorted(CLIENT_EVENTS))
            message_text = f"Invalid value: '{str(kind)[:100]}'. Supported values are: {supported}."
            self.send(_error("invalid_value", message_text, param="type", event_id=client_event_id))
            return
        if kind == "input_audio_buffer.append":
            self.audio_frames_received += 1
            self.audio_arrived.set()
        schema = {
            "session.update": "RealtimeClientEventSessionUpdate",
            "response.create": "RealtimeClientEventResponseCreate",
        }
        if kind not in schema:
            return
        if violations := event_violations(schema[kind], event):
            first = violations[0]
            self.send(
                _error("invalid_value", f"Invalid value: {first.message}", param=first.param, event_id=client_event_id)
            )
            return
        if kind == "session.update":
            self._update_session(event["session"], client_event_id)
        elif self.responding:
            self.send(
                _error(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: wait for response.done.",
                    event_id=client_event_id,
                )
            )
        else:
            self.responding = True
            self._spawn(self._respond())

    def _deliver(self, text: str) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def _start_audio(self, response_id: str, place: Mapping[str, Any]) -> None:
        """Begin the reply's audio (the transcript's deltas follow)."""
        raise NotImplementedError

    async def _finish_audio(self, response_id: str) -> None:
        """Once the reply's audio is out (before response.output_audio.done)."""

    def _audio_stopped(self, response_id: str) -> None:
        """After response.done."""

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _time_is_up(self) -> None:
        self._spawn(self._end_at_time_limit())

    async def _end_at_time_limit(self) -> None:
        self.send(
            _error(
                "session_expired",
                f"Your session hit the maximum duration of {self.max_call_seconds:g} seconds.",
            )
        )
        await self.end("time_limit")

    def _update_session(self, update: Mapping[str, Any], client_event_id: str | None) -> None:
        if update.get("type", self.session.get("type")) != self.session.get("type"):
            message = f"Cannot change the session's type from '{self.session.get('type')}'."
            self.send(_error("invalid_value", message, param="session.type", event_id=client_event_id))
            return
        self.session = merged(self.session, update)
        self.send({"type": "session.updated", "session": self.session})

    def _transcribes_input(self) -> bool:
        """Whether the session asks for input transcription: `audio.input.transcription` with a model."""
        audio_input = (self.session.get("audio") or {}).get("input") or {}
        transcription = audio_input.get("transcription")
        return isinstance(transcription, Mapping) and bool(transcription.get("model"))

    def _user_turn(self) -> None:
        """The user's audio message and its transcript, as OpenAI sends them with input transcription on."""
        item_id = _random_id("item_")
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            # Not yet transcribed: OpenAI sends null, which the schema's string refuses; the JS Agents SDK needs it.
            "content": [{"type": "input_audio", "transcript": ""}],
        }
        previous = {"previous_item_id": self._last_item_id}
        self.send({"type": "conversation.item.added", **previous, "item": item})
        self.send({"type": "conversation.item.done", **previous, "item": item})
        self._last_item_id = item_id
        place = {"item_id": item_id, "content_index": 0}
        first, *rest = INPUT_TRANSCRIPT.split(" ")
        for delta in [first, *(" " + word for word in rest)]:
            self.send({"type": "conversation.item.input_audio_transcription.delta", **place, "delta": delta})
        self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                **place,
                "transcript": INPUT_TRANSCRIPT,
                "usage": TRANSCRIPTION_USAGE,
            }
        )

    async def _respond(self) -> None:
        script = self.scripts.popleft() if self.scripts else ScriptedResponse(RESPONSE_USAGE)
        if self._transcribes_input():
            self._user_turn()
        response_id, item_id = _random_id("resp_"), _random_id("item_")
        self._last_item_id = item_id
        output = self.session.get("audio", {}).get("output", {})
        audio_format = output.get("format") or {"type": "audio/pcm", "rate": 24000}
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "output": [],
            "conversation_id": "conv_" + self.call_id.partition("_")[2][:21],
            "output_modalities": ["audio"],
            "max_output_tokens": self.session.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": audio_format, "voice": output.get("voice", "alloy")}},
        }
        self.send({"type": "response.created", "response": response})
        if script.function is not None:
            done_item = self._call_function(response_id, item_id, script.function, script.arguments)
        else:
            done_item = await self._speak_reply(response_id, item_id)
        completed = {**response, "status": "completed", "output": [done_item], "usage": script.usage}
        self.send({"type": "response.done", "response": completed})
        if script.function is None:
            self._audio_stopped(response_id)
        self.responding = False
        self.responses += 1
        self._changed()

    def _call_function(self, response_id: str, item_id: str, name: str, arguments: str) -> dict[str, Any]:
        """A function call as the response's output, as OpenAI streams one: the item, its arguments, the item
        done. Returns the item."""
        call_id = _random_id("call_")
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        place = {"response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        self.send({"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item})
        self.send({"type": "response.function_call_arguments.delta", **place, "delta": arguments})
        self.send({"type": "response.function_call_arguments.done", **place, "name": name, "arguments": arguments})
        done_item = {**item, "status": "completed", "arguments": arguments}
        self.send(
            {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": done_item}
        )
        return done_item

    async def _speak_reply(self, response_id: str, item_id: str) -> dict[str, Any]:
        """The reply's audio and its transcript as the response's output message. Returns the message."""
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        place = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        self.send({"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item})
        self.send({"type": "response.content_part.added", **place, "part": {"type": "audio", "transcript": ""}})
        self._start_audio(response_id, place)
        for word in REPLY_TRANSCRIPT.split(" "):
            self.send({"type": "response.output_audio_transcript.delta", **place, "delta": word + " "})
        await self._finish_audio(response_id)
        self.send({"type": "response.output_audio.done", **place})
        self.send({"type": "response.output_audio_transcript.done", **place, "transcript": REPLY_TRANSCRIPT})
        part = {"type": "audio", "transcript": REPLY_TRANSCRIPT}
        self.send({"type": "response.content_part.done", **place, "part": part})
        done_item = {
            **item,
            "status": "completed",
            "content": [{"type": "output_audio", "transcript": REPLY_TRANSCRIPT}],
        }
        self.send(
            {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": done_item}
        )
        return done_item


class _Call(_Session):
    """A WebRTC call: the events on the `oai-events` data channel, the reply on the outgoing audio track."""

    def __init__(self, call_id: str, session: dict[str, Any], max_call_seconds: float) -> None:
        super().__init__(call_id, session, max_call_seconds)
        # No ICE servers: without this aiortc asks stun.l.google.com, which stalls gathering offline.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = _ReplyTrack()
        self.channel: RTCDataChannel | None = None
        self._spoken: asyncio.Event | None = None

    async def answer(self, offer_sdp: str) -> str:
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    transceiver.sender.replaceTrack(self.track)
                    transceiver.direction = "sendrecv"
            await pc.setLocalDescription(await pc.createAnswer())  # gathers the (host) candidates first
        except BaseException:
            await self.end("offer_refused")
            raise
        self.start_time_limit()
        return pc.localDescription.sdp

    def _deliver(self, text: str) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)

    async def _close(self) -> None:
        self.track.stop()
        await self.pc.close()

    def _start_audio(self, response_id: str, place: Mapping[str, Any]) -> None:
        self._spoken = self.track.speak(REPLY_SECONDS)
        self.send({"type": "output_audio_buffer.started", "response_id": response_id})

    async def _finish_audio(self, response_id: str) -> None:
        # The audio is on its way when the track has sent it; a client that never reads it does not stall us.
        if self._spoken is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spoken.wait(), REPLY_SECONDS + 1)

    def _audio_stopped(self, response_id: str) -> None:
        self.send({"type": "output_audio_buffer.stopped", "response_id": response_id})

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self.receive)
        self.send({"type": "session.created", "session": self.session})

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        # Read the microphone (and so keep aiortc's receiver from buffering it): the frames are counted.
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.audio_frames_received += 1
                self.audio_arrived.set()

    async def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and self.ended is None:
            await self._connection_ended(closed=self.pc.connectionState == "closed")

    async def _connection_ended(self, *, closed: bool) -> None:
        """The client closed its connection (`closed`), or it failed."""
        await self.end("hang_up" if closed else "connection_failed")


class _LiveCall(_Call):
    """A GPT-Live session over WebRTC: Live's events on the `oai-events` data channel (openai-python 3.63.0,
    `openai.types.live`), the model's voice on the outgoing track.

    When the channel opens the peer sends `session.started` with the SessionResource (the `live_...` id, the
    session as created, server defaults filled in). No Live client event asks the model to speak (`response.create`
    needs Responses delegation), so the peer's trigger is the start itself: right after `session.started` it speaks
    (about a second of tone) with `session.output_transcript.delta` events for LIVE_TRANSCRIPT. At each whole second
    since the session was created it sends `session.usage.updated` (the cumulative seconds). It answers
    `session.update` (only `delegation`, of the same type, and `triggers` may change: SessionUpdateConfigParam) with
    `session.updated`, `session.input_audio.mute` and `.unmute` with `session.input_audio.muted` and `.unmuted`, and
    `session.close` with `session.closed` (reason `close_requested`, the final usage), then closes; the stub's hangup
    route does the same, the time limit with reason `expired`; when the client closes its connection, its sidebands
    get `session.closed` with reason `remote_hangup` (`connection_lost` when the connection failed).
    `session.client.data_channel.allowed_client_events` is honoured: a client event of another type gets an `error`
    event and changes nothing, and `allowed_server_events` filters what the channel carries (not what a sideband
    gets). Other valid client events are accepted and ignored; an invalid one gets `error`.
    """

    def __init__(self, call_id: str, requested: dict[str, Any], max_call_seconds: float) -> None:
        super().__init__(call_id, requested, max_call_seconds)
        self.session = live.session_resource(call_id, requested, int(time.time() + max_call_seconds))
        self.allowed_client_events = live.allowed_client_events(requested)
        self.allowed_server_events = live.allowed_server_events(requested)
        self.input_muted = False
        self._started = time.monotonic()
        self._closing = False
        self._closing_event_id: str | None = None
        self._channel_closed = asyncio.Event()

    @property
    def active(self) -> bool:
        return self.ended is None and not self._closing

    def _client_takes(self, event_type: str) -> bool:
        return self.allowed_server_events is None or event_type in self.allowed_server_events

    def receive(self, message: str | bytes, *, sideband: Sideband | None = None) -> None:
        """One client event, as received from the client or a `sideband` (trusted: no `allowed_client_events`, and
        the events a sideband may send, ConnectClientEventParam)."""
        if sideband is not None:
            self._recorded(message)
        if self.ended is not None or self._closing:
            return
        if sideband is None:
            self.events_received += 1
        try:
            event = json.loads(message)
        except ValueError:
            self.send(_live_error("invalid_json", "The event is not valid JSON: send one JSON object per message."))
            return
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        client_event_id = client_event_id if isinstance(client_event_id, str) else None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            message_text = "Missing required parameter: 'type'."
            self.send(_live_error("missing_required_parameter", message_text, param="type", event_id=client_event_id))
            return
        kind = event["type"]
        allowed = self.allowed_client_events if sideband is None else None
        if allowed is not None and kind not in allowed:
            message_text = (
                f"The client event type '{kind[:100]}' is not allowed on this data channel "
                "(session.client.data_channel.allowed_client_events)."
            )
            self.send(_live_error("client_event_not_allowed", message_text, param="type", event_id=client_event_id))
            return
        known = live.CLIENT_EVENT_TYPES if sideband is None else live.SIDEBAND_CLIENT_EVENT_TYPES
        if kind not in known:
            supported = ", ".join(f"'{name}'" for name in sorted(known))
            message_text = f"Invalid value: '{kind[:100]}'. Supported values are: {supported}."
            self.send(_live_error("invalid_value", message_text, param="type", event_id=client_event_id))
            return
        violations = live.client_event_violations(event) if sideband is None else live.sideband_event_violations(event)
        if violations:
            first = violations[0]
            self.send(_live_error(first.code, first.message, param=first.param, event_id=client_event_id))
            return
        self._act(kind, event, client_event_id)

    def _act(self, kind: str, event: dict[str, Any], client_event_id: str | None) -> None:
        correlated = {} if client_event_id is None else {"client_event_id": client_event_id}
        match kind:
            case "session.update":
                self._update_live(event["session"], client_event_id)
            case "session.input_audio.mute" | "session.input_audio.unmute":
                self.input_muted = kind.endswith(".mute")
                self.send(
                    {"type": "session.input_audio.muted" if self.input_muted else "session.input_audio.unmuted"}
                    | correlated
                )
            case "session.input_audio.append":
                self.audio_frames_received += 1
                self.audio_arrived.set()
            case "session.close":
                self._closing_event_id = client_event_id
                self._spawn(self.end("close_requested"))
            case "session.start":
                message = "WebRTC creation already starts the session; do not send this event again."
                self.send(_live_error("session_already_started", message, param="type", event_id=client_event_id))

    def _update_live(self, update: Mapping[str, Any], client_event_id: str | None) -> None:
        """Apply a valid SessionUpdateConfigParam: `delegation` merged (its type cannot change), `triggers` replaced."""
        changed = dict(self.session)
        if "delegation" in update:
            current = self.session.get("delegation") or {"type": "client"}
            new = update["delegation"] or {"type": "client"}
            if new["type"] != current["type"]:
                message = f"The delegation type cannot change: this session's is '{current['type']}'."
                self.send(
                    _live_error("invalid_value", message, param="session.delegation.type", event_id=client_event_id)
                )
                return
            merged = {**current, **new}
            for key in ("responses", "decisions"):
                if isinstance(current.get(key), dict) and isinstance(new.get(key), dict):
                    merged[key] = {**current[key], **new[key]}
            changed["delegation"] = merged
        if "triggers" in update:
            changed["triggers"] = list(update["triggers"])
        self.session = changed
        correlated = {} if client_event_id is None else {"client_event_id": client_event_id}
        self.send({"type": "session.updated", "session": self.session} | correlated)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self.receive)
        channel.on("close", self._channel_closed.set)
        self.send({"type": "session.started", "session": self.session})
        self._speak()

    async def answer(self, offer_sdp: str) -> str:
        answer = await super().answer(offer_sdp)
        self._spawn(self._report_usage())
        return answer

    async def _report_usage(self) -> None:
        """session.usage.updated at each whole second of session time, the k-th saying k seconds, until the session
        closes (nothing follows session.closed)."""
        seconds = 1
        while True:
            await asyncio.sleep(max(0.0, self._started + seconds - time.monotonic()))
            if self._closing:
                return
            self.send({"type": "session.usage.updated", "usage": _live_usage(seconds)})
            seconds += 1

    def _speak(self) -> None:
        """The model's first words: the tone on the track, the transcript's deltas on the session's timeline (sent
        at once, so no other event comes between them and session.started)."""
        self.track.speak(REPLY_SECONDS)
        start_ms = self._elapsed_ms()
        words = LIVE_TRANSCRIPT.split(" ")
        step = int(REPLY_SECONDS * 1000) // len(words)
        for index, word in enumerate(words):
            self.send(
                {
                    "type": "session.output_transcript.delta",
                    "delta": word if index == 0 else " " + word,
                    "start_ms": start_ms + index * step,
                    "end_ms": start_ms + (index + 1) * step,
                }
            )

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    async def end(self, reason: str, *, closed_as: str | None = None) -> None:
        """End the session; unless it is ending already, session.closed says why (`closed_as`, else the reason's
        own) for a reason that has one."""
        closed_as = closed_as or _LIVE_CLOSE_REASONS.get(reason)
        if self.ended is None and not self._closing and closed_as is not None:
            self._closing = True
            correlated = {} if self._closing_event_id is None else {"client_event_id": self._closing_event_id}
            closed = {"type": "session.closed", "reason": closed_as, "session": self.session}
            self.send(closed | {"usage": _live_usage(self._elapsed_ms() // 1000)} | correlated)
            await self._drain()
        await super().end(reason)

    async def _connection_ended(self, *, closed: bool) -> None:
        # The data channel has gone with the connection: session.closed reaches the sidebands only.
        if closed:
            await self.end("hang_up", closed_as="remote_hangup")
        else:
            await self.end("connection_failed", closed_as="connection_lost")

    async def _drain(self) -> None:
        """Close the events channel once what was sent on it is out (its stream reset follows the queued events),
        so that session.closed reaches the client before the connection ends."""
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return
        channel.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._channel_closed.wait(), _DRAIN_SECONDS)

    async def _end_at_time_limit(self) -> None:
        await self.end("time_limit")


class _Socket(_Session):
    """A WebSocket session: the events on the socket, the reply as `response.output_audio.delta` events.

    The loop never writes to the socket itself (a client that stops reading would stall every session): a
    writer thread sends what the loop queues, then closes the connection."""

    def __init__(self, call_id: str, session: dict[str, Any], max_call_seconds: float) -> None:
        super().__init__(call_id, session, max_call_seconds)
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    def attach(self, connection: ServerConnection) -> None:
        self._writer = threading.Thread(target=self._write, args=(connection,), name="realtime-ws", daemon=True)
        self._writer.start()

    def join(self) -> None:
        """Until the writer has sent what was queued and closed the connection."""
        if self._writer is not None:
            self._writer.join()

    async def open(self) -> None:
        self.send({"type": "session.created", "session": self.session})
        self.start_time_limit()

    def _write(self, connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (text := self._outbox.get()) is not None:
                connection.send(text)
        connection.close()

    def _deliver(self, text: str) -> None:
        self._outbox.put(text)

    async def _close(self) -> None:
        self._outbox.put(None)

    def _start_audio(self, response_id: str, place: Mapping[str, Any]) -> None:
        audio_format = self.session.get("audio", {}).get("output", {}).get("format") or {}
        audio = _REPLY_AUDIO.get(str(audio_format.get("type")), _REPLY_AUDIO["audio/pcm"])
        step = len(audio) // _AUDIO_DELTAS
        for start in range(0, len(audio), step):
            delta = base64.b64encode(audio[start : start + step]).decode()
            self.send({"type": "response.output_audio.delta", **place, "delta": delta})


def _error(code: str, message: str, *, param: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


def _live_error(code: str, message: str, *, param: str | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A Live `error` server event (openai-python 3.63.0, ErrorEvent): the client event's id, when it sent one, as
    `client_event_id` in the error and on the event."""
    error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
    if param is not None:
        error["param"] = param
    if event_id is None:
        return {"type": "error", "error": error}
    return {"type": "error", "error": error | {"client_event_id": event_id}, "client_event_id": event_id}


def _live_usage(seconds: int) -> dict[str, Any]:
    """SessionUsage: whole seconds, all active (the peer never pauses), so the breakdown adds up."""
    return {"seconds": float(seconds), "active_seconds": seconds, "paused_seconds": 0}


def _random_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:21]
