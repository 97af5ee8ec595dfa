"""The fields of a GA session configuration, as dotted paths (arrays and free-form objects are leaves).

Taken from the official schema (RealtimeSessionCreateRequestGA, RealtimeTranscriptionSessionCreateRequestGA
and RealtimeTranslationSessionCreateRequest) and the official SDK's types generated from a newer one
(openai-python 3.63.0, openai/types/realtime/*_session_create_request_param.py: noise_reduction.strength);
a GPT-Live session's from that SDK alone, which the vendored schema predates (openai/types/live/
media_session_config_param.py, MediaSessionConfigParam, at 3.63.0). tests/unit/test_session_fields.py keeps them
in step with both.
They tell an unknown field (a typo, a field OpenAI does not have) from a known one that the policy
does not allow.
"""

from typing import Any, Literal

SessionType = Literal["realtime", "transcription", "translation", "live"]
# The session types whose configuration names its type (a translation session has no `type` field).
TYPED_SESSIONS: frozenset[SessionType] = frozenset({"realtime", "transcription"})

REALTIME_FIELDS: frozenset[str] = frozenset(
    {
        "audio",
        "audio.input",
        "audio.input.format",
        "audio.input.format.rate",
        "audio.input.format.type",
        "audio.input.noise_reduction",
        "audio.input.noise_reduction.strength",
        "audio.input.noise_reduction.type",
        "audio.input.transcription",
        "audio.input.transcription.delay",
        "audio.input.transcription.keywords",
        "audio.input.transcription.language",
        "audio.input.transcription.languages",
        "audio.input.transcription.model",
        "audio.input.transcription.prompt",
        "audio.input.turn_detection",
        "audio.input.turn_detection.create_response",
        "audio.input.turn_detection.eagerness",
        "audio.input.turn_detection.idle_timeout_ms",
        "audio.input.turn_detection.interrupt_response",
        "audio.input.turn_detection.prefix_padding_ms",
        "audio.input.turn_detection.silence_duration_ms",
        "audio.input.turn_detection.threshold",
        "audio.input.turn_detection.type",
        "audio.output",
        "audio.output.format",
        "audio.output.format.rate",
        "audio.output.format.type",
        "audio.output.speed",
        "audio.output.voice",
        "audio.output.voice.id",
        "include",
        "instructions",
        "max_output_tokens",
        "model",
        "output_modalities",
        "parallel_tool_calls",
        "prompt",
        "prompt.id",
        "prompt.variables",
        "prompt.version",
        "reasoning",
        "reasoning.effort",
        "tool_choice",
        "tool_choice.name",
        "tool_choice.server_label",
        "tool_choice.type",
        "tools",
        "tracing",
        "tracing.group_id",
        "tracing.metadata",
        "tracing.workflow_name",
        "truncation",
        "truncation.retention_ratio",
        "truncation.token_limits",
        "truncation.token_limits.post_instructions",
        "truncation.type",
        "type",
    }
)

# A transcription session has the realtime session's input audio, and nothing of its output.
TRANSCRIPTION_FIELDS: frozenset[str] = frozenset(
    path
    for path in REALTIME_FIELDS
    if path in ("type", "include", "audio", "audio.input") or path.startswith("audio.input.")
)

# A translation session (POST /v1/realtime/translations/client_secrets): a model, and the audio around it.
TRANSLATION_FIELDS: frozenset[str] = frozenset(
    {
        "audio",
        "audio.input",
        "audio.input.noise_reduction",
        "audio.input.noise_reduction.strength",
        "audio.input.noise_reduction.type",
        "audio.input.transcription",
        "audio.input.transcription.model",
        "audio.output",
        "audio.output.language",
        "model",
    }
)

# A GPT-Live session (POST /v1/live/sessions): no `type`, and strict (OpenAI refuses a field it does not know).
LIVE_FIELDS: frozenset[str] = frozenset(
    {
        "audio",
        "audio.output",
        "audio.output.voice",
        "audio.output.voice.id",
        "client",
        "client.data_channel",
        "client.data_channel.allowed_client_events",
        "client.data_channel.allowed_server_events",
        "delegation",
        "delegation.acknowledgement_delay_ms",
        "delegation.decisions",
        "delegation.decisions.model",
        "delegation.decisions.questions",
        "delegation.responses",
        "delegation.responses.instructions",
        "delegation.responses.max_output_tokens",
        "delegation.responses.model",
        "delegation.responses.parallel_tool_calls",
        "delegation.responses.reasoning",
        "delegation.responses.reasoning.effort",
        "delegation.responses.reasoning.summary",
        "delegation.responses.service_tier",
        "delegation.responses.text",
        "delegation.responses.text.verbosity",
        "delegation.responses.tool_choice",
        "delegation.responses.tool_choice.mode",
        "delegation.responses.tool_choice.name",
        "delegation.responses.tool_choice.server_label",
        "delegation.responses.tool_choice.tools",
        "delegation.responses.tool_choice.type",
        "delegation.responses.tools",
        "delegation.type",
        "idle_timeout_s",
        "input",
        "instructions",
        "model",
        "safety_identifier",
        "store",
        "triggers",
        "wake_policy",
        "wake_policy.type",
        "wake_policy.vad_threshold",
    }
)

SESSION_FIELDS: dict[SessionType, frozenset[str]] = {
    "realtime": REALTIME_FIELDS,
    "transcription": TRANSCRIPTION_FIELDS,
    "translation": TRANSLATION_FIELDS,
    "live": LIVE_FIELDS,
}

# The objects whose keys are fields (audio, audio.input, ...), as opposed to leaves and free-form
# objects like tracing.metadata, whose keys are the caller's own names.
SESSION_OBJECTS: dict[SessionType, frozenset[str]] = {
    session_type: frozenset(path.rsplit(".", 1)[0] for path in fields if "." in path)
    for session_type, fields in SESSION_FIELDS.items()
}

# Keys OpenAI requires once their object is sent (a discriminator; "" is the session itself), by object:
# checked before anything leaves.
REQUIRED_KEYS: dict[SessionType, dict[str, str]] = {
    "realtime": {"audio.input.turn_detection": "type"},
    "transcription": {"audio.input.turn_detection": "type"},
    "translation": {"": "model", "audio.input.transcription": "model", "audio.input.noise_reduction": "type"},
    "live": {
        "": "model",
        "client": "data_channel",
        "delegation": "type",
        "delegation.responses": "model",
        "delegation.decisions": "model",
        "wake_policy": "type",
    },
}

MISSING: Any = object()  # get()'s answer for a path with nothing at it, when asked to tell it from null


def get(source: dict[str, Any], path: str, default: Any = None) -> Any:
    """The value at a dotted path, or ``default``."""
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def put(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a nested dict, creating the objects on the way."""
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
