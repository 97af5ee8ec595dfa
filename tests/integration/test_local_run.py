"""The local run: the gateway built from a SAM template, and `python -m local` end to end."""

import base64
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import unittest.mock
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import boto3
import pytest
import urllib3

from local.gateway import LocalApi, RouteNotFound, TemplateError
from local.secrets_manager import LocalSecretsManager

REPO = Path(__file__).resolve().parents[2]

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  UpstreamUrl: {Type: String, Default: "https://upstream.example"}
  KeySecretArn: {Type: String, Default: ""}
  LogLevel: {Type: String, Default: INFO, AllowedValues: [DEBUG, INFO]}
Conditions:
  CreateKeySecret: !Equals [!Ref KeySecretArn, ""]
  Verbose: !Not [!Equals [!Ref LogLevel, INFO]]
Globals:
  Function:
    Runtime: python3.13
    Timeout: 7
    MemorySize: 256
    Environment:
      Variables:
        POWERTOOLS_METRICS_NAMESPACE: EchoSpace
        SHARED: from-globals
        LEVEL: !Ref LogLevel
Resources:
  KeySecret:
    Type: AWS::SecretsManager::Secret
    Condition: CreateKeySecret
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth: {DefaultAuthorizer: AWS_IAM, EnableIamAuthorizer: true}
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: local_run_echo.app.echo
      Environment:
        Variables:
          SHARED: from-function
          UPSTREAM: !Sub "${UpstreamUrl}/v1"
          KEY_SECRET_ID: !If [CreateKeySecret, !Ref KeySecret, !Ref KeySecretArn]
          DEBUG_ONLY: !If [Verbose, "yes", !Ref AWS::NoValue]
          REGION: !Ref AWS::Region
      Events:
        Echo: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /v1/echo, Method: POST}}
        Item: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: "/v1/items/{item}", Method: get}}
  InferredFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: local_run_echo.app.bare
      Events:
        Bare: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /v1/bare, Method: POST}}
  BrokenFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: local_run_echo.app.broken
      Events:
        Broken: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /v1/broken, Method: POST}}
"""

ECHO_HANDLER = """\
import os

def echo(event, context):
    environment = {name: os.environ.get(name) for name in (
        "SHARED", "UPSTREAM", "KEY_SECRET_ID", "DEBUG_ONLY", "REGION", "LEVEL",
        "POWERTOOLS_METRICS_NAMESPACE", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    )}
    lambda_context = {
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-echo": "yes"},
        "cookies": ["a=1", "b=2"],
        "body": json.dumps({"event": event, "environment": environment, "context": lambda_context}),
    }

def bare(event, context):
    return {"message": "inferred"}

def broken(event, context):
    raise RuntimeError("boom")

