"""Minting a client secret: check the request against the policy, fetch the key, ask OpenAI.

Knows nothing of API Gateway: the handler hands it the endpoint, the JSON body, the profile and the caller.
The caller is named to OpenAI and in every later log line of the request only by its safety identifier.
"""

import json
import re
from http import HTTPStatus
from typing import Any, NamedTuple

from voice_access import observability
from voice_access.clients.deadline import Deadline
from voice_access.clients.openai_api import Minted, create_client_secret
from voice_access.clients.secrets import Credentials, api_keys
from voice_access.config.policy_file import checked_policy
from voice_access.config.settings import Settings, SettingsError, get_settings
from voice_access.domain import quota
from voice_access.domain.caller import Caller
from voice_access.domain.errors import ApiError, InvalidRequest, ServiceMisconfigured, UpstreamError
from voice_access.domain.policy.model import PROFILE_HEADER, Profile
from voice_access.domain.policy.rules import ParamNamer, check_request, ga_param
from voice_access.domain.safety import safety_identifier
from voice_access.domain.session_fields import SessionType
from voice_access.domain.translation import FIELDS, BetaNames, beta_to_ga, ga_to_beta
from voice_access.observability import count, logger

_GA_SESSION_TYPES: tuple[SessionType, ...] = ("realtime", "transcription")


class Endpoint(NamedTuple):
    """One of our routes: what it mints, where upstream, and in which shape it speaks."""

    name: str  # in logs and metrics
    upstream_path: str  # of OpenAI's GA call that mints for it
    session_type: SessionType | None  # None: the body's session.type says
    beta: bool = False  # the retired beta shape, translated onto GA and back


CLIENT_SECRETS = Endpoint("client_secrets", "/v1/realtime/client_secrets", None)
SESSIONS = Endpoint("sessions", "/v1/realtime/client_secrets", "realtime", beta=True)
TRANSCRIPTION_SESSIONS = Endpoint("transcription_sessions", "/v1/realtime/client_secrets", "transcription", beta=True)
TRANSLATION_CLIENT_SECRETS = Endpoint(
    "translation_client_secrets", "/v1/realtime/translations/client_secrets", "translation"
)

_BETA_NAMES = {session_type: BetaNames(fields) for session_type, fields in FIELDS.items()}


class Answer(NamedTuple):
    text: str  # JSON, in the endpoint's own shape
    headers: dict[str, str]  # the caller's quota, in OpenAI's rate-limit headers


def mint(
    endpoint: Endpoint, body: dict[str, Any], profile: str | None, caller: Caller, *, deadline: Deadline
) -> Answer:
    """The answer for one request to ``endpoint`` by ``caller``."""
    settings = checked_settings()
    policy = checked_policy(settings.policy_path)
    # The keys first, so that every later line of this request names the caller, a refusal by the policy
    # included. A secret that cannot be read fails the request only once the request itself has passed.
    keys = _read_keys(settings, deadline)
    user = safety_identifier(keys.safety_identifier_key, caller) if isinstance(keys, Credentials) else ""
    if user:
        logger.append_keys(user=user)  # the handler clears it with the rest of the invocation's state
    name: ParamNamer = ga_param
    request, profile_param = body, PROFILE_HEADER
    if endpoint.session_type is None:
        session_type, profile_param = _ga_session_type(body), "session.type"
    elif endpoint.beta:
        session_type = endpoint.session_type
        request, name = beta_to_ga(body, session_type), _BETA_NAMES[session_type]
    else:
        session_type = endpoint.session_type
    profile_name, chosen = policy.select(profile, session_type, caller, param=profile_param)
    upstream_body = check_request(request, profile_name, chosen, name)
    if isinstance(keys, ApiError):
        raise keys
    reservation = quota.reserve(
        quota.store_of(settings),
        profile_name,
        chosen.limits,
        quota.spend_brake(settings, policy),
        user,
        deadline=deadline,
    )
    try:
        minted = _create(
            settings.upstream(endpoint.upstream_path), settings, keys, user, upstream_body, name, chosen, deadline
        )
    except BaseException as failure:
        if reservation is not None and _gives_back(failure):
            quota.release(reservation)  # the caller received nothing: its quota is as it was
        raise
    observability.log_mint(
        endpoint.name,
        profile_name,
        minted.latency_ms,
        spend_brake_used=reservation.brake_used if reservation else None,
        session_type=session_type,
        model=upstream_body["session"].get("model"),
        ttl_seconds=upstream_body["expires_after"]["seconds"],
        expires_at=minted.expires_at,
        **({"quota_ms": round(reservation.waited_ms, 2)} if reservation else {}),
    )
    headers = reservation.headers() if reservation else {}
    if not endpoint.beta:
        return Answer(minted.text, headers)  # OpenAI's answer as it came
    return Answer(json.dumps(ga_to_beta(minted.body, session_type), separators=(",", ":")), headers)


