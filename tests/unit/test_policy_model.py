"""What a policy file may say: each mistake refused, naming it, alike where the build validates the file with
pydantic and where the function reads it through its record (the records' own checks); the documentation's
examples and the shipped policy among the valid."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.docs import code_block
from tests.policies import (
    ANYONE,
    BRAKE,
    DAY,
    EXPIRY,
    FIXED,
    GATED_POLICY,
    LIMITS,
    MINUTE,
    REMOVED,
    SETTABLE,
    SMALL_POLICY,
    VOICE,
    caller,
    changed,
    validated,
    write_policy,
)
from voice_access.config.policy_check import main
from voice_access.config.policy_file import PolicyError, load_policy, record_path, validate, validation_record
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.limits import Limits, Window
from voice_access.domain.policy.model import Policy
from voice_access.domain.policy.rules import check_request, ga_param


def test_the_bundled_policy_loads_with_a_default_profile_per_session_type() -> None:
    # Given / When
    policy = load_policy(BUNDLED_POLICY)

    # Then
    assert policy.default_profiles == {
        "realtime": ["premium", "assistant", "voice-premium", "voice"],
        "transcription": "transcription",
        "translation": "translation",
        "live": "live",
    }
    assert policy.profiles["assistant"].session_type == "realtime"
    assert policy.profiles["assistant"].requires is None
    assert policy.profiles["transcription"].session_type == "transcription"


@pytest.mark.parametrize(
    ("where", "value", "problem"),
    [
        ((*SETTABLE, "audio.output.colour"), {"type": "string"}, "audio.output.colour"),
        ((*SETTABLE, "temperature"), {"type": "number"}, "temperature"),
        ((*SETTABLE, "type"), {"type": "string"}, "'type'"),
        ((*FIXED, "type"), "realtime", "'type'"),
        ((*FIXED, "voice"), "alloy", "'voice'"),
        ((*SETTABLE, "model"), {"type": "string"}, "both settable and fixed"),
        ((*SETTABLE, "audio.output.format.rate"), {"type": "integer"}, "both settable and fixed"),
        ((*FIXED, "audio.output"), {"voice": "ash"}, "both settable and fixed"),
        ((*EXPIRY, "max_seconds"), 7201, "max_seconds"),
        ((*EXPIRY, "min_seconds"), 9, "min_seconds"),
        ((*EXPIRY, "default_seconds"), 5, "default_seconds"),
        ((*EXPIRY, "default_seconds"), 601, "default_seconds <= max_seconds"),
        ((*EXPIRY, "default_seconds"), 29, "min_seconds <= default_seconds"),
        ((*EXPIRY, "max_seconds"), REMOVED, "max_seconds"),
        ((*SETTABLE, "audio.output.speed"), {"type": "number", "minimum": 2, "maximum": 1}, "minimum is greater"),
        ((*SETTABLE, "audio.output.voice"), {"type": "string", "enum": ["alloy", 1]}, "not of type string"),
        ((*SETTABLE, "audio.output.speed"), {"type": "number", "enum": [1, True]}, "not of type number"),
        ((*SETTABLE, "output_modalities"), {"type": "array", "enum": [1]}, "not of type string"),
        ((*SETTABLE, "audio.output.voice"), {"type": "string", "minimum": 1}, "minimum/maximum apply to integer"),
        ((*SETTABLE, "audio.output.speed"), {"type": "number", "max_length": 1}, "max_length applies to string"),
        ((*SETTABLE, "audio.output.voice"), {"type": "string", "max_items": 1}, "min_items/max_items apply to array"),
        ((*SETTABLE, "output_modalities"), {"type": "array", "min_items": 2, "max_items": 1}, "min_items is greater"),
        ((*SETTABLE, "audio.output.voice"), {"type": "object"}, "audio.output.voice"),
        ((*SETTABLE, "audio.output.voice", "pattern"), "^a", "pattern"),
        ((*VOICE, "requires"), {"groups": []}, "groups must list at least one name; to require no groups, leave"),
        ((*VOICE, "requires"), {"scopes": []}, "to require no scopes, leave the key out"),
        ((*VOICE, "requires"), {}, "leave requires out"),
        ((*VOICE, "requires"), {"roles": ["admin"]}, "requires.roles"),
        ((*VOICE, "requires"), {"groups": "premium"}, "requires.groups"),
        ((*VOICE, "requires"), {"groups": [1]}, "requires.groups"),
        ((*VOICE, "requires"), {"groups": ["premium users"]}, "printable ASCII characters, without spaces"),
        ((*VOICE, "requires"), {"scopes": ["x" * 257]}, "1 to 256 printable ASCII"),
        ((*VOICE, "requires"), {"groups": [""]}, "1 to 256 printable ASCII"),
        ((*VOICE, "requires"), {"groups": ["prémium"]}, "1 to 256 printable ASCII"),
        ((*VOICE, "requires"), {"issuers": ["https://issuer.example/\u0007"]}, "1 to 256 printable ASCII"),
        ((*VOICE, "requires"), "premium", "requires"),
        (("default_profiles", "realtime"), [], "default profiles for realtime sessions must list at least one"),
        (("default_profiles", "realtime"), ["missing", "voice"], "default profile 'missing'"),
        (("default_profiles", "realtime"), ["notes"], "default profile 'notes' is for transcription"),
        (("default_profiles", "realtime"), ["Voice"], "profile name 'Voice'"),
        (("default_profiles", "realtime"), [1], "default_profiles"),
        (("default_profiles", "realtime"), {"voice": True}, "default_profiles"),
        (("default_profiles", "realtime"), "missing", "default profile 'missing'"),
        (("default_profiles", "realtime"), "notes", "default profile 'notes'"),
        (("default_profiles", "translation"), "voice", "default profile 'voice' is for realtime"),
        (("default_profiles", "speech"), "voice", "default_profiles"),
        (("profiles",), {}, "profiles"),
        (("profiles", "Voice EU"), SMALL_POLICY["profiles"]["voice"], "Voice EU"),
        (("version",), 2, "version"),
        (("defaults",), {}, "defaults"),
        ((*VOICE, "session"), "realtime", "profiles.voice.session"),
        ((*VOICE, "session_type"), "speech", "session_type"),
        ((*VOICE, "session_type"), "translation", "a translation session does not have"),
        ((*EXPIRY, "seconds"), 60, "expires_after.seconds"),
        (("version",), True, "version"),
        (("version",), 1.0, "version"),
        ((*EXPIRY, "max_seconds"), "600", "max_seconds"),
        ((*SETTABLE, "audio.output.speed"), {"type": "number", "maximum": float("nan")}, "maximum"),
        ((*SETTABLE, "audio.output.speed"), {"type": "number", "minimum": float("-inf")}, "minimum"),
    ],
)
def test_an_invalid_policy_fails_at_load_naming_the_problem(
    tmp_path: Path, where: tuple[str, ...], value: Any, problem: str
) -> None:
    # Given a policy file with one mistake
    path = write_policy(tmp_path, changed(SMALL_POLICY, where, value))

    # When
    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    # Then
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)


def test_the_small_policy_of_these_tests_is_itself_valid(tmp_path: Path) -> None:
    # Given
    path = write_policy(tmp_path, SMALL_POLICY)

    # When
    policy = load_policy(path)

    # Then
    assert set(policy.profiles) == {"voice", "notes"}


def _readme_settable_rule() -> tuple[str, dict[str, Any]]:
    """The documentation's example rule for letting callers choose a fixed field: its path and its rule."""
    block = code_block("json", "gpt-realtime-2.1-mini")
    ((path, rule),) = json.loads("{" + block + "}").items()
    return path, rule


