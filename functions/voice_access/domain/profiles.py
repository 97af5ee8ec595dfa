"""The profiles a caller may use, as a client reads them to build its form: ``GET /v1/realtime/profiles``.

Each profile open to the caller is listed with what it fixes, what the caller may set and within which
rules, how long its client secrets last, how many the caller may mint and how many are left of each window
(``remaining``, ``resets_at``); ``spend_brake`` says whether the service-wide brake is reached, not how far
every user's mints have gone. A profile the caller may not use is not mentioned at all. A profile's budgets and
calls open at once are listed as the policy file writes them; what is left of them is ``GET /v1/realtime/usage``'s
(domain/usage.py).

The policy says what is listed; the figures take the secret's safety identifier key (cached, as for a mint) and
one read of the quota store that writes nothing. When either fails, the listing is still answered, with the
figures null and ``quota_error`` saying why: a page can always build its form, and a mint would say the same
of the store. Nothing reaches OpenAI.
"""

import copy
import time
from typing import Any, NamedTuple

from voice_access.clients.deadline import Deadline
from voice_access.clients.secrets import api_keys
from voice_access.config.mint_settings import MintSettings
from voice_access.domain import quota
from voice_access.domain.caller import Caller
from voice_access.domain.errors import DependencyUnavailable, OutOfTime, ServiceError
from voice_access.domain.limits import Limits, Window
from voice_access.domain.policy.model import PROFILE_HEADER, WAYS, FieldRule, Policy, Profile, Way
from voice_access.domain.quota import Standing
from voice_access.domain.safety import safety_identifier
from voice_access.domain.session_fields import SessionType
from voice_access.observability import logger

_PASSING = "The remaining mints are not shown (null): this service could not read them just now. Retry in a moment."
_OPERATORS = (
    "The remaining mints are not shown (null): this service cannot read them until an operator fixes it (see the "
    "service's logs)."
)


def list_profiles(
    caller: Caller, *, settings: MintSettings, policy: Policy, deadline: Deadline | None = None
) -> dict[str, Any]:
    """The listing ``GET /v1/realtime/profiles`` answers ``caller`` under the function's ``settings`` and ``policy``
    (read by the edge), its reads done by ``deadline`` (default: the invocation's, for the template's timeout)."""
    open_to_caller = {name: profile for name, profile in policy.profiles.items() if profile.allows(caller)}
    brake = quota.spend_brake(settings.spend_brake_mints_per_day, policy)
    quota_error: dict[str, Any] | None = None
    try:
        standing = _standing(settings, open_to_caller, brake, caller, deadline or Deadline.of_invocation(None))
    except ServiceError as error:
        standing, quota_error = None, _quota_error(error)
    listed = listing(policy, caller, standing, brake, quota_error)
    logger.info(
        "profiles listed", profiles=[profile["name"] for profile in listed["data"]], quota_read=quota_error is None
    )
    return listed


