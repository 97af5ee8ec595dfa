"""``GET /v1/realtime/usage``: what a signed-in caller has used of its budgets and how many of its calls are open, for
each profile it may use that limits either, as the template's default deployment serves it (the route's JWT
authorizer, the quota table in moto); its budgets' figures are the caller's own, dollars as decimal dollars."""

import json
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from local.gateway import LocalApi
from local.user_pool import UserPool
from openai_stub.server import OpenAIStub
from tests.dynamodb_faults import closed_port_url
from tests.events import load_event
from tests.lambda_context import LambdaContext
from tests.local_api import Answer, post, request, serving_default
from tests.policies import SHIPPED, shipped_policy, without_quotas
from tests.supervision import Supervision
from tests.webrtc_offers import offer
from tests.windows import within_one_minute
from voice_access.domain import ledger
from voice_access.domain.limits import DAY_SECONDS
from voice_access.edge.app import lambda_handler

USAGE_PATH = "/v1/realtime/usage"
CALLS_PATH = "/v1/realtime/calls"
FUNCTION = "TokenVendingFunction"
SHIPPED_POLICY = json.loads(SHIPPED.read_text())


def usage(api: LocalApi, token: str) -> Answer:
    return request(api, "GET", USAGE_PATH, {"Authorization": f"Bearer {token}"}, timeout=30)


