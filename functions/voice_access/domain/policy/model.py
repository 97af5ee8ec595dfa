"""The allowlist policy: which session settings a caller may ask for, and what the server fixes.

A policy file holds named profiles. Each profile fixes some session fields (the caller cannot send
them), lists the fields a caller may set with their bounds, says the ways a session may be opened with it
(``ways``: a client secret the app opens it with, a Realtime call or a GPT-Live session the service opens), and
bounds a client secret's TTL. Every other field is refused: a known field as not allowed, anything else as
unknown. Paths are dotted session paths, e.g. ``audio.output.voice``. A profile that opens calls also says how long
one may last, and what the supervisor does when a call's session leaves the profile; the policy prices the models
its calls may use, for budgets in money.

The policy is plain frozen records (records.py), checked by pydantic where the file is validated
(config/policy_file.py); how a request or a session update is checked against a profile is rules.py.
"""

import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any, Literal

from voice_access.domain.caller import Caller
from voice_access.domain.errors import InvalidRequest, PermissionDenied
from voice_access.domain.limits import USD, Budget, Limits, Window
from voice_access.domain.policy.records import PYDANTIC_CONFIG, Factory, Record
from voice_access.domain.session_fields import (
    MISSING,
    REQUIRED_KEYS,
    SESSION_FIELDS,
    TYPED_SESSIONS,
    SessionType,
    get,
    put,
)

# OpenAI accepts client secret lifetimes of 10 s to 2 h.
MIN_TTL_SECONDS = 10
MAX_TTL_SECONDS = 7200

PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# What a profile may require of a caller: groups and scopes as OAuth spells scopes (printable ASCII,
# no space); an issuer is a URL, or the IAM caller's own issuer.
REQUIRED_NAME = {
    "groups": re.compile(r"[!-~]{1,256}"),
    "scopes": re.compile(r"[!-~]{1,256}"),
    "issuers": re.compile(r"[ -~]{1,256}"),
}
Scalar = str | int | float | bool

# How a request names its profile (any case, as HTTP headers go).
PROFILE_HEADER = "X-Profile"

# The ways a session is opened: with a client secret the app holds (and opens the session with), or by the service
# itself from the browser's SDP offer, as a Realtime call or a GPT-Live session.
Way = Literal["client_secret", "call", "live_session"]
# What each way is, to a caller told it cannot use it: (in a sentence, the plural in an error code).
WAYS: dict[Way, tuple[str, str]] = {
    "client_secret": ("client secrets (POST /v1/realtime/client_secrets)", "client_secrets"),
    "call": ("Realtime calls the service opens (POST /v1/realtime/calls)", "calls"),
    "live_session": ("GPT-Live sessions (POST /v1/live/sessions)", "live_sessions"),
}
# The ways a session type may be opened, the first its profiles have when they name none.
_WAYS_OF: dict[SessionType, tuple[Way, ...]] = {
    "realtime": ("client_secret", "call"),
    "transcription": ("client_secret",),
    "translation": ("client_secret",),
    "live": ("live_session",),
}
# What a browser may send on a GPT-Live session's data channel unless the profile fixes otherwise: mute, unmute and
# hang up. Anything more (a session.update, a response.create) the operator opens by fixing the list.
LIVE_CLIENT_EVENTS = "client.data_channel.allowed_client_events"
DEFAULT_LIVE_CLIENT_EVENTS = ["session.input_audio.mute", "session.input_audio.unmute", "session.close"]

# How long a call the service opens may last, unless its profile says: well under OpenAI's 60 minutes.
DEFAULT_MAX_CALL_SECONDS = 600
MIN_CALL_SECONDS = 5
MAX_CALL_SECONDS = 3600  # OpenAI ends a session at 60 minutes
# The ways the service opens a session itself, and so supervises, meters and ends it.
SUPERVISED_WAYS: frozenset[Way] = frozenset({"call", "live_session"})
# Where a session names the models it is billed for: its own, and the one that transcribes its input.
SESSION_MODEL = "model"
TRANSCRIPTION_MODEL = "audio.input.transcription.model"
MODEL_NAME = re.compile(r"[!-~]{1,128}")
MAX_PRICE = 10_000  # USD per 1M tokens, or per minute: anything above is a typo
TOKEN_PRICES = (
    "text_input",
    "text_cached_input",
    "text_output",
    "audio_input",
    "audio_cached_input",
    "audio_output",
    "image_input",
    "image_cached_input",
)
# A transcription model billed by tokens: the audio it hears, a prompt's text, and the transcript.
TRANSCRIPTION_TOKEN_PRICES = ("text_input", "audio_input", "text_output")


