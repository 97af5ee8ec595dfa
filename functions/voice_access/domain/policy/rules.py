"""Checking a session against a profile: a whole request (`check_request`), a partial session update
(`check_update`: the session it would make, `merged`, checked as a request's session is, with the same refusals),
and the session OpenAI reports for a call the service opened (`check_reported`, checked as a request's session is,
less what OpenAI fills in itself, and held to OpenAI's defaults where the profile lets no caller set a field); what
puts a call's session back (`restoring_update`) and the tools it may call (`allowed_tools`).
"""

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from voice_access.domain.errors import InvalidRequest, UpstreamFailed, UpstreamRejected
from voice_access.domain.policy.model import (
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    PROFILE_HEADER,
    Profile,
    clip,
    same_json,
)
from voice_access.domain.session_fields import (
    MISSING,
    OPENAI_DEFAULTS,
    REQUIRED_KEYS,
    SESSION_FIELDS,
    SESSION_OBJECTS,
    TYPED_SESSIONS,
    OpenAIDefault,
    get,
    put,
)

# What a reported session holds that no request governs: OpenAI's own (the session's id, object and expiry, the type
# it was opened as) and its model, which no session.update may change and which OpenAI reports as a dated snapshot
# ("gpt-realtime-2025-08-28" for "gpt-realtime").
_REPORTED_ONLY = frozenset({"id", "object", "expires_at", "type", "model"})

# Said in a refusal that OpenAI's API, not this service's policy, makes.
OPENAI_RULE = "a rule of OpenAI's API"

# Names a GA request path ("session.audio.output.voice") the way the caller spelled it.
ParamNamer = Callable[[str], str]


def ga_param(path: str) -> str:
    return path


def check_request(request: dict[str, Any], profile_name: str, profile: Profile, name: ParamNamer) -> dict[str, Any]:
    """Check a GA client-secret request against a profile; return the body to send upstream.

    ``request`` is GA-shaped (``{"expires_after": ..., "session": ...}``); ``name`` turns a GA path
    into the caller's own spelling for error messages. Raises InvalidRequest on the first problem.
    """
    for key in request:
        if key not in ("expires_after", "session"):
            raise _unknown(name(key))
    session = check_session(request.get("session", {}), profile_name, profile, name)
    return {"expires_after": _expiry(request.get("expires_after"), profile_name, profile, name), "session": session}


def check_session(session: Any, profile_name: str, profile: Profile, name: ParamNamer) -> dict[str, Any]:
    """Check a request's ``session`` against a profile; return the session to send upstream: what the profile
    fixes, the caller's own fields, and the defaults. Raises InvalidRequest on the first problem."""
    if not isinstance(session, dict):
        raise InvalidRequest(
            f"Invalid type for '{name('session')}': expected an object ({OPENAI_RULE}).",
            code="invalid_type",
            param=name("session"),
        )
    built = profile.fixed_session()
    for path, value in _leaves(session, "", profile, name):
        if path == "type" and profile.session_type in TYPED_SESSIONS:
            if value != profile.session_type:
                raise InvalidRequest(
                    f"Invalid value for '{name('session.type')}': profile '{profile_name}' of this service's "
                    f"policy mints '{profile.session_type}' sessions; name another profile with the "
                    f"{PROFILE_HEADER} header.",
                    code="invalid_value",
                    param=name("session.type"),
                )
            continue
        if clash := profile.fixed_clash(path):
            if same_json(value, get(built, path, MISSING)):
                continue  # the fixed value itself (OpenAI's samples send the model): nothing to change
            raise _fixed(name(f"session.{path}"), clash, profile_name)
        _check_leaf(path, value, profile_name, profile, name)
        put(built, path, value)
    for path, default in profile.defaults:
        _put_default(built, path, default)
    for parent, key in REQUIRED_KEYS[profile.session_type].items():
        sent = get(built, parent) if parent else built
        if not isinstance(sent, dict):  # an empty object the caller sent left nothing in `built`
            sent = get(session, parent)
        if isinstance(sent, dict) and key not in sent:
            param = name(f"session.{parent}.{key}" if parent else f"session.{key}")
            raise InvalidRequest(
                f"Missing required parameter: '{param}' ({OPENAI_RULE}).",
                code="missing_required_parameter",
                param=param,
            )
    return built