def listing(
    policy: Policy,
    caller: Caller,
    standing: Standing | None = None,
    brake: Window | None = None,
    quota_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The profiles ``caller`` may use, in the policy's order, as an OpenAI list object; what is left of each
    window as ``standing`` says (None: not read, each ``remaining`` null), and the spend brake ``brake``."""
    defaults = {_default(policy, session_type, caller, way) for session_type in policy.default_profiles for way in WAYS}
    now = time.time()
    return {
        "object": "list",
        "data": [
            _entry(name, profile, name in defaults, _counts(name, profile.limits, standing, now))
            for name, profile in policy.profiles.items()
            if profile.allows(caller)
        ],
        "spend_brake": _brake(brake, standing, now),
        "quota_error": quota_error,
    }


def _standing(
    settings: MintSettings, profiles: dict[str, Profile], brake: Window | None, caller: Caller, deadline: Deadline
) -> Standing:
    """What is left for ``caller`` of each limited profile's windows, and the brake's state: one read, none when
    nothing is limited."""
    limits = {
        name: profile.limits for name, profile in profiles.items() if profile.limits and profile.limits.per_caller
    }
    if not limits and brake is None:
        return Standing({}, None)
    service = settings.service
    keys = api_keys.get(service.api_key_secret_id, service.secret_cache_ttl_seconds, service, deadline=deadline)
    user = safety_identifier(keys.safety_identifier_key, caller)
    return quota.standing(quota.store_of(service), limits, brake, user, deadline=deadline)


def _quota_error(error: ServiceError) -> dict[str, Any]:
    message = _PASSING if isinstance(error, DependencyUnavailable | OutOfTime) else _OPERATORS
    return {"type": "server_error", "message": message, "param": None, "code": error.code}


class _Left(NamedTuple):
    """What is left of one window: None when the store was not read."""

    window: Window
    remaining: int | None
    resets_at: int  # epoch seconds


def _counts(name: str, limits: Limits | None, standing: Standing | None, now: float) -> list[_Left] | None:
    if limits is None:
        return None
    if not limits.per_caller:
        return []
    if standing is not None and name in standing.per_caller:
        return [_Left(c.window, c.remaining, c.resets_at) for c in standing.per_caller[name]]
    return [_Left(window, None, _resets_at(window, now)) for window in limits.per_caller]


def _default(policy: Policy, session_type: SessionType, caller: Caller, way: Way) -> str | None:
    """The profile a request of ``session_type`` that names none gets, opened ``way``; None when no default is
    open to the caller."""
    try:
        name, _ = policy.select(None, session_type, caller, param=PROFILE_HEADER, way=way)
    except ServiceError:
        return None
    return name


def _entry(name: str, profile: Profile, default: bool, counts: list[_Left] | None) -> dict[str, Any]:
    bounds = profile.expires_after
    return {
        "name": name,
        "description": profile.description,
        "session_type": profile.session_type,
        "ways": list(profile.opened_by),
        "default": default,
        "expires_after": None
        if bounds is None
        else {
            "default_seconds": bounds.default_seconds,
            "min_seconds": bounds.min_seconds,
            "max_seconds": bounds.max_seconds,
        },
        "fixed": copy.deepcopy(profile.all_fixed),  # the caller's copy: the cached policy's stays as it is
        "settable": {path: _rule(rule) for path, rule in profile.settable.items()},
        "limits": _limits(profile.limits, counts),
    }


def _rule(rule: FieldRule) -> dict[str, Any]:
    """The rule as the policy file gives it: only the keys it sets (none left at its default: null, false or
    an empty list), so a key FieldRule gains is shown without a change here."""
    shown: dict[str, Any] = {}
    for key in FieldRule.__annotations__:
        value = getattr(rule, key)
        if value is None or value is False or value == []:
            continue
        shown[key] = list(value) if isinstance(value, list) else value
    return shown


def _limits(limits: Limits | None, counts: list[_Left] | None) -> dict[str, Any] | None:
    """The limits as the policy file writes them (each key it gives), each window with what is left of it."""
    if limits is None or counts is None:
        return None
    shown: dict[str, Any] = {}
    if limits.per_caller:
        shown["per_caller"] = [
            {
                "mints": left.window.mints,
                "seconds": left.window.seconds,
                "remaining": left.remaining,
                "resets_at": left.resets_at,
            }
            for left in counts
        ]
    if limits.budgets:
        shown["budgets"] = [
            {
                key: value
                for key, value in (("usd", b.usd), ("call_seconds", b.call_seconds), ("seconds", b.seconds))
                if value is not None
            }
            for b in limits.budgets
        ]
    if limits.concurrent_calls is not None:
        shown["concurrent_calls"] = limits.concurrent_calls
    shown["on_store_failure"] = limits.on_store_failure
    return shown


def _brake(brake: Window | None, standing: Standing | None, now: float) -> dict[str, Any] | None:
    """Whether the spend brake is reached (null when not read) and when its window resets; never its count, which
    is every user's mints."""
    if brake is None:
        return None
    counted = standing.brake if standing is not None else None
    return {
        "reached": counted.remaining == 0 if counted is not None else None,
        "resets_at": counted.resets_at if counted is not None else _resets_at(brake, now),
    }


def _resets_at(window: Window, now: float) -> int:
    """When the window ``now`` is in ends (epoch seconds): windows are fixed and aligned to the epoch."""
    return (int(now // window.seconds) + 1) * window.seconds
