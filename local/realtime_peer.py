"""A local stand-in for OpenAI's Realtime WebRTC peer, behind the OpenAI stub's `POST /v1/realtime/calls`.

It answers a browser's (or any WebRTC client's) SDP offer with aiortc, opens the `oai-events` data channel
and speaks a small part of the GA protocol: `session.created` with the session the client secret was
minted with, `session.update` -> `session.updated`, `response.create` -> the GA response events with about
a second of tone on the outgoing audio track, an `error` event for what it does not know (the call goes
on). A call ends on hang-up (the client closing its connection, or the stub's hangup route) or after
`max_call_seconds`. Event shapes follow the official schemas in local/openapi/realtime-events.openapi.json.

aiortc is not thread-safe: one asyncio loop, on a daemon thread, owns every aiortc object; the stub's HTTP
threads reach it only through `asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import math
import secrets
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aioice.ice
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription
from av import AudioFrame

from local.openai_schema import event_violations

logger = logging.getLogger(__name__)

EVENTS_CHANNEL = "oai-events"
# OpenAI ends a Realtime session after 60 minutes; locally a call is a test or a developer's try.
MAX_CALL_SECONDS = 300.0
REPLY_TRANSCRIPT = "Hello from the local Realtime peer."
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
_SAMPLE_RATE = 48_000
_FRAME_SAMPLES = 960  # 20 ms
# 400 Hz fits a 20 ms frame exactly (8 periods), so one precomputed frame repeats without a click.
_TONE = struct.pack(
    f"<{_FRAME_SAMPLES}h",
    *(round(6000 * math.sin(2 * math.pi * 400 * i / _SAMPLE_RATE)) for i in range(_FRAME_SAMPLES)),
)
_SILENCE = bytes(2 * _FRAME_SAMPLES)
_TIME_BASE = fractions.Fraction(1, _SAMPLE_RATE)
_ANSWER_TIMEOUT_SECONDS = 10.0
# Ended calls kept for `calls` (make run never resets the stub).
_ENDED_CALLS_KEPT = 100


class OfferError(ValueError):
    """The SDP offer cannot start a call; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class CallState:
    """One call as the peer sees it (a snapshot)."""

    call_id: str
    audio_frames_received: int
    events_received: int
    ended: str | None  # why it ended ("hang_up", "time_limit", "connection_failed", "peer_stopped"), None if live


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
    """The loop thread and its calls: `peer.start()`, `peer.open_call(offer, session)`, `peer.stop()`."""

    max_call_seconds: float = MAX_CALL_SECONDS

    def __init__(self, *, max_call_seconds: float | None = None) -> None:
        if max_call_seconds is not None:
            self.max_call_seconds = max_call_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._calls: dict[str, _Call] = {}
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
        """End every call, then the loop and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close_all(), loop).result(_ANSWER_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None

    def open_call(
        self, offer_sdp: str, session: Mapping[str, Any], *, max_call_seconds: float | None = None
    ) -> tuple[str, str]:
        """A new call for `offer_sdp` with `session` (ending after `max_call_seconds`, by default the peer's):
        its id and the SDP answer. Raises OfferError."""
        if problem := offer_problem(offer_sdp):
            raise OfferError(problem)
        loop = self.start()._loop
        assert loop is not None
        call = _Call("rtc_" + secrets.token_hex(16), dict(session), max_call_seconds or self.max_call_seconds)
        future = asyncio.run_coroutine_threadsafe(call.answer(offer_sdp), loop)
        try:
            answer = future.result(_ANSWER_TIMEOUT_SECONDS)
        except ValueError as error:  # aiortc's own complaint about an offer that passed the checks above
            raise OfferError(str(error)) from None
        except TimeoutError:
            asyncio.run_coroutine_threadsafe(call.end("offer_refused"), loop)
            raise
        with self._lock:
            self._calls[call.call_id] = call
            ended = [key for key, kept in self._calls.items() if kept.ended is not None]
            for key in ended[: max(0, len(ended) - _ENDED_CALLS_KEPT)]:
                del self._calls[key]
        logger.info("realtime call opened call_id=%s", call.call_id)
        return call.call_id, answer

    def hang_up(self, call_id: str) -> bool:
        """End a live call; False if there is none with that id."""
        with self._lock:
            call = self._calls.get(call_id)
        if call is None or call.ended is not None or self._loop is None:
            return False
        asyncio.run_coroutine_threadsafe(call.end("hang_up"), self._loop).result(_ANSWER_TIMEOUT_SECONDS)
        return True

    def wait(self, call_id: str, *, until: Literal["audio", "ended"], timeout: float) -> CallState:
        """The call once its first microphone frame has arrived, or once it has ended; TimeoutError after
        `timeout` seconds, KeyError for an unknown id."""
        with self._lock:
            call = self._calls[call_id]
        event = call.audio_arrived if until == "audio" else call.has_ended
        if not event.wait(timeout):
            raise TimeoutError(f"call {call_id}: no {until} within {timeout:g} s")
        return call.state()

    @property
    def calls(self) -> list[CallState]:
        """Every call opened since start, oldest first."""
        with self._lock:
            calls = list(self._calls.values())
        return [call.state() for call in calls]

    def forget_ended(self) -> None:
        with self._lock:
            self._calls = {key: call for key, call in self._calls.items() if call.ended is None}

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


class _Call:
    def __init__(self, call_id: str, session: dict[str, Any], max_call_seconds: float) -> None:
        self.call_id = call_id
        self.session = session
        self.max_call_seconds = max_call_seconds
        # No ICE servers: without this aiortc asks stun.l.google.com, which stalls gathering offline.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = _ReplyTrack()
        self.channel: RTCDataChannel | None = None
        self.audio_frames_received = 0
        self.events_received = 0
        self.ended: str | None = None
        # For threads that wait on the call (tests, the stub): set on the loop, read anywhere.
        self.audio_arrived = threading.Event()
        self.has_ended = threading.Event()
        self.responding = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._time_limit: asyncio.TimerHandle | None = None

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
        loop = asyncio.get_running_loop()
        self._time_limit = loop.call_later(self.max_call_seconds, self._time_is_up)
        return pc.localDescription.sdp

    def state(self) -> CallState:
        return CallState(self.call_id, self.audio_frames_received, self.events_received, self.ended)

    async def end(self, reason: str) -> None:
        if self.ended is not None:
            return
        self.ended = reason
        if self._time_limit is not None:
            self._time_limit.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self.track.stop()
        await self.pc.close()
        self.has_ended.set()
        logger.info("realtime call ended call_id=%s reason=%s", self.call_id, reason)

    def send(self, event: dict[str, Any]) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps({"event_id": _random_id("event_"), **event}))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._on_message)
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
            await self.end("hang_up" if self.pc.connectionState == "closed" else "connection_failed")

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

    def _on_message(self, message: str | bytes) -> None:
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

    def _update_session(self, update: Mapping[str, Any], client_event_id: str | None) -> None:
        if update.get("type", self.session.get("type")) != self.session.get("type"):
            message = f"Cannot change the session's type from '{self.session.get('type')}'."
            self.send(_error("invalid_value", message, param="session.type", event_id=client_event_id))
            return
        self.session = _merged(self.session, update)
        self.send({"type": "session.updated", "session": self.session})

    async def _respond(self) -> None:
        response_id, item_id = _random_id("resp_"), _random_id("item_")
        voice = self.session.get("audio", {}).get("output", {}).get("voice", "alloy")
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "output": [],
            "conversation_id": "conv_" + self.call_id.removeprefix("rtc_")[:21],
            "output_modalities": ["audio"],
            "max_output_tokens": self.session.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice}},
        }
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        place = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        self.send({"type": "response.created", "response": response})
        self.send({"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": item})
        self.send({"type": "response.content_part.added", **place, "part": {"type": "audio", "transcript": ""}})
        spoken = self.track.speak(REPLY_SECONDS)
        self.send({"type": "output_audio_buffer.started", "response_id": response_id})
        for word in REPLY_TRANSCRIPT.split(" "):
            self.send({"type": "response.output_audio_transcript.delta", **place, "delta": word + " "})
        # The audio is on its way when the track has sent it; a client that never reads it does not stall us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(spoken.wait(), REPLY_SECONDS + 1)
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
        usage = {"total_tokens": 60, "input_tokens": 20, "output_tokens": 40}
        completed = {**response, "status": "completed", "output": [done_item], "usage": usage}
        self.send({"type": "response.done", "response": completed})
        self.send({"type": "output_audio_buffer.stopped", "response_id": response_id})
        self.responding = False


def _merged(session: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`update` over `session`, `audio.input` and `audio.output` field by field (as session.update does)."""
    merged = dict(session)
    for key, value in update.items():
        if key == "audio" and isinstance(value, Mapping):
            audio = dict(merged.get("audio") or {})
            for direction, fields in value.items():
                audio[direction] = {**(audio.get(direction) or {}), **fields}
            merged["audio"] = audio
        else:
            merged[key] = value
    return merged


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


def _random_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:21]
