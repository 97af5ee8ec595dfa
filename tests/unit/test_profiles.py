"""What GET /v1/realtime/profiles lists: the profiles a caller may use, each as the policy file gives it, and
which is the caller's default for its session type; nothing of the profiles closed to the caller; what is left of
each window as the quota store said, or null when it was not read."""

import copy
import json
import time
from typing import Any

from voice_access.config.policy_file import load_policy
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.caller import Caller
from voice_access.domain.limits import Window
from voice_access.domain.policy.model import DEFAULT_LIVE_CLIENT_EVENTS, LIVE_CLIENT_EVENTS, Policy
from voice_access.domain.profiles import listing
from voice_access.domain.quota import Counted, Standing

ISSUER = "https://issuer.example.com/"
SHIPPED: dict[str, Any] = json.loads(BUNDLED_POLICY.read_text())

# Realtime defaults that may all be closed to a caller, and a profile that is nobody's default.
GATED_POLICY: dict[str, Any] = {
    "version": 1,
    "default_profiles": {"realtime": ["studio", "staff"], "transcription": "notes"},
    "profiles": {
        "studio": {
            "session_type": "realtime",
            "requires": {"groups": ["studio"]},
            "expires_after": {"default_seconds": 60, "max_seconds": 600},
            "fixed": {"model": "gpt-realtime", "audio.output.format": {"type": "audio/pcm", "rate": 24000}},
            "settable": {
                "audio.input.noise_reduction.type": {"type": "string", "enum": ["near_field"], "nullable": True},
                "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": 4096, "also": ["inf"]},
            },
        },
        "staff": {
            "session_type": "realtime",
            "requires": {"scopes": ["realtime/staff"]},
            "expires_after": {"default_seconds": 60, "max_seconds": 600},
            "fixed": {"model": "gpt-realtime"},
        },
        "notes": {
            "session_type": "transcription",
            "expires_after": {"default_seconds": 30, "min_seconds": 20, "max_seconds": 120},
            "limits": {"per_caller": [{"mints": 5, "seconds": 60}], "on_store_failure": "allow"},
        },
        "notes-long": {
            "session_type": "transcription",
            "expires_after": {"default_seconds": 600, "max_seconds": 1800},
        },
    },
}


def caller(*, groups: tuple[str, ...] = (), scopes: tuple[str, ...] = ()) -> Caller:
    return Caller(issuer=ISSUER, subject="user-1", groups=frozenset(groups), scopes=frozenset(scopes))


