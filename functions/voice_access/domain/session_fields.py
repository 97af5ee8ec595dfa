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

from typing import Any, Literal, NamedTuple

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


class OpenAIDefault(NamedTuple):
    """What a session holds at a field nothing set: ``value``, which a ``session.update`` sends to put it back
    unless not ``restorable``, and ``also``, other values OpenAI reports for it (its own example reports nulls its
    request schema refuses)."""

    value: Any
    also: tuple[Any, ...] = ()
    restorable: bool = True


# OpenAI's defaults for the Realtime session's fields a call's client could change at cost or against the operator
# (a stored prompt in place of the instructions, forced tools, traces, untruncated context), where the official
# schema states them (RealtimeSessionCreateRequestGA's `default`s and descriptions; the SDK's types at 3.63.0 say the
# same) or the field holds nothing until set (tools, prompt, include, transcription). rules.check_reported holds a
# call to them where its profile governs nothing at or around them. Not here, so held only where a profile governs
# them: the instructions (OpenAI's own text; no default stated), parallel_tool_calls (none stated), the formats,
# turn detection and voice (the schema's defaults against its own example's: silence_duration_ms 500 against 200,
# "alloy" against "marin"; and OpenAI keeps a voice once spoken), and reasoning (its effort "low" is for reasoning
# models only: a restore naming it could be refused by the others, and a restore is sent at every attach).
REALTIME_DEFAULTS: dict[str, OpenAIDefault] = {
    "output_modalities": OpenAIDefault(["audio"]),
    "tools": OpenAIDefault([]),
    "tool_choice": OpenAIDefault("auto"),
    "max_output_tokens": OpenAIDefault("inf"),
    "tracing": OpenAIDefault(None),
    "truncation": OpenAIDefault("auto"),
    "prompt": OpenAIDefault(None),
    "include": OpenAIDefault([], also=(None,)),  # the request schema's array is not nullable
    "audio.input.noise_reduction": OpenAIDefault(None),
    # "can be set to null to turn off once on", says its description; its request schema, and so the local peer,
    # refuses null: no restore names it, and a call that keeps it on is ended once restores stop helping.
    "audio.input.transcription": OpenAIDefault(None, restorable=False),
    # "Can only be changed in between model turns", says its description: a restore goes out at every attach, a
    # successor's mid-response among them, and a refused restore ends the call. Checked, never restored.
    "audio.output.speed": OpenAIDefault(1, restorable=False),
}

OPENAI_DEFAULTS: dict[SessionType, dict[str, OpenAIDefault]] = {"realtime": REALTIME_DEFAULTS}


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
