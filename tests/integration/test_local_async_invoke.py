"""Lambda's asynchronous invocations as the local run gives them (local/lambda_service.py): a small template's
functions, invoked through the signed Invoke API, each invocation in a process of its own with the template's
environment, killed at its timeout or by the tests, retried and sent to its OnFailure queue (moto's SQS) as its
EventInvokeConfig says."""

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http import HTTPStatus
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.exceptions import ClientError

from local.aws import FAKE_CREDENTIALS, REGION, sqs_client
from local.lambda_service import LocalLambda, NotRunning, State
from local.stand_ins import AsyncInvocations, start_async_invocations

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    CodeUri: code/
    Handler: worker.handler
    Timeout: 2
    Environment:
      Variables:
        GREETING: hello
Resources:
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      EventInvokeConfig:
        MaximumRetryAttempts: 0
        MaximumEventAgeInSeconds: 60
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt FailuresQueue.Arn
  RetryingFunction:
    Type: AWS::Serverless::Function
    Properties:
      EventInvokeConfig:
        MaximumRetryAttempts: 1
  SerialFunction:
    Type: AWS::Serverless::Function
    Properties:
      ReservedConcurrentExecutions: 1
      EventInvokeConfig:
        MaximumRetryAttempts: 0
        MaximumEventAgeInSeconds: 60
        DestinationConfig:
          OnFailure:
            Type: SQS
            Destination: !GetAtt FailuresQueue.Arn
  FailuresQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
"""
# What each invocation tells of itself on stdout, then what its event asks of it.
WORKER = """
import importlib.util
import json
import os
import sys
import threading

import boto3


def handler(event, context):
    if "runs" in event:
        with open(event["runs"], "a") as runs:
            runs.write(context.aws_request_id + "\\n")
    names = ("GREETING", "FAREWELL", "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT", "AWS_ENDPOINT_URL_LAMBDA")
    print(json.dumps({
        "pid": os.getpid(),
        "environment": {name: os.environ.get(name) for name in names},
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "cwd": os.getcwd(),
        "first_path": sys.path[0],
        "sees_repository": any(importlib.util.find_spec(name) for name in ("local", "openai_stub")),
    }), flush=True)
    action = event.get("action")
    if action == "fail":
        raise RuntimeError("told to fail")
    if action == "hang":
        print("hanging", flush=True)
        threading.Event().wait()
    if action == "invoke":
        boto3.client("lambda").invoke(
            FunctionName=event["target"], InvocationType="Event", Payload=json.dumps(event["payload"])
        )
    return {"ok": True}
"""
WORKER_NAME = "local-WorkerFunction"
WORKER_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{WORKER_NAME}"


class Clock:
    """time.time, moved on by the test: the age of the events waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "worker.py").write_text(WORKER)
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def invocations(template: Path, secrets_manager_url: str, clock: Clock) -> Iterator[AsyncInvocations]:
    with ExitStack() as running:
        yield start_async_invocations(
            running,
            template,
            {},
            secrets_manager_url,
            environment=FAKE_CREDENTIALS,  # the execution role's, as make run gives them
            unique=True,
            clock=clock,
            retry_delays=(0.0,),
        )


@pytest.fixture
def functions(invocations: AsyncInvocations) -> LocalLambda:
    return invocations.functions


def lambda_client(url: str, credentials: dict[str, str] = FAKE_CREDENTIALS) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def told(output: str) -> dict[str, Any]:
    """What the worker told of itself: the first line of its output."""
    told: dict[str, Any] = json.loads(output.splitlines()[0])
    return told


def failure_records(invocations: AsyncInvocations, secrets_manager_url: str) -> list[dict[str, Any]]:
    """Every record in the template's FailuresQueue, oldest first."""
    sqs = sqs_client(secrets_manager_url)
    url = invocations.queues.url("FailuresQueue")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted((json.loads(message["Body"]) for message in messages), key=lambda record: record["timestamp"])


def test_an_asynchronous_invocation_runs_in_a_process_of_its_own_with_the_templates_environment(
    functions: LocalLambda, template: Path
) -> None:
    # Given a variable set for the tests over the template's
    functions.override("WorkerFunction", {"FAREWELL": "bye"})
    client = lambda_client(functions.url)

    # When the function is invoked asynchronously twice, by its name and by its ARN
    answers = [
        client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": n}))
        for n, name in enumerate((WORKER_NAME, WORKER_ARN))
    ]

    # Then each was accepted, and ran in a new process with its function's environment, code root and timeout
    assert [answer["StatusCode"] for answer in answers] == [HTTPStatus.ACCEPTED] * 2
    ran = [functions.wait_for("WorkerFunction", index=n) for n in range(2)]
    assert [invocation.state for invocation in ran] == [State.SUCCEEDED] * 2
    assert [invocation.event for invocation in ran] == [{"n": 0}, {"n": 1}]
    tells = [told(invocation.output) for invocation in ran]
    assert len({tell["pid"] for tell in tells} | {os.getpid()}) == 3
    code_root = str((template.parent / "code").resolve())
    for tell in tells:
        assert tell["environment"] == {
            "GREETING": "hello",
            "FAREWELL": "bye",
            "AWS_LAMBDA_FUNCTION_NAME": WORKER_NAME,
            "LAMBDA_TASK_ROOT": code_root,
            "AWS_ENDPOINT_URL_LAMBDA": functions.url,
        }
        assert tell["function_name"] == WORKER_NAME
        assert (tell["cwd"], tell["first_path"]) == (code_root, code_root)
        assert not tell["sees_repository"]
        assert 0 < tell["remaining_ms"] <= 2000