def by_name(listed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {profile["name"]: profile for profile in listed["data"]}


def as_written(limits: dict[str, Any]) -> dict[str, Any]:
    """A listing's limits without what is left of each window: as a policy file writes them."""
    windows = [{"mints": window["mints"], "seconds": window["seconds"]} for window in limits["per_caller"]]
    return {**limits, "per_caller": windows}


def test_a_caller_without_groups_gets_the_open_profiles_as_the_policy_file_gives_them() -> None:
    # Given the shipped policy and a signed-in user in no group
    policy = load_policy(BUNDLED_POLICY)

    # When the user's profiles are listed
    listed = listing(policy, caller())

    # Then they are an OpenAI list of the open profiles, in the file's order, each the caller's default for its
    # session type, with its bounds, fixed fields, rules and limits exactly as the file writes them
    assert listed["object"] == "list"
    assert [profile["name"] for profile in listed["data"]] == [
        "assistant",
        "voice",
        "transcription",
        "translation",
        "live",
    ]
    for profile in listed["data"]:
        written = SHIPPED["profiles"][profile["name"]]
        live = written["session_type"] == "live"
        assert {**profile, "limits": as_written(profile["limits"])} == {
            "name": profile["name"],
            "description": written["description"],
            "session_type": written["session_type"],
            "ways": written.get("ways", ["live_session"] if live else ["client_secret"]),
            "default": True,
            "expires_after": written.get("expires_after"),  # none where no client secret is minted
            # a Live profile that fixes no browser events fixes mute, unmute and close (docs/policy.md)
            "fixed": written["fixed"] | ({LIVE_CLIENT_EVENTS: DEFAULT_LIVE_CLIENT_EVENTS} if live else {}),
            "settable": written["settable"],
            "limits": {**written["limits"], "on_store_failure": "refuse"},
        }
    # And the demo page finds its voices and instructions where it reads them
    assistant = by_name(listed)["assistant"]
    assert "marin" in assistant["settable"]["audio.output.voice"]["enum"]
    assert assistant["fixed"]["instructions"] == SHIPPED["profiles"]["assistant"]["fixed"]["instructions"]


def test_a_caller_without_the_premium_group_learns_nothing_of_premium() -> None:
    # Given the shipped policy, whose premium profile requires the premium group, and users in other groups
    policy = load_policy(BUNDLED_POLICY)

    # When their profiles are listed
    shown = json.dumps(listing(policy, caller(groups=("Premium", "premium-trial"))))

    # Then the premium profile is not named, nor its description, bounds or requirement
    assert "premium" not in shown.lower()
    assert "1800" not in shown


def test_a_premium_member_gets_premium_as_the_realtime_default() -> None:
    # Given the shipped policy, whose realtime defaults are premium, then assistant
    policy = load_policy(BUNDLED_POLICY)

    # When a member of the premium group lists its profiles
    listed = by_name(listing(policy, caller(groups=("premium",))))

    # Then both realtime profiles are listed, and premium, the first default it may use, is its default
    assert list(listed) == ["assistant", "premium", "voice", "voice-premium", "transcription", "translation", "live"]
    assert listed["premium"]["default"] is True
    assert listed["assistant"]["default"] is False
    assert listed["premium"]["expires_after"] == {"default_seconds": 300, "min_seconds": 10, "max_seconds": 1800}
    assert as_written(listed["premium"]["limits"])["per_caller"] == [
        {"mints": 20, "seconds": 60},
        {"mints": 500, "seconds": 86400},
    ]


def test_no_realtime_profile_is_a_default_when_no_default_is_open() -> None:
    # Given a policy whose realtime defaults each require something, and a caller who has none of it
    policy = Policy.from_document(copy.deepcopy(GATED_POLICY))

    # When the caller's profiles are listed
    listed = by_name(listing(policy, caller(groups=("other",))))

    # Then only the transcription profiles are listed, the first one the default, and no default is claimed
    # for realtime sessions
    assert list(listed) == ["notes", "notes-long"]
    assert [profile["default"] for profile in listed.values()] == [True, False]


def test_the_second_default_candidate_is_the_default_of_a_caller_who_may_use_only_it() -> None:
    # Given a policy whose realtime defaults are studio (a group), then staff (a scope)
    policy = Policy.from_document(copy.deepcopy(GATED_POLICY))

    # When callers with the scope, and with the group and the scope, list their profiles
    scoped = by_name(listing(policy, caller(scopes=("realtime/staff",))))
    both = by_name(listing(policy, caller(groups=("studio",), scopes=("realtime/staff",))))

    # Then staff is the default of the first; studio, ahead of it, the default of the second
    assert scoped["staff"]["default"] is True
    assert "studio" not in scoped
    assert (both["studio"]["default"], both["staff"]["default"]) == (True, False)


def test_rules_show_only_the_keys_set_and_limits_their_windows() -> None:
    # Given a policy with a nullable rule, a rule with literal values besides its type, an unlimited profile and
    # one that mints unchecked when its counters cannot be reached
    policy = Policy.from_document(copy.deepcopy(GATED_POLICY))

    # When a member of the studio group lists its profiles
    listed = by_name(listing(policy, caller(groups=("studio",))))

    # Then each rule shows the keys the file sets (with its default min_seconds), and limits are null or given
    studio = listed["studio"]
    assert studio["settable"] == GATED_POLICY["profiles"]["studio"]["settable"]
    assert studio["fixed"] == {"model": "gpt-realtime", "audio.output.format": {"type": "audio/pcm", "rate": 24000}}
    assert studio["expires_after"] == {"default_seconds": 60, "min_seconds": 10, "max_seconds": 600}
    assert studio["limits"] is None
    assert studio["description"] == ""
    assert as_written(listed["notes"]["limits"]) == {
        "per_caller": [{"mints": 5, "seconds": 60}],
        "on_store_failure": "allow",
    }
    assert listed["notes"]["settable"] == {}


def test_changing_a_listing_leaves_the_policy_as_it_was() -> None:
    # Given a listing of the studio profile
    policy = Policy.from_document(copy.deepcopy(GATED_POLICY))
    listed = by_name(listing(policy, caller(groups=("studio",))))

    # When its fixed fields and rules are changed
    listed["studio"]["fixed"]["audio.output.format"]["rate"] = 8000
    listed["studio"]["settable"]["max_output_tokens"]["also"].append(0)

    # Then the policy's profile is unchanged
    again = by_name(listing(policy, caller(groups=("studio",))))
    assert again["studio"]["fixed"]["audio.output.format"]["rate"] == 24000
    assert again["studio"]["settable"]["max_output_tokens"]["also"] == ["inf"]


def test_what_is_left_of_each_window_is_shown_as_the_store_counted_it() -> None:
    # Given the shipped policy (assistant: 10 a minute and 100 a day) and a spend brake, and the store's counts:
    # 3 and 40 of the caller's assistant windows, the brake at its limit
    policy = load_policy(BUNDLED_POLICY)
    minute, day, brake = Window(mints=10, seconds=60), Window(mints=100, seconds=86400), Window(mints=7, seconds=86400)
    standing = Standing(
        {"assistant": [Counted(minute, 3, 1_000_020), Counted(day, 40, 1_036_800)]}, Counted(brake, 7, 1_036_800)
    )

    # When the caller's profiles are listed with them
    listed = listing(policy, caller(), standing, brake)

    # Then each window shows its limit, what is left and when it resets; the brake only that it is reached
    assert by_name(listed)["assistant"]["limits"]["per_caller"] == [
        {"mints": 10, "seconds": 60, "remaining": 7, "resets_at": 1_000_020},
        {"mints": 100, "seconds": 86400, "remaining": 60, "resets_at": 1_036_800},
    ]
    assert listed["spend_brake"] == {"reached": True, "resets_at": 1_036_800}
    assert listed["quota_error"] is None


def test_unread_windows_show_their_limits_and_resets_but_no_remaining_and_say_why() -> None:
    # Given the shipped policy, a spend brake, and a store that could not be read
    policy = load_policy(BUNDLED_POLICY)
    brake = Window(mints=1000, seconds=86400)
    error = {"type": "server_error", "message": "not shown", "param": None, "code": "quota_store_unavailable"}

    # When the caller's profiles are listed without the store's counts
    before = time.time()
    listed = listing(policy, caller(), None, brake, error)
    after = time.time()

    # Then each window's remaining is null, its reset is the end of the epoch-aligned window it is in (the one
    # current before the listing, or a later one current after it), and the brake's state is unknown: the error
    # says why
    for window in by_name(listed)["assistant"]["limits"]["per_caller"]:
        seconds = window["seconds"]
        assert window["remaining"] is None
        assert window["resets_at"] % seconds == 0
        assert (before // seconds + 1) * seconds <= window["resets_at"] <= (after // seconds + 1) * seconds
    assert listed["spend_brake"]["reached"] is None
    assert listed["quota_error"] == error


def test_no_spend_brake_and_no_error_when_there_is_none() -> None:
    # Given the shipped policy (no spend brake)
    # When the profiles are listed
    listed = listing(load_policy(BUNDLED_POLICY), caller())

    # Then spend_brake and quota_error are null
    assert (listed["spend_brake"], listed["quota_error"]) == (None, None)
