"""A call or GPT-Live session the service opens is handed to its supervisor: after OpenAI opened it, the call's
record in the quota store, the supervisor's asynchronous invocation (its event) and a one-time backstop schedule, side
by side; if any of them fails, the call is hung up at OpenAI, what the open took is given back, and the caller gets a
503 saying so. Before OpenAI is asked: the caller's budgets (a spent one is a 429 naming it and when it frees) and its
calls open at once (one too many is a 429). The local API serves the template's default deployment, a recording
Lambda Invoke API stands in for the supervisor function, and EventBridge Scheduler is moto's."""

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import openai
import pytest

from local.gateway import LocalApi
from local.user_pool import UserPool
from openai_stub.server import OpenAIStub
from tests.dynamodb_faults import DynamoDBFaults, StoreFault, closed_port_url
from tests.keys import TEST_API_KEY
from tests.local_api import Answer, post, serving_default
from tests.output import Output
from tests.policies import shipped_policy, without_quotas
from tests.supervision import Invocation, LambdaInvocations, Supervision, end_calls, scheduler_client
from tests.webrtc_offers import offer
from tests.windows import within_one_minute
from voice_access.clients.deadline import Deadline
from voice_access.clients.openai_api import hang_up
from voice_access.domain import ledger
from voice_access.domain.limits import DAY_SECONDS

CALLS_PATH = "/v1/realtime/calls"
LIVE_PATH = "/v1/live/sessions"
FUNCTION = "TokenVendingFunction"
CALL_SESSION = {"type": "realtime", "model": "gpt-realtime-2.1", "audio": {"output": {"voice": "cedar"}}}
LIVE_SESSION = {"model": "gpt-live-1", "audio": {"output": {"voice": "cedar"}}}
NOT_SUPERVISED = "could not supervise it, so it ended it at once"


Serve = Callable[..., AbstractContextManager[LocalApi]]


@pytest.fixture
def serve(api_key_secret_arn: str, stub: OpenAIStub, user_pool: UserPool, supervision: Supervision) -> Serve:
    """``serve(**environment)``: the template's default deployment with supervision started as in tests/supervision.py,
    ``environment`` replacing the function's own variables."""

    def start(**environment: str) -> AbstractContextManager[LocalApi]:
        return serving_default(
            api_key_secret_arn, stub.base_url, user_pool, environment={**supervision.environment, **environment}
        )

    return start


@pytest.fixture
def api(serve: Serve) -> Iterator[LocalApi]:
    with serve() as api:
        yield api


def client(api: LocalApi, token: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=token, base_url=f"{api.url}/v1", max_retries=0)


def open_call(api: LocalApi, token: str) -> Answer:
    """A call opened with the SDKs' form (the offer and a session), as the service answers it."""
    boundary = "b0undary"
    parts = [("sdp", "application/sdp", offer()), ("session", "application/json", json.dumps(CALL_SESSION))]
    body = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\nContent-Type: {kind}\r\n\r\n{text}\r\n'
            for name, kind, text in parts
        )
        + f"--{boundary}--\r\n"
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return post(api, CALLS_PATH, body.encode(), headers, timeout=30)


def function_environment(api: LocalApi) -> dict[str, str]:
    return dict(api.functions[FUNCTION].environment)


def item(dynamodb: Any, api: LocalApi, key: str) -> dict[str, Any]:
    found = dynamodb.get_item(
        TableName=function_environment(api)["QUOTA_TABLE_NAME"], Key={"pk": {"S": key}}, ConsistentRead=True
    )
    return dict(found.get("Item", {}))


def number(attribute: dict[str, str]) -> float:
    return float(attribute["N"])


def supervised_events(invocations: LambdaInvocations) -> list[Invocation]:
    return [invocation for invocation in invocations.invocations() if invocation.event["action"] == "supervise"]


