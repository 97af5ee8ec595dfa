"""The functions a template declares as the local run invokes them asynchronously (local/template.py's
read_functions): their names and ARNs as Ref and Fn::GetAtt give them, their EventInvokeConfig and reserved
concurrency; and the record a failed invocation leaves in its destination (local/lambda_service.py)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from local.cloudformation import TemplateError
from local.lambda_service import Invocation, State, destination_record
from local.template import (
    DEFAULT_EVENT_AGE_SECONDS,
    DEFAULT_RETRY_ATTEMPTS,
    EventInvokeConfig,
    LocalFunction,
    read_functions,
)
from tests.paths import TEMPLATE

REGION = "us-east-1"
HEADER = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Reserve:
    Type: String
    Default: "no"
Conditions:
  Reserving: !Equals [!Ref Reserve, "yes"]
Globals:
  Function:
    CodeUri: code/
    Handler: app.handler
Resources:
  Failures:
    Type: AWS::SQS::Queue
"""
ONE_SHOT = """
  OneShot:
    Type: AWS::Serverless::Function
    Properties:
      ReservedConcurrentExecutions: !If [Reserving, 3, !Ref AWS::NoValue]
      EventInvokeConfig:
        MaximumRetryAttempts: 0
        MaximumEventAgeInSeconds: 60
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt Failures.Arn
"""


def functions_of(tmp_path: Path, resources: str, **overrides: str) -> dict[str, LocalFunction]:
    path = tmp_path / "template.yaml"
    path.write_text(HEADER + resources)
    return read_functions(path, overrides, REGION)


def test_a_function_no_route_invokes_is_read_with_lambdas_defaults(tmp_path: Path) -> None:
    # Given a function with no EventInvokeConfig
    resources = "  Plain:\n    Type: AWS::Serverless::Function\n"

    # When the template's functions are read
    functions = functions_of(tmp_path, resources)

    # Then it is there, named as Ref and Fn::GetAtt name it, with Lambda's defaults for asynchronous invocations
    plain = functions["Plain"]
    assert (plain.name, plain.arn) == ("local-Plain", f"arn:aws:lambda:{REGION}:123456789012:function:local-Plain")
    assert plain.event_invoke == EventInvokeConfig(DEFAULT_RETRY_ATTEMPTS, DEFAULT_EVENT_AGE_SECONDS, None)
    assert plain.reserved_concurrency is None


@pytest.mark.parametrize(("reserve", "reserved"), [("no", None), ("yes", 3)])
def test_a_functions_event_invoke_config_and_reserved_concurrency_are_read(
    tmp_path: Path, reserve: str, reserved: int | None
) -> None:
    # Given a function with an EventInvokeConfig and a reserved concurrency a parameter sets or leaves out
    # When the template's functions are read
    one_shot = functions_of(tmp_path, ONE_SHOT, Reserve=reserve)["OneShot"]

    # Then both are as the stack would have them
    queue_arn = f"arn:aws:sqs:{REGION}:123456789012:local-Failures"
    assert one_shot.event_invoke == EventInvokeConfig(0, 60, queue_arn)
    assert one_shot.reserved_concurrency == reserved


@pytest.mark.parametrize(
    ("destinations", "refusal"),
    [
        ("OnSuccess: {Type: SQS, Destination: !GetAtt Failures.Arn}", "DestinationConfig OnSuccess is not served"),
        ("OnFailure: {Type: SNS, Destination: arn:aws:sns:us-east-1:123456789012:t}", "only an OnFailure of Type SQS"),
        ("OnFailure: {Type: SQS}", "only an OnFailure of Type SQS with its Destination"),
    ],
)
def test_a_destination_the_local_run_cannot_honour_is_refused(tmp_path: Path, destinations: str, refusal: str) -> None:
    # Given a function whose EventInvokeConfig names a destination other than an SQS queue on failure
    resources = f"""
  Odd:
    Type: AWS::Serverless::Function
    Properties:
      EventInvokeConfig:
        DestinationConfig:
          {destinations}
"""
    # When the template's functions are read
    # Then the template is refused, saying what is served
    with pytest.raises(TemplateError, match=refusal):
        functions_of(tmp_path, resources)


def test_the_supervisor_is_invoked_as_the_opening_function_names_it() -> None:
    # Given template.yaml as the local run reads it
    # When its functions are read
    functions = read_functions(TEMPLATE, {}, REGION)

    # Then the name and ARN the opening function is given are the supervisor's, which is never retried and sends
    # its failures to the template's queue
    supervisor, opener = functions["SupervisorFunction"], functions["TokenVendingFunction"]
    assert opener.environment["SUPERVISOR_FUNCTION_NAME"] == supervisor.name
    assert opener.environment["SUPERVISOR_FUNCTION_ARN"] == supervisor.arn
    assert supervisor.event_invoke == EventInvokeConfig(
        0, 60, f"arn:aws:sqs:{REGION}:123456789012:local-SupervisorFailuresQueue"
    )


def test_an_event_never_run_leaves_a_record_without_a_response() -> None:
    # Given an invocation that expired unrun, and one that failed once
    expired = Invocation("r-1", "F", {"a": 1}, State.EXPIRED, 0, "", None)
    error = {"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: r-2 Error: Task timed out after 3.00 seconds"}
    failed = Invocation("r-2", "F", {"b": 2}, State.KILLED, 1, "", error)
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:f"
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

    # When their destination records are made
    records = [
        destination_record(expired, arn, "EventAgeExceeded", at),
        destination_record(failed, arn, "RetriesExhausted", at),
    ]

    # Then they are Lambda's: the response only where the function ran
    assert records == [
        {
            "version": "1.0",
            "timestamp": "2026-01-02T03:04:05.678Z",
            "requestContext": {
                "requestId": "r-1",
                "functionArn": f"{arn}:$LATEST",
                "condition": "EventAgeExceeded",
                "approximateInvokeCount": 0,
            },
            "requestPayload": {"a": 1},
        },
        {
            "version": "1.0",
            "timestamp": "2026-01-02T03:04:05.678Z",
            "requestContext": {
                "requestId": "r-2",
                "functionArn": f"{arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 1,
            },
            "requestPayload": {"b": 2},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": error,
        },
    ]
