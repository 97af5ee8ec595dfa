"""From the authorizer's context to a Caller: JWT claims as API Gateway flattens them, the IAM principal,
bounded groups and scopes, and no caller at all."""

import json
import time
from typing import Any

import pytest

from voice_access.domain.caller import Caller
from voice_access.domain.errors import CallerUnidentified
from voice_access.edge import answers
from voice_access.edge.claims import MAX_VALUE_CHARS, MAX_VALUES, caller_from_request_context, claim_values

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ex4mpLe12"
SUBJECT = "94e8d4a8-40b1-70d6-2c3f-5a6b7c8d9e0f"
GROUPS_CLAIM = "cognito:groups"


def jwt_context(claims: dict[str, Any] | None = None, scopes: list[str] | None = None) -> dict[str, Any]:
    """requestContext for a JWT route: the access token's claims, every value a string, as API Gateway sends."""
    return {"authorizer": {"jwt": {"claims": {"iss": ISSUER, "sub": SUBJECT, **(claims or {})}, "scopes": scopes}}}


IAM_PRINCIPAL = {
    "accessKey": "ASIAEXAMPLE",
    "accountId": "123456789012",
    "callerId": "AROAEXAMPLE:web-app",
    "cognitoIdentity": None,
    "principalOrgId": None,
    "userArn": "arn:aws:sts::123456789012:assumed-role/web-app/session",
    "userId": "AROAEXAMPLE:web-app",
}


def test_a_cognito_access_token_becomes_a_jwt_caller() -> None:
    # Given the claims of an access token from the stack's user pool, flattened by API Gateway
    context = jwt_context(
        {"cognito:groups": "[premium beta]", "scope": "openid email profile", "token_use": "access", "exp": "17"}
    )

    # When
    caller = caller_from_request_context(context, GROUPS_CLAIM)

    # Then
    assert caller == Caller(
        issuer=ISSUER,
        subject=SUBJECT,
        auth="jwt",
        groups=frozenset({"premium", "beta"}),
        scopes=frozenset({"openid", "email", "profile"}),
    )


@pytest.mark.parametrize(
    ("value", "groups"),
    [
        pytest.param("[premium]", {"premium"}, id="one-in-brackets"),
        pytest.param("[premium beta]", {"premium", "beta"}, id="api-gateway-flattened"),
        pytest.param("[]", set(), id="empty-list"),
        pytest.param("premium", {"premium"}, id="plain-single-value"),
        pytest.param("Premium Users", {"Premium Users"}, id="plain-value-keeps-its-spaces"),
        pytest.param("[ premium  beta ]", {"premium", "beta"}, id="extra-spaces"),
        pytest.param(["premium", "beta", 7], {"premium", "beta"}, id="a-real-list"),
        pytest.param("", set(), id="empty"),
        pytest.param(None, set(), id="absent"),
        pytest.param(42, set(), id="not-text"),
    ],
)
def test_groups_are_read_from_each_form_a_claim_arrives_in(value: Any, groups: set[str]) -> None:
    # Given a groups claim in this form
    claims = {} if value is None else {GROUPS_CLAIM: value}

    # When
    caller = caller_from_request_context(jwt_context(claims), GROUPS_CLAIM)

    # Then
    assert caller.groups == groups


@pytest.mark.parametrize(
    ("token_groups", "flattened"),
    [
        pytest.param(['"premium"'], '["premium"]', id="a-group-named-with-quotes"),
        pytest.param(['"premium"', '"beta"'], '["premium" "beta"]', id="two-quoted-names"),
        pytest.param(['["premium"]'], '[["premium"]]', id="a-group-named-like-json"),
    ],
)
def test_a_group_named_like_json_text_is_not_read_as_json(token_groups: list[str], flattened: str) -> None:
    # Given a token whose groups are named with quotes, as API Gateway flattens them
    assert "[" + " ".join(token_groups) + "]" == flattened

    # When
    caller = caller_from_request_context(jwt_context({GROUPS_CLAIM: flattened}), GROUPS_CLAIM)

    # Then the names keep their quotes: none of them is the group premium
    assert "premium" not in caller.groups
    assert caller.groups == set(token_groups)


def test_a_group_name_with_a_space_cannot_be_told_from_two_groups() -> None:
    # Given a token in one group "Not premium": API Gateway flattens it as it would two groups
    flattened = "[Not premium]"

    # When
    caller = caller_from_request_context(jwt_context({GROUPS_CLAIM: flattened}), GROUPS_CLAIM)

    # Then it reads as two groups (which is why a policy may not name groups with spaces)
    assert caller.groups == {"Not", "premium"}