def _put_default(session: dict[str, Any], path: str, value: Any) -> None:
    """Fill in a field's default where the session leaves it out; an object the session switched off (null) above
    it stays off."""
    *parents, leaf = path.split(".")
    node: Any = session
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node.setdefault(leaf, value)


def _leaves(value: dict[str, Any], prefix: str, profile: Profile, name: ParamNamer) -> Iterator[tuple[str, Any]]:
    """(path, value) for each field the caller sent. Only known objects are entered, so the depth is
    bounded by the schema, not by the caller: anything else is a leaf that the checks refuse."""
    objects = SESSION_OBJECTS[profile.session_type]
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else key
        if "." in key or not key:  # no field is named so; a dotted key must not pose as a path
            raise _unknown(name(f"session.{path}"))
        rule = profile.settable.get(path)
        if isinstance(item, dict) and path in objects and (rule is None or rule.type == "null"):
            yield from _leaves(item, path, profile, name)
        else:
            yield path, item


def _fixed(param: str, clash: str, profile_name: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}' is fixed by this service's policy (profile '{profile_name}'): leave it out, or send exactly "
        f"the fixed value. To let callers choose it, an operator moves '{clash}' from the profile's \"fixed\" "
        'to its "settable" fields in the policy file (policy.json).',
        code="parameter_not_allowed",
        param=param,
    )


def _check_leaf(path: str, value: Any, profile_name: str, profile: Profile, name: ParamNamer) -> None:
    param = name(f"session.{path}")
    rule = profile.settable.get(path)
    if rule is None:
        if path == "safety_identifier":
            raise InvalidRequest(
                f"'{param}' is set by this service, from the signed-in caller: leave it out.",
                code="parameter_not_allowed",
                param=param,
            )
        if path in SESSION_FIELDS[profile.session_type]:
            raise InvalidRequest(
                f"'{param}' is not allowed by this service's policy (profile '{profile_name}'). To let callers set "
                f"it, an operator adds '{path}' to the profile's \"settable\" fields in the policy file "
                "(policy.json).",
                code="parameter_not_allowed",
                param=param,
            )
        raise _unknown(param)
    if problem := rule.problem(value):
        code, what = problem
        kind = "type" if code == "invalid_type" else "value"
        raise InvalidRequest(
            f"Invalid {kind} for '{param}': {what}, by this service's policy (profile '{profile_name}'); an "
            f"operator can change the rule for '{path}' in the policy file (policy.json).",
            code=code,
            param=param,
        )


def _expiry(expires_after: Any, profile_name: str, profile: Profile, name: ParamNamer) -> dict[str, Any]:
    bounds = profile.expires_after
    if bounds is None:  # Policy.select gives a client secret's request only a profile that mints them
        raise ValueError(f"profile '{profile_name}' mints no client secrets")
    if expires_after is None:
        return {"anchor": "created_at", "seconds": bounds.default_seconds}
    if not isinstance(expires_after, dict):
        param = name("expires_after")
        raise InvalidRequest(
            f"Invalid type for '{param}': expected an object ({OPENAI_RULE}).", code="invalid_type", param=param
        )
    for key in expires_after:
        if key not in ("anchor", "seconds"):
            raise _unknown(name(f"expires_after.{key}"))
    if expires_after.get("anchor", "created_at") != "created_at":
        param = name("expires_after.anchor")
        raise InvalidRequest(
            f"Invalid value for '{param}': must be 'created_at' ({OPENAI_RULE}).", code="invalid_value", param=param
        )
    seconds = expires_after.get("seconds", bounds.default_seconds)
    param = name("expires_after.seconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise InvalidRequest(
            f"Invalid type for '{param}': expected an integer ({OPENAI_RULE}).", code="invalid_type", param=param
        )
    if not MIN_TTL_SECONDS <= seconds <= MAX_TTL_SECONDS:
        raise InvalidRequest(
            f"Invalid value for '{param}': must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS} ({OPENAI_RULE}).",
            code="invalid_value",
            param=param,
        )
    if not bounds.min_seconds <= seconds <= bounds.max_seconds:
        raise InvalidRequest(
            f"Invalid value for '{param}': this service's policy (profile '{profile_name}') allows "
            f"{bounds.min_seconds} to {bounds.max_seconds} seconds (OpenAI allows {MIN_TTL_SECONDS} to "
            f'{MAX_TTL_SECONDS}); an operator can change the profile\'s "expires_after" in the policy file '
            "(policy.json).",
            code="invalid_value",
            param=param,
        )
    return {"anchor": "created_at", "seconds": seconds}