import json
"""

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-run-test-AbCdEf"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("local_run")
    package = root / "code" / "local_run_echo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(ECHO_HANDLER)
    (root / "template.yaml").write_text(TEMPLATE)
    # The gateway emulates the runtime: it sets os.environ and puts CodeUri on sys.path.
    with unittest.mock.patch.dict(os.environ), unittest.mock.patch.object(sys, "path", list(sys.path)):
        yield root / "template.yaml"


@pytest.fixture(scope="module")
def api(template: Path) -> Iterator[LocalApi]:
    with LocalApi.from_template(template, {"KeySecretArn": SECRET_ARN}) as started:
        yield started


def _post(url: str, body: bytes = b"{}", **headers: str) -> urllib3.BaseHTTPResponse:
    headers = {"content-type": "application/json", **headers}
    return urllib3.request("POST", url, body=body, headers=headers, timeout=10, retries=False)


def test_routes_come_from_the_template(api: LocalApi):
    # Given the gateway built from the template
    # When its routes are listed
    routes = {(route.route_key, route.function) for route in api.routes}

    # Then every HttpApi event is a route to its function, and the API's authorizer is known
    assert routes == {
        ("POST /v1/echo", "EchoFunction"),
        ("GET /v1/items/{item}", "EchoFunction"),
        ("POST /v1/bare", "InferredFunction"),
        ("POST /v1/broken", "BrokenFunction"),
    }
    assert api.authorizers == {"AWS_IAM"}


def test_environment_comes_from_globals_function_and_overrides(template: Path):
    # Given parameter overrides, as `sam local --parameter-overrides` takes them
    overrides = {"KeySecretArn": SECRET_ARN, "UpstreamUrl": "http://127.0.0.1:9", "LogLevel": "DEBUG"}

    # When the gateway reads the template
    environment = LocalApi.from_template(template, overrides).functions["EchoFunction"].environment

    # Then globals and the function's own variables merge, intrinsics resolved against the overrides
    assert environment == {
        "POWERTOOLS_METRICS_NAMESPACE": "EchoSpace",
        "SHARED": "from-function",
        "LEVEL": "DEBUG",
        "UPSTREAM": "http://127.0.0.1:9/v1",
        "KEY_SECRET_ID": SECRET_ARN,
        "DEBUG_ONLY": "yes",
        "REGION": "us-east-1",
    }


def test_defaults_apply_and_no_value_drops_the_variable(api: LocalApi):
    # Given the gateway built with only the secret ARN overridden
    # When the echo function's environment is read
    environment = api.functions["EchoFunction"].environment

    # Then parameter defaults apply and AWS::NoValue leaves the variable out
    assert environment["UPSTREAM"] == "https://upstream.example/v1"
    assert environment["LEVEL"] == "INFO"
    assert "DEBUG_ONLY" not in environment


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "EchoFunction Environment.Variables.KEY_SECRET_ID: Ref KeySecret names a resource"),
        ({"KeySecretArn": SECRET_ARN, "Nope": "x"}, "['Nope'] are not parameters"),
        ({"KeySecretArn": SECRET_ARN, "LogLevel": "TRACE"}, "LogLevel='TRACE' is not one of"),
    ],
)
def test_what_cannot_be_resolved_fails_loudly(template: Path, overrides: dict[str, str], message: str):
    # Given overrides that leave a resource reference, name an unknown parameter, or break AllowedValues
    # When / Then the template is refused with a message naming what is wrong
    with pytest.raises(TemplateError, match=re.escape(message)):
        LocalApi.from_template(template, overrides)


def test_the_event_has_the_payload_2_0_shape(api: LocalApi):
    # Given a request with repeated headers, cookies and a repeated query parameter
    headers = [("Content-Type", "application/json"), ("X-Dup", "1"), ("x-dup", "2"), ("Cookie", "a=1; b=2")]

    # When the gateway builds its event
    event = api.build_event("POST", "/v1/echo?q=1&q=2&r=", headers, b'{"hello": "world"}')

    # Then it is what API Gateway HTTP API sends with payload format 2.0
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /v1/echo"
    assert event["rawPath"] == "/v1/echo"
    assert event["rawQueryString"] == "q=1&q=2&r="
    assert event["queryStringParameters"] == {"q": "1,2", "r": ""}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-dup"] == "1,2"
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"]
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["routeKey"] == "POST /v1/echo"
    assert context["stage"] == "$default"
    assert context["http"] == {
        "method": "POST",
        "path": "/v1/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "",
    }
    assert {"accountId", "apiId", "domainName", "domainPrefix", "requestId", "time", "timeEpoch"} <= set(context)


def test_each_request_has_its_own_request_id(api: LocalApi):
    # Given two identical requests
    # When their events are built
    first, second = (api.build_event("POST", "/v1/echo") for _ in range(2))

    # Then their request ids differ, and an empty body is left out
    assert first["requestContext"]["requestId"] != second["requestContext"]["requestId"]
    assert "body" not in first
    assert first["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        ("application/json; charset=utf-8", False),
        ("text/plain", False),
        ("application/xml", False),
        ("application/octet-stream", True),
        ("application/x-www-form-urlencoded", True),
    ],
)
def test_a_body_that_is_not_text_is_base64_encoded(api: LocalApi, content_type: str, encoded: bool):
    # Given a body sent with a content type
    body = b"a=1&b=2"

    # When the gateway builds the event
    event = api.build_event("POST", "/v1/echo", [("Content-Type", content_type)], body)

    # Then only text types arrive as text, as HTTP API does it
    assert event["isBase64Encoded"] is encoded
    assert event["body"] == (base64.b64encode(body).decode() if encoded else body.decode())


def test_path_parameters_are_matched(api: LocalApi):
    # Given a route with a path parameter, declared with a lower-case method
    # When a matching request is built
    event = api.build_event("GET", "/v1/items/42")

    # Then the route matches and the parameter is passed on
    assert event["routeKey"] == "GET /v1/items/{item}"
    assert event["pathParameters"] == {"item": "42"}


def test_an_unknown_route_is_not_found(api: LocalApi):
    # Given a path and a method that no route has
    # When they are requested
    response = _post(f"{api.url}/v1/nope")
    wrong_method = urllib3.request("GET", f"{api.url}/v1/echo", timeout=10, retries=False)

    # Then the gateway answers as API Gateway does
    assert response.status == HTTPStatus.NOT_FOUND
    assert response.json() == {"message": "Not Found"}
    assert wrong_method.status == HTTPStatus.NOT_FOUND
    with pytest.raises(RouteNotFound):
        api.build_event("POST", "/v1/nope")


def test_the_function_runs_with_its_environment_and_context(api: LocalApi):
    # Given the echo function behind the gateway
    # When it is called over HTTP with repeated headers
    connection = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=10)
    connection.putrequest("POST", "/v1/echo?x=1")
    for name, value in [("Content-Type", "application/json"), ("X-Dup", "a"), ("X-Dup", "b")]:
        connection.putheader(name, value)
    connection.putheader("Content-Length", "2")
    connection.endheaders(b"{}")
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()

    # Then its answer is mapped back: status, headers, one set-cookie per cookie, body
    assert response.status == HTTPStatus.CREATED
    assert response.getheader("x-echo") == "yes"
    assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert response.getheader("apigw-requestid") == answer["event"]["requestContext"]["requestId"]
    # And the function saw the event, its template environment and the runtime's variables
    assert answer["event"]["headers"]["x-dup"] == "a,b"
    assert answer["event"]["queryStringParameters"] == {"x": "1"}
    assert answer["environment"] == {
        "SHARED": "from-function",
        "UPSTREAM": "https://upstream.example/v1",
        "KEY_SECRET_ID": SECRET_ARN,
        "DEBUG_ONLY": None,
        "REGION": "us-east-1",
        "LEVEL": "INFO",
        "POWERTOOLS_METRICS_NAMESPACE": "EchoSpace",
        "AWS_LAMBDA_FUNCTION_NAME": "EchoFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    }
    # And a Lambda context with the template's memory size and timeout
    assert answer["context"]["function_name"] == "EchoFunction"
    assert answer["context"]["memory_limit_in_mb"] == 256
    assert answer["context"]["invoked_function_arn"].endswith(":function:EchoFunction")
    assert 0 < answer["context"]["remaining_ms"] <= 7000


def test_a_result_without_status_code_is_inferred(api: LocalApi):
    # Given a function that returns a bare dict
    # When it is called
    response = _post(f"{api.url}/v1/bare")

    # Then API Gateway's inference applies: 200, JSON, the dict as the body
    assert response.status == HTTPStatus.OK
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "inferred"}


def test_a_function_error_is_an_internal_server_error(api: LocalApi, capsys: pytest.CaptureFixture[str]):
    # Given a function that raises
    # When it is called
    response = _post(f"{api.url}/v1/broken")

    # Then the client gets API Gateway's 500 and the traceback goes to the log
    assert response.status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json() == {"message": "Internal Server Error"}
    assert "RuntimeError: boom" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lines(stream, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _drained(lines: queue.Queue[str | None]) -> str:
    text = []
    while (line := lines.get(timeout=10)) is not None:
        text.append(line)
    return "".join(text)


def test_the_local_secrets_manager_is_reached_through_the_ordinary_boto3_path():
    # Given the embedded Secrets Manager holding a key
    with LocalSecretsManager(api_key="sk-test-1") as secrets, unittest.mock.patch.dict(os.environ):
        # When a plain boto3 client runs in the environment it gives the function
        os.environ.update(secrets.client_environment())
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=secrets.secret_arn)

    # Then the secret is the JSON the function expects
    assert json.loads(answer["SecretString"]) == {"api_key": "sk-test-1"}


@dataclass
class LocalService:
    url: str
    printed: list[str]


@pytest.fixture(scope="module")
def local_service() -> Iterator[LocalService]:
    """`python -m local` (what `make run` runs) on a free port, with the OpenAI stub; stopped with SIGINT."""
    port = _free_port()
    environment = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    environment.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: queue.Queue[str | None] = queue.Queue()
    stderr: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(process.stdout, stdout), daemon=True),
        threading.Thread(target=_lines, args=(process.stderr, stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    service = LocalService(f"http://127.0.0.1:{port}", [])
    try:
        while not any(service.url in line for line in service.printed):
            line = stdout.get(timeout=60)
            assert line is not None, f"python -m local exited early:\n{''.join(service.printed)}{_drained(stderr)}"
            service.printed.append(line)
        yield service
    finally:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    output, errors = "".join(service.printed) + _drained(stdout), _drained(stderr)
    # SIGINT stops everything cleanly, and nothing secret was ever printed
    assert exit_code == 0, errors
    assert "Traceback" not in errors
    for secret in ["sk-local-dev", *MINTED_BY_LOCAL_SERVICE]:
        assert secret not in output + errors, "a secret appeared in the output of python -m local"


MINTED_BY_LOCAL_SERVICE: list[str] = []


def test_make_run_serves_client_secrets(local_service: LocalService) -> None:
    # Given `make run` serving on a free port
    # When a client secret is asked for over HTTP
    response = urllib3.request(
        "POST",
        f"{local_service.url}/v1/realtime/client_secrets",
        json={"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}},
        timeout=30,
        retries=False,
    )

    # Then the function minted one through the local Secrets Manager and the stub
    assert response.status == HTTPStatus.OK, response.data
    MINTED_BY_LOCAL_SERVICE.append(response.json()["value"])
    assert MINTED_BY_LOCAL_SERVICE[-1].startswith("ek_")


def _readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return str(next(block for block in blocks if containing in block))


def test_the_readmes_local_python_example_works_as_written(local_service: LocalService) -> None:
    # Given the README's SDK example for the local service (it names port 3000)
    example = _readme_block("python", "http://127.0.0.1:3000/v1")

    # When it runs against `make run`
    ran = subprocess.run(
        [sys.executable, "-c", example.replace("http://127.0.0.1:3000", local_service.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it prints what it promises and raises nothing
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith("ek_")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readmes_local_curl_example_works_as_written(local_service: LocalService) -> None:
    # Given the README's curl example for the local service
    example = _readme_block("bash", "curl -s http://127.0.0.1:3000")

    # When it runs against `make run`
    ran = subprocess.run(
        ["bash", "-c", example.replace("http://127.0.0.1:3000", local_service.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # Then it gets a client secret
    minted = json.loads(ran.stdout)
    MINTED_BY_LOCAL_SERVICE.append(minted["value"])
    assert minted["value"].startswith("ek_")