def test_a_call_opened_is_handed_to_its_supervisor_with_its_record_and_its_backstop(
    api: LocalApi,
    user_token: Callable[..., str],
    stub: OpenAIStub,
    supervision: Supervision,
    secrets_manager_url: str,
    dynamodb: Any,
) -> None:
    # Given a signed-in user and the shipped voice profile (10 minutes a call, 2 calls at once)
    # When the SDK opens a call through the service
    answer = client(api, user_token()).realtime.calls.create(sdp=offer(), session=CALL_SESSION)  # type: ignore[arg-type]

    # Then the call is opened as before
    assert answer.response.status_code == HTTPStatus.CREATED
    call_id = answer.response.headers["location"].rpartition("/")[2]
    [(sent, parts)] = [(r, r.form or {}) for r in stub.requests if r.path == CALLS_PATH]

    # and the supervisor function (the template's) was invoked once, asynchronously, to supervise it: the call as the
    # service opened it (its id, the caller's safety identifier, its deadline 10 minutes on, the slot it holds) and
    # the session exactly as OpenAI got it
    environment = function_environment(api)
    [invocation] = supervision.invocations.invocations()
    assert invocation.function == environment["SUPERVISOR_FUNCTION_NAME"]
    assert invocation.invocation_type == "Event"
    event = invocation.event
    assert event["action"] == "supervise"
    assert event["generation"] == 0
    assert event["session"] == json.loads(parts["session"])
    call = event["call"]
    assert (call["id"], call["kind"], call["profile"], call["model"]) == (call_id, "call", "voice", "gpt-realtime-2.1")
    assert call["user"] == sent.safety_identifier
    assert call["deadline_at"] - call["started_at"] == pytest.approx(600)
    assert abs(call["started_at"] - time.time()) < 60
    assert re.fullmatch(r"[0-9a-f]{32}", call["lease"])
    assert call["slot"] == 0

    # and its backstop is a one-time schedule 30 s past its deadline that invokes the supervisor (its ARN) as the
    # scheduler role with the backstop's event, once more twice if it must, and is deleted once it has run
    schedule = scheduler_client(secrets_manager_url).get_schedule(Name=f"end-{call_id}", GroupName=supervision.group)
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(math.ceil(call["deadline_at"] + 30)))
    assert schedule["ScheduleExpression"] == f"at({at})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    target = schedule["Target"]
    assert (target["Arn"], target["RoleArn"]) == (
        environment["SUPERVISOR_FUNCTION_ARN"],
        environment["BACKSTOP_ROLE_ARN"],
    )
    assert json.loads(target["Input"]) == {"action": "backstop", "call": call}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2

    # and the call's record holds who opened it, with what, and until when; the caller's slot is held by its lease
    record = item(dynamodb, api, f"call#{call_id}")
    assert (record["user"]["S"], record["profile"]["S"], record["kind"]["S"], record["model"]["S"]) == (
        call["user"],
        "voice",
        "call",
        "gpt-realtime-2.1",
    )
    assert number(record["deadline_at"]) == pytest.approx(call["deadline_at"])
    assert "ended_at" not in record
    slots = item(dynamodb, api, f"open#voice#{call['user']}")
    assert slots["l0"] == {"S": call["lease"]}
    assert number(slots["s0"]) == math.ceil(call["deadline_at"] + 120)