class FieldRule(Record):
    """What a caller may send at one path."""

    __pydantic_config__ = PYDANTIC_CONFIG

    type: Literal["string", "integer", "number", "boolean", "array", "null"]
    enum: list[Scalar] | None = None
    minimum: int | float | None = None  # an int stays one, as when the file is read without pydantic
    maximum: int | float | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    nullable: bool = False
    also: list[Scalar] = Factory(list)  # type: ignore[assignment]  # literal values accepted besides the type
    default: Scalar | None = None  # what the session gets when the caller sends nothing there

    def __post_init__(self) -> None:
        numeric = self.type in ("integer", "number")
        if self.enum is not None and not self.enum:
            raise ValueError("enum must list at least one value")
        if (self.minimum is not None or self.maximum is not None) and not numeric:
            raise ValueError("minimum/maximum apply to integer and number fields only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is greater than maximum")
        if self.max_length is not None and self.type != "string":
            raise ValueError("max_length applies to string fields only")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError("max_length must be at least 1")
        if (self.min_items is not None or self.max_items is not None) and self.type != "array":
            raise ValueError("min_items/max_items apply to array fields only")
        if self.min_items is not None and self.min_items < 0:
            raise ValueError("min_items must be at least 0")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError("max_items must be at least 1")
        if self.min_items is not None and self.max_items is not None and self.min_items > self.max_items:
            raise ValueError("min_items is greater than max_items")
        if self.enum is not None:
            item_type = "string" if self.type == "array" else self.type
            bad = [v for v in self.enum if _type_problem(item_type, v)]
            if bad:
                raise ValueError(f"enum values {bad!r} are not of type {item_type}")
        if self.default is not None and (wrong := self.problem(self.default)):
            raise ValueError(f"default {_show(self.default)} breaks its own rule: {wrong[1]}")

    def problem(self, value: Any) -> tuple[str, str] | None:
        """(code, what is wrong) if the value breaks the rule, else None."""
        if value is None:
            return None if self.nullable or self.type == "null" else ("invalid_type", _expected(self.type))
        if self.also and any(value == also and type(value) is type(also) for also in self.also):
            return None
        if wrong := _type_problem(self.type, value):
            return "invalid_type", wrong + "".join(f" or {_show(also)}" for also in self.also)
        if self.type == "array":
            return self._array_problem(value)
        if self.enum is not None and value not in self.enum:
            return "invalid_value", "must be one of " + ", ".join(map(_show, self.enum))
        if self.minimum is not None and value < self.minimum:
            return "invalid_value", f"must be at least {_show(self.minimum)}"
        if self.maximum is not None and value > self.maximum:
            return "invalid_value", f"must be at most {_show(self.maximum)}"
        if self.max_length is not None and len(value) > self.max_length:
            return "invalid_value", f"must be at most {self.max_length} characters"
        return None

    def _array_problem(self, items: list[Any]) -> tuple[str, str] | None:
        if self.min_items is not None and len(items) < self.min_items:
            return "invalid_value", f"must have at least {self.min_items} item(s)"
        if self.max_items is not None and len(items) > self.max_items:
            return "invalid_value", f"must have at most {self.max_items} item(s)"
        if any(not isinstance(item, str) for item in items):
            return "invalid_type", "expected an array of strings"
        if self.enum is not None and any(item not in self.enum for item in items):
            return "invalid_value", "items must be among " + ", ".join(map(_show, self.enum))
        return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_IS_TYPE: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    # an int is always finite (and math.isfinite overflows on a 400-digit one)
    "number": lambda value: _is_integer(value) or (isinstance(value, float) and math.isfinite(value)),
    "boolean": lambda value: isinstance(value, bool),
    "array": lambda value: isinstance(value, list),
    "null": lambda value: value is None,
}


def _type_problem(type_: str, value: Any) -> str | None:
    return None if _IS_TYPE[type_](value) else _expected(type_)