def test_the_readmes_steps_for_letting_callers_choose_a_fixed_field_work() -> None:
    # Given the bundled policy with the model fixed in its default profile, and the README's two steps for it
    document = json.loads(BUNDLED_POLICY.read_text())
    profile = document["profiles"]["assistant"]
    path, rule = _readme_settable_rule()
    del profile["settable"][path]
    profile["fixed"][path] = "gpt-realtime"
    only_step_two = copy.deepcopy(document)
    only_step_two["profiles"]["assistant"]["settable"][path] = rule

    # When both steps are applied
    del profile["fixed"][path]
    profile["settable"][path] = rule
    policy = validated(document)

    # Then callers may choose among the listed models, and step two alone is refused, naming the fix
    chosen = check_request(
        {"session": {path: "gpt-realtime-2.1-mini"}}, "assistant", policy.profiles["assistant"], ga_param
    )
    assert chosen["session"]["model"] == "gpt-realtime-2.1-mini"
    # and a request that names no model gets the rule's default
    defaulted = check_request({"session": {}}, "assistant", policy.profiles["assistant"], ga_param)
    assert defaulted["session"]["model"] == rule["default"]
    with pytest.raises(PolicyError, match=f"remove '{path}' from fixed"):
        validated(only_step_two)


def test_the_readmes_example_policy_is_valid() -> None:
    # Given the README's example policy
    example = code_block("json", '"default_profiles"')

    # When / Then it validates, and its profile mints what it shows
    policy = validated(json.loads(example))
    assert policy.select(None, "realtime", ANYONE, param="session.type")[0] == "assistant"