def test_a_live_session_opened_is_handed_to_its_supervisor(
    api: LocalApi, user_token: Callable[..., str], stub: OpenAIStub, supervision: Supervision, secrets_manager_url: str
) -> None:
    # Given a signed-in user and the shipped live profile
    # When the SDK opens a GPT-Live session through the service
    opened = client(api, user_token()).live.create(
        session=LIVE_SESSION,  # type: ignore[arg-type]
        transport={"type": "webrtc", "sdp": offer()},
    )

    # Then its supervisor was told of it as a Live session, with the session OpenAI got (the caller named in it)
    [sent] = [request for request in stub.requests if request.path == LIVE_PATH]
    [invocation] = supervision.invocations.invocations()
    call = invocation.event["call"]
    assert (call["id"], call["kind"], call["profile"], call["model"]) == (
        opened.session.id,
        "live_session",
        "live",
        "gpt-live-1",
    )
    assert isinstance(sent.json, dict)
    assert invocation.event["session"] == sent.json["session"]
    assert invocation.event["session"]["safety_identifier"] == call["user"]
    assert call["deadline_at"] - call["started_at"] == pytest.approx(600)

    # and its backstop is scheduled
    schedule = scheduler_client(secrets_manager_url).get_schedule(
        Name=f"end-{opened.session.id}", GroupName=supervision.group
    )
    assert json.loads(schedule["Target"]["Input"]) == {"action": "backstop", "call": call}


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param((HTTPStatus.INTERNAL_SERVER_ERROR, "ServiceException"), id="lambda-fails"),
        pytest.param((HTTPStatus.NOT_FOUND, "ResourceNotFoundException"), id="no-such-function"),
        pytest.param((HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequestsException"), id="lambda-throttles"),
    ],
)
def test_a_call_whose_supervisor_cannot_be_started_is_hung_up_and_given_back(
    api: LocalApi,
    user_token: Callable[..., str],
    stub: OpenAIStub,
    supervision: Supervision,
    secrets_manager_url: str,
    dynamodb: Any,
    output: Output,
    failure: tuple[HTTPStatus, str],
) -> None:
    def attempt(n: int) -> tuple[Answer, Answer, Invocation]:
        token = user_token(user=f"unsupervised-{n}")
        # Given Lambda failing the next invocation
        supervision.invocations.fail_next(*failure)

        # When a user opens a call, and then another
        refused = open_call(api, token)
        [*_, invocation] = supervision.invocations.invocations()
        return refused, open_call(api, token), invocation

    refused, next_call, invocation = within_one_minute(attempt)

    # Then the first is answered 503 in OpenAI's envelope, saying the call could not be supervised and ended
    assert refused.status == HTTPStatus.SERVICE_UNAVAILABLE, refused.data
    assert refused.error["type"] == "server_error"
    assert refused.error["code"] == "call_not_supervised"
    assert NOT_SUPERVISED in refused.error["message"]
    assert refused.headers["retry-after"] == "2"

    # and OpenAI was asked to hang it up, and did: no call of it runs unsupervised
    call = invocation.event["call"]
    assert f"{CALLS_PATH}/{call['id']}/hangup" in [request.path for request in stub.requests]
    assert stub.wait_for_call(call["id"], until="ended", timeout=10).ended is not None

    # and what its open took is given back: the window's unit (the next call leaves 9 of the minute's 10), its slot
    # (the next call takes slot 0 again), its backstop (deleted); its record says it ended unsupervised
    assert next_call.status == HTTPStatus.CREATED, next_call.data
    assert next_call.headers["x-ratelimit-remaining-requests"] == "9"
    assert supervised_events(supervision.invocations)[-1].event["call"]["slot"] == 0
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        scheduler_client(secrets_manager_url).get_schedule(Name=f"end-{call['id']}", GroupName=supervision.group)
    assert item(dynamodb, api, f"call#{call['id']}")["end_reason"] == {"S": "not_supervised"}

    # and it is logged and counted
    assert any(
        log.get("message") == "call not supervised: hanging it up" and log.get("step") == "supervisor"
        for log in output.logs()
    )
    assert output.metric_count("SupervisionFailures", step="supervisor") >= 1


def test_a_call_whose_backstop_cannot_be_scheduled_is_hung_up(
    serve: Serve, user_token: Callable[..., str], stub: OpenAIStub, supervision: Supervision, dynamodb: Any
) -> None:
    # Given EventBridge Scheduler out of reach
    with serve(AWS_ENDPOINT_URL_SCHEDULER=closed_port_url()) as api:
        # When a user opens a call
        answer = open_call(api, user_token())

        # Then it is refused as unsupervised, hung up, and its record says so: the supervisor started beside the
        # schedule finds the call ended
        assert answer.status == HTTPStatus.SERVICE_UNAVAILABLE, answer.data
        assert answer.error["code"] == "call_not_supervised"
        [invocation] = supervision.invocations.invocations()
        call_id = invocation.event["call"]["id"]
        assert stub.wait_for_call(call_id, until="ended", timeout=10).ended is not None
        assert item(dynamodb, api, f"call#{call_id}")["end_reason"] == {"S": "not_supervised"}