def _expected(type_: str) -> str:
    return f"expected {'an ' if type_ in ('integer', 'array') else 'a '}{type_}"


def _show(value: Scalar) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


class ExpiryBounds(Record):
    """The client secret's lifetime in seconds: what the caller gets by default, and may ask for."""

    __pydantic_config__ = PYDANTIC_CONFIG

    default_seconds: int
    max_seconds: int
    min_seconds: int = MIN_TTL_SECONDS

    def __post_init__(self) -> None:
        for name in ("default_seconds", "min_seconds", "max_seconds"):
            if not MIN_TTL_SECONDS <= getattr(self, name) <= MAX_TTL_SECONDS:
                raise ValueError(f"{name} must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")
        if not self.min_seconds <= self.default_seconds <= self.max_seconds:
            raise ValueError("need min_seconds <= default_seconds <= max_seconds")


class Price(Record):
    """What a model costs, in USD: per 1M tokens of each kind (text, audio and image tokens in, the same read from
    OpenAI's cache, text and audio tokens out), and ``per_minute`` of billed session time (GPT-Live; a transcription
    model billed by the duration it hears). A kind left out is not priced: a usage with it cannot be metered."""

    __pydantic_config__ = PYDANTIC_CONFIG

    text_input: int | float | None = None  # an int stays one, as when the file is read without pydantic
    text_cached_input: int | float | None = None
    text_output: int | float | None = None
    audio_input: int | float | None = None
    audio_cached_input: int | float | None = None
    audio_output: int | float | None = None
    image_input: int | float | None = None
    image_cached_input: int | float | None = None
    per_minute: int | float | None = None

    def __post_init__(self) -> None:
        given = 0
        for name in (*TOKEN_PRICES, "per_minute"):
            value = getattr(self, name)
            if value is None:
                continue
            given += 1
            if not _IS_TYPE["number"](value) or not 0 <= value <= MAX_PRICE:
                per = "minute" if name == "per_minute" else "1M tokens"
                raise ValueError(f"{name} must be a number of dollars per {per} from 0 to {MAX_PRICE}")
        if not given:
            raise ValueError(
                "a price must give at least one rate: USD per 1M tokens (text_input, text_output, audio_input, ...) "
                "or per_minute"
            )

    def lacks(self, names: tuple[str, ...]) -> list[str]:
        """Which of ``names`` the price leaves out."""
        return [name for name in names if getattr(self, name) is None]


class Requirements(Record):
    """What a caller needs to use a profile: every key given must be met, each by any one of its names
    (a group the caller is in, a scope its token carries, the issuer that vouched for it)."""

    __pydantic_config__ = PYDANTIC_CONFIG

    groups: list[str] | None = None
    scopes: list[str] | None = None
    issuers: list[str] | None = None

    def __post_init__(self) -> None:
        given = self._given()
        if not given:
            raise ValueError(
                "requires must name groups, scopes or issuers; to open the profile to every caller, leave requires out"
            )
        for key, names in given:
            if not names:
                raise ValueError(f"{key} must list at least one name; to require no {key}, leave the key out")
            for name in names:
                if not REQUIRED_NAME[key].fullmatch(name):
                    spaces = "" if key == "issuers" else ", without spaces"
                    raise ValueError(
                        f"{key} name {json.dumps(clip(name))} must be 1 to 256 printable ASCII characters{spaces}"
                    )

    def _given(self) -> list[tuple[str, list[str]]]:
        return [(key, names) for key in REQUIRED_NAME if (names := getattr(self, key)) is not None]

    def unmet(self, caller: Caller) -> list[str]:
        """The keys the caller does not meet, in the order they are declared."""
        held = {"groups": caller.groups, "scopes": caller.scopes, "issuers": frozenset((caller.issuer,))}
        return [key for key, names in self._given() if held[key].isdisjoint(names)]

    def describe(self) -> str:
        """What the profile requires, e.g. "one of the groups 'a', 'b' and the scope 'c'": the operator's
        names, never the caller's."""
        return " and ".join(
            f"the {key[:-1]} {_names(names)}" if len(names) == 1 else f"one of the {key} {_names(names)}"
            for key, names in self._given()
        )

    def lacking(self, unmet: list[str]) -> str:
        """What a caller's sign-in lacks, by key only, e.g. "is not in that group": its own claims (huge, or
        holding control characters) are not echoed back."""
        return " and ".join(_LACKS[key][len(getattr(self, key)) > 1] for key in unmet)


