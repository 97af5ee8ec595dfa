"""The allowlist policy: which session settings a caller may ask for, and what the server fixes.

A policy file holds named profiles. Each profile fixes some session fields (the caller cannot send
them), lists the fields a caller may set with their bounds, and bounds the client secret's TTL.
Every other field is refused: a known GA field as not allowed, anything else as unknown.
Paths are dotted GA session paths, e.g. ``audio.output.voice``.

The policy is plain frozen records. pydantic checks a file against them as dataclasses (types, strictly,
and no unknown keys; each class's ``__post_init__`` checks the rest), but its import is about half of a
cold start, so that happens when the function is built: ``python -m voice_access.domain.policy FILE`` validates
the file and writes a record beside it. At run time a file whose record matches is read without
pydantic; any other file is validated then, exactly as strictly.
"""

import functools
import hashlib
import itertools
import json
import math
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from voice_access.domain import session_fields
from voice_access.domain.errors import InvalidRequest, PermissionDenied
from voice_access.domain.session_fields import (
    MISSING,
    REQUIRED_KEYS,
    SESSION_FIELDS,
    SESSION_OBJECTS,
    TYPED_SESSIONS,
    SessionType,
    get,
    put,
)

if TYPE_CHECKING:  # caller imports observability, hence Powertools, which the build's policy check has not
    from voice_access.domain.caller import Caller

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

# How pydantic checks a policy file against these classes: JSON types as they are (no "5" for 5), and
# no key the classes do not name.
_PYDANTIC_CONFIG = {"extra": "forbid", "strict": True, "allow_inf_nan": False}

# How a request names its profile (any case, as HTTP headers go).
PROFILE_HEADER = "X-Profile"
# Said in a refusal that OpenAI's API, not this service's policy, makes.
OPENAI_RULE = "a rule of OpenAI's API"

# Names a GA request path ("session.audio.output.voice") the way the caller spelled it.
ParamNamer = Callable[[str], str]


def ga_param(path: str) -> str:
    return path


class _Factory:
    """A field's default made anew for each record, as a dataclass's ``field(default_factory=...)``."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


_REQUIRED = object()


class _Record:
    """A frozen record: built from its annotated fields (positionally or by name, defaults filled in), then
    ``__post_init__``; compared, hashed and shown by its fields. What ``@dataclass(frozen=True)`` makes, without
    generating code for it: that costs about 0.8 ms a class, 6 ms of every cold start for the policy's seven
    (make bench). pydantic reads dataclasses, so where a policy is validated, `_as_dataclasses` makes them so."""

    _record_fields: tuple[tuple[str, Any], ...] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._record_fields = tuple((name, cls.__dict__.get(name, _REQUIRED)) for name in cls.__annotations__)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._record_fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} arguments")
        values = dict(zip((name for name, _ in fields), args, strict=False))
        for name, value in kwargs.items():
            if name in values or name not in dict(fields):
                raise TypeError(f"{type(self).__name__} got an unexpected or repeated argument '{name}'")
            values[name] = value
        for name, default in fields:
            if name in values:
                value = values[name]
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__} is missing the argument '{name}'")
            else:
                value = default.make() if isinstance(default, _Factory) else default
            object.__setattr__(self, name, value)
        if post_init := getattr(self, "__post_init__", None):
            post_init()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name, _ in self._record_fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field '{name}': a policy is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': a policy is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Record) and type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self.__annotations__, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


class PolicyError(Exception):
    """The policy file cannot be used: the service refuses to mint until it is fixed."""


class FieldRule(_Record):
    """What a caller may send at one path."""

    __pydantic_config__ = _PYDANTIC_CONFIG

    type: Literal["string", "integer", "number", "boolean", "array", "null"]
    enum: list[Scalar] | None = None
    minimum: int | float | None = None  # an int stays one, as when the file is read without pydantic
    maximum: int | float | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    nullable: bool = False
    also: list[Scalar] = _Factory(list)  # type: ignore[assignment]  # literal values accepted besides the type
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


class ExpiryBounds(_Record):
    """The client secret's lifetime in seconds: what the caller gets by default, and may ask for."""

    __pydantic_config__ = _PYDANTIC_CONFIG

    default_seconds: int
    max_seconds: int
    min_seconds: int = MIN_TTL_SECONDS

    def __post_init__(self) -> None:
        for name in ("default_seconds", "min_seconds", "max_seconds"):
            if not MIN_TTL_SECONDS <= getattr(self, name) <= MAX_TTL_SECONDS:
                raise ValueError(f"{name} must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")
        if not self.min_seconds <= self.default_seconds <= self.max_seconds:
            raise ValueError("need min_seconds <= default_seconds <= max_seconds")