def test_a_function_invokes_another_through_the_endpoint_the_run_gives_it(functions: LocalLambda) -> None:
    # Given an event asking the worker to invoke the function by its name, with the SDK and its own credentials
    functions.override("WorkerFunction", timeout=60)  # a busy machine may take its time making the SDK's client
    event = {"action": "invoke", "target": WORKER_NAME, "payload": {"from": "the worker"}}

    # When it is invoked
    functions.invoke_async(WORKER_NAME, json.dumps(event).encode())

    # Then both invocations ran, the second with the payload the first sent
    first, second = (functions.wait_for("WorkerFunction", index=n) for n in range(2))
    assert (first.state, second.state) == (State.SUCCEEDED, State.SUCCEEDED)
    assert second.event == {"from": "the worker"}


def test_a_function_past_its_timeout_is_killed_and_its_failure_sent_to_its_queue_once(
    invocations: AsyncInvocations, functions: LocalLambda, secrets_manager_url: str, tmp_path: Path
) -> None:
    # Given an event that makes the worker wait for ever (its Timeout is 2 s, MaximumRetryAttempts 0)
    runs = tmp_path / "runs"
    event = {"action": "hang", "runs": str(runs)}

    # When it is invoked
    request_id = functions.invoke_async(WORKER_NAME, json.dumps(event).encode())

    # Then it was killed at its timeout, tried once, and its record is in the OnFailure queue
    invocation = functions.wait_for("WorkerFunction")
    assert (invocation.state, invocation.attempts) == (State.KILLED, 1)
    assert invocation.error == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 2.00 seconds",
    }
    assert runs.read_text().splitlines() == [request_id]
    (record,) = failure_records(invocations, secrets_manager_url)
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{WORKER_ARN}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == event
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"] == invocation.error
    assert record["timestamp"].endswith("Z")


def test_a_running_invocation_killed_is_a_crash_sent_to_its_queue(
    invocations: AsyncInvocations, functions: LocalLambda, secrets_manager_url: str, tmp_path: Path
) -> None:
    # Given an invocation running (and time enough before its timeout)
    functions.override("WorkerFunction", timeout=600)
    runs = tmp_path / "runs"
    request_id = functions.invoke_async(WORKER_NAME, json.dumps({"action": "hang", "runs": str(runs)}).encode())
    functions.wait_until(lambda all_: any("hanging" in invocation.output for invocation in all_))

    # When it is killed
    functions.kill(request_id)

    # Then it failed as a crashed runtime, was not tried again, and its record is in the queue
    invocation = functions.wait_for("WorkerFunction")
    assert (invocation.state, invocation.attempts) == (State.KILLED, 1)
    assert invocation.error == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
    }
    assert runs.read_text().splitlines() == [request_id]
    (record,) = failure_records(invocations, secrets_manager_url)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responsePayload"] == invocation.error
    with pytest.raises(NotRunning):
        functions.kill(request_id)


def test_an_exception_fails_the_invocation_without_a_retry(
    invocations: AsyncInvocations, functions: LocalLambda, secrets_manager_url: str, tmp_path: Path
) -> None:
    # Given an event that makes the worker raise (MaximumRetryAttempts 0)
    runs = tmp_path / "runs"

    # When it is invoked
    request_id = functions.invoke_async(WORKER_NAME, json.dumps({"action": "fail", "runs": str(runs)}).encode())

    # Then it failed once, with the error Lambda's runtime reports, logged and sent to the queue
    invocation = functions.wait_for("WorkerFunction")
    assert (invocation.state, invocation.attempts) == (State.FAILED, 1)
    assert invocation.error is not None
    assert (invocation.error["errorType"], invocation.error["errorMessage"]) == ("RuntimeError", "told to fail")
    assert "worker.py" in invocation.error["stackTrace"][0]
    assert "RuntimeError: told to fail" in invocation.output
    assert runs.read_text().splitlines() == [request_id]
    (record,) = failure_records(invocations, secrets_manager_url)
    assert record["responsePayload"] == invocation.error


