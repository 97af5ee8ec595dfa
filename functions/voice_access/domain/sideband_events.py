"""What the supervisor knows of OpenAI's server events on a sideband: every type the APIs define, and what of an
event may reach a log line or names the session's transcription model."""

import re
from collections.abc import Mapping
from typing import Any

# What of an event's type, an OpenAI code or a param may reach a log line: identifiers and paths, clipped.
_TOKEN = re.compile(r"[A-Za-z0-9_.\[\]-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]-]")

# Every server event type the APIs define (openai-python 3.63.0: openai.types.realtime.RealtimeServerEvent,
# openai.types.live.ServerEvent): one of these that the supervisor does not act on is passed over silently; any
# other type is skipped as unknown.
REALTIME_EVENTS = frozenset(
    {
        "conversation.created",
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.deleted",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "error",
        "input_audio_buffer.cleared",
        "input_audio_buffer.committed",
        "input_audio_buffer.dtmf_event_received",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.timeout_triggered",
        "mcp_list_tools.completed",
        "mcp_list_tools.failed",
        "mcp_list_tools.in_progress",
        "output_audio_buffer.cleared",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "rate_limits.updated",
        "response.content_part.added",
        "response.content_part.done",
        "response.created",
        "response.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.mcp_call.completed",
        "response.mcp_call.failed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_text.delta",
        "response.output_text.done",
        "session.created",
        "session.updated",
    }
)
LIVE_EVENTS = frozenset(
    {
        "decision.event",
        "decision.item.created",
        "decision.item.deleted",
        "error",
        "info",
        "response.event",
        "session.closed",
        "session.commentary.appended",
        "session.delegation.created",
        "session.input_audio.append",
        "session.input_audio.muted",
        "session.input_audio.unmuted",
        "session.input_transcript.delta",
        "session.instructions.appended",
        "session.output_audio.delta",
        "session.output_audio.fixture.played",
        "session.output_audio.fixture.playing",
        "session.output_transcript.delta",
        "session.started",
        "session.thinking.appended",
        "session.updated",
        "session.usage.updated",
        "transport.answered",
        "transport.dtmf.received",
        "transport.dtmf.send",
        "transport.dtmf.sent",
        "transport.failed",
        "transport.ringing",
    }
)


def transcription_model(session: Mapping[str, Any]) -> str | None:
    found: object = session
    for key in ("audio", "input", "transcription", "model"):
        found = found.get(key) if isinstance(found, Mapping) else None
    return found if isinstance(found, str) else None


def safe_token(value: object) -> str | None:
    """An event type, OpenAI code or param as a log line may carry it: its safe characters, clipped."""
    if not isinstance(value, str):
        return None
    if _TOKEN.fullmatch(value):
        return value
    return _UNSAFE.sub("", value[:256])[:64] or None
