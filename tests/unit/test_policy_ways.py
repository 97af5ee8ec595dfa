"""The ways a profile's sessions are opened (a client secret, a Realtime call the service opens, a GPT-Live session),
and GPT-Live profiles: what a policy may say of them, each mistake refused at load, naming it, alike where the build
validates with pydantic and where the function reads the record; how a request's way picks or refuses a profile."""

import copy
import json
import re
from http import HTTPStatus
from typing import Any

import pytest

from tests.docs import code_block
from tests.policies import ANYONE, SMALL_POLICY, caller, validated
from voice_access.config.policy_file import PolicyError
from voice_access.domain.errors import InvalidRequest, PermissionDenied
from voice_access.domain.policy.model import DEFAULT_LIVE_CLIENT_EVENTS, Policy
from voice_access.domain.profiles import listing
from voice_access.edge import answers

LIVE: dict[str, Any] = {
    "session_type": "live",
    "fixed": {"model": "gpt-live-1", "instructions": "You are a helpful voice assistant."},
    "settable": {
        "audio.output.voice": {"type": "string", "enum": ["marin", "cedar"]},
        "idle_timeout_s": {"type": "integer", "minimum": 30, "maximum": 600},
    },
}
CALL: dict[str, Any] = {"session_type": "realtime", "ways": ["call"], "fixed": {"model": "gpt-realtime"}}


