"""Each minting route's shape: how its request reads in OpenAI's GA shape, and how OpenAI's answer is written back.

A GA route passes the request and the answer through as they are; a beta route (the retired
``createRealtimeSession`` and transcription sessions) is translated onto GA and back. The edge maps each route to
one of these, so that minting never branches on a route's shape.
"""

import json
from typing import Any

from voice_access.clients.openai_api import Minted
from voice_access.domain.errors import InvalidRequest
from voice_access.domain.policy.model import PROFILE_HEADER
from voice_access.domain.policy.rules import ParamNamer, ga_param
from voice_access.domain.session_fields import SessionType

_GA_SESSION_TYPES: tuple[SessionType, ...] = ("realtime", "transcription")


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class Request:
    """A request read in its endpoint's shape: what it mints, its body in OpenAI's GA shape, and the caller's own
    words for its fields and for where it chose its profile (for the words of a refusal)."""

    __slots__ = ("body", "name", "profile_param", "session_type")

    def __init__(self, session_type: SessionType, body: dict[str, Any], name: ParamNamer, profile_param: str) -> None:
        self.session_type = session_type
        self.body = body
        self.name = name
        self.profile_param = profile_param


class GaEndpoint:
    """A route in OpenAI's GA shape: the request goes upstream as it came and OpenAI's answer comes back as it came.
    What it mints is the route's ``session_type``, or (None) what the body's session.type says."""

    __slots__ = ("name", "session_type", "upstream_path")

    def __init__(self, name: str, upstream_path: str, session_type: SessionType | None = None) -> None:
        self.name = name  # in logs and metrics
        self.upstream_path = upstream_path  # of OpenAI's call that mints for it
        self.session_type = session_type

    def read(self, body: dict[str, Any]) -> Request:
        if self.session_type is None:
            return Request(_ga_session_type(body), body, ga_param, "session.type")
        return Request(self.session_type, body, ga_param, PROFILE_HEADER)

    def written(self, minted: Minted) -> str:
        return minted.text


class BetaEndpoint:
    """A route in the retired beta shape: its request translated onto GA, and OpenAI's answer back."""

    __slots__ = ("name", "session_type", "upstream_path")

    def __init__(
        self, name: str, session_type: SessionType, upstream_path: str = "/v1/realtime/client_secrets"
    ) -> None:
        self.name = name  # in logs and metrics
        self.session_type = session_type
        self.upstream_path = upstream_path

    def read(self, body: dict[str, Any]) -> Request:
        # Imported here: only the retired beta routes translate, so a GA mint's cold start does not load it.
        from voice_access.domain import translation

        names = translation.beta_names(self.session_type)
        return Request(self.session_type, translation.beta_to_ga(body, self.session_type), names, PROFILE_HEADER)

    def written(self, minted: Minted) -> str:
        from voice_access.domain import translation

        return json.dumps(translation.ga_to_beta(minted.body, self.session_type), separators=(",", ":"))


type Endpoint = GaEndpoint | BetaEndpoint

CLIENT_SECRETS = GaEndpoint("client_secrets", "/v1/realtime/client_secrets")
SESSIONS = BetaEndpoint("sessions", "realtime")
TRANSCRIPTION_SESSIONS = BetaEndpoint("transcription_sessions", "transcription")
TRANSLATION_CLIENT_SECRETS = GaEndpoint(
    "translation_client_secrets", "/v1/realtime/translations/client_secrets", "translation"
)


def _ga_session_type(body: dict[str, Any]) -> SessionType:
    session = body.get("session")
    session_type = session.get("type", "realtime") if isinstance(session, dict) else "realtime"
    for known in _GA_SESSION_TYPES:
        if session_type == known:
            return known
    raise InvalidRequest(
        "Invalid value for 'session.type': must be 'realtime' or 'transcription'.",
        code="invalid_value",
        param="session.type",
    )
