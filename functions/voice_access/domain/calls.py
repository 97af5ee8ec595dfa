"""Opening a Realtime call for a caller: check the request against the policy, count it in the caller's quota, and
have OpenAI open it, with the service's key, from the browser's SDP offer (``POST /v1/realtime/calls``).

No client secret reaches the browser: the service opens the call as the SDKs' ``calls.create`` does on a server,
and the browser gets OpenAI's SDP answer. The session is the one the request sends (the SDKs' multipart form),
checked as a mint's is, or, for an offer sent alone (what WebRTC clients such as the Agents SDK's send), the
profile's own: what it fixes and its defaults. The offer and the answer are never logged (ICE candidates carry the
user's addresses). The call is counted in the same windows as a mint, and given back on the same failures; within
the profile's budgets and calls open at once; and handed to its supervisor, or hung up (domain/opening.py).
"""

from typing import Any

from voice_access.clients.deadline import Deadline
from voice_access.clients.openai_api import open_call
from voice_access.config.mint_settings import MintSettings
from voice_access.config.settings import refused
from voice_access.domain import quota
from voice_access.domain.caller import Caller
from voice_access.domain.errors import ServiceError
from voice_access.domain.opening import open_supervised
from voice_access.domain.policy.model import PROFILE_HEADER, Policy
from voice_access.domain.policy.rules import check_session, ga_param
from voice_access.domain.safety import identified

UPSTREAM_PATH = "/v1/realtime/calls"


class Called:
    """A call OpenAI opened: its SDP answer, where it is (``Location``), and where the caller's quota stands."""

    __slots__ = ("location", "text", "tightest")

    def __init__(self, text: str, location: str, tightest: quota.Counted | None) -> None:
        self.text = text
        self.location = location
        self.tightest = tightest


def open_session(
    offer_sdp: str,
    session: Any,
    profile: str | None,
    caller: Caller,
    *,
    settings: MintSettings,
    policy: Policy,
    deadline: Deadline,
) -> Called:
    """The Realtime call the browser's ``offer_sdp`` asks for, with ``session`` (None: the profile's own), opened for
    ``caller`` under the function's ``settings`` and ``policy``; a ServiceError when it cannot be."""
    service = settings.service
    keys, user = identified(service, caller, deadline)
    profile_name, chosen = policy.select(profile, "realtime", caller, param=PROFILE_HEADER, way="call")
    upstream_session = check_session({} if session is None else session, profile_name, chosen, ga_param)
    if isinstance(keys, ServiceError):
        raise keys
    if (problem := service.unsupervised()) is not None:
        raise refused("settings_invalid", problem)
    supervised = open_supervised(
        "call",
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
        open_upstream=lambda: open_call(
            service.upstream(UPSTREAM_PATH),
            keys.api_key,
            offer_sdp,
            upstream_session,
            safety_identifier=user,
            key_source=service.api_key_source,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=settings.upstream_read_timeout_seconds,
            deadline=deadline,
        ),
        id_of=lambda called: called.call_id,
    )
    called, reservation = supervised.opened, supervised.reservation
    return Called(called.sdp, f"{UPSTREAM_PATH}/{called.call_id}", reservation.tightest if reservation else None)