def policy_with(profiles: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    document = copy.deepcopy(SMALL_POLICY)
    document["profiles"] |= copy.deepcopy(profiles)
    document["default_profiles"] |= defaults or {}
    return document


def both_ways(document: dict[str, Any]) -> list[Policy]:
    """The policy as the build validates it (pydantic), and as the function reads its record."""
    return [validated(document), Policy.from_document(copy.deepcopy(document))]


def assert_refused_at_load(document: dict[str, Any], problem: str) -> None:
    """The build refuses the policy, and the function its record, each saying ``problem``."""
    with pytest.raises(PolicyError, match=re.escape(problem)):
        validated(document)
    with pytest.raises(ValueError, match=re.escape(problem)):
        Policy.from_document(copy.deepcopy(document))


def test_a_live_profile_loads_opened_only_as_a_live_session_and_without_a_lifetime() -> None:
    # Given a policy with a GPT-Live profile and a profile for Realtime calls the service opens
    document = policy_with({"live": LIVE, "call": CALL}, {"live": "live"})

    for policy in both_ways(document):
        # When it is loaded
        live, call, voice = policy.profiles["live"], policy.profiles["call"], policy.profiles["voice"]

        # Then each is opened its own ways: a profile that names none mints client secrets, a Live one opens Live
        # sessions, and neither of the server-opened ones has a client secret's lifetime
        assert (live.opened_by, call.opened_by, voice.opened_by) == (("live_session",), ("call",), ("client_secret",))
        assert live.expires_after is None
        assert call.expires_after is None


def test_a_live_sessions_browser_events_are_mute_unmute_and_close_unless_the_profile_fixes_them() -> None:
    # Given a Live profile that says nothing of its data channel, and one that opens session.update
    opened = LIVE | {"fixed": LIVE["fixed"] | {"client.data_channel.allowed_client_events": ["session.update"]}}
    document = policy_with({"live": LIVE, "opened": opened})

    for policy in both_ways(document):
        # When each makes a session
        quiet, chosen = policy.profiles["live"].fixed_session(), policy.profiles["opened"].fixed_session()

        # Then the first lets a browser mute, unmute and hang up, nothing more; the second, what it fixes
        assert quiet["client"] == {"data_channel": {"allowed_client_events": DEFAULT_LIVE_CLIENT_EVENTS}}
        assert DEFAULT_LIVE_CLIENT_EVENTS == [
            "session.input_audio.mute",
            "session.input_audio.unmute",
            "session.close",
        ]
        assert chosen["client"] == {"data_channel": {"allowed_client_events": ["session.update"]}}
        # and a field OpenAI rejects there is the policy's to answer for, not the caller's
        assert policy.profiles["live"].sets("client.data_channel.allowed_client_events", quiet)


@pytest.mark.parametrize(
    ("profile", "problem"),
    [
        pytest.param(
            LIVE | {"expires_after": {"default_seconds": 60, "max_seconds": 600}},
            "expires_after bounds a client secret's lifetime, and this profile mints none",
            id="live-with-a-lifetime",
        ),
        pytest.param(
            {"session_type": "realtime", "fixed": {"model": "gpt-realtime"}},
            "expires_after is required: the profile mints client secrets",
            id="client-secrets-without-a-lifetime",
        ),
        pytest.param(LIVE | {"ways": ["client_secret"]}, "a live session cannot be opened as", id="live-as-secret"),
        pytest.param(
            CALL | {"session_type": "transcription", "fixed": {}},
            "a transcription session cannot be opened as ['call']",
            id="transcription-as-call",
        ),
        pytest.param(CALL | {"ways": []}, "ways must name at least one way", id="no-way"),
        pytest.param(CALL | {"ways": ["call", "call"]}, "ways names a way twice", id="a-way-twice"),
        pytest.param(CALL | {"ways": ["phone"]}, "ways", id="an-unknown-way"),
        pytest.param(
            LIVE | {"settable": {"client.data_channel.allowed_client_events": {"type": "array", "enum": ["x"]}}},
            "a browser could open its own data channel to every event",
            id="settable-client-events",
        ),
        pytest.param(
            LIVE | {"settable": {"client.data_channel": {"type": "null"}}},
            "a browser could open its own data channel to every event",
            id="settable-data-channel",
        ),
        pytest.param(
            LIVE | {"fixed": LIVE["fixed"] | {"safety_identifier": "everyone"}},
            "the service sets it, from the caller",
            id="fixed-safety-identifier",
        ),
        pytest.param(LIVE | {"fixed": {"instructions": "hi"}}, "OpenAI requires 'model'", id="live-without-model"),
        pytest.param(
            LIVE | {"fixed": LIVE["fixed"] | {"client.data_channel": {"allowed_server_events": "all"}}},
            "fixed 'client.data_channel' leaves out 'allowed_client_events'",
            id="a-fixed-data-channel-without-the-list",
        ),
        pytest.param(
            LIVE | {"fixed": LIVE["fixed"] | {"client": {"data_channel": {}}}},
            "fixed 'client' leaves out 'allowed_client_events'",
            id="a-fixed-client-without-the-list",
        ),
        pytest.param(
            LIVE | {"fixed": LIVE["fixed"] | {"temperature": 0.8}},
            "a live session does not have: ['temperature']",
            id="a-realtime-field-on-live",
        ),
    ],
)
def test_a_profile_whose_ways_or_live_fields_cannot_work_is_refused_at_load_naming_why(
    profile: dict[str, Any], problem: str
) -> None:
    # Given / When a policy with the profile is validated (the build) and read (the function)
    # Then both refuse it, saying why
    assert_refused_at_load(policy_with({"broken": profile}), problem)


def test_a_profile_that_the_service_opens_is_refused_for_a_client_secret_with_a_403_that_says_why() -> None:
    # Given a profile for Realtime calls only
    policy = validated(policy_with({"call": CALL}))

    # When a caller asks for a client secret with it
    with pytest.raises(PermissionDenied) as caught:
        policy.select("call", "realtime", ANYONE, param="session.type", way="client_secret")

    # Then it is refused, 403, naming the way it is for and how to go on
    error = caught.value
    assert answers.status_of(error) == HTTPStatus.FORBIDDEN
    assert error.code == "profile_not_for_client_secrets"
    assert error.param == "X-Profile"
    assert str(error) == (
        "Profile 'call' of this service's policy is for Realtime calls the service opens (POST /v1/realtime/calls), "
        "not client secrets (POST /v1/realtime/client_secrets). Open the session that way, or name another profile "
        "with the X-Profile header."
    )
    # and the same profile is the call's
    assert policy.select("call", "realtime", ANYONE, param="session.type", way="call")[0] == "call"


def test_a_request_that_names_no_profile_gets_the_first_default_open_to_it_that_opens_its_way() -> None:
    # Given realtime defaults: an open call-only profile first, then the small policy's client-secret one
    policy = validated(policy_with({"call": CALL}, {"realtime": ["call", "voice"]}))

    # When a client secret and a call are each asked for without a profile
    secret = policy.select(None, "realtime", ANYONE, param="session.type", way="client_secret")[0]
    call = policy.select(None, "realtime", ANYONE, param="session.type", way="call")[0]

    # Then each gets the default that opens it (an open profile first shadows only its own ways)
    assert (secret, call) == ("voice", "call")


def test_a_way_no_default_opens_must_name_its_profile() -> None:
    # Given realtime defaults that mint client secrets only
    policy = validated(SMALL_POLICY)

    # When a call is asked for without a profile
    with pytest.raises(InvalidRequest) as caught:
        policy.select(None, "realtime", ANYONE, param="session.type", way="call")

    # Then the caller is told to name one
    assert caught.value.code == "unknown_profile"
    assert str(caught.value) == (
        "This service has no default profile for realtime sessions for Realtime calls the service opens "
        "(POST /v1/realtime/calls); name one with the X-Profile header."
    )


def test_an_open_default_still_shadows_later_defaults_of_its_own_ways() -> None:
    # Given an open client-secret profile before a gated one, among a session type's defaults
    gated = {
        "session_type": "realtime",
        "requires": {"groups": ["staff"]},
        "expires_after": {"default_seconds": 60, "max_seconds": 600},
        "fixed": {"model": "gpt-realtime"},
    }
    document = policy_with({"staff": gated}, {"realtime": ["voice", "staff"]})

    # When / Then it is refused, as before there were ways
    assert_refused_at_load(
        document, "requires nothing, so every caller gets it and the profiles after it are never chosen"
    )


def test_the_listing_says_each_profiles_ways_and_a_live_ones_browser_events() -> None:
    # Given a policy with a Live profile and a call profile among the small policy's
    policy = validated(policy_with({"live": LIVE, "call": CALL}, {"live": "live", "realtime": ["call", "voice"]}))

    # When a caller's profiles are listed
    listed = {profile["name"]: profile for profile in listing(policy, caller())["data"]}

    # Then each says how it is opened; the server-opened ones have no lifetime; the Live one shows the data
    # channel's events it fixes by default; the defaults are each way's
    assert {name: profile["ways"] for name, profile in listed.items()} == {
        "voice": ["client_secret"],
        "notes": ["client_secret"],
        "live": ["live_session"],
        "call": ["call"],
    }
    assert listed["live"]["expires_after"] is None
    assert listed["call"]["expires_after"] is None
    assert listed["live"]["fixed"]["client.data_channel.allowed_client_events"] == DEFAULT_LIVE_CLIENT_EVENTS
    assert all(profile["default"] for profile in listed.values())


def test_the_docs_live_profile_example_is_valid() -> None:
    # Given the policy documentation's example of a GPT-Live profile
    example = json.loads("{" + code_block("json", '"gpt-live-1"') + "}")

    # When / Then a policy with it validates, and its sessions let a browser only mute, unmute and hang up
    policy = validated(policy_with(example, {"live": "live"}))
    assert policy.profiles["live"].opened_by == ("live_session",)
    session = policy.profiles["live"].fixed_session()
    assert session["client"]["data_channel"]["allowed_client_events"] == DEFAULT_LIVE_CLIENT_EVENTS


def test_a_live_profile_that_fixes_its_data_channel_whole_keeps_its_own_list() -> None:
    # Given a Live profile fixing the data channel as a whole, its client events named in it
    channel = {"allowed_client_events": ["session.close"], "allowed_server_events": "all"}
    document = policy_with({"live": LIVE | {"fixed": LIVE["fixed"] | {"client.data_channel": channel}}})

    for policy in both_ways(document):
        # When it makes a session / Then the channel is the profile's, the default list added nowhere
        assert policy.profiles["live"].fixed_session()["client"] == {"data_channel": channel}
