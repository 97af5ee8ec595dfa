"""Tokens through the local gateway over HTTP, checked as API Gateway's JWT authorizer checks them.

The gateway serves template.yaml with a loopback issuer's URL as JwtIssuer (tests/issuers.py). A good
token mints; every bad one is refused with API Gateway's own status and body, and neither the function
nor OpenAI sees the request. With CallerAuth=iam, SigV4 with the local credentials.
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http import HTTPStatus
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.exchanges import AccessRecord
from local.gateway import LocalApi
from local.iam_authorizer import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY
from local.jwt_authorizer import REFETCH_INTERVAL_SECONDS, JwtAuthorizer, Refused
from openai_stub.server import OpenAIStub
from tests.issuers import LoopbackIssuer, other_key, remember
from tests.local_api import Answer, post, serving_issuer
from tests.local_api import serving as serving_template
from tests.output import Output

MINT_PATH = "/v1/realtime/client_secrets"
MINT_BODY = json.dumps({"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}).encode()
UNAUTHORIZED = b'{"message":"Unauthorized"}'
FORBIDDEN = b'{"message":"Forbidden"}'
REQUIRED_SCOPE = "realtime/mint"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    with LoopbackIssuer(audience="token-vending-test") as started:
        yield started


def serving(
    issuer: LoopbackIssuer,
    secret_arn: str,
    stub: OpenAIStub,
    moto_url: str,
    records: list[AccessRecord] | None = None,
    **more: str,
) -> AbstractContextManager[LocalApi]:
    """template.yaml on the local gateway, trusting the loopback issuer for two audiences; ``more``: other
    parameter overrides."""
    audiences = {"JwtAudiences": f"{issuer.audience},another-app"}
    return serving_issuer(issuer, secret_arn, stub.base_url, moto_url, records=records, **(audiences | more))


@pytest.fixture
def records() -> list[AccessRecord]:
    return []


@pytest.fixture
def api(
    issuer: LoopbackIssuer,
    api_key_secret_arn: str,
    secrets_manager_url: str,
    openai_stub: OpenAIStub,
    records: list[AccessRecord],
) -> Iterator[LocalApi]:
    with serving(issuer, api_key_secret_arn, openai_stub, secrets_manager_url, records) as started:
        yield started


@pytest.fixture
def scoped_api(
    issuer: LoopbackIssuer,
    api_key_secret_arn: str,
    secrets_manager_url: str,
    openai_stub: OpenAIStub,
    records: list[AccessRecord],
) -> Iterator[LocalApi]:
    """The same, deployed with JwtRequiredScopes."""
    with serving(
        issuer, api_key_secret_arn, openai_stub, secrets_manager_url, records, JwtRequiredScopes=REQUIRED_SCOPE
    ) as started:
        yield started


def _mint(api: LocalApi, target: str = MINT_PATH, **headers: str) -> Answer:
    return post(api, target, MINT_BODY, {"content-type": "application/json", **headers})


def _segment(value: dict[str, Any] | bytes) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(issuer: LoopbackIssuer) -> str:
    """alg "none": no signature at all."""
    header = {"alg": "none", "typ": "JWT", "kid": issuer.key.kid}
    return remember(f"{_segment(header)}.{_segment(issuer.claims())}.")


def _with_header(issuer: LoopbackIssuer, **header: Any) -> str:
    """A good token's claims and signature under another header."""
    _, claims, signature = issuer.token().split(".")
    return remember(f"{_segment({'kid': issuer.key.kid, **header})}.{claims}.{signature}")