# What a sign-in lacks, for one required name and for several.
_LACKS = {
    "groups": ("is not in that group", "is in none of those groups"),
    "scopes": ("does not have that scope", "has none of those scopes"),
    "issuers": ("comes from another issuer", "comes from another issuer"),
}


def _names(names: list[str], shown: int = 5) -> str:
    listed = ", ".join(f"'{clip(name)}'" for name in names[:shown])
    return listed + (f" (and {len(names) - shown} more)" if len(names) > shown else "")


# The objects every session has, whether or not a request names them: a default may sit directly under these only
# (one deeper would create an optional object, such as input transcription, for every request that leaves it out).
_ALWAYS_THERE = frozenset({"", "audio", "audio.input", "audio.output"})


class Profile(Record):
    __pydantic_config__ = PYDANTIC_CONFIG

    session_type: SessionType
    expires_after: ExpiryBounds | None = None  # for client secrets: required when the profile mints them
    ways: list[Way] | None = None  # None: the session type's first way (a client secret; a Live session for live)
    description: str = ""
    requires: Requirements | None = None  # None: open to every authenticated caller
    limits: Limits | None = None  # None: no per-caller limit
    fixed: dict[str, Any] = Factory(dict)  # type: ignore[assignment]
    settable: dict[str, FieldRule] = Factory(dict)  # type: ignore[assignment]
    # For a call or a GPT-Live session the service opens: the supervisor ends it at this length (`call_seconds`).
    max_call_seconds: int | None = None
    # What the supervisor does when a call's session.updated shows a session outside the profile: send a
    # session.update that puts back what the profile governs, or end the call.
    on_session_change: Literal["restore", "end"] = "restore"

    def __post_init__(self) -> None:
        self._check_ways()
        self._check_calls()
        known = SESSION_FIELDS[self.session_type]
        for kind, paths in (("fixed", self.fixed), ("settable", self.settable)):
            unknown = sorted(p for p in paths if p not in known or p == "type")
            if unknown:
                raise ValueError(f"{kind} names fields a {self.session_type} session does not have: {unknown}")
            if "safety_identifier" in paths:
                raise ValueError(f"{kind} names 'safety_identifier': the service sets it, from the caller")
        if self.session_type == "live":
            for whole in ("client", "client.data_channel"):
                if whole not in self.fixed:
                    continue
                channel = self.fixed[whole]
                if whole == "client":
                    channel = channel.get("data_channel") if isinstance(channel, dict) else None
                if not (isinstance(channel, dict) and "allowed_client_events" in channel):
                    raise ValueError(
                        f"fixed '{whole}' leaves out 'allowed_client_events', so OpenAI would let a browser send every "
                        f"event: name the list there (left out of fixed altogether, it is {DEFAULT_LIVE_CLIENT_EVENTS})"
                    )
            for path in self.settable:
                if (
                    path == LIVE_CLIENT_EVENTS
                    or LIVE_CLIENT_EVENTS.startswith(path + ".")
                    or path.startswith(LIVE_CLIENT_EVENTS + ".")
                ):
                    raise ValueError(
                        f"'{path}' is settable, so a browser could open its own data channel to every event: fix "
                        f"'{LIVE_CLIENT_EVENTS}' instead (left out, it is {DEFAULT_LIVE_CLIENT_EVENTS})"
                    )
        for path in self.settable:
            if clash := self.fixed_clash(path):
                raise ValueError(
                    f"'{path}' is both settable and fixed (by '{clash}'): to let callers choose it, remove '{clash}' "
                    "from fixed"
                )
        for path, rule in self.settable.items():
            parent = path.rpartition(".")[0]
            if rule.default is not None and parent not in _ALWAYS_THERE:
                raise ValueError(
                    f"'{path}' has a default, which would put '{parent}' into every session that leaves it out "
                    f"(switching it on, or sending it without the keys OpenAI requires): a default may sit only at "
                    f"the top of the session or directly under {', '.join(sorted(p for p in _ALWAYS_THERE if p))}"
                )
        for key in (key for parent, key in REQUIRED_KEYS[self.session_type].items() if not parent):
            if key not in self.fixed and key not in self.settable:
                raise ValueError(
                    f"OpenAI requires '{key}' in a {self.session_type} session: fix it or make it settable"
                )

    def _check_ways(self) -> None:
        possible = _WAYS_OF[self.session_type]
        if self.ways is not None:
            if not self.ways:
                raise ValueError("ways must name at least one way; to keep the default, leave ways out")
            if len(set(self.ways)) < len(self.ways):
                raise ValueError(f"ways names a way twice: {self.ways}")
            if wrong := [way for way in self.ways if way not in possible]:
                raise ValueError(
                    f"a {self.session_type} session cannot be opened as {wrong}: its ways are {list(possible)}"
                )
        if "client_secret" in self.opened_by and self.expires_after is None:
            raise ValueError("expires_after is required: the profile mints client secrets, and they need a lifetime")
        if "client_secret" not in self.opened_by and self.expires_after is not None:
            raise ValueError(
                "expires_after bounds a client secret's lifetime, and this profile mints none: leave it out"
            )

    def _check_calls(self) -> None:
        if self.on_session_change not in ("restore", "end"):
            raise ValueError("on_session_change must be 'restore' or 'end'")
        supervised = self.supervised
        if self.max_call_seconds is not None:
            if type(self.max_call_seconds) is not int or not (
                MIN_CALL_SECONDS <= self.max_call_seconds <= MAX_CALL_SECONDS
            ):
                raise ValueError(
                    f"max_call_seconds must be a whole number from {MIN_CALL_SECONDS} to {MAX_CALL_SECONDS} (OpenAI "
                    f"ends a session at 60 minutes); left out, a call lasts at most {DEFAULT_MAX_CALL_SECONDS}"
                )
            if not supervised:
                raise ValueError(
                    "max_call_seconds bounds a call or GPT-Live session the service opens, and this profile only "
                    "mints client secrets (whose sessions the service never sees): leave it out, or add 'call' to ways"
                )
        limits = self.limits
        if limits is not None and not supervised and (limits.budgets or limits.concurrent_calls is not None):
            raise ValueError(
                "budgets and concurrent_calls count the calls and GPT-Live sessions the service opens, and this "
                "profile only mints client secrets: leave them out, or add 'call' to ways"
            )

    @property
    def opened_by(self) -> tuple[Way, ...]:
        """The ways a session may be opened with this profile."""
        return tuple(self.ways) if self.ways is not None else _WAYS_OF[self.session_type][:1]

    @property
    def supervised(self) -> bool:
        """Whether the service opens sessions with this profile itself (and so supervises, meters and ends them)."""
        return not SUPERVISED_WAYS.isdisjoint(self.opened_by)

    @property
    def call_seconds(self) -> int:
        """How long a call opened with this profile may last."""
        return self.max_call_seconds or DEFAULT_MAX_CALL_SECONDS

    def billed_models(self) -> list[tuple[str, str]]:
        """(path, model) for each model a session of this profile may be billed for: its own model and its input
        transcription's, as fixed, or each a caller may choose. ValueError when a caller may choose any model
        there, or the session's model is left to OpenAI (no price could be known for it)."""
        fixed = self.fixed_session()
        found: list[tuple[str, str]] = []
        paths = (SESSION_MODEL, TRANSCRIPTION_MODEL) if self.session_type == "realtime" else (SESSION_MODEL,)
        for path in paths:
            rule = self.settable.get(path)
            if self.fixed_clash(path) is not None:
                value = get(fixed, path, MISSING)
                found += [(path, value)] if isinstance(value, str) else []
            elif rule is not None:
                if rule.enum is None:
                    raise ValueError(
                        f"'{path}' is settable without an enum, so a caller could open a model that has no price: "
                        "list the models a caller may choose (enum), each priced in prices"
                    )
                chosen = [*rule.enum, *rule.also, *([rule.default] if rule.default is not None else [])]
                found += [(path, model) for model in dict.fromkeys(chosen) if isinstance(model, str)]
            elif path == SESSION_MODEL:
                raise ValueError(
                    f"'{path}' is neither fixed nor settable, so OpenAI picks the model and its price is unknown: fix "
                    "it, or make it settable with an enum"
                )
        return found

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "Profile":
        rules = document.get("settable", {})
        requires, limits = document.get("requires"), document.get("limits")
        expires_after = document.get("expires_after")
        return cls(
            **{
                **document,
                "expires_after": None if expires_after is None else ExpiryBounds(**expires_after),
                "requires": None if requires is None else Requirements(**requires),
                "limits": None if limits is None else _limits(limits),
                "settable": {path: FieldRule(**rule) for path, rule in rules.items()},
            }
        )

    def allows(self, caller: Caller) -> bool:
        return self.requires is None or not self.requires.unmet(caller)

    @functools.cached_property
    def all_fixed(self) -> dict[str, Any]:
        """What the profile fixes, with what it fixes by default: a Live session's client events, unless given."""
        if self.session_type != "live" or any(
            path == LIVE_CLIENT_EVENTS or LIVE_CLIENT_EVENTS.startswith(path + ".") for path in self.fixed
        ):
            return self.fixed
        return {**self.fixed, LIVE_CLIENT_EVENTS: DEFAULT_LIVE_CLIENT_EVENTS}

    @functools.cached_property
    def _fixed_session(self) -> str:
        session: dict[str, Any] = {"type": self.session_type} if self.session_type in TYPED_SESSIONS else {}
        for path, value in self.all_fixed.items():
            put(session, path, value)
        return json.dumps(session)

    def fixed_session(self) -> dict[str, Any]:
        """A new session holding what the profile fixes, for a request's own fields to join. Parsed from
        JSON text each time: a copy that shares nothing with the profile, in a few microseconds."""
        result: dict[str, Any] = json.loads(self._fixed_session)
        return result

    @functools.cached_property
    def defaults(self) -> tuple[tuple[str, Scalar], ...]:
        """(path, value) of each settable field with a default, for a request that leaves it out."""
        return tuple((path, rule.default) for path, rule in self.settable.items() if rule.default is not None)

    def sets(self, path: str, session: dict[str, Any]) -> bool:
        """Whether the policy put what ``session`` (a body it built) holds at ``path``: a field it fixes, or its
        default (which a caller may also have sent itself: a value the operator chose to offer first)."""
        if self.fixed_clash(path) is not None:
            return True
        return any(
            (path == default_path or path.startswith(default_path + "."))
            and same_json(get(session, default_path, MISSING), default)
            for default_path, default in self.defaults
        )

    def set_by_policy(self, param: str | None, session: dict[str, Any]) -> bool:
        """Whether OpenAI's ``param`` (``session.tools[0].name``) falls on a field of ``session`` (a body the policy
        built) that the policy fixes or filled in: a refusal there is the operator's to fix, not the caller's."""
        if not param or not param.startswith("session."):
            return False
        return self.sets(re.sub(r"\[\d+\]", "", param.removeprefix("session.")), session)

    def fixed_clash(self, path: str) -> str | None:
        """The fixed path that ``path`` is, lies under, or holds; None if it touches none."""
        if clash := self._fixed_at_or_under.get(path):
            return clash
        parent = path
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if parent in self.all_fixed:
                return parent
        return None

    @functools.cached_property
    def _fixed_at_or_under(self) -> dict[str, str]:
        """Each fixed path, and each object above one, with the fixed path found there."""
        found: dict[str, str] = {}
        for fixed in self.all_fixed:
            parts = fixed.split(".")
            for end in range(len(parts), 0, -1):
                found.setdefault(".".join(parts[:end]), fixed)
        return found