def test_the_groups_claim_is_the_one_configured() -> None:
    # Given an issuer whose groups travel in a claim of its own
    context = jwt_context({"cognito:groups": "[ignored]", "https://example.com/roles": "[premium]"})

    # When
    caller = caller_from_request_context(context, "https://example.com/roles")

    # Then
    assert caller.groups == {"premium"}


@pytest.mark.parametrize(
    ("scopes", "claims", "expected"),
    [
        pytest.param(None, {"scope": "openid realtime:mint"}, {"openid", "realtime:mint"}, id="scope-claim"),
        pytest.param(None, {"scp": "[realtime.mint files.read]"}, {"realtime.mint", "files.read"}, id="scp-array"),
        pytest.param(None, {"scp": "realtime.mint files.read"}, {"realtime.mint", "files.read"}, id="scp-string"),
        pytest.param(["realtime:mint"], {"scope": "openid realtime:mint"}, {"realtime:mint"}, id="route-scopes-win"),
        pytest.param(None, {}, set(), id="none"),
    ],
)
def test_scopes_come_from_the_route_when_it_lists_them_else_from_the_token(
    scopes: list[str] | None, claims: dict[str, str], expected: set[str]
) -> None:
    # Given
    context = jwt_context(claims, scopes)

    # When
    caller = caller_from_request_context(context, GROUPS_CLAIM)

    # Then
    assert caller.scopes == expected


def test_an_iam_principal_becomes_a_caller_of_its_account() -> None:
    # Given a SigV4 route's authorizer context
    context = {"authorizer": {"iam": IAM_PRINCIPAL}}

    # When
    caller = caller_from_request_context(context, GROUPS_CLAIM)

    # Then
    assert caller == Caller(
        issuer="aws-iam:123456789012", subject="arn:aws:sts::123456789012:assumed-role/web-app/session", auth="iam"
    )


def test_an_iam_principal_without_an_arn_is_named_by_its_user_id() -> None:
    # Given
    context = {"authorizer": {"iam": {**IAM_PRINCIPAL, "userArn": None}}}

    # When / Then
    assert caller_from_request_context(context, GROUPS_CLAIM).subject == "AROAEXAMPLE:web-app"


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(None, id="no-request-context"),
        pytest.param({}, id="no-authorizer"),
        pytest.param({"authorizer": None}, id="null-authorizer"),
        pytest.param({"authorizer": {}}, id="empty-authorizer"),
        pytest.param({"authorizer": {"lambda": {"user": "x"}}}, id="another-kind"),
        pytest.param({"authorizer": {"jwt": {"scopes": None}}}, id="jwt-without-claims"),
        pytest.param({"authorizer": {"jwt": {"claims": {"iss": ISSUER}}}}, id="no-sub"),
        pytest.param({"authorizer": {"jwt": {"claims": {"sub": SUBJECT}}}}, id="no-iss"),
        pytest.param({"authorizer": {"jwt": {"claims": {"iss": ISSUER, "sub": ""}}}}, id="empty-sub"),
        pytest.param({"authorizer": {"jwt": {"claims": {"iss": ISSUER, "sub": 7}}}}, id="sub-not-text"),
        pytest.param({"authorizer": {"iam": {**IAM_PRINCIPAL, "accountId": None}}}, id="iam-without-account"),
        pytest.param({"authorizer": {"iam": {**IAM_PRINCIPAL, "userArn": "", "userId": None}}}, id="iam-nobody"),
    ],
)
def test_without_a_caller_the_deployment_is_at_fault(context: dict[str, Any] | None) -> None:
    # Given a request context that names no caller

    # When / Then: a 500 the operator must act on, never an anonymous caller
    with pytest.raises(CallerUnidentified) as caught:
        caller_from_request_context(context, GROUPS_CLAIM)
    assert caught.value.code == "caller_unidentified"
    assert answers.status_of(caught.value) == 500
    assert "operator" in caught.value.message


