"""The local gateway's execution environments: one invocation at a time in each, as in Lambda, a bounded number of
them per function (they share one interpreter here), and an invocation that waits for one still gets its
function's whole timeout."""

import http.client
import sys
import threading
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from types import ModuleType

import pytest

from local.gateway import LocalApi
from local.lambda_runtime import NoEnvironmentFree

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: environments-test, ProtocolType: HTTP}
  HoldIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, PayloadFormatVersion: "2.0",
                 IntegrationUri: !GetAtt HoldFunction.Arn}
  HoldRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/hold, Target: !Sub "integrations/${HoldIntegration}"}
  HoldFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code/, Handler: environments_hold.app.hold, Runtime: python3.13, Timeout: 2}
"""

# Holds an invocation until the test releases it (at most a minute), or returns at once when asked (?now).
HANDLER = """\
import threading

CHANGED = threading.Condition()
RUNNING = []  # the request ids of the invocations running now
PEAK = [0]
RELEASED = threading.Event()


def hold(event, context):
    remaining_ms = context.get_remaining_time_in_millis()  # as the invocation begins
    with CHANGED:
        RUNNING.append(context.aws_request_id)
        PEAK[0] = max(PEAK[0], len(RUNNING))
        CHANGED.notify_all()
    try:
        if event.get("rawQueryString") != "now":
            RELEASED.wait(60)
        return {"statusCode": 200, "body": str(remaining_ms)}
    finally:
        with CHANGED:
            RUNNING.remove(context.aws_request_id)
            CHANGED.notify_all()
"""
FUNCTION = "HoldFunction"


@pytest.fixture
def template(tmp_path: Path) -> Iterator[Path]:
    package = tmp_path / "code" / "environments_hold"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(HANDLER)
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    yield path
    handler = sys.modules.get("environments_hold.app")
    if handler is not None:
        handler.RELEASED.set()  # no invocation left waiting
    for name in ("environments_hold.app", "environments_hold"):
        sys.modules.pop(name, None)
    if str(tmp_path / "code") in sys.path:
        sys.path.remove(str(tmp_path / "code"))


def post(api: LocalApi, query: str = "") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=30)
    try:
        connection.request("POST", f"/v1/hold?{query}" if query else "/v1/hold")
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def posted_in_background(
    api: LocalApi, answers: dict[str, tuple[int, str]], role: str, query: str = ""
) -> threading.Thread:
    """A thread posting the request, its answer recorded under ``role`` (threads finish in any order)."""

    def record() -> None:
        answers[role] = post(api, query)

    thread = threading.Thread(target=record)
    thread.start()
    return thread


def wait_running(handler: ModuleType, count: int) -> None:
    with handler.CHANGED:
        assert handler.CHANGED.wait_for(lambda: len(handler.RUNNING) == count, timeout=30)


def test_a_function_runs_at_most_its_execution_environments_invocations_at_once(template: Path) -> None:
    # Given a function with two execution environments, both busy with a request that holds on
    with LocalApi.from_template(template, environments=2) as api:
        handler = sys.modules["environments_hold.app"]
        answers: dict[str, tuple[int, str]] = {}
        held = [posted_in_background(api, answers, role) for role in ("first", "second")]
        wait_running(handler, 2)

        # When a third invocation may wait for an environment no time at all
        # Then it never begins: no environment is free
        with pytest.raises(NoEnvironmentFree):
            api.runtime.call(FUNCTION, {"rawQueryString": "now"}, api.runtime.context(FUNCTION, timeout=0))
        # and a third request over HTTP waits its turn, then runs once the two are released
        held.append(posted_in_background(api, answers, "third"))
        assert api.runtime.wait_for_waiting(FUNCTION, 1, timeout=30)
        handler.RELEASED.set()
        for thread in held:
            thread.join()

    assert {role: status for role, (status, _) in answers.items()} == dict.fromkeys(
        ("first", "second", "third"), HTTPStatus.OK
    )
    assert handler.PEAK[0] == 2


def test_an_invocation_that_waited_for_an_environment_still_has_its_whole_timeout(template: Path) -> None:
    # Given a function (timeout 2 s) with one execution environment, held by a request that never returns
    with LocalApi.from_template(template, environments=1) as api:
        handler = sys.modules["environments_hold.app"]
        answers: dict[str, tuple[int, str]] = {}
        held = posted_in_background(api, answers, "held")
        wait_running(handler, 1)

        # When a second request arrives meanwhile
        waiting = posted_in_background(api, answers, "waiting", query="now")
        held.join()
        waiting.join()

    # Then the first times out, and the second, which waited for its environment for those 2 s, runs with its
    # function's timeout counted from when its invocation began (most of it left, not the wait's remnant)
    assert answers["held"][0] == HTTPStatus.INTERNAL_SERVER_ERROR
    status, remaining_ms = answers["waiting"]
    assert status == HTTPStatus.OK
    assert int(remaining_ms) > 1000