def test_a_call_whose_record_cannot_be_written_is_hung_up(
    serve: Serve,
    user_token: Callable[..., str],
    stub: OpenAIStub,
    supervision: Supervision,
    secrets_manager_url: str,
    tmp_path: Path,
) -> None:
    # Given a policy that limits nothing (the record is the open's only write) and DynamoDB throttling every request
    def no_limits(policy: dict[str, Any]) -> None:
        without_quotas(policy)
        policy.pop("money_brake", None)

    with DynamoDBFaults(secrets_manager_url) as faults:
        faults.fail_every(StoreFault.throttling())
        environment = {
            "POLICY_PATH": str(shipped_policy(tmp_path, no_limits)),
            "AWS_ENDPOINT_URL_DYNAMODB": faults.endpoint_url,
        }
        with serve(**environment) as api:
            # When a user opens a call
            answer = open_call(api, user_token())

        # Then OpenAI opened it, but it was refused as unsupervised and hung up, and its backstop deleted
        assert answer.status == HTTPStatus.SERVICE_UNAVAILABLE, answer.data
        assert answer.error["code"] == "call_not_supervised"
        assert faults.targets == ["DynamoDB_20120810.UpdateItem"]
    [invocation] = supervision.invocations.invocations()
    call_id = invocation.event["call"]["id"]
    assert stub.wait_for_call(call_id, until="ended", timeout=10).ended is not None
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        scheduler_client(secrets_manager_url).get_schedule(Name=f"end-{call_id}", GroupName=supervision.group)


@pytest.mark.parametrize("path", [CALLS_PATH, LIVE_PATH])
def test_without_a_supervisor_nothing_is_opened(
    serve: Serve, user_token: Callable[..., str], stub: OpenAIStub, supervision: Supervision, path: str
) -> None:
    # Given a function without its supervisor's name (as `sam local` writes an unset variable)
    with serve(SUPERVISOR_FUNCTION_NAME="") as api:
        # When a user opens a call or a Live session
        if path == CALLS_PATH:
            answer = open_call(api, user_token())
        else:
            body = json.dumps({"session": LIVE_SESSION, "transport": {"type": "webrtc", "sdp": offer()}}).encode()
            headers = {"Authorization": f"Bearer {user_token()}", "Content-Type": "application/json"}
            answer = post(api, path, body, headers, timeout=30)

    # Then it is refused as a broken deployment, and nothing reached OpenAI or Lambda
    assert answer.status == HTTPStatus.INTERNAL_SERVER_ERROR, answer.data
    assert answer.error["code"] == "settings_invalid"
    assert stub.requests == []
    assert supervision.invocations.invocations() == []


