"""What a client of the OpenAI stub's Realtime peer uses, over WebRTC or WebSocket: a client secret the stub
mints, the session it mints it for, the schemas of the events the peer sends, and the check of a user's turn."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

from openai_stub.realtime_peer import INPUT_TRANSCRIPT
from openai_stub.server import CLIENT_SECRETS_PATH, OpenAIStub
from tests.keys import TEST_API_KEY

# A guard against a hang, not a timed assertion: each awaited step normally takes milliseconds.
STEP_SECONDS = 10.0
SERVER_EVENT_SCHEMAS = {
    "session.created": "RealtimeServerEventSessionCreated",
    "session.updated": "RealtimeServerEventSessionUpdated",
    "error": "RealtimeServerEventError",
    "response.created": "RealtimeServerEventResponseCreated",
    "response.output_item.added": "RealtimeServerEventResponseOutputItemAdded",
    "response.output_item.done": "RealtimeServerEventResponseOutputItemDone",
    "response.content_part.added": "RealtimeServerEventResponseContentPartAdded",
    "response.content_part.done": "RealtimeServerEventResponseContentPartDone",
    "response.output_audio_transcript.delta": "RealtimeServerEventResponseAudioTranscriptDelta",
    "response.output_audio_transcript.done": "RealtimeServerEventResponseAudioTranscriptDone",
    "response.output_audio.done": "RealtimeServerEventResponseAudioDone",
    "response.done": "RealtimeServerEventResponseDone",
    "output_audio_buffer.started": "RealtimeServerEventOutputAudioBufferStarted",
    "output_audio_buffer.stopped": "RealtimeServerEventOutputAudioBufferStopped",
    "conversation.item.added": "RealtimeServerEventConversationItemAdded",
    "conversation.item.done": "RealtimeServerEventConversationItemDone",
    **{
        f"conversation.item.input_audio_transcription.{kind}": f"RealtimeServerEventConversationItemInputAudio{name}"
        for kind, name in [("delta", "TranscriptionDelta"), ("completed", "TranscriptionCompleted")]
    },
}
# The user's turn the peer sends before a response when the session has input transcription.
USER_TURN_EVENTS = frozenset(
    {
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    }
)
TRANSCRIPTION = {"model": "gpt-4o-mini-transcribe"}
SESSION: dict[str, Any] = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Answer like a ship's captain.",
    "audio": {"output": {"voice": "marin"}},
}
# A loud sample: the peer's reply tone peaks near 6000, silence decodes to about 0.
LOUD = 2000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


def post(stub: OpenAIStub, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> Answer:
    host, port = urlsplit(stub.base_url).netloc.split(":")
    connection = HTTPConnection(host, int(port), timeout=STEP_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def mint(stub: OpenAIStub, session: dict[str, Any] = SESSION, seconds: int = 600) -> str:
    """A client secret from the stub's own client_secrets endpoint, with its API key."""
    headers = {
        "Authorization": f"Bearer {TEST_API_KEY}",
        "Content-Type": "application/json",
        "OpenAI-Safety-Identifier": "3f1c" * 16,
    }
    body = json.dumps({"expires_after": {"anchor": "created_at", "seconds": seconds}, "session": session})
    answer = post(stub, CLIENT_SECRETS_PATH, body.encode(), headers)
    assert answer.status == HTTPStatus.OK, answer.body
    return str(json.loads(answer.body)["value"])


def user_turn(events: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The user's turn that opens a response's events (all before response.created), checked for what OpenAI
    sends with input transcription on: their audio message, then its transcript's deltas and completion. Returns
    the message's id and the turn's events."""
    types = [event["type"] for event in events]
    turn = events[: types.index("response.created")]
    deltas = [event for event in turn if event["type"] == "conversation.item.input_audio_transcription.delta"]
    assert [event["type"] for event in turn] == [
        "conversation.item.added",
        "conversation.item.done",
        *[delta["type"] for delta in deltas],
        "conversation.item.input_audio_transcription.completed",
    ]
    assert deltas
    added, done, completed = turn[0], turn[1], turn[-1]
    item = added["item"]
    assert (item["type"], item["role"]) == ("message", "user")
    # (the JS Agents SDK refuses an input_audio part without a transcript field)
    assert [(part["type"], type(part.get("transcript"))) for part in item["content"]] == [("input_audio", str)]
    assert done["item"]["id"] == item["id"]
    assert {event["item_id"] for event in [*deltas, completed]} == {item["id"]}
    assert {event["content_index"] for event in [*deltas, completed]} == {0}
    assert "".join(delta["delta"] for delta in deltas) == completed["transcript"] == INPUT_TRANSCRIPT
    assert completed["usage"]["type"] == "tokens"
    return item["id"], turn


class AnHourLater:
    """`time` an hour from now, for the stub's expiry check."""

    @staticmethod
    def time() -> float:
        return time.time() + 3600