def test_the_readmes_profiles_by_identity_example_is_valid() -> None:
    # Given the README's example of profiles gated by identity
    example = code_block("json", '"requires"')

    # When / Then it validates: a premium member gets premium by default, everyone else the assistant
    policy = validated(json.loads(example))
    assert policy.select(None, "realtime", caller(groups=("premium",)), param="session.type")[0] == "premium"
    assert policy.select(None, "realtime", ANYONE, param="session.type")[0] == "assistant"


def test_the_readmes_quota_example_is_valid() -> None:
    # Given the README's example of quotas and the spend brake
    example = code_block("json", '"spend_brake"')

    # When / Then it validates, with its per-caller windows and its brake
    policy = validated(json.loads(example))
    limits = policy.profiles["assistant"].limits
    assert limits is not None
    assert [w.seconds for w in limits.per_caller] == [60, 86400]
    assert policy.spend_brake is not None
    assert policy.spend_brake.mints == 5000


@pytest.mark.parametrize(
    ("candidates", "problem"),
    [
        (
            ["voice", "studio"],
            "'voice' for realtime sessions requires nothing, so every caller gets it and the profiles after it are "
            "never chosen: put the profiles that require claims first",
        ),
        (["studio", "studio", "voice"], "default profiles for realtime sessions name 'studio' twice"),
        (["studio", "notes-pro"], "default profile 'notes-pro' is for transcription sessions"),
    ],
)
def test_default_candidates_that_cannot_all_be_chosen_are_refused_at_load(
    tmp_path: Path, candidates: list[str], problem: str
) -> None:
    # Given a realtime default with a candidate that would never be chosen
    path = write_policy(tmp_path, changed(GATED_POLICY, ("default_profiles", "realtime"), candidates))

    # When
    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    # Then the operator is told why
    assert problem in str(caught.value)


def test_a_default_list_of_gated_profiles_only_is_valid() -> None:
    # Given / When: some callers get a 403 for the default, which is the operator's choice to make
    policy = validated(changed(GATED_POLICY, ("default_profiles", "realtime"), ["studio"]))

    # Then
    assert policy.default_profiles["realtime"] == ["studio"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (LIMITS, {"per_caller": [MINUTE]}),
        (LIMITS, {"per_caller": [MINUTE, DAY], "on_store_failure": "allow"}),
        (LIMITS, {"per_caller": [{"mints": 1, "seconds": 1}, {"mints": 2000, "seconds": 31 * 86400}]}),
        (LIMITS, {"per_caller": [{"mints": 10**9, "seconds": 31 * 86400}]}),
        (BRAKE, {"mints": 5000, "seconds": 86400}),
        (BRAKE, {"mints": 1, "seconds": 31 * 86400}),
    ],
)
def test_limits_and_a_brake_within_their_bounds_load_alike_with_and_without_pydantic(
    tmp_path: Path, where: tuple[str, ...], value: Any
) -> None:
    # Given a policy with limits (or a brake), validated and recorded as the build does
    path = write_policy(tmp_path, changed(SMALL_POLICY, where, value))
    assert main([str(path)]) == 0

    # When it is read through its record (no pydantic) and validated anew
    recorded, checked = load_policy(path), validate(path, path.read_bytes())

    # Then both are the same policy, down to each value's type
    assert repr(recorded) == repr(checked)
    assert repr(Policy.from_document(json.loads(path.read_text()))) == repr(checked)


def test_limits_default_to_failing_closed() -> None:
    # Given / When
    policy = validated(changed(SMALL_POLICY, LIMITS, {"per_caller": [MINUTE]}))

    # Then
    limits = policy.profiles["voice"].limits
    assert limits is not None
    assert limits.on_store_failure == "refuse"
    assert limits.per_caller == [Window(mints=10, seconds=60)]
    assert policy.spend_brake is None
    assert policy.profiles["notes"].limits is None