def _gives_back(failure: BaseException) -> bool:
    """Whether a mint that failed gives its quota units back: yes when OpenAI failed (5xx, a timeout, out of
    reach, a key or field it refused that is the operator's to fix); no when OpenAI refused the caller's own
    request (a 400) or rate limited it, else a caller could send OpenAI requests without end."""
    if isinstance(failure, InvalidRequest):
        return False
    return not (isinstance(failure, UpstreamError) and failure.status == HTTPStatus.TOO_MANY_REQUESTS)


def _read_keys(settings: Settings, deadline: Deadline) -> Credentials | ApiError:
    try:
        return api_keys.get(
            settings.api_key_secret_id,
            settings.secret_cache_ttl_seconds,
            settings.secrets_extension_port,
            deadline=deadline,
        )
    except ApiError as error:
        return error


def _create(
    url: str,
    settings: Settings,
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
            key_source=settings.api_key_source,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=settings.upstream_read_timeout_seconds,
            deadline=deadline,
        )
    except UpstreamError as exc:
        if exc.code == "upstream_auth_failed":
            api_keys.forget()  # a rotated key is read again at once, not after the cache's TTL
        raise
    except InvalidRequest as exc:
        if _names_field_the_policy_sets(exc.param, profile, body):
            # The caller cannot change what the policy fixes: the deployment is at fault, not the request.
            logger.error("openai rejected a field the policy fixes", param=exc.param, upstream_code=exc.code)
            count("ConfigurationErrors", reason="policy_rejected_upstream")
            raise UpstreamError(
                f"OpenAI rejected '{exc.param}', which this service's policy sets. The operator must fix the "
                "policy (see the service's logs).",
                status=HTTPStatus.BAD_GATEWAY,
                code="policy_rejected_upstream",
            ) from None
        if exc.param:  # OpenAI names GA paths; a beta caller sent beta names
            exc.param = name(exc.param)
        raise


def _names_field_the_policy_sets(param: str | None, profile: Profile, body: dict[str, Any]) -> bool:
    """Whether OpenAI's ``param`` (``session.tools[0].name``) falls on a field the policy fixes or filled in."""
    if not param or not param.startswith("session."):
        return False
    session_path = re.sub(r"\[\d+\]", "", param.removeprefix("session."))
    return profile.sets(session_path, body["session"])


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


def checked_settings() -> Settings:
    """The function's settings; ServiceMisconfigured (logged and counted) when the environment is broken."""
    try:
        return get_settings()
    except SettingsError as exc:
        raise _refuse("settings_invalid", str(exc)) from None


def _refuse(reason: str, problem: str) -> ServiceMisconfigured:
    logger.error("refusing to mint: the deployment is misconfigured", reason=reason, problem=problem)
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service is misconfigured and mints nothing until an operator fixes it (see the service's logs).",
        code=reason,
    )
