"""The profiles a caller may use, as a client reads them to build its form: ``GET /v1/realtime/profiles``.

Each profile open to the caller is listed with what it fixes, what the caller may set and within which
rules, how long its client secrets last and how many the caller may mint. A profile the caller may not use
is not mentioned at all. Reading the policy is all it takes: no API key, no quota store, no OpenAI.
"""

import copy
import json
from typing import Any

from token_vending import vending
from token_vending.caller import Caller
from token_vending.errors import ApiError
from token_vending.observability import logger
from token_vending.policy import PROFILE_HEADER, FieldRule, Limits, Policy, Profile
from token_vending.session_fields import SessionType


def answer(caller: Caller) -> vending.Answer:
    """The answer to ``GET /v1/realtime/profiles`` by ``caller``."""
    listed = listing(vending.checked_policy(vending.checked_settings()), caller)
    logger.info("profiles listed", profiles=[profile["name"] for profile in listed["data"]])
    return vending.Answer(json.dumps(listed, separators=(",", ":")), {})


def listing(policy: Policy, caller: Caller) -> dict[str, Any]:
    """The profiles ``caller`` may use, in the policy's order, as an OpenAI list object."""
    defaults = {_default(policy, session_type, caller) for session_type in policy.default_profiles}
    return {
        "object": "list",
        "data": [
            _entry(name, profile, name in defaults)
            for name, profile in policy.profiles.items()
            if profile.allows(caller)
        ],
    }


def _default(policy: Policy, session_type: SessionType, caller: Caller) -> str | None:
    """The profile a request of ``session_type`` that names none gets; None when no default is open to the
    caller."""
    try:
        name, _ = policy.select(None, session_type, caller, param=PROFILE_HEADER)
    except ApiError:
        return None
    return name


def _entry(name: str, profile: Profile, default: bool) -> dict[str, Any]:
    bounds = profile.expires_after
    return {
        "name": name,
        "description": profile.description,
        "session_type": profile.session_type,
        "default": default,
        "expires_after": {
            "default_seconds": bounds.default_seconds,
            "min_seconds": bounds.min_seconds,
            "max_seconds": bounds.max_seconds,
        },
        "fixed": copy.deepcopy(profile.fixed),  # the caller's copy: the cached policy's stays as it is
        "settable": {path: _rule(rule) for path, rule in profile.settable.items()},
        "limits": _limits(profile.limits),
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


def _limits(limits: Limits | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {
        "per_caller": [{"mints": window.mints, "seconds": window.seconds} for window in limits.per_caller],
        "on_store_failure": limits.on_store_failure,
    }
