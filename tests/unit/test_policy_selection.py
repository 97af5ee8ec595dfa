"""Choosing a profile: the one a request names, or the first default its caller may use; a refusal says what a
profile closed to the caller requires, and never echoes the caller's claims."""

import copy
from http import HTTPStatus

import pytest

from tests.policies import ANYONE, GATED_POLICY, REMOVED, SMALL_POLICY, caller, changed, small_policy, validated
from voice_access.config.policy_file import load_policy
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.caller import Caller
from voice_access.domain.errors import InvalidRequest, PermissionDenied
from voice_access.domain.policy.model import PROFILE_HEADER, ExpiryBounds, Policy
from voice_access.edge import answers


def gated_policy() -> Policy:
    return validated(GATED_POLICY)


@pytest.mark.parametrize(("session_type", "expected"), [("realtime", "voice"), ("transcription", "notes")])
def test_without_a_name_the_default_profile_of_the_session_type_is_chosen(session_type: str, expected: str) -> None:
    # Given
    policy = small_policy()

    # When
    name, profile = policy.select(None, session_type, ANYONE, param="session.type")  # type: ignore[arg-type]

    # Then
    assert name == expected
    assert profile is policy.profiles[expected]


def test_a_named_profile_is_chosen() -> None:
    # Given
    policy = validated(
        SMALL_POLICY | {"profiles": SMALL_POLICY["profiles"] | {"voice-eu": SMALL_POLICY["profiles"]["voice"]}}
    )

    # When
    name, profile = policy.select("voice-eu", "realtime", ANYONE, param="session.type")

    # Then
    assert name == "voice-eu"
    assert profile is policy.profiles["voice-eu"]


def test_an_unknown_profile_is_refused_naming_the_header() -> None:
    # Given
    policy = small_policy()

    # When
    with pytest.raises(InvalidRequest) as caught:
        policy.select("vip", "realtime", ANYONE, param="session.type")

    # Then
    assert answers.status_of(caught.value) == HTTPStatus.BAD_REQUEST
    assert caught.value.code == "unknown_profile"
    assert caught.value.param == PROFILE_HEADER == "X-Profile"
    assert "notes, voice" in caught.value.message


def test_a_long_unknown_profile_name_is_clipped_in_the_message() -> None:
    # Given
    name = "x" * 1000

    # When
    with pytest.raises(InvalidRequest) as caught:
        small_policy().select(name, "realtime", ANYONE, param="session.type")

    # Then
    assert name not in caught.value.message
    assert len(caught.value.message) < 200


def test_a_session_type_without_a_default_profile_needs_a_name() -> None:
    # Given a policy with a default for realtime sessions only
    policy = validated(changed(SMALL_POLICY, ("default_profiles", "transcription"), REMOVED))

    # When
    with pytest.raises(InvalidRequest) as caught:
        policy.select(None, "transcription", ANYONE, param="session.type")

    # Then
    assert caught.value.code == "unknown_profile"
    assert caught.value.param == "X-Profile"


@pytest.mark.parametrize("param", ["session.type", "X-Profile"])
def test_a_profile_for_the_other_session_type_is_refused_naming_the_given_param(param: str) -> None:
    # Given
    policy = small_policy()

    # When
    with pytest.raises(InvalidRequest) as caught:
        policy.select("notes", "realtime", ANYONE, param=param)

    # Then
    assert answers.status_of(caught.value) == HTTPStatus.BAD_REQUEST
    assert caught.value.code == "invalid_value"
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("profile_name", "who", "allowed"),
    [
        ("voice", ANYONE, True),
        ("voice", Caller(issuer="aws-iam", subject="arn:aws:iam::123456789012:role/backend", auth="iam"), True),
        ("studio", caller(groups=("premium",)), True),
        ("studio", caller(groups=("viewers", "staff")), True),
        ("studio", caller(groups=("viewers",)), False),
        ("studio", caller(groups=("Premium", "premium ", "premium\n")), False),
        ("studio", caller(scopes=("premium",)), False),
        ("studio", Caller(issuer="aws-iam", subject="arn:aws:iam::123456789012:role/backend", auth="iam"), False),
        ("scoped", caller(scopes=("openid", "voice:all")), True),
        ("scoped", caller(scopes=("openid",)), False),
        ("scoped", caller(groups=("voice:pro",)), False),
        ("partner", caller(issuer="https://partner.example"), True),
        ("partner", caller(issuer="https://partner.example/"), False),
        ("partner", ANYONE, False),
        ("staff-pro", caller(groups=("staff",), scopes=("voice:pro",)), True),
        ("staff-pro", caller(groups=("staff",)), False),
        ("staff-pro", caller(scopes=("voice:pro",)), False),
    ],
)
def test_a_profile_is_open_to_a_caller_who_meets_each_of_its_requirements(
    profile_name: str, who: Caller, allowed: bool
) -> None:
    # Given
    profile = gated_policy().profiles[profile_name]

    # When / Then: every key given is met, each by any one of its names
    assert profile.allows(who) is allowed


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (caller(groups=("staff",), scopes=("voice:pro",)), "staff-pro"),
        (caller(groups=("staff",)), "studio"),
        (caller(groups=("premium",), scopes=("voice:pro",)), "studio"),
        (caller(scopes=("voice:pro",)), "voice"),
        (ANYONE, "voice"),
    ],
)
def test_the_first_default_the_caller_may_use_is_chosen(who: Caller, expected: str) -> None:
    # Given a realtime default of three candidates: staff-pro, studio, voice (ungated)
    policy = gated_policy()

    # When
    name, profile = policy.select(None, "realtime", who, param="session.type")

    # Then
    assert name == expected
    assert profile is policy.profiles[expected]