class Requirements(_Record):
    """What a caller needs to use a profile: every key given must be met, each by any one of its names
    (a group the caller is in, a scope its token carries, the issuer that vouched for it)."""

    __pydantic_config__ = _PYDANTIC_CONFIG

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
                        f"{key} name {json.dumps(_clip(name))} must be 1 to 256 printable ASCII characters{spaces}"
                    )

    def _given(self) -> list[tuple[str, list[str]]]:
        return [(key, names) for key in REQUIRED_NAME if (names := getattr(self, key)) is not None]

    def unmet(self, caller: "Caller") -> list[str]:
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


DAY_SECONDS = 86400
# A caller's item stays under about 40 KB (DynamoDB's item limit is 400 KB; a write costs a unit per KB).
MAX_CALLER_COUNTERS = 2000
# The longest window a limit may count over: a month, the longest budget period operators think in.
MAX_WINDOW_SECONDS = 31 * DAY_SECONDS


class Window(_Record):
    """At most ``mints`` client secrets in each ``seconds``-long window, fixed and aligned to the Unix epoch (a
    minute's window starts on the minute, a day's at 00:00 UTC)."""

    __pydantic_config__ = _PYDANTIC_CONFIG

    mints: int
    seconds: int

    def __post_init__(self) -> None:
        # pydantic checks types when the file is validated; a file read through its record is checked here too
        if type(self.mints) is not int or type(self.seconds) is not int:
            raise ValueError("mints and seconds must be whole numbers")
        if not 1 <= self.mints <= 10**9:
            raise ValueError("mints must be a whole number from 1 to 1000000000")
        if not 1 <= self.seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"seconds must be a whole number from 1 to {MAX_WINDOW_SECONDS} (31 days)")

    def describe(self) -> str:
        """E.g. "10 client secrets per minute", "200 client secrets per 2 hours"."""
        for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if self.seconds % length == 0:
                count = self.seconds // length
                per = unit if count == 1 else f"{count} {unit}s"
                break
        return f"{self.mints} client secret{'s' if self.mints != 1 else ''} per {per}"