# Mistakes in limits and brakes, what the build says of each (on the pydantic path), and whether the checks
# made without pydantic (Policy.from_document, for a file whose record matches) refuse it too.
BAD_LIMITS = [
    (LIMITS, {"per_caller": []}, "per_caller must list at least one window; for no limit, leave limits out"),
    (LIMITS, {}, "profiles.voice.limits: Value error, per_caller must list at least one window"),
    (LIMITS, {"per_caller": MINUTE}, "profiles.voice.limits.per_caller"),
    (LIMITS, {"per_caller": [MINUTE, {"mints": 20, "seconds": 60}]}, "per_caller names a window length twice"),
    (LIMITS, {"per_caller": [{"mints": 0, "seconds": 60}]}, "mints must be a whole number from 1 to 1000000000"),
    (LIMITS, {"per_caller": [{"mints": 10**9 + 1, "seconds": 60}]}, "mints must be a whole number from 1"),
    (LIMITS, {"per_caller": [{"mints": -1, "seconds": 60}]}, "mints must be a whole number from 1"),
    (LIMITS, {"per_caller": [{"mints": 10, "seconds": 0}]}, "seconds must be a whole number from 1 to 2678400"),
    (LIMITS, {"per_caller": [{"mints": 10, "seconds": 31 * 86400 + 1}]}, "(31 days)"),
    (LIMITS, {"per_caller": [MINUTE], "burst": 5}, "profiles.voice.limits.burst"),
    (LIMITS, {"per_caller": [{**MINUTE, "burst": 5}]}, "profiles.voice.limits.per_caller.0.burst"),
    (LIMITS, {"per_caller": [{"mints": "10", "seconds": 60}]}, "per_caller.0.mints"),
    (LIMITS, {"per_caller": [{"mints": 10, "seconds": "60"}]}, "per_caller.0.seconds"),
    (LIMITS, [MINUTE], "profiles.voice.limits"),
    (BRAKE, {"mints": 0, "seconds": 86400}, "mints must be a whole number from 1"),
    (BRAKE, {"mints": 5000, "seconds": 0}, "seconds must be a whole number from 1"),
    (BRAKE, {"mints": 5000}, "spend_brake.seconds"),
    (BRAKE, {"mints": 5000, "seconds": 86400, "per": "day"}, "spend_brake.per"),
    (BRAKE, {"mints": "5000", "seconds": 86400}, "spend_brake.mints"),
    (BRAKE, 5000, "spend_brake"),
]


# What only pydantic refuses: with a record that vouches for it, the function would read these as they are.
PYDANTIC_ONLY = [
    (LIMITS, {"per_caller": [MINUTE], "on_store_failure": "open"}, "'refuse' or 'allow'"),
    (LIMITS, {"per_caller": [MINUTE], "on_store_failure": "Allow"}, "'refuse' or 'allow'"),
    (LIMITS, {"per_caller": [MINUTE], "on_store_failure": True}, "'refuse' or 'allow'"),
    (LIMITS, {"per_caller": [{"mints": 10.0, "seconds": 60}]}, "per_caller.0.mints"),
    (LIMITS, {"per_caller": [{"mints": 10, "seconds": 60.0}]}, "per_caller.0.seconds"),
    (LIMITS, {"per_caller": [{"mints": True, "seconds": 60}]}, "per_caller.0.mints"),
    (BRAKE, {"mints": 5000.0, "seconds": 86400}, "spend_brake.mints"),
]


@pytest.mark.parametrize(("where", "value", "problem"), BAD_LIMITS + PYDANTIC_ONLY)
def test_bad_limits_or_brake_are_refused_at_build_time_naming_the_problem(
    tmp_path: Path, where: tuple[str, ...], value: Any, problem: str
) -> None:
    # Given a policy file with one mistake in its limits or brake
    path = write_policy(tmp_path, changed(SMALL_POLICY, where, value))

    # When the build validates it
    with pytest.raises(PolicyError) as caught:
        validate(path, path.read_bytes())

    # Then
    assert problem in str(caught.value)
    assert main([str(path)]) == 1
    assert not record_path(path).exists()


@pytest.mark.parametrize(("where", "value", "problem"), BAD_LIMITS)
def test_bad_limits_or_brake_are_refused_without_pydantic_too(
    tmp_path: Path, where: tuple[str, ...], value: Any, problem: str
) -> None:
    # Given a policy with one mistake, and a record that vouches for it (as if the build had been skipped)
    path = write_policy(tmp_path, changed(SMALL_POLICY, where, value))
    record_path(path).write_text(f"{validation_record(path.read_bytes())}\n")

    # When it is read as the function reads it / Then it is refused, naming the problem
    with pytest.raises((ValueError, TypeError, KeyError, AttributeError)):
        Policy.from_document(json.loads(path.read_text()))
    with pytest.raises(PolicyError, match=re.escape(problem)):
        load_policy(path)