def _hmac_with_the_public_key(issuer: LoopbackIssuer) -> str:
    """HS256 keyed with the issuer's RSA public key (PEM): the old algorithm-confusion attack."""
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.key.kid}
    signing_input = f"{_segment(header)}.{_segment(issuer.claims())}"
    signature = hmac.new(issuer.key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return remember(f"{signing_input}.{_segment(signature)}")


def _tampered(issuer: LoopbackIssuer) -> str:
    """A good token whose claims were changed after signing (another subject)."""
    header, _, signature = issuer.token().split(".")
    return remember(f"{header}.{_segment(issuer.claims(sub='someone-else'))}.{signature}")


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# (name, the request's target and headers, the www-authenticate error_description; None: no header)
BAD_REQUESTS: list[tuple[str, Callable[[LoopbackIssuer], tuple[str, dict[str, str]]], str | None]] = [
    ("no token", lambda issuer: (MINT_PATH, {}), None),
    ("empty authorization", lambda issuer: (MINT_PATH, {"authorization": ""}), None),
    ("malformed", lambda issuer: (MINT_PATH, _bearer("not-a-jwt")), "the token is malformed"),
    ("three garbage segments", lambda issuer: (MINT_PATH, _bearer("abc.def.ghi")), "the token is malformed"),
    ("bad signature", lambda issuer: (MINT_PATH, _bearer(_tampered(issuer))), "the token's signature is invalid"),
    ("alg none", lambda issuer: (MINT_PATH, _bearer(_unsigned(issuer))), "signing method none is invalid"),
    (
        "HS256 with the public key",
        lambda issuer: (MINT_PATH, _bearer(_hmac_with_the_public_key(issuer))),
        "signing method HS256 is invalid",
    ),
    (
        "an alg that would break a header",
        lambda issuer: (MINT_PATH, _bearer(_with_header(issuer, alg='RS256"\r\nx-injected: 1'))),
        "signing method of the token is invalid",
    ),
    (
        "an alg that is a list",
        lambda issuer: (MINT_PATH, _bearer(_with_header(issuer, alg=["RS256"]))),
        "the token is malformed",
    ),
    (
        "an alg that is an object",
        lambda issuer: (MINT_PATH, _bearer(_with_header(issuer, alg={"RS256": True}))),
        "the token is malformed",
    ),
    (
        "a kid that is a list",
        lambda issuer: (MINT_PATH, _bearer(_with_header(issuer, alg="RS256", kid=[issuer.key.kid]))),
        "the token is malformed",
    ),
    (
        "a typ that is a list",
        lambda issuer: (MINT_PATH, _bearer(_with_header(issuer, alg="RS256", typ=["JWT"]))),
        "the token is malformed",
    ),
    (
        "a crit member that is a list",
        lambda issuer: (MINT_PATH, _bearer(_with_header(issuer, alg="RS256", crit=[["exp"]]))),
        "the token is malformed",
    ),
    (
        "another issuer",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(iss="https://another-issuer.test"))),
        "the token does not have a valid issuer",
    ),
    (
        "another audience",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(aud="someone-elses-app"))),
        "the token does not have a valid audience",
    ),
    (
        "aud wrong, client_id right: aud is evaluated",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(aud="someone-elses-app", client_id=issuer.audience))),
        "the token does not have a valid audience",
    ),
    (
        "expired",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(iat=int(time.time()) - 600, exp=int(time.time()) - 1))),
        "the token has expired",
    ),
    ("no exp", lambda issuer: (MINT_PATH, _bearer(issuer.token(exp=None))), "the token has no expiry"),
    (
        "nbf in the future",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(nbf=int(time.time()) + 300))),
        "the token is not valid yet",
    ),
    (
        "iat in the future",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(iat=int(time.time()) + 300))),
        "the token was issued in the future",
    ),
    ("token in the query string", lambda issuer: (f"{MINT_PATH}?access_token={issuer.token()}", {}), None),
    ("token in another header", lambda issuer: (MINT_PATH, {"x-authorization": f"Bearer {issuer.token()}"}), None),
    ("Bearer alone", lambda issuer: (MINT_PATH, {"authorization": "Bearer"}), "the token is malformed"),
    (
        "unknown kid",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(key=other_key()))),
        "the token's kid matches no key of the issuer",
    ),
    (
        "a kid of the issuer's, another key's signature",
        lambda issuer: (MINT_PATH, _bearer(issuer.token(key=other_key(), kid=issuer.key.kid))),
        "the token's signature is invalid",
    ),
]


def test_a_good_token_mints(
    api: LocalApi, issuer: LoopbackIssuer, openai_stub: OpenAIStub, records: list[AccessRecord]
) -> None:
    # Given a token the issuer signed for the API's audience
    token = issuer.token()

    # When it is sent as a bearer token
    response = _mint(api, **_bearer(token))

    # Then the function mints, and OpenAI got the mint
    assert response.status == HTTPStatus.OK, response.data
    assert response.json()["value"].startswith("ek_")
    assert len(openai_stub.requests) == 1
    assert records[-1].note == ""