def test_a_caller_with_a_spent_budget_is_refused_naming_it_and_when_it_frees(
    api: LocalApi,
    user_token: Callable[..., str],
    stub: OpenAIStub,
    supervision: Supervision,
    dynamodb: Any,
    output: Output,
) -> None:
    def attempt(n: int) -> tuple[Answer, float]:
        token = user_token(user=f"spent-{n}")
        # Given a caller whose calls have cost the voice profile's whole budget of $1.00 today
        assert open_call(api, token).status == HTTPStatus.CREATED
        user = supervised_events(supervision.invocations)[-1].event["call"]["user"]
        index, _ = ledger.window_at(DAY_SECONDS, time.time())
        dynamodb.put_item(
            TableName=function_environment(api)["QUOTA_TABLE_NAME"],
            Item={"pk": {"S": f"budget#voice#usd#{DAY_SECONDS}#{index}#{user}"}, "used": {"N": "1000000"}},
        )

        # When it opens another call
        return open_call(api, token), time.time()

    asked_before = len(stub.requests)
    refused, now = within_one_minute(attempt)

    # Then it is refused, 429, naming the budget and when it frees (00:00 UTC), with Retry-After until then and no
    # request rate-limit headers (a budget counts dollars, not requests); OpenAI was not asked
    assert refused.status == HTTPStatus.TOO_MANY_REQUESTS, refused.data
    assert refused.error["code"] == "budget_spent"
    assert refused.error["message"].startswith(
        "Budget spent for profile 'voice': $1.00 per day for each user. It frees at 00:00 UTC (in "
    )
    frees_in = math.ceil(ledger.window_at(DAY_SECONDS, now)[1] - now)
    assert abs(int(refused.headers["retry-after"]) - frees_in) <= 60
    assert refused.headers["x-should-retry"] == "false" or frees_in <= 60
    assert "x-ratelimit-limit-requests" not in refused.headers
    assert len(stub.requests) - asked_before == 1  # the call that spent it, not the refused one
    assert output.metric_count("QuotaRefusals", limit="budget") >= 1


def test_a_caller_with_as_many_calls_open_as_allowed_is_refused_until_one_ends(
    api: LocalApi,
    user_token: Callable[..., str],
    stub: OpenAIStub,
    supervision: Supervision,
    secrets_manager_url: str,
) -> None:
    def opened() -> int:
        return [request.path for request in stub.requests].count(CALLS_PATH)

    def attempt(n: int) -> tuple[list[int], Answer, int, Answer, int]:
        token = user_token(user=f"busy-{n}")
        # Given a caller with two calls open, as many as the voice profile allows at once
        before = opened()
        statuses = [open_call(api, token).status for _ in range(2)]

        # When it opens a third, and again once its calls have ended (as their supervisors end them)
        refused = open_call(api, token)
        asked = opened() - before
        end_calls(supervision.invocations, function_environment(api)["QUOTA_TABLE_NAME"], secrets_manager_url)
        return statuses, refused, asked, open_call(api, token), opened() - before

    statuses, refused, asked, after, asked_in_all = within_one_minute(attempt)

    # Then the third is refused, 429, saying how many at once and what to do, with Retry-After when the soonest
    # slot surely frees (its expiry: the call's 10 minutes and 2 more), and OpenAI was asked for the two only
    assert statuses == [HTTPStatus.CREATED, HTTPStatus.CREATED]
    assert refused.status == HTTPStatus.TOO_MANY_REQUESTS, refused.data
    assert refused.error["code"] == "too_many_calls"
    assert refused.error["message"] == (
        "Too many calls for profile 'voice': 2 calls at once for each user. End one and try again."
    )
    assert 600 <= int(refused.headers["retry-after"]) <= 722
    assert refused.headers["x-should-retry"] == "false"
    assert "x-ratelimit-limit-requests" not in refused.headers
    assert asked == 2
    # and once they ended, a call opens again
    assert after.status == HTTPStatus.CREATED, after.data
    assert asked_in_all == 3


def test_openai_hangs_a_call_up_once(api: LocalApi, user_token: Callable[..., str], stub: OpenAIStub) -> None:
    # Given a call the service opened
    answer = client(api, user_token()).realtime.calls.create(sdp=offer())
    location = answer.response.headers["location"]

    def hang_up_call() -> bool:
        return hang_up(
            f"{stub.base_url}{location}/hangup",
            TEST_API_KEY,
            Deadline.after(10),
            key_source="the test's key",
            connect_timeout=2,
            read_timeout=5,
        )

    # When the service hangs it up, and again
    first, second = hang_up_call(), hang_up_call()

    # Then the first ended it, and the second found no such call: no failure
    assert (first, second) == (True, False)
    assert stub.wait_for_call(location.rpartition("/")[2], until="ended", timeout=10).ended is not None
