"""EventBridge Scheduler (clients/scheduler.py): a call's backstop made and deleted with the requests botocore's
client sends for CreateSchedule and DeleteSchedule, signed as botocore's own signer signs them; each answer read as
what it means."""

import json
from datetime import UTC, datetime
from http import HTTPStatus

import pytest

from tests.aws_requests import REGION, botocores_request, botocores_signature, catching, signature_of
from voice_access.clients import scheduler
from voice_access.clients.aws_api import AwsMisconfigured, AwsUnavailable
from voice_access.clients.deadline import Deadline

ENDPOINT = "https://scheduler.eu-west-1.amazonaws.com"
GROUP = "voice-access-backstops"
TARGET = "arn:aws:lambda:eu-west-1:123456789012:function:voice-access-SupervisorFunction-AbC123"
ROLE = "arn:aws:iam::123456789012:role/voice-access-BackstopSchedulerRole-XyZ"
EVENT = {"action": "backstop", "call": {"id": "rtc_abc", "profile": "voice", "note": "café"}}
# 2026-11-28T18:30:05.2Z: a fraction of a second past, so the schedule is the next whole second.
AT = datetime(2026, 11, 28, 18, 30, 5, tzinfo=UTC).timestamp() + 0.2


def create(endpoint: str = ENDPOINT, name: str = "end-rtc_abc") -> None:
    scheduler.create_backstop(endpoint, GROUP, name, AT, TARGET, ROLE, EVENT, REGION, Deadline.after(5))


@pytest.mark.parametrize("endpoint", [ENDPOINT, "http://127.0.0.1:4566"], ids=["aws", "loopback"])
def test_a_backstop_is_botocores_create_schedule_signed_as_botocore_signs_it(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    # Given Scheduler making the schedule
    answer: tuple[int, bytes, dict[str, str]] = (
        HTTPStatus.OK,
        b'{"ScheduleArn": "arn:aws:scheduler:eu-west-1:123456789012:schedule/g/n"}',
        {},
    )
    with catching(monkeypatch, scheduler, answers=[answer]) as pools:
        # When a call's backstop is made
        create(endpoint)

    # Then it is the request botocore's client sends for the same schedule: a one-time schedule at the next whole
    # second after the moment asked for, in UTC, exactly then, invoking the target as the role with the event,
    # twice more if that fails, deleted once it has run
    [sent] = pools.sent
    ours = json.loads(sent.body)
    theirs = botocores_request(
        "scheduler",
        "create_schedule",
        endpoint,
        answer=answer[1],
        Name="end-rtc_abc",
        GroupName=GROUP,
        ScheduleExpression="at(2026-11-28T18:30:06)",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE, "Input": json.dumps(EVENT), "RetryPolicy": {"MaximumRetryAttempts": 2}},
        ActionAfterCompletion="DELETE",
        ClientToken="end-rtc_abc",
    )
    assert (sent.method, sent.target) == (theirs.method, theirs.target) == ("POST", "/schedules/end-rtc_abc")
    expected = json.loads(theirs.body)
    assert json.loads(ours["Target"].pop("Input")) == json.loads(expected["Target"].pop("Input")) == EVENT
    assert ours == expected

    # and its signature is the one botocore's signer makes of the same request, for the service "scheduler"
    assert "/scheduler/aws4_request" in sent.headers["Authorization"]
    assert signature_of(sent) == botocores_signature(sent, endpoint, "scheduler")