def test_only_the_first_groups_are_kept_and_overlong_ones_dropped() -> None:
    # Given far more groups than anyone belongs to, one of them overlong
    names = [f"g{index}" for index in range(MAX_VALUES + 50)]
    names[3] = "x" * (MAX_VALUE_CHARS + 1)

    # When
    for value in (f"[{' '.join(names)}]", names):
        groups = claim_values(value, split_plain=False)

        # Then the first MAX_VALUES are looked at; the overlong one is not kept, nor any after them
        assert groups == {name for name in names[:MAX_VALUES] if len(name) <= MAX_VALUE_CHARS}


def test_a_group_cut_short_by_the_bound_is_never_kept() -> None:
    # Given MAX_VALUES groups and then one more, whose name starts like a real group
    value = "[" + " ".join(["filler"] * MAX_VALUES) + " premium-admins]"

    # When
    groups = claim_values(value, split_plain=False)

    # Then neither it nor a prefix of it is kept
    assert groups == {"filler"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("[" + "a " * 500_000 + "]", id="a-million-characters-of-groups"),
        pytest.param("[" + "a" * 1_000_000 + "]", id="one-group-a-million-characters-long"),
        pytest.param(json.dumps(["a"] * 200_000), id="json-array-text-of-200000"),
        pytest.param(["a"] * 1_000_000, id="a-list-of-a-million"),
    ],
)
def test_a_huge_claim_costs_little_and_keeps_little(value: str) -> None:
    # Given a megabyte-sized groups claim
    started = time.process_time()

    # When
    groups = claim_values(value, split_plain=False)

    # Then at most the bound is kept (the time is printed, not asserted: machines differ)
    assert len(groups) <= MAX_VALUES
    assert all(len(group) <= MAX_VALUE_CHARS for group in groups)
    print(f"{len(value)} characters read in {(time.process_time() - started) * 1000:.1f} ms of CPU")


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\x7f", "\u200b"])
def test_groups_with_control_characters_are_dropped(bad: str) -> None:
    # Given a group whose name holds a control or format character, flattened or in a list
    for value in (f"[premium evil{bad}group]", ["premium", f"evil{bad}group"]):
        # When
        groups = claim_values(value, split_plain=False)

        # Then only the printable one is kept
        assert groups == {"premium"}


# Every character str.split() splits on besides the ASCII space: API Gateway joins a list with " " alone.
NON_SPACE_WHITESPACE = [
    *"\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\xa0\u1680",
    *(chr(code) for code in range(0x2000, 0x200B)),
    *"\u2028\u2029\u202f\u205f\u3000",
]


def test_the_whitespace_kinds_are_every_one_python_splits_on_but_the_space() -> None:
    assert sorted(NON_SPACE_WHITESPACE) == [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) != " "]


@pytest.mark.parametrize("whitespace", NON_SPACE_WHITESPACE, ids=lambda c: f"U+{ord(c):04X}")
def test_whitespace_other_than_the_ascii_space_does_not_separate_groups(whitespace: str) -> None:
    # Given a token whose groups are ["beta", "x<whitespace>premium"], as API Gateway flattens them, or its
    # only group that name (a plain value)
    for value in (f"[beta x{whitespace}premium]", f"x{whitespace}premium", f"[x{whitespace}premium]"):
        # When
        caller = caller_from_request_context(jwt_context({GROUPS_CLAIM: value}), GROUPS_CLAIM)

        # Then the name is one group, not "x" and "premium" (and, not printable, it is dropped)
        assert "premium" not in caller.groups
        assert caller.groups <= {"beta"}


@pytest.mark.parametrize("whitespace", NON_SPACE_WHITESPACE, ids=lambda c: f"U+{ord(c):04X}")
def test_whitespace_other_than_the_ascii_space_does_not_separate_scopes(whitespace: str) -> None:
    # Given a token whose scope claim holds "openid<whitespace>realtime:mint" (OAuth separates with " " alone)
    context = jwt_context({"scope": f"openid{whitespace}realtime:mint"})

    # When
    caller = caller_from_request_context(context, GROUPS_CLAIM)

    # Then it grants neither scope
    assert caller.scopes == set()


def test_control_characters_in_iss_and_sub_are_kept_as_the_identity() -> None:
    # Given an issuer and subject with control characters (they are hashed, never logged)
    context = {"authorizer": {"jwt": {"claims": {"iss": "iss\n\r\x00", "sub": "sub\u2028"}, "scopes": None}}}

    # When
    caller = caller_from_request_context(context, GROUPS_CLAIM)

    # Then
    assert (caller.issuer, caller.subject) == ("iss\n\r\x00", "sub\u2028")