def test_a_named_profile_is_chosen_for_a_caller_who_may_use_it() -> None:
    # Given
    policy = gated_policy()

    # When a premium member names a profile that is not among the defaults
    name, profile = policy.select("studio", "realtime", caller(groups=("premium",)), param=PROFILE_HEADER)

    # Then
    assert (name, profile) == ("studio", policy.profiles["studio"])


def permission_denied(policy: Policy, name: str | None, session_type: str, who: Caller) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        policy.select(name, session_type, who, param="session.type")  # type: ignore[arg-type]
    error = caught.value
    assert answers.status_of(error) == HTTPStatus.FORBIDDEN
    assert answers.envelope(error)["error"] | {"message": ""} == {
        "type": "invalid_request_error",
        "message": "",
        "param": PROFILE_HEADER,
        "code": "permission_denied",
    }
    return error


def test_naming_a_profile_the_caller_may_not_use_is_forbidden_naming_what_it_requires() -> None:
    # Given a caller in a group the profile does not name
    who = caller(groups=("viewers",))

    # When
    error = permission_denied(gated_policy(), "studio", "realtime", who)

    # Then the message says what the profile requires and who can help, and nothing of the caller's claims
    assert error.message == (
        "Profile 'studio' of this service's policy requires one of the groups 'premium', 'staff'; this caller's "
        "sign-in is in none of those groups. Ask the service's operator for access, or name another profile with "
        "the X-Profile header."
    )


@pytest.mark.parametrize(
    ("name", "who", "says"),
    [
        pytest.param(
            "notes-pro",
            ANYONE,
            "requires the group 'premium'; this caller's sign-in is not in that group.",
            id="one-group",
        ),
        pytest.param(
            "scoped",
            ANYONE,
            "requires one of the scopes 'voice:pro', 'voice:all'; this caller's sign-in has none of those scopes.",
            id="several-scopes",
        ),
        pytest.param(
            "staff-pro",
            caller(groups=("staff",)),
            "requires the group 'staff' and the scope 'voice:pro'; this caller's sign-in does not have that scope.",
            id="one-scope",
        ),
        pytest.param(
            "partner",
            ANYONE,
            "requires the issuer 'https://partner.example'; this caller's sign-in comes from another issuer.",
            id="one-issuer",
        ),
    ],
)
def test_a_refusal_reads_naturally_for_one_required_name_and_for_several(name: str, who: Caller, says: str) -> None:
    # Given / When a caller names a profile closed to it
    error = permission_denied(gated_policy(), name, "realtime", who)

    # Then
    assert says in error.message
    assert "one of the groups 'premium'" not in error.message


def test_a_refusal_of_an_unauthenticated_local_caller_does_not_speak_of_its_sign_in() -> None:
    # Given the caller `make run` passes with AUTH=none
    who = caller(issuer="local:auth-none")

    # When
    error = permission_denied(gated_policy(), "studio", "realtime", who)

    # Then the message is about this caller, not "your sign-in"
    assert "your sign-in" not in error.message
    assert "this caller's sign-in is in none of those groups" in error.message


def test_a_refusal_names_only_the_requirements_the_caller_does_not_meet() -> None:
    # Given a caller with the profile's group but not its scope
    who = caller(groups=("staff",), scopes=("openid",))

    # When
    error = permission_denied(gated_policy(), "staff-pro", "realtime", who)

    # Then
    assert "requires the group 'staff' and the scope 'voice:pro'; this caller's sign-in does not have that scope." in (
        error.message
    )
    assert "group" not in error.message.split("this caller's sign-in")[1]