@pytest.mark.parametrize(("where", "value", "problem"), PYDANTIC_ONLY)
def test_types_only_pydantic_checks_are_refused_without_it_too(
    tmp_path: Path, where: tuple[str, ...], value: Any, problem: str
) -> None:
    # Given a policy with a mistake of type, and a record that vouches for it
    path = write_policy(tmp_path, changed(SMALL_POLICY, where, value))
    record_path(path).write_text(f"{validation_record(path.read_bytes())}\n")

    # When / Then it is refused, naming the problem
    with pytest.raises(PolicyError, match=re.escape(problem)):
        load_policy(path)


def test_the_shipped_policy_limits_every_profile_and_brakes_the_service() -> None:
    # Given / When the shipped policy, through its record if it has a current one, and validated anew
    for policy in (load_policy(BUNDLED_POLICY), validate(BUNDLED_POLICY, BUNDLED_POLICY.read_bytes())):
        # Then every profile limits each user by the minute and by the day, failing closed, and the service brakes
        assert policy.spend_brake == Window(mints=5000, seconds=86400)
        for name, profile in policy.profiles.items():
            assert profile.limits is not None, name
            assert {window.seconds for window in profile.limits.per_caller} == {60, 86400}, name
            assert profile.limits.on_store_failure == "refuse", name


@pytest.mark.parametrize(
    "windows",
    [
        [{"mints": 1, "seconds": 1}, {"mints": 2001, "seconds": 86400}],
        [{"mints": 60, "seconds": 60}, {"mints": 1, "seconds": 1}, {"mints": 1441, "seconds": 86400}],
    ],
)
def test_windows_that_could_pile_up_counters_in_a_callers_item_are_refused(windows: list[dict[str, int]]) -> None:
    # Given per-caller windows under which one caller's item could hold more than 2,000 counters
    # When / Then the policy is refused at build time, saying what to change
    with pytest.raises(ValueError, match="at most 2000; give the longest window fewer mints"):
        Limits(per_caller=[Window(**window) for window in windows])


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        pytest.param(
            "audio.input.transcription.model",
            {"type": "string", "enum": ["gpt-realtime-whisper"], "default": "gpt-realtime-whisper"},
            id="switches-transcription-on-for-everyone",
        ),
        pytest.param(
            "audio.input.turn_detection.idle_timeout_ms",
            {"type": "integer", "minimum": 5000, "maximum": 30000, "default": 10000},
            id="turn-detection-without-its-required-type",
        ),
        pytest.param(
            "audio.input.noise_reduction.type",
            {"type": "string", "enum": ["near_field"], "nullable": True, "default": "near_field"},
            id="switches-noise-reduction-on",
        ),
    ],
)
def test_a_default_that_would_create_an_optional_object_is_refused_at_load(
    tmp_path: Path, path: str, rule: dict[str, Any]
) -> None:
    # Given a default one object deeper than those every session has (found in review: a default on
    # idle_timeout_ms made every request that left turn detection out a 400 for its missing type, blamed on the
    # caller; one on the transcription model switched transcription on for everyone, with no way to turn it off)
    policy = write_policy(tmp_path, changed(SMALL_POLICY, (*SETTABLE, path), rule))

    # When / Then the policy is refused, naming the object it would create and where a default may sit
    parent = path.rpartition(".")[0]
    with pytest.raises(PolicyError, match=re.escape(f"would put '{parent}' into every session")):
        load_policy(policy)


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"type": "string", "enum": ["alloy", "ash"], "default": "verse"}, "default 'verse' breaks its own rule"),
        (
            {"type": "string", "enum": ["alloy", "ash"], "default": 1},
            "default 1 breaks its own rule: expected a string",
        ),
        ({"type": "null", "default": "alloy"}, "default 'alloy' breaks its own rule: expected a null"),
    ],
)
def test_a_default_that_breaks_its_own_rule_is_refused_at_load(
    tmp_path: Path, rule: dict[str, Any], problem: str
) -> None:
    # Given a default its rule would refuse from a caller
    path = write_policy(tmp_path, changed(SMALL_POLICY, (*SETTABLE, "audio.output.voice"), rule))

    # When / Then the policy is refused, naming the problem
    with pytest.raises(PolicyError, match=re.escape(problem)):
        load_policy(path)
