"""Lambda's Invoke API, asynchronously (clients/aws_lambda.py): the request botocore's client sends for
``invoke(InvocationType="Event")``, signed as botocore's own signer signs it, and each answer of Lambda's read as what
it means: queued, a fault that may pass, or a function the operator must fix."""

import json
from http import HTTPStatus
from typing import Any

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError, ReadTimeoutError

from tests.aws_requests import REGION, botocores_request, botocores_signature, catching, signature_of
from tests.output import Output
from voice_access.clients import aws_lambda
from voice_access.clients.aws_api import AwsMisconfigured, AwsUnavailable
from voice_access.clients.deadline import Deadline

ENDPOINT = "https://lambda.eu-west-1.amazonaws.com"
EVENT = {"action": "supervise", "call": {"id": "rtc_1", "profile": "voice"}, "note": "café ☕"}


@pytest.mark.parametrize(
    "function",
    [
        "voice-access-SupervisorFunction-AbC123",
        "arn:aws:lambda:eu-west-1:123456789012:function:voice-access-SupervisorFunction-AbC123",
        "arn:aws:lambda:eu-west-1:123456789012:function:supervisor:live",
    ],
    ids=["name", "arn", "arn-with-alias"],
)
@pytest.mark.parametrize("endpoint", [ENDPOINT, "http://127.0.0.1:4566"], ids=["aws", "loopback"])
def test_an_invocation_is_botocores_signed_as_botocore_signs_it(
    monkeypatch: pytest.MonkeyPatch, function: str, endpoint: str
) -> None:
    # Given Lambda queueing the invocation (202)
    with catching(monkeypatch, aws_lambda, answers=[(HTTPStatus.ACCEPTED, b"", {})]) as pools:
        # When the function invokes another asynchronously
        aws_lambda.invoke_async(endpoint, function, EVENT, REGION, Deadline.after(5))

    # Then it sent what botocore's client sends for invoke(InvocationType="Event"): the path (the name encoded as
    # botocore encodes it), the invocation type and the event as the body
    [sent] = pools.sent
    theirs = botocores_request(
        "lambda", "invoke", endpoint, FunctionName=function, InvocationType="Event", Payload=sent.body
    )
    assert (sent.method, sent.target) == (theirs.method, theirs.target)
    assert sent.headers["X-Amz-Invocation-Type"] == theirs.headers["X-Amz-Invocation-Type"] == "Event"
    assert json.loads(sent.body) == EVENT
    assert pools.endpoints == [endpoint]

    # and its signature is the one botocore's signer makes of the same request, for the service "lambda"
    assert "/lambda/aws4_request" in sent.headers["Authorization"]
    assert signature_of(sent) == botocores_signature(sent, endpoint, "lambda")


@pytest.mark.parametrize(
    ("status", "error_type", "unanswered"),
    [
        (HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequestsException", False),
        (HTTPStatus.CONFLICT, "ResourceConflictException", False),
        (HTTPStatus.INTERNAL_SERVER_ERROR, "ServiceException", True),
        (HTTPStatus.BAD_GATEWAY, "EC2ThrottledException", True),
    ],
)
def test_a_fault_that_may_pass_is_unavailable_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch, output: Output, status: int, error_type: str, unanswered: bool
) -> None:
    # Given Lambda answering with a fault that may pass
    answer = (
        status,
        json.dumps({"Type": "Service", "message": "try later"}).encode(),
        {"X-Amzn-ErrorType": error_type},
    )
    with catching(monkeypatch, aws_lambda, answers=[answer]), pytest.raises(AwsUnavailable) as caught:
        # When
        aws_lambda.invoke_async(ENDPOINT, "supervisor", EVENT, REGION, Deadline.after(5))

    # Then it may be retried, says whether the invocation may have been queued all the same, and is counted
    assert (caught.value.code, caught.value.aws_code, caught.value.unanswered) == (
        "lambda_unavailable",
        error_type,
        unanswered,
    )
    assert output.metric_count("DependencyErrors", dependency="lambda") == 1


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (HTTPStatus.NOT_FOUND, "ResourceNotFoundException"),
        (HTTPStatus.FORBIDDEN, "AccessDeniedException"),
        (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLargeException"),
    ],
)
def test_a_function_that_cannot_be_invoked_is_the_operators_to_fix(
    monkeypatch: pytest.MonkeyPatch, status: int, error_type: str
) -> None:
    # Given Lambda refusing the invocation for good
    body = json.dumps({"Type": "User", "message": "Function not found: supervisor"}).encode()
    with (
        catching(monkeypatch, aws_lambda, answers=[(status, body, {"X-Amzn-ErrorType": f"{error_type}:http://x"})]),
        pytest.raises(AwsMisconfigured) as caught,
    ):
        # When
        aws_lambda.invoke_async(ENDPOINT, "supervisor", EVENT, REGION, Deadline.after(5))

    # Then the operator is told Lambda's own words, and the caller only that AWS cannot be used
    assert caught.value.code == "lambda_misconfigured"
    assert caught.value.problem == f"lambda refused the Invoke: {error_type}: Function not found: supervisor"
    assert "supervisor" not in caught.value.message


@pytest.mark.parametrize(
    ("failure", "maybe_queued"),
    [
        (MaxRetryError(None, "/", NewConnectionError(None, "refused")), False),  # type: ignore[arg-type]
        (ReadTimeoutError(None, "/", "read timed out"), True),  # type: ignore[arg-type]
    ],
    ids=["no-connection", "no-answer"],
)
def test_an_invocation_unanswered_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, maybe_queued: bool
) -> None:
    # Given Lambda out of reach, or not answering
    with catching(monkeypatch, aws_lambda, failure=failure), pytest.raises(AwsUnavailable) as caught:
        # When
        aws_lambda.invoke_async(ENDPOINT, "supervisor", EVENT, REGION, Deadline.after(5))

    # Then: a retry may pass, and the caller knows whether Lambda may have queued it all the same
    assert caught.value.unanswered is maybe_queued


def test_without_credentials_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an environment without the execution role's credentials
    with catching(monkeypatch, aws_lambda) as pools:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        with pytest.raises(AwsMisconfigured) as caught:
            # When
            aws_lambda.invoke_async(ENDPOINT, "supervisor", EVENT, REGION, Deadline.after(5))

    # Then
    assert "AWS_ACCESS_KEY_ID" in caught.value.problem
    assert pools.sent == []


def test_a_success_other_than_queued_is_not_taken_for_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an answer of 200: a synchronous invocation's, not the queued one asked for
    answer: tuple[int, bytes, dict[str, Any]] = (HTTPStatus.OK, b"{}", {})
    with catching(monkeypatch, aws_lambda, answers=[answer]), pytest.raises(AwsMisconfigured):
        # When / Then
        aws_lambda.invoke_async(ENDPOINT, "supervisor", EVENT, REGION, Deadline.after(5))