def open_call(api: LocalApi, token: str) -> Answer:
    return post(
        api, CALLS_PATH, offer().encode(), {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
    )


def by_profile(answer: Answer) -> dict[str, Any]:
    return {entry["profile"]: entry for entry in answer.json()["data"]}


def spend(dynamodb: Any, api: LocalApi, profile: str, unit: str, user: str, used: int) -> None:
    """The caller's counter of the profile's day budget in ``unit`` set to ``used`` (micro-dollars, or seconds)."""
    index, _ = ledger.window_at(DAY_SECONDS, time.time())
    dynamodb.put_item(
        TableName=api.functions[FUNCTION].environment["QUOTA_TABLE_NAME"],
        Item={"pk": {"S": f"budget#{profile}#{unit}#{DAY_SECONDS}#{index}#{user}"}, "used": {"N": str(used)}},
    )


def next_midnight() -> int:
    return ledger.window_at(DAY_SECONDS, time.time())[1]


def test_a_caller_reads_what_is_left_of_its_budgets_and_its_calls_open(
    api: LocalApi, user_token: Callable[..., str], supervision: Supervision
) -> None:
    def attempt(n: int) -> tuple[Answer, int]:
        # Given a signed-in user in no group, with one voice call open
        token = user_token(user=f"usage-{n}")
        assert open_call(api, token).status == HTTPStatus.CREATED

        # When it reads its usage
        return usage(api, token), next_midnight()

    answer, midnight = within_one_minute(attempt)

    # Then it gets each profile it may use that has budgets (the shipped voice and live, not voice-premium, which
    # requires the premium group), each budget as the policy gives it (dollars as dollars) with what is used and left
    # until midnight UTC, and its calls open of those allowed at once
    assert answer.status == HTTPStatus.OK, answer.data
    assert answer.headers["cache-control"] == "no-store"
    listed = answer.json()
    assert listed["object"] == "realtime.usage"
    assert listed["data"] == [
        {"profile": "voice", "budgets": untouched("voice", midnight), "calls": {"limit": 2, "open": 1}},
        {"profile": "live", "budgets": untouched("live", midnight), "calls": {"limit": 2, "open": 0}},
    ]


def untouched(profile: str, midnight: int) -> list[dict[str, Any]]:
    """The shipped profile's day budgets as the usage lists them before anything is used."""
    shown = []
    for budget in SHIPPED_POLICY["profiles"][profile]["limits"]["budgets"]:
        unit = "usd" if "usd" in budget else "call_seconds"
        limit = budget[unit]
        zero = 0.0 if unit == "usd" else 0
        shown.append(
            {
                "unit": unit,
                "limit": limit,
                "used": zero,
                "remaining": limit,
                "window_seconds": DAY_SECONDS,
                "resets_at": midnight,
            }
        )
    return shown


def test_what_the_callers_calls_used_is_shown_in_dollars_and_seconds_and_no_one_elses(
    api: LocalApi, user_token: Callable[..., str], supervision: Supervision, dynamodb: Any
) -> None:
    def attempt(n: int) -> tuple[Answer, Answer]:
        # Given a caller whose calls have cost $0.250001 and lasted 120 s today, and another caller's that cost more
        token, other = user_token(user=f"spender-{n}"), user_token(user=f"bystander-{n}")
        assert open_call(api, token).status == HTTPStatus.CREATED
        assert open_call(api, other).status == HTTPStatus.CREATED
        spender, bystander = (invocation.call.user for invocation in supervision.invocations.invocations()[-2:])
        spend(dynamodb, api, "voice", "usd", spender, 250_001)
        spend(dynamodb, api, "voice", "call_seconds", spender, 120)
        spend(dynamodb, api, "voice", "usd", bystander, 900_000)

        # When each reads its usage
        return usage(api, token), usage(api, other)

    mine, theirs = within_one_minute(attempt)

    # Then each sees its own use, dollars to the micro-dollar
    budgets = by_profile(mine)["voice"]["budgets"]
    usd, seconds = (budget["limit"] for budget in untouched("voice", 0))
    left = round((round(usd * 1_000_000) - 250_001) / 1_000_000, 6)
    assert [(b["used"], b["remaining"]) for b in budgets] == [(0.250001, left), (120, seconds - 120)]
    assert by_profile(theirs)["voice"]["budgets"][0]["used"] == 0.9
    assert by_profile(mine)["live"]["budgets"][0]["used"] == 0.0


def test_a_spent_budget_shows_nothing_left(
    api: LocalApi, user_token: Callable[..., str], supervision: Supervision, dynamodb: Any
) -> None:
    limit = untouched("voice", 0)[0]["limit"]

    def attempt(n: int) -> Answer:
        # Given a caller whose calls cost $0.20 more than its budget (the call that crossed it is metered whole)
        token = user_token(user=f"overspent-{n}")
        assert open_call(api, token).status == HTTPStatus.CREATED
        user = supervision.invocations.invocations()[-1].call.user
        spend(dynamodb, api, "voice", "usd", user, round(limit * 1_000_000) + 200_000)
        # When it reads its usage
        return usage(api, token)

    # Then nothing is left, never less
    [usd, _] = by_profile(within_one_minute(attempt))["voice"]["budgets"]
    assert (usd["used"], usd["remaining"]) == (round(limit + 0.2, 6), 0.0)


def test_a_premium_member_reads_voice_premium_too(api: LocalApi, user_token: Callable[..., str]) -> None:
    # Given a member of the premium group
    # When it reads its usage
    answer = usage(api, user_token(user="premium-usage", groups=["premium"]))

    # Then voice-premium is there too, with its own budgets and calls at once
    listed = by_profile(answer)
    assert list(listed) == ["voice", "voice-premium", "live"]
    assert listed["voice-premium"]["budgets"] == untouched("voice-premium", next_midnight())
    assert listed["voice-premium"]["calls"] == {"limit": 2, "open": 0}


def test_without_a_token_the_usage_is_not_read(api: LocalApi, stub: OpenAIStub) -> None:
    # Given / When a request without a token
    answer = request(api, "GET", USAGE_PATH, {})

    # Then API Gateway's authorizer refuses it
    assert answer.status == HTTPStatus.UNAUTHORIZED
    assert stub.requests == []


def test_a_store_out_of_reach_is_a_503(
    api_key_secret_arn: str, stub: OpenAIStub, user_pool: UserPool, user_token: Callable[..., str]
) -> None:
    # Given the quota store out of reach
    unreachable = {"AWS_ENDPOINT_URL_DYNAMODB": closed_port_url()}
    with serving_default(api_key_secret_arn, stub.base_url, user_pool, environment=unreachable) as api:
        # When a caller reads its usage
        answer = usage(api, user_token())

    # Then it is told to retry, in OpenAI's envelope
    assert answer.status == HTTPStatus.SERVICE_UNAVAILABLE, answer.data
    assert answer.error["code"] == "quota_store_unavailable"
    assert answer.headers["retry-after"] == "2"


def test_a_policy_without_budgets_lists_none(
    api_key_secret_arn: str, stub: OpenAIStub, user_pool: UserPool, user_token: Callable[..., str], tmp_path: Path
) -> None:
    # Given a policy that limits no calls
    policy = {"POLICY_PATH": str(shipped_policy(tmp_path, without_quotas))}
    with serving_default(api_key_secret_arn, stub.base_url, user_pool, environment=policy) as api:
        # When a caller reads its usage
        answer = usage(api, user_token())

    # Then there is nothing to list
    assert answer.status == HTTPStatus.OK, answer.data
    assert answer.json() == {"object": "realtime.usage", "data": []}


@pytest.mark.usefixtures("function_env")
def test_the_event_is_answered_by_the_handler(lambda_context: LambdaContext) -> None:
    # Given API Gateway's event for the route, its caller signed in and in no group
    event = load_event("usage.json")

    # When the handler is invoked with it
    answer = lambda_handler(event, lambda_context)

    # Then it answers the caller's usage, uncached, naming the request
    assert answer["statusCode"] == HTTPStatus.OK, answer["body"]
    assert answer["headers"]["Cache-Control"] == "no-store"
    assert answer["headers"]["x-request-id"] == event["requestContext"]["requestId"]
    listed = json.loads(answer["body"])
    assert [entry["profile"] for entry in listed["data"]] == ["voice", "live"]
    assert listed["data"][0]["calls"] == {"limit": 2, "open": 0}