def test_a_failed_invocation_is_retried_as_its_event_invoke_config_says(functions: LocalLambda, tmp_path: Path) -> None:
    # Given a function with MaximumRetryAttempts 1 (and no destination)
    runs = tmp_path / "runs"

    # When an invocation of it fails
    request_id = functions.invoke_async(
        "local-RetryingFunction", json.dumps({"action": "fail", "runs": str(runs)}).encode()
    )

    # Then it ran twice, as one invocation
    invocation = functions.wait_for("RetryingFunction")
    assert (invocation.state, invocation.attempts) == (State.FAILED, 2)
    assert runs.read_text().splitlines() == [request_id, request_id]


def test_an_event_older_than_its_maximum_age_is_sent_to_its_queue_unrun(
    invocations: AsyncInvocations, functions: LocalLambda, secrets_manager_url: str, clock: Clock, tmp_path: Path
) -> None:
    # Given a function of reserved concurrency 1 running one invocation, and a second waiting for it
    functions.override("SerialFunction", timeout=600)
    runs = tmp_path / "runs"
    first = functions.invoke_async("local-SerialFunction", json.dumps({"action": "hang", "runs": str(runs)}).encode())
    functions.wait_until(lambda all_: any("hanging" in invocation.output for invocation in all_))
    second = functions.invoke_async("local-SerialFunction", json.dumps({"runs": str(runs)}).encode())

    # When the second grows older than MaximumEventAgeInSeconds (60) before the first ends
    clock.offset += 61
    functions.kill(first)

    # Then the second never ran, and went to the queue as an expired event (the first as a crash)
    assert functions.wait_for("SerialFunction", index=0).state == State.KILLED
    invocation = functions.wait_for("SerialFunction", index=1)
    assert (invocation.request_id, invocation.state, invocation.attempts) == (second, State.EXPIRED, 0)
    assert runs.read_text().splitlines() == [first]
    records = {
        record["requestContext"]["requestId"]: record for record in failure_records(invocations, secrets_manager_url)
    }
    assert records[second] == {
        "version": "1.0",
        "timestamp": records[second]["timestamp"],
        "requestContext": {
            "requestId": second,
            "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:local-SerialFunction:$LATEST",
            "condition": "EventAgeExceeded",
            "approximateInvokeCount": 0,
        },
        "requestPayload": {"runs": str(runs)},
    }
    assert records[first]["requestContext"]["condition"] == "RetriesExhausted"


def test_the_invoke_api_refuses_what_lambda_refuses(functions: LocalLambda) -> None:
    # Given the Invoke API's path for the worker
    path = f"{functions.url}/2015-03-31/functions/{WORKER_NAME}/invocations"
    client = lambda_client(functions.url)
    others = {"AWS_ACCESS_KEY_ID": "AKIAOTHERKEY0000", "AWS_SECRET_ACCESS_KEY": "another-secret"}

    # When it is called unsigned, signed with other credentials, for no function, another version, synchronously,
    # or with a payload that is not JSON
    unsigned = urllib3.request("POST", path, body=b"{}", headers={"X-Amz-Invocation-Type": "Event"}, retries=False)
    refusals = {}
    calls: dict[str, Callable[[], Any]] = {
        "other credentials": lambda: lambda_client(functions.url, others).invoke(
            FunctionName=WORKER_NAME, InvocationType="Event", Payload=b"{}"
        ),
        "no function": lambda: client.invoke(FunctionName="local-NoFunction", InvocationType="Event", Payload=b"{}"),
        "another version": lambda: client.invoke(
            FunctionName=WORKER_NAME, Qualifier="1", InvocationType="Event", Payload=b"{}"
        ),
        "synchronous": lambda: client.invoke(FunctionName=WORKER_NAME, Payload=b"{}"),
        "not JSON": lambda: client.invoke(FunctionName=WORKER_NAME, InvocationType="Event", Payload=b"{not json"),
    }
    for what, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call()
        refusals[what] = (
            refused.value.response["ResponseMetadata"]["HTTPStatusCode"],
            refused.value.response["Error"]["Code"],
        )

    # Then each is refused as Lambda refuses it, and nothing ran
    assert (unsigned.status, unsigned.headers["x-amzn-ErrorType"]) == (
        HTTPStatus.FORBIDDEN,
        "MissingAuthenticationTokenException",
    )
    assert refusals == {
        "other credentials": (HTTPStatus.BAD_REQUEST, "UnrecognizedClientException"),
        "no function": (HTTPStatus.NOT_FOUND, "ResourceNotFoundException"),
        "another version": (HTTPStatus.NOT_FOUND, "ResourceNotFoundException"),
        "synchronous": (HTTPStatus.BAD_REQUEST, "InvalidParameterValueException"),
        "not JSON": (HTTPStatus.BAD_REQUEST, "InvalidRequestContentException"),
    }
    assert functions.invocations() == []
