"""A page's side of a Realtime call or GPT-Live session with the OpenAI stub's local peer, over WebRTC (aiortc, doing
what a browser page does): its connection with a microphone, the events on its `oai-events` data channel, the model's
voice read as it comes, and a scenario run on an event loop of its own."""

from __future__ import annotations

import array
import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import AudioFrame

from openai_stub.realtime_peer import offer_loopback_candidates
from tests.realtime_client import LOUD, STEP_SECONDS

# What a server opening a call or Live session for a page sends OpenAI of its user.
SAFETY = {"OpenAI-Safety-Identifier": "3f1c" * 16}


def live_session(allowed: object = None, **fields: Any) -> dict[str, Any]:
    """A Live session's config; its page may send the `allowed` client events (None: leave the lock out)."""
    session: dict[str, Any] = {"model": "gpt-live-1", "instructions": "Answer like a ship's captain.", **fields}
    if allowed is not None:
        session["client"] = {"data_channel": {"allowed_client_events": allowed}}
    return session


def page_connection() -> RTCPeerConnection:
    """What a page starts a call with: a connection offering loopback candidates only, and a microphone (silence)."""
    offer_loopback_candidates()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    return pc


@dataclass
class Page:
    """A page's call or Live session: its connection, its `oai-events` channel and the events received on it, the
    channel's close, whether the model's voice was heard (loud_audio), and the tasks reading that voice."""

    pc: RTCPeerConnection
    channel: RTCDataChannel
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    received: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    loud_audio: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Future[None]] = field(default_factory=set)

    def take_events(self) -> None:
        """Receive the channel's events and its close, and read the model's voice when its track comes."""
        self.channel.on("message", lambda message: self.events.put_nowait(json.loads(message)))
        self.channel.on("close", self.closed.set)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.add(asyncio.ensure_future(listen(track, self.loud_audio)))

    def check(self, event: dict[str, Any]) -> None:
        """What every event received must pass (a kind of page checks its events against their schema here)."""

    async def next_event(self) -> dict[str, Any]:
        event = await asyncio.wait_for(self.events.get(), STEP_SECONDS)
        self.check(event)
        self.received.append(event)
        return event

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        """The events up to and including the next one of `event_type`."""
        seen = [await self.next_event()]
        while seen[-1]["type"] != event_type:
            seen.append(await self.next_event())
        return seen

    def send(self, event: dict[str, Any] | str) -> None:
        """An event on the channel (a string as it is)."""
        self.channel.send(event if isinstance(event, str) else json.dumps(event))


async def listen(track: MediaStreamTrack, loud: asyncio.Event) -> None:
    """Read the model's voice, so that it does not pile up, setting ``loud`` once a frame is above silence."""
    try:
        while True:
            frame = await track.recv()
            assert isinstance(frame, AudioFrame)
            if max(array.array("h", bytes(frame.planes[0])), default=0) > LOUD:
                loud.set()
    except MediaStreamError:
        pass


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())