def test_a_token_without_the_bearer_prefix_and_a_cognito_access_token_mint(
    api: LocalApi, issuer: LoopbackIssuer, openai_stub: OpenAIStub
) -> None:
    # Given a token sent bare (API Gateway takes it with or without "Bearer "), and one shaped as
    # Cognito's access tokens are: client_id and no aud
    bare = issuer.token()
    cognito = issuer.token(aud=None, client_id=issuer.audience, token_use="access", scope="openid profile")

    # When each is sent
    statuses = [_mint(api, authorization=bare).status, _mint(api, **_bearer(cognito)).status]

    # Then both mint
    assert statuses == [HTTPStatus.OK, HTTPStatus.OK]
    assert len(openai_stub.requests) == 2


@pytest.mark.parametrize(("case", "request_for", "reason"), BAD_REQUESTS, ids=[case for case, _, _ in BAD_REQUESTS])
def test_a_bad_token_is_api_gateways_401_and_reaches_nothing(
    api: LocalApi,
    issuer: LoopbackIssuer,
    openai_stub: OpenAIStub,
    output: Output,
    records: list[AccessRecord],
    case: str,
    request_for: Callable[[LoopbackIssuer], tuple[str, dict[str, str]]],
    reason: str | None,
) -> None:
    # Given a request whose token is missing, misplaced or bad in one way
    target, headers = request_for(issuer)
    logged_before = len(output.logs())

    # When it is sent
    response = _mint(api, target, **headers)

    # Then API Gateway's own 401 answers it, saying why in www-authenticate (a missing token: no header)
    assert response.status == HTTPStatus.UNAUTHORIZED
    assert response.data == UNAUTHORIZED
    assert response.headers["content-type"] == "application/json"
    if reason is None:
        assert "www-authenticate" not in response.headers
    else:
        challenge = f'Bearer scope="" error="invalid_token" error_description="{reason}"'
        assert response.headers["www-authenticate"] == challenge
    # And neither the function nor OpenAI saw it; the access record says the authorizer refused it
    assert output.logs()[logged_before:] == []
    assert openai_stub.requests == []
    assert records[-1].note.startswith("refused by the authorizer")
    assert "make" not in records[-1].note  # make run's own hints are its console's, not the gateway's


def test_a_rotated_key_is_fetched_at_once_and_then_kept(
    issuer: LoopbackIssuer, api_key_secret_arn: str, secrets_manager_url: str, openai_stub: OpenAIStub
) -> None:
    # Given a gateway that has fetched the issuer's keys once
    with serving(issuer, api_key_secret_arn, openai_stub, secrets_manager_url) as api:
        assert _mint(api, **_bearer(issuer.token())).status == HTTPStatus.OK
        fetched = issuer.jwks_fetches

        # When the issuer rotates to a new key, and tokens it signs with that key arrive
        issuer.rotate()
        rotated = _mint(api, **_bearer(issuer.token()))
        cached = _mint(api, **_bearer(issuer.token()))

    # Then the new key's kid is fetched at once, then kept: both mint, for one more fetch
    assert [rotated.status, cached.status] == [HTTPStatus.OK, HTTPStatus.OK]
    assert issuer.jwks_fetches == fetched + 1


def test_tokens_with_unknown_kids_in_a_row_fetch_the_jwks_once_more_at_most(
    issuer: LoopbackIssuer, api_key_secret_arn: str, secrets_manager_url: str, openai_stub: OpenAIStub
) -> None:
    # Given a gateway that has fetched the issuer's keys once
    with serving(issuer, api_key_secret_arn, openai_stub, secrets_manager_url) as api:
        assert _mint(api, **_bearer(issuer.token())).status == HTTPStatus.OK
        fetched = issuer.jwks_fetches

        # When five tokens in a row name kids the issuer never published (each its own key)
        statuses = [_mint(api, **_bearer(issuer.token(key=other_key()))).status for _ in range(5)]
        # And then a good token arrives
        good = _mint(api, **_bearer(issuer.token()))

    # Then each is API Gateway's 401, and together they cost one more fetch of the keys at most
    assert statuses == [HTTPStatus.UNAUTHORIZED] * 5
    assert issuer.jwks_fetches <= fetched + 1
    # And a token of a key already held still mints, without a fetch
    assert good.status == HTTPStatus.OK
    assert issuer.jwks_fetches <= fetched + 1