class Limits(_Record):
    """How many client secrets one caller may mint with a profile, and what to do when the counters cannot be
    reached: "refuse" (fail closed, the default) or "allow" (mint unchecked; each such mint is logged and counted)."""

    __pydantic_config__ = _PYDANTIC_CONFIG

    per_caller: list[Window]
    on_store_failure: Literal["refuse", "allow"] = "refuse"

    def __post_init__(self) -> None:
        if not self.per_caller:
            raise ValueError("per_caller must list at least one window; for no limit, leave limits out")
        if self.on_store_failure not in ("refuse", "allow"):
            raise ValueError("on_store_failure must be 'refuse' or 'allow'")
        lengths = sorted(window.seconds for window in self.per_caller)
        if len(set(lengths)) != len(lengths):
            raise ValueError("per_caller names a window length twice: give each length one limit")
        # A caller's counters live in one item per turn of its longest window: a shorter window that straddled
        # that turn would count in two items, and allow its limit twice.
        longest = max(self.per_caller, key=lambda window: window.seconds)
        # A window's counter is an attribute of that item, and one stays for each shorter window a caller minted
        # in and skipped the next: at most the longest window's mints, or its count of shorter windows.
        counters = sum(
            min(longest.mints, longest.seconds // window.seconds) for window in self.per_caller if window is not longest
        )
        if counters > MAX_CALLER_COUNTERS:
            raise ValueError(
                f"per_caller windows could keep up to {counters} counters in one caller's item (per shorter window, "
                f"the longest window's mints or its count of shorter windows, whichever is fewer): at most "
                f"{MAX_CALLER_COUNTERS}; give the longest window fewer mints, or the shorter ones more seconds"
            )
        if any(longer % shorter for shorter, longer in itertools.pairwise(lengths)):
            raise ValueError(
                "per_caller windows must nest: each shorter length must divide every longer one (e.g. 60, 3600, "
                "86400 seconds)"
            )


def _names(names: list[str], shown: int = 5) -> str:
    listed = ", ".join(f"'{_clip(name)}'" for name in names[:shown])
    return listed + (f" (and {len(names) - shown} more)" if len(names) > shown else "")


# The objects every session has, whether or not a request names them: a default may sit directly under these only
# (one deeper would create an optional object, such as input transcription, for every request that leaves it out).
_ALWAYS_THERE = frozenset({"", "audio", "audio.input", "audio.output"})


class Profile(_Record):
    __pydantic_config__ = _PYDANTIC_CONFIG

    session_type: SessionType
    expires_after: ExpiryBounds
    description: str = ""
    requires: Requirements | None = None  # None: open to every authenticated caller
    limits: Limits | None = None  # None: no per-caller limit
    fixed: dict[str, Any] = _Factory(dict)  # type: ignore[assignment]
    settable: dict[str, FieldRule] = _Factory(dict)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        known = SESSION_FIELDS[self.session_type]
        for kind, paths in (("fixed", self.fixed), ("settable", self.settable)):
            unknown = sorted(p for p in paths if p not in known or p == "type")
            if unknown:
                raise ValueError(f"{kind} names fields a {self.session_type} session does not have: {unknown}")
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

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "Profile":
        rules = document.get("settable", {})
        requires, limits = document.get("requires"), document.get("limits")
        return cls(
            **{
                **document,
                "expires_after": ExpiryBounds(**document["expires_after"]),
                "requires": None if requires is None else Requirements(**requires),
                "limits": None if limits is None else _limits(limits),
                "settable": {path: FieldRule(**rule) for path, rule in rules.items()},
            }
        )

    def allows(self, caller: "Caller") -> bool:
        return self.requires is None or not self.requires.unmet(caller)

    @functools.cached_property
    def _fixed_session(self) -> str:
        session: dict[str, Any] = {"type": self.session_type} if self.session_type in TYPED_SESSIONS else {}
        for path, value in self.fixed.items():
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

    def fixed_clash(self, path: str) -> str | None:
        """The fixed path that ``path`` is, lies under, or holds; None if it touches none."""
        if clash := self._fixed_at_or_under.get(path):
            return clash
        parent = path
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if parent in self.fixed:
                return parent
        return None

    @functools.cached_property
    def _fixed_at_or_under(self) -> dict[str, str]:
        """Each fixed path, and each object above one, with the fixed path found there."""
        found: dict[str, str] = {}
        for fixed in self.fixed:
            parts = fixed.split(".")
            for end in range(len(parts), 0, -1):
                found.setdefault(".".join(parts[:end]), fixed)
        return found


class Policy(_Record):
    __pydantic_config__ = _PYDANTIC_CONFIG

    version: int  # 1; checked below, as pydantic's Literal[1] would take true and 1.0 for it
    # A profile name, or candidates in order: a caller gets the first one it may use.
    default_profiles: dict[SessionType, str | list[str]]
    profiles: dict[str, Profile]
    # At most this many client secrets over all callers and profiles: a brake on the owner's OpenAI spend.
    spend_brake: Window | None = None

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != 1:
            raise ValueError("version must be 1")
        if not self.profiles:
            raise ValueError("profiles must define at least one profile")
        for name in [*self.profiles, *(name for names in self._defaults.values() for name in names)]:
            if not PROFILE_NAME.fullmatch(name):
                raise ValueError(
                    f"profile name '{_clip(name)}' must be 1 to 64 of a-z, 0-9, '-' and '_', starting with a "
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
            if profile.requires is None and position < len(names) - 1:
                raise ValueError(
                    f"default profile '{name}' for {session_type} sessions requires nothing, so every caller gets "
                    "it and the profiles after it are never chosen: put the profiles that require claims first"
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
        brake = document.get("spend_brake")
        return cls(
            version=document["version"],
            default_profiles=document["default_profiles"],
            profiles={name: Profile.from_document(profile) for name, profile in document["profiles"].items()},
            spend_brake=None if brake is None else Window(**brake),
        )

    def select(
        self, name: str | None, session_type: SessionType, caller: "Caller", *, param: str
    ) -> tuple[str, Profile]:
        """The profile a request named, or the first default for its session type that the caller may use.

        A profile the caller may not use is refused before its session type is compared, so a caller
        learns nothing more of it than that it is closed to them.
        """
        if name is None:
            return self._default(session_type, caller)
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
                f"Unknown profile '{_clip(name)}'. {known}", code="unknown_profile", param=PROFILE_HEADER
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
            raise InvalidRequest(
                f"Profile '{name}' is for {profile.session_type} sessions, not {session_type}.",
                code="invalid_value",
                param=param,
            )
        return name, profile

    def _default(self, session_type: SessionType, caller: "Caller") -> tuple[str, Profile]:
        names = self._defaults.get(session_type)
        if names is None:
            raise InvalidRequest(
                f"This service has no default profile for {session_type} sessions; name one with the "
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


def _limits(document: dict[str, Any]) -> Limits:
    return Limits(**{**document, "per_caller": [Window(**window) for window in document["per_caller"]]})


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def load_policy(path: Path) -> Policy:
    """The policy in ``path``: read as it is if its validation record matches, else validated now."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    record = _record(path)
    if record is not None and record == validation_record(raw):
        try:
            return Policy.from_document(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # the record vouches for what it should not: validate, and name the problem
    return validate(path, raw)


def validate(path: Path, raw: bytes) -> Policy:
    """The policy in ``raw`` checked by pydantic, or a PolicyError naming every problem. Without pydantic
    (a deployed function does not carry it) a PolicyError: nothing mints with an unchecked policy."""
    try:
        from pydantic import TypeAdapter, ValidationError  # here only: about 80 ms of import
    except ImportError:
        raise PolicyError(
            f"policy file {path} has no validation record that matches it, and this function cannot validate it "
            "(pydantic is a build-time tool, not deployed): build the function with `sam build`, which validates "
            "and records the bundled policy, or run `python -m voice_access.domain.policy FILE` with pydantic "
            "installed and deploy the record it writes (FILE.validated) beside the file"
        ) from None
    _as_dataclasses()
    try:
        return TypeAdapter(Policy).validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()) and (where := _json_problem(raw)):
            raise PolicyError(f"policy file {path} is not valid JSON: {where}") from None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"policy file {path} is invalid: {problems}") from None


def _json_problem(raw: bytes) -> str | None:
    """Where and what the JSON syntax error in ``raw`` is, as a person finds it in an editor (line and column)."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except ValueError:  # not UTF-8: pydantic's words say so
        return None
    return None


def _as_dataclasses() -> None:
    """The policy's records as the frozen dataclasses pydantic reads (once per process; a record made before
    stays as it is)."""
    import dataclasses  # here only, with pydantic

    for record in (FieldRule, ExpiryBounds, Requirements, Window, Limits, Profile, Policy):
        if "__dataclass_fields__" in record.__dict__:
            continue
        for name, default in record._record_fields:
            if isinstance(default, _Factory):
                setattr(record, name, dataclasses.field(default_factory=default.make))
        dataclasses.dataclass(frozen=True)(record)


def validation_record(raw: bytes) -> str | None:
    """What a validated policy's record holds: a digest of the file and of the code that judged it, so
    a record stands for neither a changed file nor changed rules. None when that code cannot be read."""
    digest = hashlib.sha256(raw)
    try:
        for judge in (__file__, session_fields.__file__):
            digest.update(Path(judge).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".validated")


def _record(path: Path) -> str | None:
    try:
        return record_path(path).read_text().strip()
    except OSError:
        return None


class PolicyChange(NamedTuple):
    """What a changed policy file did to the policy in use: the profiles it added, removed and changed (and the
    other top-level settings it changed), or why it was refused (and the last good policy kept)."""

    path: Path
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    settings_changed: tuple[str, ...] = ()
    refused: str | None = None

    @classmethod
    def between(cls, path: Path, old: Policy | None, new: Policy) -> "PolicyChange":
        before = old.profiles if old is not None else {}
        return cls(
            path,
            added=tuple(sorted(new.profiles.keys() - before.keys())),
            removed=tuple(sorted(before.keys() - new.profiles.keys())),
            changed=tuple(
                sorted(name for name in new.profiles.keys() & before.keys() if before[name] != new.profiles[name])
            ),
            settings_changed=tuple(
                name
                for name in ("default_profiles", "spend_brake")
                if old is not None and getattr(old, name) != getattr(new, name)
            ),
        )


class _Held(NamedTuple):
    version: tuple[int, int, int] | None  # of the file as last read
    policy: Policy | None  # the last good one; None while the file has never been valid
    # Why the file has never been valid: the message, never the exception, whose traceback would grow with every
    # raise and keep each request's frames (its event, bearer token and all) alive.
    refusal: str | None


class _PolicyCache:
    """The policy, read once per container and again when its file changes (a deployed one never does; `make
    run`'s may be edited while it runs). A file that was never valid is read again and refused on every
    request (fail closed; a passing read error does not stick); a change that is not valid is refused once and
    the last good policy keeps serving. Each change is reported to ``on_change``, once."""

    def __init__(self) -> None:
        self._held: dict[Path, _Held] = {}
        self._lock = threading.Lock()  # make run's gateway invokes the function from several threads

    def __call__(self, path: Path, on_change: Callable[[PolicyChange], None] | None = None) -> Policy:
        version = _version(path)
        held = self._held.get(path)
        if held is None or held.version != version or held.policy is None:
            with self._lock:
                held = self._held.get(path)
                if held is None or held.version != version or held.policy is None:
                    held = self._read(path, version, held, on_change)
        if held.policy is None:
            raise PolicyError(held.refusal or f"policy file {path} cannot be used")
        return held.policy

    def _read(
        self,
        path: Path,
        version: tuple[int, int, int] | None,
        held: _Held | None,
        on_change: Callable[[PolicyChange], None] | None,
    ) -> _Held:
        last_good = held.policy if held is not None else None
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            self._held[path] = _Held(version, last_good, str(exc) if last_good is None else None)
            change = PolicyChange(path, refused=str(exc)) if last_good is not None else None
        else:
            self._held[path] = _Held(version, policy, None)
            change = PolicyChange.between(path, last_good, policy) if held is not None else None
        if change is not None and on_change is not None:
            on_change(change)
        return self._held[path]

    def cache_clear(self) -> None:
        with self._lock:
            self._held.clear()


def _version(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # load_policy says why it cannot be read
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


cached_policy = _PolicyCache()


def check_request(request: dict[str, Any], profile_name: str, profile: Profile, name: ParamNamer) -> dict[str, Any]:
    """Check a GA client-secret request against a profile; return the body to send upstream.

    ``request`` is GA-shaped (``{"expires_after": ..., "session": ...}``); ``name`` turns a GA path
    into the caller's own spelling for error messages. Raises InvalidRequest on the first problem.
    """
    for key in request:
        if key not in ("expires_after", "session"):
            raise _unknown(name(key))
    session = request.get("session", {})
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
    return {"expires_after": _expiry(request.get("expires_after"), profile_name, profile, name), "session": built}


def _put_default(session: dict[str, Any], path: str, value: Scalar) -> None:
    """Fill in a settable field's default where the request left it out; an object the request switched off
    (null) above it stays off."""
    *parents, leaf = path.split(".")
    node: Any = session
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    node.setdefault(leaf, value)


def same_json(a: Any, b: Any) -> bool:
    """Whether two parsed JSON values are the same value: true is not 1, but 24000 is 24000.0."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same_json, a, b))
    if isinstance(a, int | float) and not isinstance(a, bool):
        return isinstance(b, int | float) and not isinstance(b, bool) and a == b
    return type(a) is type(b) and a == b


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
        f"Unknown parameter: '{_clip(param)}'. OpenAI's Realtime API has no such field here.",
        code="unknown_parameter",
        param=_clip(param),
    )


def main(paths: list[str]) -> int:
    """``python -m voice_access.domain.policy FILE...``: validate each policy file; write the record beside each
    valid one (sam build does this for the bundled policy), or say what is wrong and exit 1."""
    if not paths:
        print("usage: python -m voice_access.domain.policy POLICY_FILE...", file=sys.stderr)
        return 2
    failed = False
    for name in paths:
        path = Path(name)
        try:
            raw = path.read_bytes()
            validate(path, raw)
        except (OSError, PolicyError) as exc:
            print(f"voice_access.domain.policy: {exc}", file=sys.stderr)
            failed = True
            continue
        if (record := validation_record(raw)) is not None:
            record_path(path).write_text(record + "\n")
            print(f"{path}: valid; its record is {record_path(path)}, to deploy beside it")
        else:
            print(f"{path}: valid (no record written: this code's own files could not be read)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
