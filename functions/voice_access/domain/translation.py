"""The beta session shapes, translated onto the GA client-secret call and back.

OpenAI switched the beta ``/v1/realtime/sessions`` and ``/v1/realtime/transcription_sessions``
off in May 2026; callers written for them keep working here. A beta request becomes a GA request
(``{"expires_after": ..., "session": ...}``), which the policy then checks like any other; errors
name the beta field the caller sent. The GA answer becomes the beta answer, with the secret nested
as ``client_secret: {value, expires_at}``. Every beta field has a fate in ``REALTIME`` or
``TRANSCRIPTION`` below (docs/beta.md).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from voice_access.domain.errors import InvalidRequest
from voice_access.domain.session_fields import SessionType, get, put

BETA_DEFAULT_TEMPERATURE = 0.8

_AUDIO_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_BETA_AUDIO_FORMAT = {ga["type"]: beta for beta, ga in _AUDIO_FORMATS.items()}
_TOOL_CHOICE_MODES = ("auto", "none", "required")


def _same(value: Any, param: str) -> Any:
    return value


def _audio_format(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, str) or value not in _AUDIO_FORMATS:
        raise _invalid(param, "must be one of " + ", ".join(f"'{name}'" for name in _AUDIO_FORMATS))
    return dict(_AUDIO_FORMATS[value])


def _modalities(value: Any, param: str) -> list[str]:
    if not isinstance(value, list) or not value or any(item not in ("text", "audio") for item in value):
        raise _invalid(param, "must be a non-empty array of 'text' and 'audio'")
    # GA answers with one modality; audio output always carries its transcript.
    return ["audio"] if "audio" in value else ["text"]


def _tool_choice(value: Any, param: str) -> str | dict[str, str]:
    if not isinstance(value, str):
        raise InvalidRequest(f"Invalid type for '{param}': expected a string.", code="invalid_type", param=param)
    if not value:
        raise _invalid(param, "must be 'auto', 'none', 'required' or a function name")
    return value if value in _TOOL_CHOICE_MODES else {"type": "function", "name": value}


# A converter's answer for "nothing to send": the GA default already means the same.
_OMIT = object()


def _transcription(value: Any, param: str) -> Any:
    # Beta clients send null to keep transcription off, which is GA's default; GA's schema takes no null.
    return _OMIT if value is None else value


def _turn_detection(value: Any, param: str) -> Any:
    # Beta defaulted the type to server_vad; GA requires it.
    return {"type": "server_vad", **value} if isinstance(value, dict) and "type" not in value else value


def _dropped_modalities(value: Any, param: str) -> None:
    _modalities(value, param)  # still validated; a transcription session never answers


class BetaField(NamedTuple):
    """A beta request field and its GA place (a GA request path; None: checked, then dropped)."""

    beta: str
    ga: str | None
    to_ga: Callable[[Any, str], Any] = _same
    # The value changes shape on the way: errors below the GA place name the beta field itself.
    reshaped: bool = False


REALTIME: tuple[BetaField, ...] = (
    BetaField("model", "session.model"),
    BetaField("modalities", "session.output_modalities", _modalities, reshaped=True),
    BetaField("instructions", "session.instructions"),
    BetaField("voice", "session.audio.output.voice"),
    BetaField("speed", "session.audio.output.speed"),
    BetaField("input_audio_format", "session.audio.input.format", _audio_format, reshaped=True),
    BetaField("output_audio_format", "session.audio.output.format", _audio_format, reshaped=True),
    BetaField("input_audio_transcription", "session.audio.input.transcription", _transcription),
    BetaField("turn_detection", "session.audio.input.turn_detection", _turn_detection),
    BetaField("input_audio_noise_reduction", "session.audio.input.noise_reduction"),
    BetaField("tools", "session.tools"),
    BetaField("tool_choice", "session.tool_choice", _tool_choice, reshaped=True),
    BetaField("max_response_output_tokens", "session.max_output_tokens"),
    BetaField("tracing", "session.tracing"),
    BetaField("client_secret.expires_after", "expires_after"),
)

TRANSCRIPTION: tuple[BetaField, ...] = (
    BetaField("modalities", None, _dropped_modalities),
    BetaField("input_audio_format", "session.audio.input.format", _audio_format, reshaped=True),
    BetaField("input_audio_transcription", "session.audio.input.transcription", _transcription),
    BetaField("turn_detection", "session.audio.input.turn_detection", _turn_detection),
    BetaField("input_audio_noise_reduction", "session.audio.input.noise_reduction"),
    BetaField("include", "session.include"),
    BetaField("client_secret.expires_at", "expires_after"),
)

FIELDS: dict[SessionType, tuple[BetaField, ...]] = {"realtime": REALTIME, "transcription": TRANSCRIPTION}


class BetaNames:
    """Names a GA request path the way a beta caller spelled it."""

    def __init__(self, fields: tuple[BetaField, ...]) -> None:
        self._fields = sorted((f for f in fields if f.ga), key=lambda f: len(f.ga or ""), reverse=True)

    def __call__(self, ga_path: str) -> str:
        for field in self._fields:
            ga = field.ga or ""
            if ga_path == ga or ga_path.startswith(ga + "."):
                return field.beta if field.reshaped else field.beta + ga_path[len(ga) :]
        return ga_path


_BETA_NAMES: dict[SessionType, BetaNames] = {session_type: BetaNames(fields) for session_type, fields in FIELDS.items()}


def beta_names(session_type: SessionType) -> BetaNames:
    """How a beta caller of ``session_type`` names each GA path."""
    return _BETA_NAMES[session_type]


def beta_to_ga(request: dict[str, Any], session_type: SessionType) -> dict[str, Any]:
    """A beta request as a GA client-secret request (not yet checked against the policy)."""
    fields = {field.beta: field for field in FIELDS[session_type]}
    ga: dict[str, Any] = {}
    for key, value in request.items():
        if key == "temperature" and session_type == "realtime":
            _check_temperature(value)
            continue
        if key == "client_secret":
            _client_secret(value, fields, ga)
            continue
        field = fields.get(key)
        if field is None:
            raise InvalidRequest(f"Unknown parameter: '{key[:64]}'.", code="unknown_parameter", param=key[:64])
        converted = field.to_ga(value, key)
        if field.ga is not None and converted is not _OMIT:
            put(ga, field.ga, converted)
    return ga


def _check_temperature(value: Any) -> None:
    if value == BETA_DEFAULT_TEMPERATURE and not isinstance(value, bool):
        return
    raise InvalidRequest(
        "'temperature' has no place in the GA Realtime API that this service mints through; "
        f"only the default {BETA_DEFAULT_TEMPERATURE} is accepted. Remove it from the request.",
        code="unsupported_parameter",
        param="temperature",
    )


def _client_secret(value: Any, fields: dict[str, BetaField], ga: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise InvalidRequest(
            "Invalid type for 'client_secret': expected an object.",
            code="invalid_type",
            param="client_secret",
        )
    for key, item in value.items():
        field = fields.get(f"client_secret.{key}")
        if field is None or field.ga is None:
            param = f"client_secret.{key}"[:64]
            raise InvalidRequest(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)
        put(ga, field.ga, item)


def _invalid(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': {what}.", code="invalid_value", param=param)


def ga_to_beta(minted: dict[str, Any], session_type: SessionType) -> dict[str, Any]:
    """The beta answer for a GA answer. Only ``value`` and ``expires_at`` are certain; the rest is best effort."""
    session = minted.get("session")
    if not isinstance(session, dict):
        session = {}
    audio_in = _object_at(session, "audio.input")
    answer: dict[str, Any] = {
        "id": session.get("id"),
        "object": "realtime.session" if session_type == "realtime" else "realtime.transcription_session",
        "client_secret": {"value": minted["value"], "expires_at": minted["expires_at"]},
        "input_audio_format": _beta_audio_format(audio_in.get("format")),
        "input_audio_transcription": audio_in.get("transcription"),
        "turn_detection": audio_in.get("turn_detection"),
        "input_audio_noise_reduction": audio_in.get("noise_reduction"),
    }
    if session_type == "transcription":
        answer["modalities"] = ["text"]
        answer["include"] = session.get("include")
        return _without_none(answer)
    audio_out = _object_at(session, "audio.output")
    tool_choice = session.get("tool_choice")
    answer |= {
        "model": session.get("model"),
        "expires_at": minted["expires_at"],
        "modalities": ["text"] if session.get("output_modalities") == ["text"] else ["audio", "text"],
        "instructions": session.get("instructions"),
        "voice": _voice(audio_out.get("voice")),
        "speed": audio_out.get("speed"),
        "output_audio_format": _beta_audio_format(audio_out.get("format")),
        "tools": session.get("tools"),
        "tool_choice": tool_choice.get("name") if isinstance(tool_choice, dict) else tool_choice,
        "temperature": BETA_DEFAULT_TEMPERATURE,
        "max_response_output_tokens": session.get("max_output_tokens"),
        "tracing": session.get("tracing"),
    }
    return _without_none(answer)


def _object_at(session: dict[str, Any], path: str) -> dict[str, Any]:
    node = get(session, path)
    return node if isinstance(node, dict) else {}


def _beta_audio_format(ga_format: Any) -> str | None:
    kind = ga_format.get("type") if isinstance(ga_format, dict) else None
    return _BETA_AUDIO_FORMAT.get(kind) if isinstance(kind, str) else None


def _voice(voice: Any) -> str | None:
    if isinstance(voice, dict):  # a custom voice reference
        voice = voice.get("id")
    return voice if isinstance(voice, str) else None


def _without_none(answer: dict[str, Any]) -> dict[str, Any]:
    # The beta schema types these fields without `nullable`; an absent field is what old clients expect.
    return {key: value for key, value in answer.items() if value is not None}
