"""GPT-Live as the OpenAI stub speaks it: the shapes of `POST /v1/live/sessions` and of the Live events.

The vendored OpenAPI document (openai-openapi f85dbe22) predates GPT-Live, so every shape here comes from the
official Python SDK's generated types, openai-python 3.63.0 (`openai/types/live/`, `openai/resources/live/`):
the request is `LiveCreateParams` (`session`: `MediaSessionConfigParam`, `transport`: `{"type": "webrtc",
"sdp"}`), checked strictly (OpenAI refuses unknown Live fields); the answer is `LiveCreateResponse`; client events
are `ClientEventParam`, server events `ServerEvent`, and the session they carry is a `SessionResource`. A
sideband (`GET /v1/live/sessions/{id}/attach`, the SDK's `live.sideband.connect`) sends `ConnectClientEventParam`.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Mapping
from typing import Any

import pydantic
from openai.types.live import ClientEventParam, ServerEvent
from openai.types.live.connect_client_event_param import ConnectClientEventParam
from openai.types.live.live_create_params import LiveCreateParams

from openai_stub.schema import Violation, sdk_violations

LIVE_SESSIONS_PATH = "/v1/live/sessions"
LIVE_HANGUP = re.compile(re.escape(LIVE_SESSIONS_PATH) + r"/([A-Za-z0-9_-]{1,64})/hangup")
# MediaSessionConfigParam: "Defaults to `marin`"; `store`: "Defaults to false for new sessions".
DEFAULT_VOICE = "marin"
# What a SessionResource echoes of the session as created (idle_timeout_s and wake_policy are not in it).
_RESOURCE_FIELDS = ("client", "delegation", "input", "instructions", "safety_identifier", "triggers")


def _event_types(union: Any) -> frozenset[str]:
    types: set[str] = set()
    for member in typing.get_args(union):
        annotation = typing.get_type_hints(member, include_extras=True)["type"]
        while typing.get_origin(annotation) is not typing.Literal:
            annotation = typing.get_args(annotation)[0]  # Required[Literal[...]]
        types.update(typing.get_args(annotation))
    return frozenset(types)


# Every Live client event type (session.start, session.update, session.close, session.input_audio.mute, ...).
CLIENT_EVENT_TYPES = _event_types(ClientEventParam)
# Those a sideband may send (no session.start: the session has started; transport.dtmf.send for SIP).
SIDEBAND_CLIENT_EVENT_TYPES = _event_types(ConnectClientEventParam)


def request_violations(body: object) -> list[Violation]:
    """What OpenAI refuses in a `POST /v1/live/sessions` body: unknown fields anywhere, wrong types, a missing
    `session.model` or `transport.sdp`, a `transport.type` other than `webrtc`. Empty when it is valid."""
    return sdk_violations(LiveCreateParams, body)


def client_event_violations(event: object) -> list[Violation]:
    """What OpenAI refuses in a Live client event (one of `ClientEventParam`, chosen by its `type`)."""
    return sdk_violations(ClientEventParam, event)


def sideband_event_violations(event: object) -> list[Violation]:
    """What OpenAI refuses in a client event from a sideband (one of `ConnectClientEventParam`)."""
    return sdk_violations(ConnectClientEventParam, event)


def session_resource(session_id: str, requested: Mapping[str, Any], expires_at: int) -> dict[str, Any]:
    """The `SessionResource` of a session created with `requested` (a valid MediaSessionConfigParam): what
    `session.started` carries, the server's defaults filled in (voice, store)."""
    voice = ((requested.get("audio") or {}).get("output") or {}).get("voice", DEFAULT_VOICE)
    resource: dict[str, Any] = {
        "id": session_id,
        "expires_at": expires_at,
        "model": requested["model"],
        "status": "active",
        "audio": {"output": {"voice": voice}},
        "store": requested.get("store", False),
    }
    resource.update({key: requested[key] for key in _RESOURCE_FIELDS if key in requested})
    return resource


def allowed_client_events(requested: Mapping[str, Any]) -> frozenset[str] | None:
    """The client event types the frontend's data channel may send, None for all ("all", or omitted: "Omission
    preserves the existing allow-all behavior")."""
    allowed = (((requested.get("client") or {}).get("data_channel")) or {}).get("allowed_client_events", "all")
    return None if allowed == "all" else frozenset(allowed)


def allowed_server_events(requested: Mapping[str, Any]) -> frozenset[str] | None:
    """The server event types the frontend's data channel receives, None for all (its selectors' `type`s)."""
    allowed = (((requested.get("client") or {}).get("data_channel")) or {}).get("allowed_server_events", "all")
    return None if allowed == "all" else frozenset(selector["type"] for selector in allowed)


@functools.cache
def _server_events() -> pydantic.TypeAdapter[Any]:
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ServerEvent)
    return adapter


def server_event_errors(event: Mapping[str, Any]) -> list[str]:
    """What the SDK's `ServerEvent` union refuses in `event`, and any field it does not know (its models allow
    extra fields, so a misspelt one would pass unseen). Empty when the event is one OpenAI sends."""
    try:
        parsed = _server_events().validate_python(event)
    except pydantic.ValidationError as error:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
    return [f"{path}: unknown field" for path in _extras(parsed, "")]


def _extras(value: object, path: str) -> list[str]:
    if isinstance(value, pydantic.BaseModel):
        found = [f"{path}.{key}".lstrip(".") for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list):
        return [extra for index, item in enumerate(value) for extra in _extras(item, f"{path}[{index}]")]
    return []
