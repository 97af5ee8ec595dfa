"""Policy files for tests: the shipped policy, changed; and the policy tests' own small policies, callers and
helpers (tests/unit/test_policy_*.py)."""

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voice_access.config.policy_file import load_policy, validate
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.caller import Caller
from voice_access.domain.policy.model import Policy, Profile

SHIPPED = Path(__file__).resolve().parent.parent / "functions" / "voice_access" / "config" / "policy.json"


def unchanged(policy: dict[str, Any]) -> None:
    """No change."""


def shipped_text(change: Callable[[dict[str, Any]], None] = unchanged, indent: int | None = None) -> str:
    """The shipped policy, ``change``d, as JSON (on one line, or indented by ``indent`` spaces as a person edits it)."""
    policy = json.loads(SHIPPED.read_text())
    change(policy)
    return json.dumps(policy, indent=indent)


def shipped_policy(
    directory: Path, change: Callable[[dict[str, Any]], None] = unchanged, indent: int | None = None
) -> Path:
    """The shipped policy, ``change``d, written into ``directory`` (see shipped_text): its path, for POLICY_PATH."""
    path = directory / "policy.json"
    path.write_text(shipped_text(change, indent))
    return path


def without_quotas(policy: dict[str, Any]) -> None:
    """No per-caller limits and no spend brake: the quota store is never asked."""
    policy.pop("spend_brake", None)
    for profile in policy["profiles"].values():
        profile.pop("limits", None)


# A small policy for the rule mechanics: one realtime and one transcription profile.
SMALL_POLICY: dict[str, Any] = {
    "version": 1,
    "default_profiles": {"realtime": "voice", "transcription": "notes"},
    "profiles": {
        "voice": {
            "session_type": "realtime",
            "expires_after": {"default_seconds": 60, "min_seconds": 30, "max_seconds": 600},
            "fixed": {"model": "gpt-realtime", "audio.output.format": {"type": "audio/pcm", "rate": 24000}},
            "settable": {
                "audio.output.voice": {"type": "string", "enum": ["alloy", "ash"]},
                "audio.output.speed": {"type": "number", "minimum": 0.25, "maximum": 1.5},
                "audio.input.turn_detection": {"type": "null"},
                "audio.input.turn_detection.type": {"type": "string", "enum": ["server_vad", "semantic_vad"]},
                "audio.input.turn_detection.create_response": {"type": "boolean"},
                "audio.input.turn_detection.silence_duration_ms": {"type": "integer", "minimum": 100, "maximum": 3000},
                "audio.input.noise_reduction": {"type": "null"},
                "audio.input.noise_reduction.type": {"type": "string", "enum": ["near_field"], "nullable": True},
                "audio.input.transcription.prompt": {"type": "string", "max_length": 5},
                "output_modalities": {"type": "array", "enum": ["audio", "text"], "min_items": 1, "max_items": 1},
                "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": 4096, "also": ["inf"]},
            },
        },
        "notes": {
            "session_type": "transcription",
            "expires_after": {"default_seconds": 30, "max_seconds": 300},
            "settable": {"include": {"type": "array", "enum": ["item.input_audio_transcription.logprobs"]}},
        },
    },
}


ISSUER = "https://issuer.example"


def caller(*, groups: tuple[str, ...] = (), scopes: tuple[str, ...] = (), issuer: str = ISSUER) -> Caller:
    return Caller(issuer=issuer, subject="user-1", groups=frozenset(groups), scopes=frozenset(scopes))


# Signed in, with no group or scope: every ungated profile is open to it, and only those.
ANYONE = caller()


def _gated(session_type: str, requires: dict[str, list[str]]) -> dict[str, Any]:
    return {"session_type": session_type, "expires_after": {"default_seconds": 60, "max_seconds": 600}} | {
        "requires": requires,
        "fixed": {"model": "gpt-realtime"} if session_type == "realtime" else {},
    }


# The small policy with profiles gated by identity, and a realtime default that depends on the caller.
GATED_POLICY: dict[str, Any] = {
    "version": 1,
    "default_profiles": {"realtime": ["staff-pro", "studio", "voice"], "transcription": "notes"},
    "profiles": SMALL_POLICY["profiles"]
    | {
        "studio": _gated("realtime", {"groups": ["premium", "staff"]}),
        "scoped": _gated("realtime", {"scopes": ["voice:pro", "voice:all"]}),
        "partner": _gated("realtime", {"issuers": ["https://partner.example"]}),
        "staff-pro": _gated("realtime", {"groups": ["staff"], "scopes": ["voice:pro"]}),
        "notes-pro": _gated("transcription", {"groups": ["premium"]}),
    },
}


def validated(document: dict[str, Any]) -> Policy:
    return validate(Path("test-policy.json"), json.dumps(document).encode())


def small_policy() -> Policy:
    return validated(SMALL_POLICY)


def voice() -> Profile:
    return small_policy().profiles["voice"]


def nest(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for "a.b"."""
    node: Any = value
    for part in reversed(path.split(".")):
        node = {part: node}
    return node  # type: ignore[no-any-return]


def bundled(session_type: str) -> tuple[str, Profile]:
    return load_policy(BUNDLED_POLICY).select(None, session_type, ANYONE, param="session.type")  # type: ignore[arg-type]


def write_policy(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return path


# For changed(): where a document's value is removed, and the small policy's paths it changes.
REMOVED = object()
VOICE = ("profiles", "voice")
SETTABLE = (*VOICE, "settable")
FIXED = (*VOICE, "fixed")
EXPIRY = (*VOICE, "expires_after")


def changed(document: dict[str, Any], where: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of the document with the value at `where` replaced (or removed)."""
    document = copy.deepcopy(document)
    *parents, key = where
    node = document
    for part in parents:
        node = node[part]
    if value is REMOVED:
        del node[key]
    else:
        node[key] = value
    return document


# The small policy's limits and spend brake, and windows to put there.
LIMITS = (*VOICE, "limits")
BRAKE = ("spend_brake",)
MINUTE = {"mints": 10, "seconds": 60}
DAY = {"mints": 100, "seconds": 86400}


@functools.cache
def bundled_policy() -> Policy:
    """The bundled policy, read and validated once (a frozen record: the tests share it)."""
    return load_policy(BUNDLED_POLICY)


def shipped(name: str) -> Profile:
    return bundled_policy().profiles[name]