@pytest.mark.parametrize("endpoint", [ENDPOINT, "http://127.0.0.1:4566"], ids=["aws", "loopback"])
def test_a_backstop_is_deleted_with_botocores_delete_schedule_and_its_query_signed(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    # Given Scheduler deleting it
    with catching(monkeypatch, scheduler, answers=[(HTTPStatus.OK, b"{}", {})]) as pools:
        # When
        deleted = scheduler.delete_backstop(endpoint, "group.with:odd/chars", "end-rtc_abc", REGION, Deadline.after(5))

    # Then it went as botocore sends it (the group in the query, encoded so), signed as botocore signs a query
    [sent] = pools.sent
    theirs = botocores_request(
        "scheduler", "delete_schedule", endpoint, Name="end-rtc_abc", GroupName="group.with:odd/chars"
    )
    assert deleted is True
    assert (sent.method, sent.path) == (theirs.method, theirs.path) == ("DELETE", "/schedules/end-rtc_abc")
    assert sent.query == "groupName=group.with%3Aodd%2Fchars"
    assert sent.query in theirs.query.split("&")  # botocore adds an idempotency token of its own
    assert sent.body == b""
    assert signature_of(sent) == botocores_signature(sent, endpoint, "scheduler")


def test_a_backstop_already_gone_is_no_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no such schedule (it ran, or was deleted)
    body = b'{"Message": "Schedule end-rtc_abc does not exist."}'
    answer = (HTTPStatus.NOT_FOUND, body, {"X-Amzn-ErrorType": "ResourceNotFoundException"})
    with catching(monkeypatch, scheduler, answers=[answer]):
        # When / Then
        assert scheduler.delete_backstop(ENDPOINT, GROUP, "end-rtc_abc", REGION, Deadline.after(5)) is False


def test_a_backstop_already_made_under_its_name_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a schedule of that name there already (a backstop's name is its call's)
    answer = (HTTPStatus.CONFLICT, b'{"Message": "exists"}', {"X-Amzn-ErrorType": "ConflictException"})
    with catching(monkeypatch, scheduler, answers=[answer]):
        # When / Then it is no failure
        create()


@pytest.mark.parametrize(
    ("status", "error_type", "raised"),
    [
        (HTTPStatus.TOO_MANY_REQUESTS, "ThrottlingException", AwsUnavailable),
        (HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerException", AwsUnavailable),
        (HTTPStatus.NOT_FOUND, "ResourceNotFoundException", AwsMisconfigured),  # no such group
        (HTTPStatus.BAD_REQUEST, "ValidationException", AwsMisconfigured),
        (HTTPStatus.FORBIDDEN, "AccessDeniedException", AwsMisconfigured),
        (HTTPStatus.PAYMENT_REQUIRED, "ServiceQuotaExceededException", AwsMisconfigured),
    ],
)
def test_a_backstop_scheduler_refuses_is_a_fault_or_the_operators(
    monkeypatch: pytest.MonkeyPatch, status: int, error_type: str, raised: type[Exception]
) -> None:
    # Given Scheduler refusing to make it
    answer = (status, b'{"Message": "no"}', {"X-Amzn-ErrorType": error_type})
    with catching(monkeypatch, scheduler, answers=[answer]), pytest.raises(raised) as caught:
        # When
        create()

    # Then a fault that may pass may be retried; anything else is the operator's, in Scheduler's words
    if isinstance(caught.value, AwsMisconfigured):
        assert caught.value.problem == f"scheduler refused the CreateSchedule: {error_type}: no"
        assert caught.value.code == "scheduler_misconfigured"
    else:
        assert caught.value.code == "scheduler_unavailable"  # type: ignore[attr-defined]


def test_a_schedule_that_cannot_be_deleted_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Scheduler refusing the deletion (access denied)
    answer = (HTTPStatus.FORBIDDEN, b'{"Message": "denied"}', {"X-Amzn-ErrorType": "AccessDeniedException"})
    with catching(monkeypatch, scheduler, answers=[answer]), pytest.raises(AwsMisconfigured):
        # When / Then
        scheduler.delete_backstop(ENDPOINT, GROUP, "end-rtc_abc", REGION, Deadline.after(5))


@pytest.mark.parametrize(
    ("call_id", "name"),
    [
        ("rtc_B9x-Qm_3", "end-rtc_B9x-Qm_3"),
        ("live_" + "a" * 55, "end-live_" + "a" * 55),  # 64 characters: as it is
    ],
)
def test_a_backstop_is_named_for_its_call(call_id: str, name: str) -> None:
    # Given / When / Then
    assert scheduler.backstop_name(call_id) == name


@pytest.mark.parametrize("call_id", ["rtc_" + "b" * 100, "live_with.dots", "live_ü"])
def test_a_call_id_too_long_or_odd_for_a_name_is_named_by_its_digest(call_id: str) -> None:
    # Given an id a schedule's name (and its idempotency token) cannot hold
    # When
    name = scheduler.backstop_name(call_id)

    # Then the name fits Scheduler's rules, and is the call's own
    assert len(name) <= 64
    assert name.startswith("end-")
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    assert name != scheduler.backstop_name(call_id + "x")