def test_an_unknown_kid_fetches_the_jwks_again_only_after_the_refetch_interval(issuer: LoopbackIssuer) -> None:
    # Given the issuer's authorizer, on a clock the test moves, that has fetched its keys once
    now = [1000.0]
    authorizer = JwtAuthorizer(issuer.url, [issuer.audience], issuer.discovery_url, clock=lambda: now[0])
    authorizer.authorize(f"Bearer {issuer.token()}", None)
    fetched = issuer.jwks_fetches

    def unknown_kid() -> None:
        with pytest.raises(Refused, match="kid matches no key"):
            authorizer.authorize(f"Bearer {issuer.token(key=other_key())}", None)

    # When unknown kids arrive at once, just before the interval ends, and once it has
    unknown_kid()
    after_first = issuer.jwks_fetches
    now[0] += REFETCH_INTERVAL_SECONDS - 0.5
    unknown_kid()
    within = issuer.jwks_fetches
    now[0] += 0.5
    unknown_kid()

    # Then the first fetches at once, the second not, the third again
    assert [after_first, within, issuer.jwks_fetches] == [fetched + 1, fetched + 1, fetched + 2]


class _FaultyAuthorizer:
    """An authorizer with a bug: it raises what no refusal is."""

    def authorize(self, authorization: str | None, scopes: Any) -> dict[str, Any]:
        raise TypeError("unhashable type: 'list'")


