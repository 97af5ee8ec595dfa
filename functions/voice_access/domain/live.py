"""Opening a GPT-Live session for a caller: check the request against the policy, count it in the caller's quota,
and have OpenAI open it, with the service's key, from the browser's SDP offer (``POST /v1/live/sessions``).

GPT-Live has no client secrets: a browser reaches it only through a server that holds the key, and this is that
server. The session is checked as a mint's is, against a profile opened as a Live session; the caller is named to
OpenAI in the session (GPT-Live's way) and in the header. The offer goes to OpenAI as it came, and OpenAI's answer
comes back unchanged; neither is logged (ICE candidates carry the user's addresses). The request is counted in the
same windows as a mint, and given back on the same failures; within the profile's budgets and calls open at once;
and the session handed to its supervisor, or hung up (domain/opening.py).
"""

from typing import Any

from voice_access.clients.deadline import Deadline
from voice_access.clients.openai_api import create_live_session
from voice_access.config.mint_settings import MintSettings
from voice_access.config.settings import refused
from voice_access.domain import quota
from voice_access.domain.caller import Caller
from voice_access.domain.errors import InvalidRequest, ServiceError
from voice_access.domain.opening import open_supervised
from voice_access.domain.policy.model import PROFILE_HEADER, Policy
from voice_access.domain.policy.rules import check_session, ga_param
from voice_access.domain.safety import identified
from voice_access.domain.sdp import is_offer

# OpenAI's route for it.
UPSTREAM_PATH = "/v1/live/sessions"


class Opened:
    """A Live session OpenAI opened: its answer as OpenAI sent it, and where the caller's quota stands."""

    __slots__ = ("text", "tightest")

    def __init__(self, text: str, tightest: quota.Counted | None) -> None:
        self.text = text
        self.tightest = tightest


def open_session(
    body: dict[str, Any],
    profile: str | None,
    caller: Caller,
    *,
    settings: MintSettings,
    policy: Policy,
    deadline: Deadline,
) -> Opened:
    """The GPT-Live session ``body`` asks for (``{"session", "transport"}``), opened for ``caller`` under the
    function's ``settings`` and ``policy``; a ServiceError when it cannot be."""
    service = settings.service
    keys, user = identified(service, caller, deadline)
    session, transport = _read(body)
    profile_name, chosen = policy.select(profile, "live", caller, param=PROFILE_HEADER, way="live_session")
    upstream_session = check_session(session, profile_name, chosen, ga_param)
    if isinstance(keys, ServiceError):
        raise keys
    if (problem := service.unsupervised()) is not None:
        raise refused("settings_invalid", problem)
    upstream_session["safety_identifier"] = user
    supervised = open_supervised(
        "live_session",
        profile_name,
        chosen,
        user,
        keys.api_key,
        upstream_session,
        service=service,
        policy=policy,
        brake=quota.spend_brake(settings.spend_brake_mints_per_day, policy),
        timeouts=(settings.upstream_connect_timeout_seconds, settings.upstream_read_timeout_seconds),
        deadline=deadline,
        open_upstream=lambda: create_live_session(
            service.upstream(UPSTREAM_PATH),
            keys.api_key,
            {"session": upstream_session, "transport": transport},
            safety_identifier=user,
            key_source=service.api_key_source,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=settings.upstream_read_timeout_seconds,
            deadline=deadline,
        ),
        id_of=lambda opened: opened.session_id,
    )
    opened, reservation = supervised.opened, supervised.reservation
    return Opened(opened.text, reservation.tightest if reservation else None)


def _read(body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The request's session (checked against the profile next) and its transport: a WebRTC offer."""
    for key in body:
        if key not in ("session", "transport"):
            raise InvalidRequest(f"Unknown parameter: '{key[:64]}'.", code="unknown_parameter", param=key[:64])
    transport = body.get("transport")
    if not isinstance(transport, dict):
        raise InvalidRequest(
            "Missing required parameter: 'transport': the browser's WebRTC offer, as "
            '{"type": "webrtc", "sdp": "<offer>"}.',
            code="missing_required_parameter",
            param="transport",
        )
    for key in transport:
        if key not in ("type", "sdp"):
            param = f"transport.{key[:64]}"
            raise InvalidRequest(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)
    if transport.get("type") != "webrtc":
        raise InvalidRequest(
            "Invalid value for 'transport.type': this service opens GPT-Live sessions over WebRTC only ('webrtc').",
            code="invalid_value",
            param="transport.type",
        )
    sdp = transport.get("sdp")
    if not isinstance(sdp, str) or not is_offer(sdp):
        raise InvalidRequest(
            "Invalid value for 'transport.sdp': expected the browser's SDP offer (text starting 'v=0'), as "
            "RTCPeerConnection.createOffer() makes it.",
            code="invalid_value",
            param="transport.sdp",
        )
    return body.get("session", {}), {"type": "webrtc", "sdp": sdp}
