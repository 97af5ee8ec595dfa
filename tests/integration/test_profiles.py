"""GET /v1/realtime/profiles over real HTTP through the local API Gateway, as deployed by default: a signed-in
user's token of the template's user pool, the JWT authorizer, the function; and through the handler with its
event. It reads the policy, and what is left of the caller's windows (tests/integration/test_quotas.py); never
OpenAI."""

import json
from collections.abc import Callable, Iterator
from http import HTTPStatus

import openai
import pytest

from local.gateway import LocalApi
from local.user_pool import UserPool
from openai_stub.server import OpenAIStub
from tests.events import load_event
from tests.lambda_context import LambdaContext
from tests.local_api import post, request, serving_default
from voice_access.edge.app import lambda_handler

PROFILES_PATH = "/v1/realtime/profiles"
MINT_PATH = "/v1/realtime/client_secrets"
MINT_BODY = json.dumps({"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}).encode()
ABSENT_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def names(body: bytes) -> list[str]:
    return [profile["name"] for profile in json.loads(body)["data"]]


@pytest.fixture
def api(api_key_secret_arn: str, openai_stub: OpenAIStub, user_pool: UserPool) -> Iterator[LocalApi]:
    with serving_default(api_key_secret_arn, openai_stub.base_url, user_pool) as api:
        yield api


def test_a_user_gets_the_profiles_open_to_them(
    api: LocalApi, user_token: Callable[..., str], openai_stub: OpenAIStub
) -> None:
    # Given a signed-in user in no group
    token = user_token()

    # When the user asks for its profiles
    answer = request(api, "GET", PROFILES_PATH, bearer(token), timeout=30)

    # Then it gets the open ones, uncached, as a list a form can be built from, and OpenAI heard nothing
    assert answer.status == HTTPStatus.OK, answer.data
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert names(answer.data) == ["assistant", "voice", "transcription", "translation", "live"]
    assistant = answer.json()["data"][0]
    assert assistant["default"] is True
    assert "cedar" in assistant["settable"]["audio.output.voice"]["enum"]
    assert assistant["fixed"]["instructions"]
    assert openai_stub.requests == []


def test_premium_is_listed_only_for_members_of_its_group(api: LocalApi, user_token: Callable[..., str]) -> None:
    # Given two users, one in the premium group
    member, other = user_token("pat", groups=["premium"]), user_token("sam")

    # When each asks for its profiles
    member_answer = request(api, "GET", PROFILES_PATH, bearer(member), timeout=30)
    other_answer = request(api, "GET", PROFILES_PATH, bearer(other), timeout=30)

    # Then the member sees premium as its realtime default, and the other user sees no trace of it
    assert [member_answer.status, other_answer.status] == [HTTPStatus.OK, HTTPStatus.OK]
    listed = {profile["name"]: profile for profile in member_answer.json()["data"]}
    assert list(listed) == ["assistant", "premium", "voice", "voice-premium", "transcription", "translation", "live"]
    assert (listed["premium"]["default"], listed["assistant"]["default"]) == (True, False)
    assert b"premium" not in other_answer.data


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer not-a-token"}], ids=["no token", "bad token"])
def test_without_a_valid_token_the_gateway_refuses(api: LocalApi, headers: dict[str, str]) -> None:
    # Given a request without a user's token, or with something else in its place
    # When it asks for the profiles
    answer = request(api, "GET", PROFILES_PATH, headers, timeout=30)

    # Then API Gateway's authorizer answers 401 itself
    assert answer.status == HTTPStatus.UNAUTHORIZED
    assert answer.data == b'{"message":"Unauthorized"}'


def test_the_openai_sdk_reads_the_profiles(api: LocalApi, user_token: Callable[..., str]) -> None:
    # Given the official SDK with a user's token as its api_key
    client = openai.OpenAI(api_key=user_token(), base_url=f"{api.url}/v1", max_retries=0)

    # When it GETs the route
    listed = client.get("/realtime/profiles", cast_to=object)

    # Then it reads the list
    assert isinstance(listed, dict)
    assert listed["object"] == "list"
    assert [profile["name"] for profile in listed["data"]] == [
        "assistant",
        "voice",
        "transcription",
        "translation",
        "live",
    ]


def test_listing_takes_nothing_from_the_callers_quota(api: LocalApi, user_token: Callable[..., str]) -> None:
    # Given a user whose default profile allows 10 client secrets a minute
    token = user_token("quinn")

    # When the user lists its profiles three times, then mints
    listings = [request(api, "GET", PROFILES_PATH, bearer(token), timeout=30).status for _ in range(3)]
    minted = post(api, MINT_PATH, MINT_BODY, {**bearer(token), "content-type": "application/json"}, timeout=30)

    # Then the mint is the first its counter saw
    assert listings == [HTTPStatus.OK] * 3
    assert minted.status == HTTPStatus.OK
    limits = (minted.headers["x-ratelimit-limit-requests"], minted.headers["x-ratelimit-remaining-requests"])
    assert limits == ("10", "9")


def test_a_cold_function_lists_profiles_without_its_api_key(
    openai_stub: OpenAIStub, user_pool: UserPool, user_token: Callable[..., str]
) -> None:
    # Given a deployment whose API key secret does not exist, so no client secret can be minted
    with serving_default(ABSENT_SECRET_ARN, openai_stub.base_url, user_pool) as api:
        token = user_token()

        # When a user's first request asks for its profiles, and a second for a client secret
        answer = request(api, "GET", PROFILES_PATH, bearer(token), timeout=30)
        minted = post(api, MINT_PATH, MINT_BODY, {**bearer(token), "content-type": "application/json"}, timeout=30)

    # Then the profiles are listed all the same, without the remaining figures (the caller's counters are named
    # with the secret's key) and saying so, while the mint fails for want of the key
    assert answer.status == HTTPStatus.OK, answer.data
    assert minted.status >= HTTPStatus.INTERNAL_SERVER_ERROR
    assert names(answer.data) == ["assistant", "voice", "transcription", "translation", "live"]
    listing = answer.json()
    assert {window["remaining"] for window in listing["data"][0]["limits"]["per_caller"]} == {None}
    assert listing["quota_error"]["type"] == "server_error"
    assert openai_stub.requests == []


@pytest.mark.usefixtures("function_env")
def test_the_event_is_answered_by_the_handler(lambda_context: LambdaContext) -> None:
    # Given API Gateway's event for the route, its caller signed in and in no group
    event = load_event("profiles.json")

    # When the handler is invoked with it
    answer = lambda_handler(event, lambda_context)

    # Then it answers the open profiles, uncached, naming the request
    assert answer["statusCode"] == HTTPStatus.OK
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert answer["headers"]["x-request-id"] == event["requestContext"]["requestId"]
    assert names(answer["body"].encode()) == ["assistant", "voice", "transcription", "translation", "live"]