def test_an_authorizer_that_fails_is_api_gateways_401_and_a_gateway_fault_on_stderr(
    api: LocalApi,
    issuer: LoopbackIssuer,
    openai_stub: OpenAIStub,
    output: Output,
    records: list[AccessRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a gateway whose JWT authorizer raises on a token, as a bug in it would
    for logical_id in api.authorization.jwt:
        monkeypatch.setitem(api.authorization.jwt, logical_id, _FaultyAuthorizer())
    logged_before = len(output.logs())

    # When a request is sent
    response = _mint(api, **_bearer(issuer.token()))

    # Then the caller gets API Gateway's 401 (not waitress's 500), and nothing else sees the request
    assert response.status == HTTPStatus.UNAUTHORIZED
    assert response.data == UNAUTHORIZED
    assert response.headers["content-type"] == "application/json"
    assert output.logs()[logged_before:] == []
    assert openai_stub.requests == []
    # And the access record and stderr say it was the gateway's own fault, and where
    assert records[-1].note == "refused by the authorizer: a gateway fault (TypeError, see stderr)"
    printed = output.text()
    assert f"{records[-1].request_id} gateway fault: the authorizer raised TypeError" in printed
    assert "in authorize" in printed


def test_a_token_without_a_required_scope_is_api_gateways_403(
    scoped_api: LocalApi, issuer: LoopbackIssuer, openai_stub: OpenAIStub, output: Output
) -> None:
    # Given routes that require the scope realtime/mint, and a good token with other scopes
    token = issuer.token(scope="openid profile")
    logged_before = len(output.logs())

    # When it is sent
    response = _mint(scoped_api, **_bearer(token))

    # Then API Gateway answers 403 itself, naming the scopes required, and nothing else sees it
    assert response.status == HTTPStatus.FORBIDDEN
    assert response.data == FORBIDDEN
    assert response.headers["www-authenticate"].startswith(
        f'Bearer scope="{REQUIRED_SCOPE}" error="insufficient_scope"'
    )
    assert output.logs()[logged_before:] == []
    assert openai_stub.requests == []


@pytest.mark.parametrize("granted", [{"scope": f"openid {REQUIRED_SCOPE}"}, {"scp": [REQUIRED_SCOPE, "profile"]}])
def test_a_token_with_a_required_scope_mints(
    scoped_api: LocalApi, issuer: LoopbackIssuer, openai_stub: OpenAIStub, granted: dict[str, Any]
) -> None:
    # Given a token with the required scope, in scope (space-separated) or scp (a list)
    token = issuer.token(**granted)

    # When it is sent
    response = _mint(scoped_api, **_bearer(token))

    # Then it mints
    assert response.status == HTTPStatus.OK, response.data
    assert len(openai_stub.requests) == 1


def test_claims_reach_the_function_flattened_as_api_gateway_passes_them(
    api: LocalApi, scoped_api: LocalApi, issuer: LoopbackIssuer
) -> None:
    # Given a token with a list, a number, a boolean, a null and an object among its claims
    claims: dict[str, Any] = {
        "sub": "user-1",
        "scope": f"openid {REQUIRED_SCOPE}",
        "cognito:groups": ["admin", "poweruser"],
        "auth_time": 1787996002,
        "email_verified": True,
        "nickname": None,
        "address": {"country": "NO"},
    }
    token = issuer.token(**claims)

    # When the route's authorizer accepts it, on a route without and one with authorization scopes
    plain = api.authorization.jwt["CallerJwtAuthorizer"].authorize(f"Bearer {token}", api.routes[0].scopes)
    scoped = scoped_api.authorization.jwt["CallerJwtAuthorizer"].authorize(
        f"Bearer {token}", scoped_api.routes[0].scopes
    )

    # Then every claim is a string (arrays in brackets, space-separated), a null claim is left out, and
    # scopes are null unless the route has authorization scopes
    passed = plain["jwt"]["claims"]
    assert passed["sub"] == "user-1"
    assert passed["cognito:groups"] == "[admin poweruser]"
    assert passed["auth_time"] == "1787996002"
    assert passed["email_verified"] == "true"
    assert passed["exp"] == str(int(passed["exp"]))
    assert passed["address"] == '{"country":"NO"}'
    assert "nickname" not in passed
    assert plain["jwt"]["scopes"] is None
    assert scoped["jwt"]["scopes"] == ["openid", REQUIRED_SCOPE]
    assert scoped_api.routes[0].scopes == (REQUIRED_SCOPE,)


def test_authentication_off_lets_one_anonymous_caller_in_and_says_so(
    issuer: LoopbackIssuer, api_key_secret_arn: str, secrets_manager_url: str, openai_stub: OpenAIStub
) -> None:
    # Given the gateway with authentication off (AUTH=none)

    records: list[AccessRecord] = []
    overrides = {
        "OpenAIApiKeySecretArn": api_key_secret_arn,
        "OpenAIUpstreamUrl": openai_stub.base_url,
        "SecretsReader": "direct",
    }
    with serving_template(overrides, secrets_manager_url, authenticate=False, on_request=records.append) as api:
        # When a request without a token, and one with a bad token, are sent
        statuses = [_mint(api).status, _mint(api, authorization="Bearer not-a-jwt").status]

    # Then both mint, as the anonymous caller, and every request's record says authentication is off
    assert statuses == [HTTPStatus.OK, HTTPStatus.OK]
    assert len(openai_stub.requests) == 2
    assert [record.note for record in records] == ["authentication is off (AUTH=none)"] * 2
    assert "authentication is off" in api.authorizer


def test_with_caller_auth_iam_a_sigv4_signed_mint_passes_and_an_unsigned_one_reaches_nothing(
    issuer: LoopbackIssuer, api_key_secret_arn: str, secrets_manager_url: str, openai_stub: OpenAIStub, output: Output
) -> None:
    # Given the template deployed for backends (CallerAuth=iam)
    with serving(
        issuer, api_key_secret_arn, openai_stub, secrets_manager_url, CallerAuth="iam", JwtIssuer="", JwtAudiences=""
    ) as api:
        request = AWSRequest(
            method="POST", url=f"{api.url}{MINT_PATH}", data=MINT_BODY, headers={"content-type": "application/json"}
        )
        SigV4Auth(Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY), "execute-api", api.region).add_auth(
            request
        )

        # When an unsigned mint, a token instead of a signature, and a signed mint are sent
        logged_before = len(output.logs())
        unsigned = _mint(api)
        token = _mint(api, **_bearer(issuer.token()))
        logged_refusing = output.logs()[logged_before:]
        requests_refusing = len(openai_stub.requests)
        signed = _mint(api, **dict(request.headers.items()))

    # Then the unsigned ones are API Gateway's 403 and reach neither the function nor OpenAI; the signed
    # one mints as the IAM caller
    assert [unsigned.status, token.status] == [HTTPStatus.FORBIDDEN, HTTPStatus.FORBIDDEN]
    assert unsigned.data == token.data == FORBIDDEN
    assert (logged_refusing, requests_refusing) == ([], 0)
    assert signed.status == HTTPStatus.OK, signed.data
    assert len(openai_stub.requests) == 1