class Policy(Record):
    __pydantic_config__ = PYDANTIC_CONFIG

    version: int  # 1; checked below, as pydantic's Literal[1] would take true and 1.0 for it
    # A profile name, or candidates in order: a caller gets the first one it may use.
    default_profiles: dict[SessionType, str | list[str]]
    profiles: dict[str, Profile]
    # At most this many client secrets over all callers and profiles: a brake on the owner's OpenAI spend.
    spend_brake: Window | None = None
    # What each model costs (by its name as a session names it), for budgets in money and the money brake.
    prices: dict[str, Price] = Factory(dict)  # type: ignore[assignment]
    # At most this many dollars of metered cost over all callers and profiles in each window: a brake on the cost
    # of the calls the service opens, as spend_brake is on mints.
    money_brake: Budget | None = None

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != 1:
            raise ValueError("version must be 1")
        if not self.profiles:
            raise ValueError("profiles must define at least one profile")
        self._check_prices()
        for name in [*self.profiles, *(name for names in self._defaults.values() for name in names)]:
            if not PROFILE_NAME.fullmatch(name):
                raise ValueError(
                    f"profile name '{clip(name)}' must be 1 to 64 of a-z, 0-9, '-' and '_', starting with a "
                    "letter or digit"
                )
        for session_type, names in self._defaults.items():
            self._check_defaults(session_type, names)

    def _check_defaults(self, session_type: SessionType, names: tuple[str, ...]) -> None:
        if not names:
            raise ValueError(f"default profiles for {session_type} sessions must list at least one profile")
        for position, name in enumerate(names):
            profile = self.profiles.get(name)
            if profile is None:
                raise ValueError(f"default profile '{name}' for {session_type} sessions is not defined")
            if profile.session_type != session_type:
                raise ValueError(f"default profile '{name}' is for {profile.session_type} sessions")
            if name in names[:position]:
                raise ValueError(f"default profiles for {session_type} sessions name '{name}' twice")
            later = [self.profiles[after] for after in names[position + 1 :] if after in self.profiles]
            if profile.requires is None and any(set(other.opened_by) & set(profile.opened_by) for other in later):
                raise ValueError(
                    f"default profile '{name}' for {session_type} sessions requires nothing, so every caller gets "
                    "it and the profiles after it are never chosen: put the profiles that require claims first"
                )

    def _check_prices(self) -> None:
        for model in self.prices:
            if not MODEL_NAME.fullmatch(model):
                raise ValueError(
                    f"prices names the model '{clip(model)}': a model's name is 1 to 128 printable ASCII characters "
                    "without spaces, as a session names it"
                )
        if self.money_brake is not None and self.money_brake.unit is not USD:
            raise ValueError("money_brake counts dollars: give usd (and seconds), not call_seconds")
        for name, profile in self.profiles.items():
            usd = profile.limits is not None and any(budget.unit is USD for budget in profile.limits.budgets)
            if not (usd or (self.money_brake is not None and profile.supervised)):
                continue
            why = "its budget in dollars" if usd else "the money brake"
            try:
                billed = profile.billed_models()
            except ValueError as exc:
                raise ValueError(f"profile '{name}': {exc} ({why} meters what each call costs)") from None
            for path, model in billed:
                self._check_price(name, path, model, profile.session_type, why)

    def _check_price(self, profile_name: str, path: str, model: str, session_type: SessionType, why: str) -> None:
        price = self.prices.get(model)
        needs: tuple[str, ...]
        if session_type == "live":
            needs, how = ("per_minute",), "a GPT-Live model is billed per minute of session: give per_minute"
        elif path == TRANSCRIPTION_MODEL:
            by_duration = price is not None and price.per_minute is not None
            needs = () if by_duration else TRANSCRIPTION_TOKEN_PRICES
            how = (
                "a transcription model is billed per minute of audio (give per_minute) or by tokens (give "
                f"{', '.join(TRANSCRIPTION_TOKEN_PRICES)})"
            )
        else:
            needs = TOKEN_PRICES
            how = (
                f"a realtime model may be billed for text, audio and image tokens: give {', '.join(TOKEN_PRICES)} "
                "(0 for a kind the model does not take)"
            )
        lacking = list(needs) if price is None else price.lacks(needs)
        if price is None or lacking:
            given = "" if price is None else f" (it lacks {', '.join(lacking)})"
            raise ValueError(
                f"price model '{clip(model)}' in prices{given}: profile '{profile_name}' may open it at '{path}', "
                f"and {why} meters what each call costs; {how}"
            )

    @functools.cached_property
    def _defaults(self) -> dict[SessionType, tuple[str, ...]]:
        return {
            session_type: (names,) if isinstance(names, str) else tuple(names)
            for session_type, names in self.default_profiles.items()
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "Policy":
        """A policy from a document whose types were checked when it was validated: the checks across
        fields (``__post_init__``) run again, the type checks do not."""
        brake, money_brake = document.get("spend_brake"), document.get("money_brake")
        return cls(
            version=document["version"],
            default_profiles=document["default_profiles"],
            profiles={name: Profile.from_document(profile) for name, profile in document["profiles"].items()},
            spend_brake=None if brake is None else Window(**brake),
            prices={model: Price(**price) for model, price in document.get("prices", {}).items()},
            money_brake=None if money_brake is None else Budget(**money_brake),
        )

    def select(
        self, name: str | None, session_type: SessionType, caller: Caller, *, param: str, way: Way = "client_secret"
    ) -> tuple[str, Profile]:
        """The profile a request named, or the first default for its session type that the caller may use and that
        opens sessions its ``way``.

        A profile the caller may not use is refused before its session type is compared, so a caller
        learns nothing more of it than that it is closed to them.
        """
        if name is None:
            return self._default(session_type, caller, way)
        profile = self.profiles.get(name)
        if profile is None:
            open_to_caller = [known for known, profile in self.profiles.items() if profile.allows(caller)]
            known = (
                f"Profiles you may use: {', '.join(sorted(open_to_caller))}."
                if open_to_caller
                else (
                    "This service's policy has no profile this caller may use; ask the service's operator for access."
                )
            )
            raise InvalidRequest(
                f"Unknown profile '{clip(name)}'. {known}", code="unknown_profile", param=PROFILE_HEADER
            )
        if profile.requires is not None and (unmet := profile.requires.unmet(caller)):
            raise PermissionDenied(
                f"Profile '{name}' of this service's policy requires {profile.requires.describe()}; this caller's "
                f"sign-in {profile.requires.lacking(unmet)}. Ask the service's operator for access, or name another "
                f"profile with the {PROFILE_HEADER} header.",
                code="permission_denied",
                param=PROFILE_HEADER,
            )
        if profile.session_type != session_type:
            opened_at = " (open it with POST /v1/live/sessions)" if profile.session_type == "live" else ""
            raise InvalidRequest(
                f"Profile '{name}' is for {profile.session_type} sessions{opened_at}, not {session_type}.",
                code="invalid_value",
                param=param,
            )
        if way not in profile.opened_by:
            raise PermissionDenied(
                f"Profile '{name}' of this service's policy is for {_listed(profile.opened_by)}, not "
                f"{WAYS[way][0]}. Open the session that way, or name another profile with the {PROFILE_HEADER} "
                "header.",
                code=f"profile_not_for_{WAYS[way][1]}",
                param=PROFILE_HEADER,
            )
        return name, profile

    def _default(self, session_type: SessionType, caller: Caller, way: Way) -> tuple[str, Profile]:
        names = tuple(name for name in self._defaults.get(session_type, ()) if way in self.profiles[name].opened_by)
        if not names:
            some = "" if session_type not in self._defaults else f" for {WAYS[way][0]}"
            raise InvalidRequest(
                f"This service has no default profile for {session_type} sessions{some}; name one with the "
                f"{PROFILE_HEADER} header.",
                code="unknown_profile",
                param=PROFILE_HEADER,
            )
        for name in names:
            if (profile := self.profiles[name]).allows(caller):
                return name, profile
        closed = "; ".join(
            f"'{name}' requires {requires.describe()}"
            for name in names
            if (requires := self.profiles[name].requires) is not None
        )
        raise PermissionDenied(
            f"No default profile of this service's policy for {session_type} sessions is open to this caller "
            f"({closed}). Ask the service's operator for access, or name another profile with the "
            f"{PROFILE_HEADER} header.",
            code="permission_denied",
            param=PROFILE_HEADER,
        )


def _listed(ways: tuple[Way, ...]) -> str:
    words = [WAYS[way][0] for way in ways]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _limits(document: dict[str, Any]) -> Limits:
    return Limits(
        **{
            **document,
            "per_caller": [Window(**window) for window in document.get("per_caller", [])],
            "budgets": [Budget(**budget) for budget in document.get("budgets", [])],
        }
    )


def clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def same_json(a: Any, b: Any) -> bool:
    """Whether two parsed JSON values are the same value: true is not 1, but 24000 is 24000.0."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, int | float) and not isinstance(a, bool):
        return isinstance(b, int | float) and not isinstance(b, bool) and a == b
    return type(a) is type(b) and a == b