def _unknown(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Unknown parameter: '{clip(param)}'. OpenAI's Realtime API has no such field here.",
        code="unknown_parameter",
        param=clip(param),
    )


def merged(session: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` (a ``session.update``'s session) over ``session``, as OpenAI applies it: each field it names
    replaced, except ``audio.input`` and ``audio.output``, merged field by field."""
    result = dict(session)
    for key, value in update.items():
        if key == "audio" and isinstance(value, Mapping):
            audio = dict(result.get("audio") or {})
            for direction, fields in value.items():
                audio[direction] = {**(audio.get(direction) or {}), **fields} if isinstance(fields, Mapping) else fields
            result["audio"] = audio
        else:
            result[key] = value
    return result


def check_update(
    session: Mapping[str, Any], update: Any, profile_name: str, profile: Profile, name: ParamNamer
) -> dict[str, Any]:
    """Check a ``session.update`` of ``session`` (a session this profile allowed) against the profile; return the
    session it makes. The merged session is checked as a request's would be: the same InvalidRequest, first problem
    first, and an update that is not an object is refused as such a request's session is."""
    merged_session = merged(session, update) if isinstance(update, Mapping) else update
    checked: dict[str, Any] = check_request({"session": merged_session}, profile_name, profile, name)["session"]
    return checked


def check_reported(
    reported: Any, opened: Mapping[str, Any], profile_name: str, profile: Profile
) -> InvalidRequest | None:
    """The first way the session OpenAI reports for a call (a ``session.updated``'s ``session``) leaves the profile,
    as the InvalidRequest a request that sent it would get (the same code and param), or None.

    A reported session holds every field, most of them OpenAI's defaults, which no request sent: only what the
    profile governs is checked. Every fixed value must hold; every settable field present must keep its rule; any
    other field of a request must hold the value ``opened`` (the session the call was opened with, as the service
    sent it) gave it, if it gave one, and else, where OpenAI states a default for it (``OPENAI_DEFAULTS``) and the
    profile governs nothing at, above or under it, that default: a caller could not have set it when the call
    opened, so it may not later. What the request schema lacks, OpenAI's own fields, the model, the keys OpenAI
    fills in under a fixed object that leaves them out, and the other fields nothing governs, are not checked."""
    if not isinstance(reported, Mapping):
        return InvalidRequest(
            f"Invalid type for 'session': expected an object ({OPENAI_RULE}).", code="invalid_type", param="session"
        )
    governed, changed = _governed(reported, opened, profile)
    try:
        check_session(governed, profile_name, profile, ga_param)
        for path in changed:  # what has no field under it (an empty object), which a request's check drops
            _check_leaf(path, get(governed, path), profile_name, profile, ga_param)
    except InvalidRequest as problem:
        return problem
    return None


def _governed(
    reported: Mapping[str, Any], opened: Mapping[str, Any], profile: Profile
) -> tuple[dict[str, Any], list[str]]:
    """What of ``reported`` the profile governs, as a request's session would hold it; and the paths in it of the
    fields held to OpenAI's default that changed."""
    fixed = profile.fixed_session()
    known = SESSION_FIELDS[profile.session_type]
    governed: dict[str, Any] = {}
    for path, value in _reported_leaves(reported, "", profile):
        if path in _REPORTED_ONLY:
            continue
        if profile.fixed_clash(path) is not None:
            if _left_out(fixed, path):
                continue  # OpenAI's default for a key the fixed object does not name
        elif path not in profile.settable:
            sent = get(dict(opened), path, MISSING)
            if path not in known or sent is MISSING or same_json(value, sent):
                continue
        put(governed, path, value)
    changed = []
    for path, default in _held_to_default(profile):
        value = get(dict(reported), path, MISSING)
        if _sent_at(opened, path) or value is MISSING or _holds(value, default):
            continue
        put(governed, path, value)
        changed.append(path)
    return governed, changed


def _held_to_default(profile: Profile) -> Iterator[tuple[str, OpenAIDefault]]:
    """The fields with a default of OpenAI's that the profile governs nothing at, above or under (neither fixed
    nor settable, so no caller could set them when the call opened), with the default."""
    for path, default in OPENAI_DEFAULTS.get(profile.session_type, {}).items():
        if profile.fixed_clash(path) is None and not any(
            settable == path or settable.startswith(path + ".") or path.startswith(settable + ".")
            for settable in profile.settable
        ):
            yield path, default


def _sent_at(opened: Mapping[str, Any], path: str) -> bool:
    """Whether the session a call was opened with holds ``path`` (then the call holds it to that, as any field)."""
    return get(dict(opened), path, MISSING) is not MISSING


def _holds(value: Any, default: OpenAIDefault) -> bool:
    return any(same_json(value, holding) for holding in (default.value, *default.also))


def _reported_leaves(value: Mapping[str, Any], prefix: str, profile: Profile) -> Iterator[tuple[str, Any]]:
    """(path, value) for each field of a reported session, entering the objects a request's are entered (`_leaves`);
    a key no field could have is skipped, as one OpenAI added."""
    objects = SESSION_OBJECTS[profile.session_type]
    for key, item in value.items():
        if not isinstance(key, str) or not key or "." in key:
            continue
        path = f"{prefix}.{key}" if prefix else key
        rule = profile.settable.get(path)
        if isinstance(item, Mapping) and path in objects and (rule is None or rule.type == "null"):
            yield from _reported_leaves(item, path, profile)
        else:
            yield path, item


def _left_out(fixed: dict[str, Any], path: str) -> bool:
    """Whether ``path`` lies under an object the profile fixes without naming the path's key there (so OpenAI's
    default fills it); False where a fixed value that is not an object covers it, which must then hold."""
    node: Any = fixed
    for part in path.split("."):
        if not isinstance(node, dict):
            return False
        if part not in node:
            return True
        node = node[part]
    return False


def restoring_update(opened: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    """The ``session`` of a ``session.update`` that puts back what the profile governs in a call's session: the
    session the call was opened with, less its model (OpenAI refuses a change of model, even to itself), and
    OpenAI's default for each field held to it (``check_reported``) that the session left out, where OpenAI takes
    it in a session.update: a session.update changes only the fields it names."""
    session = {key: copy.deepcopy(value) for key, value in opened.items() if key != "model"}
    if profile.session_type in TYPED_SESSIONS:
        session["type"] = profile.session_type
    for path, default in _held_to_default(profile):
        if default.restorable and not _sent_at(opened, path):
            _put_default(session, path, copy.deepcopy(default.value))
    return session


def allowed_tools(opened: Mapping[str, Any]) -> frozenset[str]:
    """The names of the function tools of the session a call was opened with: the only functions it may call."""
    tools = opened.get("tools")
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(
        tool["name"]
        for tool in tools
        if isinstance(tool, Mapping) and tool.get("type") == "function" and isinstance(tool.get("name"), str)
    )


def policys_refusal(refused: UpstreamRejected) -> UpstreamFailed:
    """OpenAI's refusal of a field the policy set (``Profile.set_by_policy``), as the operator's to fix: the caller
    cannot change what the policy fixes. Logged and counted."""
    from voice_access.observability import count, logger  # the build's policy check imports rules without Powertools

    logger.error("openai rejected a field the policy fixes", param=refused.param, upstream_code=refused.code)
    count("ConfigurationErrors", reason="policy_rejected_upstream")
    return UpstreamFailed(
        f"OpenAI rejected '{refused.param}', which this service's policy sets. The operator must fix the policy (see "
        "the service's logs).",
        code="policy_rejected_upstream",
    )
