"""Minting a client secret: check the request against the policy, fetch the key, ask OpenAI.

Knows nothing of API Gateway or HTTP: the edge hands it the endpoint (the one object that knows the route's
shape), the JSON body, the profile, the caller, the settings and the policy; it returns a Mint or raises a ServiceError.
The caller is named to OpenAI and in every later log line of the request only by its safety identifier.
"""

from typing import Any

from voice_access import observability
from voice_access.clients.deadline import Deadline
from voice_access.clients.openai_api import Minted, create_client_secret
from voice_access.clients.secrets import Credentials, api_keys
from voice_access.config.mint_settings import MintSettings
from voice_access.domain import quota
from voice_access.domain.caller import Caller
from voice_access.domain.endpoints import Endpoint
from voice_access.domain.errors import (
    ServiceError,
    UpstreamKeyRejected,
    UpstreamRejected,
)
from voice_access.domain.policy.model import Policy, Profile
from voice_access.domain.policy.rules import ParamNamer, check_request, policys_refusal
from voice_access.domain.safety import identified


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class Mint:
    """A client secret minted: OpenAI's answer in the endpoint's shape, and where the caller's quota stands."""

    __slots__ = ("text", "tightest")

    def __init__(self, text: str, tightest: quota.Counted | None) -> None:
        self.text = text  # JSON
        self.tightest = tightest  # the window the caller is nearest the end of; None: no quota applies


def mint(
    endpoint: Endpoint,
    body: dict[str, Any],
    profile: str | None,
    caller: Caller,
    *,
    settings: MintSettings,
    policy: Policy,
    deadline: Deadline,
) -> Mint:
    """A client secret for one request to ``endpoint`` by ``caller``, under the function's ``settings`` and
    ``policy`` (read by the edge)."""
    service = settings.service
    # The keys first, so that every later line of this request names the caller, a refusal by the policy
    # included. A secret that cannot be read fails the request only once the request itself has passed.
    keys, user = identified(settings.service, caller, deadline)
    request = endpoint.read(body)
    profile_name, chosen = policy.select(
        profile, request.session_type, caller, param=request.profile_param, way="client_secret"
    )
    upstream_body = check_request(request.body, profile_name, chosen, request.name)
    if isinstance(keys, ServiceError):
        raise keys
    reservation = quota.reserve(
        quota.store_of(service),
        profile_name,
        chosen.limits,
        quota.spend_brake(settings.spend_brake_mints_per_day, policy),
        user,
        deadline=deadline,
    )
    try:
        minted = _create(
            service.upstream(endpoint.upstream_path),
            settings,
            keys,
            user,
            upstream_body,
            request.name,
            chosen,
            deadline,
        )
    except BaseException as failure:
        if reservation is not None and quota.gives_back(failure):
            quota.release(reservation)  # the caller received nothing: its quota is as it was
        raise
    observability.log_mint(
        endpoint.name,
        profile_name,
        minted.latency_ms,
        spend_brake_used=reservation.brake_used if reservation else None,
        session_type=request.session_type,
        model=upstream_body["session"].get("model"),
        ttl_seconds=upstream_body["expires_after"]["seconds"],
        expires_at=minted.expires_at,
        **({"quota_ms": round(reservation.waited_ms, 2)} if reservation else {}),
    )
    return Mint(endpoint.written(minted), reservation.tightest if reservation else None)


def _create(
    url: str,
    settings: MintSettings,
    credentials: Credentials,
    user: str,
    body: dict[str, Any],
    name: ParamNamer,
    profile: Profile,
    deadline: Deadline,
) -> Minted:
    try:
        return create_client_secret(
            url,
            credentials.api_key,
            body,
            safety_identifier=user,
            key_source=settings.service.api_key_source,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=settings.upstream_read_timeout_seconds,
            deadline=deadline,
        )
    except UpstreamKeyRejected:
        api_keys.forget()  # a rotated key is read again at once, not after the cache's TTL
        raise
    except UpstreamRejected as exc:
        if profile.set_by_policy(exc.param, body["session"]):
            raise policys_refusal(exc) from None
        if exc.param:  # OpenAI names GA paths; a beta caller sent beta names
            exc.param = name(exc.param)
        raise