def test_a_refusal_never_echoes_the_callers_claims() -> None:
    # Given a caller whose claims are huge and hold control characters
    noisy = "\x1b[31m" + "g" * 100_000 + "\r\n"
    who = caller(groups=(noisy, "x" * 5000), scopes=(noisy,), issuer="https://evil.example/" + noisy)

    # When it names profiles gated on each kind of claim
    messages = [permission_denied(gated_policy(), name, "realtime", who).message for name in ("studio", "partner")]

    # Then each message is short, printable, and holds none of them
    for message in messages:
        assert len(message) < 400
        assert message.isprintable()
        assert "ggg" not in message
        assert "evil" not in message


def test_a_gated_profile_of_another_session_type_is_forbidden_not_described() -> None:
    # Given a transcription profile for premium members, named in a realtime request by a caller outside it
    # When
    error = permission_denied(gated_policy(), "notes-pro", "realtime", ANYONE)

    # Then it is refused as closed to the caller, without saying which session type it mints
    assert "transcription" not in error.message


def test_a_gated_profile_of_another_session_type_is_a_400_for_a_caller_who_may_use_it() -> None:
    # Given
    who = caller(groups=("premium",))

    # When
    with pytest.raises(InvalidRequest) as caught:
        gated_policy().select("notes-pro", "realtime", who, param="session.type")

    # Then
    assert (answers.status_of(caught.value), caught.value.code) == (HTTPStatus.BAD_REQUEST, "invalid_value")


def test_no_default_open_to_the_caller_is_forbidden_naming_the_candidates_requirements() -> None:
    # Given a realtime default of gated profiles only
    policy = validated(changed(GATED_POLICY, ("default_profiles", "realtime"), ["staff-pro", "studio"]))

    # When a caller in neither asks for the default
    error = permission_denied(policy, None, "realtime", caller(scopes=("voice:pro",)))

    # Then
    assert error.message == (
        "No default profile of this service's policy for realtime sessions is open to this caller ('staff-pro' "
        "requires the group 'staff' and the scope 'voice:pro'; 'studio' requires one of the groups 'premium', "
        "'staff'). Ask the service's operator for access, or name another profile with the X-Profile header."
    )


def test_a_single_gated_default_closed_to_the_caller_is_forbidden() -> None:
    # Given
    policy = validated(changed(GATED_POLICY, ("default_profiles", "transcription"), "notes-pro"))

    # When / Then
    permission_denied(policy, None, "transcription", ANYONE)
    assert policy.select(None, "transcription", caller(groups=("premium",)), param="session.type")[0] == "notes-pro"


@pytest.mark.parametrize(
    ("who", "listed"),
    [
        (ANYONE, "notes, voice"),
        (caller(groups=("premium",)), "notes, notes-pro, studio, voice"),
        (caller(issuer="https://partner.example"), "notes, partner, voice"),
    ],
)
def test_an_unknown_profile_lists_only_the_profiles_the_caller_may_use(who: Caller, listed: str) -> None:
    # Given / When
    with pytest.raises(InvalidRequest) as caught:
        gated_policy().select("vip", "realtime", who, param="session.type")

    # Then
    assert answers.status_of(caught.value) == HTTPStatus.BAD_REQUEST
    assert (caught.value.code, caught.value.param) == ("unknown_profile", PROFILE_HEADER)
    assert caught.value.message == f"Unknown profile 'vip'. Profiles you may use: {listed}."


def test_an_unknown_profile_for_a_caller_who_may_use_none_says_whom_to_ask() -> None:
    # Given a policy whose every profile is gated
    document = copy.deepcopy(GATED_POLICY)
    for name in ("voice", "notes"):
        document["profiles"][name]["requires"] = {"groups": ["staff"]}
    document["default_profiles"] = {"realtime": "voice"}

    # When
    with pytest.raises(InvalidRequest) as caught:
        validated(document).select("vip", "realtime", ANYONE, param="session.type")

    # Then
    assert caught.value.message == (
        "Unknown profile 'vip'. This service's policy has no profile this caller may use; ask the service's "
        "operator for access."
    )


def test_the_bundled_premium_profile_is_the_default_for_premium_members_only() -> None:
    # Given
    policy = load_policy(BUNDLED_POLICY)
    member, outsider = caller(groups=("premium",)), caller(groups=("free",))

    # When
    chosen = {who: policy.select(None, "realtime", who, param="session.type") for who in (member, outsider)}

    # Then members get the longer-lived secrets, and everyone else the assistant
    assert chosen[member][0] == "premium"
    assert chosen[member][1].expires_after == ExpiryBounds(300, 1800, 10)
    assert chosen[outsider][0] == "assistant"
    assert chosen[outsider][1].expires_after == ExpiryBounds(60, 600, 10)
    assert set(chosen[member][1].settable["audio.output.voice"].enum or ()) >= set(
        chosen[outsider][1].settable["audio.output.voice"].enum or ()
    )
    permission_denied(policy, "premium", "realtime", outsider)
