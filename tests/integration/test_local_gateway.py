"""The local API Gateway built from a template's AWS::ApiGatewayV2 resources: resolution, the payload-2.0
event, HTTP, and the answers API Gateway gives itself (no route, too large, timed out, failed). Tokens:
test_local_auth.py; CORS: test_local_cors.py."""

import base64
import http.client
import importlib
import json
import os
import re
import socket
import sys
import time
import unittest.mock
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.authorizers import AUTH_NONE_NOTE
from local.cloudformation import Resolver, TemplateError
from local.exchanges import AccessRecord
from local.gateway import PAYLOAD_LIMIT_BYTES, LocalApi, RouteNotFound
from local.iam_authorizer import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  UpstreamUrl: {Type: String, Default: "https://upstream.example"}
  KeySecretArn: {Type: String, Default: ""}
  LogLevel: {Type: String, Default: INFO, AllowedValues: [DEBUG, INFO]}
  LayerArn: {Type: "AWS::SSM::Parameter::Value<String>", Default: /local/layer-arn}
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
  Items:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-items"
  Topic:
    Type: AWS::SNS::Topic
  Logs:
    Type: AWS::Logs::LogGroup
  Widget:
    Type: Custom::Widget
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: local-test, ProtocolType: HTTP}
  EchoIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !GetAtt EchoFunction.Arn
      PayloadFormatVersion: "2.0"
  StoreIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/\
${StoreFunction.Arn}/invocations"
      PayloadFormatVersion: "2.0"
  InferredIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, PayloadFormatVersion: "2.0",
                 IntegrationUri: !Ref InferredFunction}
  BrokenIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, PayloadFormatVersion: "2.0",
                 IntegrationUri: !GetAtt BrokenFunction.Arn}
  SlowIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, PayloadFormatVersion: "2.0",
                 IntegrationUri: !GetAtt SlowFunction.Arn}
  PairIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, PayloadFormatVersion: "2.0",
                 IntegrationUri: !GetAtt PairFunction.Arn}
  EchoRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/echo, Target: !Sub "integrations/${EchoIntegration}"}
  ItemRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: "get /v1/items/{item}", Target: !Sub "integrations/${EchoIntegration}"}
  DebugRoute:
    Type: AWS::ApiGatewayV2::Route
    Condition: Verbose
    Properties: {ApiId: !Ref Api, RouteKey: GET /v1/debug, Target: !Sub "integrations/${EchoIntegration}"}
  StoreRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/store, Target: !Sub "integrations/${StoreIntegration}"}
  BareRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/bare, Target: !Sub "integrations/${InferredIntegration}"}
  BrokenRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/broken, Target: !Sub "integrations/${BrokenIntegration}"}
  SlowRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/slow, Target: !Sub "integrations/${SlowIntegration}"}
  PairRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: POST /v1/pair, Target: !Sub "integrations/${PairIntegration}"}
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
  StoreFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: local_run_echo.app.bare
      Environment:
        Variables:
          TABLE: !Ref Items
          TABLE_ARN: !GetAtt Items.Arn
          TOPIC: !Ref Topic
          LOGS: !Sub "${Logs.Arn}"
          WIDGET: !Ref Widget
          LAYER: !Ref LayerArn
  InferredFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code/, Handler: local_run_echo.app.bare}
  BrokenFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code/, Handler: local_run_echo.app.broken}
  SlowFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code/, Handler: local_run_echo.app.slow, Timeout: 1}
  PairFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code/, Handler: local_run_echo.app.pair}
  UnroutedFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: code/, Handler: local_run_echo.app.missing}
"""

ECHO_HANDLER = """\
import json
import os
import threading

RELEASE = threading.Event()
PAIR = threading.Barrier(2, timeout=5)


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


def slow(event, context):
    RELEASE.wait(30)  # the test releases it once the caller has its answer
    return {"statusCode": 200, "body": "too late"}


def pair(event, context):
    PAIR.wait()  # passes only while a second invocation runs alongside
    return {"statusCode": 200, "body": "together"}
"""

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-run-test-AbCdEf"
JSON = {"Content-Type": "application/json"}


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


def _port(api: LocalApi) -> int:
    return int(api.url.rsplit(":", 1)[1])


def _post(url: str, body: bytes = b"{}", **headers: str) -> urllib3.BaseHTTPResponse:
    headers = {"content-type": "application/json", **headers}
    return urllib3.request("POST", url, body=body, headers=headers, timeout=10, retries=False)


def _exchange(api: LocalApi, request: bytes) -> http.client.HTTPResponse:
    """Send raw bytes on a new connection and read one answer (a hung server fails it after 10 s)."""
    connection = socket.create_connection(("127.0.0.1", _port(api)), timeout=10)
    connection.sendall(request)
    response = http.client.HTTPResponse(connection, method="POST")
    response.begin()
    response.read()
    connection.close()
    return response


def test_routes_come_from_the_templates_route_resources(api: LocalApi):
    # Given the gateway built from the template's AWS::ApiGatewayV2 resources
    # When its routes and functions are listed
    routes = {(route.route_key, route.function) for route in api.routes}

    # Then every Route present is served by the function its integration invokes (a GetAtt of the ARN,
    # a Sub of the invocation URI, or a Ref), a route its condition leaves out is not, and a function
    # no route reaches is not loaded
    assert routes == {
        ("POST /v1/echo", "EchoFunction"),
        ("GET /v1/items/{item}", "EchoFunction"),
        ("POST /v1/store", "StoreFunction"),
        ("POST /v1/bare", "InferredFunction"),
        ("POST /v1/broken", "BrokenFunction"),
        ("POST /v1/slow", "SlowFunction"),
        ("POST /v1/pair", "PairFunction"),
    }
    assert "UnroutedFunction" not in api.functions
    assert api.authorizer == "none: no route requires authorization"
    assert api.cors is None


def test_a_route_present_under_its_condition_is_served(template: Path):
    # Given the parameters under which the debug route's condition holds
    overrides = {"KeySecretArn": SECRET_ARN, "LogLevel": "DEBUG"}

    # When the gateway reads the template
    routes = {route.route_key for route in LocalApi.from_template(template, overrides).routes}

    # Then that route is served too
    assert "GET /v1/debug" in routes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("IntegrationUri: !Ref InferredFunction", "IntegrationUri: !Ref Items"), "invokes none of the template's"),
        (('PayloadFormatVersion: "2.0"', 'PayloadFormatVersion: "1.0"'), "payload format 2.0"),
        (("RouteKey: POST /v1/bare", "RouteKey: $default"), "is not served locally ($default)"),
        (
            ('Target: !Sub "integrations/${PairIntegration}"', "Target: nowhere"),
            "names no AWS::ApiGatewayV2::Integration",
        ),
    ],
)
def test_a_route_the_gateway_cannot_serve_fails_loudly(template: Path, change: tuple[str, str], message: str):
    # Given a route whose integration invokes no function, with payload format 1.0, $default, or no target
    text = TEMPLATE.replace(*change)
    assert text != TEMPLATE
    (template.parent / "unservable.yaml").write_text(text)

    # When / Then the gateway refuses the template, naming what it cannot serve
    with pytest.raises(TemplateError, match=re.escape(message)):
        LocalApi.from_template(template.parent / "unservable.yaml", {"KeySecretArn": SECRET_ARN})


@pytest.fixture(scope="module")
def iam_template(template: Path) -> Path:
    """The template with the echo route requiring AWS_IAM (SigV4)."""
    text = TEMPLATE.replace("RouteKey: POST /v1/echo,", "RouteKey: POST /v1/echo, AuthorizationType: AWS_IAM,")
    assert text != TEMPLATE
    (template.parent / "iam.yaml").write_text(text)
    return template.parent / "iam.yaml"


def _signed(api: LocalApi, path: str, secret: str = LOCAL_SECRET_ACCESS_KEY) -> dict[str, str]:
    """Headers of a POST of {} signed with SigV4 for execute-api, as botocore signs (access key "testing")."""
    request = AWSRequest(
        method="POST", url=f"{api.url}{path}", data=b"{}", headers={"content-type": "application/json"}
    )
    SigV4Auth(Credentials(LOCAL_ACCESS_KEY_ID, secret), "execute-api", api.region).add_auth(request)
    return dict(request.headers.items())


def test_an_iam_route_takes_sigv4_signed_with_the_local_credentials(iam_template: Path):
    # Given a route that requires AWS_IAM
    with LocalApi.from_template(iam_template, {"KeySecretArn": SECRET_ARN}) as api:
        # When it is called signed with the local credentials, unsigned, and signed with another secret
        signed = _post(f"{api.url}/v1/echo", b"{}", **_signed(api, "/v1/echo"))
        unsigned = _post(f"{api.url}/v1/echo")
        wrong = _post(f"{api.url}/v1/echo", b"{}", **_signed(api, "/v1/echo", secret="not-the-local-secret"))

    # Then the signed call reaches the function with API Gateway's iam authorizer context; the others
    # are API Gateway's 403s
    assert signed.status == HTTPStatus.CREATED, signed.data
    iam = signed.json()["event"]["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == "testing"
    assert iam["accountId"] == "123456789012"
    assert set(iam) == {"accessKey", "accountId", "callerId", "cognitoIdentity", "principalOrgId", "userArn", "userId"}
    assert (unsigned.status, unsigned.json()) == (HTTPStatus.FORBIDDEN, {"message": "Forbidden"})
    assert wrong.status == HTTPStatus.FORBIDDEN
    assert wrong.json()["message"].startswith("The request signature we calculated does not match")
    assert api.authorizer.startswith("AWS_IAM: SigV4")


def test_with_authentication_off_every_request_is_one_anonymous_caller(iam_template: Path):
    # Given the gateway with authentication off (AUTH=none)
    records: list[AccessRecord] = []
    overrides = {"KeySecretArn": SECRET_ARN}
    with LocalApi.from_template(iam_template, overrides, authenticate=False, on_request=records.append) as api:
        # When an unsigned request reaches an AWS_IAM route, and another a route without authorization
        echo = _post(f"{api.url}/v1/echo").json()["event"]
        bare = _post(f"{api.url}/v1/bare")

    # Then the first gets the anonymous caller as a JWT authorizer would pass it, the second no authorizer
    # context, and every request's record says authentication is off
    assert echo["requestContext"]["authorizer"] == {
        "jwt": {"claims": {"iss": "local:auth-none", "sub": "anonymous"}, "scopes": None}
    }
    assert bare.status == HTTPStatus.OK
    assert api.authorizer.startswith("none: authentication is off (AUTH=none)")
    assert [record.note for record in records] == [AUTH_NONE_NOTE, AUTH_NONE_NOTE]


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


def test_refs_to_the_templates_resources_resolve_to_local_stand_ins(template: Path):
    # Given a template whose functions refer to its own secret, table, topic, log group and a custom resource
    # When the gateway reads it with no overrides (so the stack would create the secret)
    functions = LocalApi.from_template(template).functions

    # Then each Ref or GetAtt is what CloudFormation returns for the type: a name, an ARN, or the logical id
    assert functions["EchoFunction"].environment["KEY_SECRET_ID"] == (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-KeySecret-AbCdEf"
    )
    store = functions["StoreFunction"].environment
    assert store["TABLE"] == "local-items"
    assert store["TABLE_ARN"] == "arn:aws:dynamodb:us-east-1:123456789012:table/local-items"
    assert store["TOPIC"] == "arn:aws:sns:us-east-1:123456789012:local-Topic"
    assert store["LOGS"] == "arn:aws:logs:us-east-1:123456789012:log-group:local-Logs:*"
    assert store["WIDGET"] == "Widget"


def test_an_ssm_parameter_resolves_to_its_default_unless_overridden(template: Path):
    # Given a parameter of type AWS::SSM::Parameter::Value<String>, which no Parameter Store resolves locally
    layer = "arn:aws:lambda:us-east-1:123456789012:layer:local:1"

    # When the gateway reads the template without and with an override
    default = LocalApi.from_template(template).functions["StoreFunction"].environment["LAYER"]
    overridden = LocalApi.from_template(template, {"LayerArn": layer}).functions["StoreFunction"].environment

    # Then the Default stands in, and an override wins
    assert default == "/local/layer-arn"
    assert overridden["LAYER"] == layer


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"KeySecretArn": SECRET_ARN, "Nope": "x"}, "['Nope'] are not parameters"),
        ({"KeySecretArn": SECRET_ARN, "LogLevel": "TRACE"}, "LogLevel='TRACE' is not one of"),
    ],
)
def test_what_cannot_be_resolved_fails_loudly(template: Path, overrides: dict[str, str], message: str):
    # Given overrides that name an unknown parameter, or break AllowedValues
    # When / Then the template is refused with a message naming what is wrong
    with pytest.raises(TemplateError, match=re.escape(message)):
        LocalApi.from_template(template, overrides)


def test_a_ref_to_a_resource_its_condition_leaves_out_fails_loudly(template: Path):
    # Given a function that refers, unconditionally, to the secret the overrides leave out
    text = TEMPLATE.replace("!If [CreateKeySecret, !Ref KeySecret, !Ref KeySecretArn]", "!Ref KeySecret")
    (template.parent / "unconditional.yaml").write_text(text)

    # When / Then the gateway refuses it, naming the variable, the resource and its condition
    with pytest.raises(TemplateError, match="KEY_SECRET_ID: KeySecret is a resource its condition CreateKeySecret"):
        LocalApi.from_template(template.parent / "unconditional.yaml", {"KeySecretArn": SECRET_ARN})


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


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PUT", "DELETE", "PATCH", "PROPFIND"])
def test_any_other_method_on_a_route_is_api_gateways_not_found(api: LocalApi, method: str):
    # Given a route declared for POST only (and no CORS configuration, so no preflight answer)
    # When another method, even one HTTP servers often answer themselves, is requested
    response = urllib3.request(method, f"{api.url}/v1/echo", timeout=10, retries=False)

    # Then API Gateway's own 404 answers it, as JSON
    assert response.status == HTTPStatus.NOT_FOUND
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "Not Found"}


def test_the_function_runs_with_its_environment_and_context(api: LocalApi):
    # Given the echo function behind the gateway
    # When it is called over HTTP with repeated headers
    connection = http.client.HTTPConnection("127.0.0.1", _port(api), timeout=10)
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
    # And the function saw the event, its template environment and the runtime's variables (the HTTP
    # server joins a repeated header with ", " before the gateway sees it; API Gateway joins with ",")
    assert answer["event"]["headers"]["x-dup"] == "a, b"
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


def test_a_function_past_its_timeout_is_answered_without_waiting_for_it(
    api: LocalApi, capsys: pytest.CaptureFixture[str]
):
    # Given a function with a 1 s timeout that would hang for 30 s
    slow = importlib.import_module("local_run_echo.app")
    started = time.monotonic()
    try:
        # When it is called
        response = _post(f"{api.url}/v1/slow")
        waited = time.monotonic() - started
    finally:
        slow.RELEASE.set()

    # Then the caller gets API Gateway's answer for a failed invocation (the timeout is under the 30 s
    # integration timeout) long before the function would finish, and the log says why
    assert response.status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json() == {"message": "Internal Server Error"}
    assert waited < 20
    assert "Task timed out after 1.00 seconds" in capsys.readouterr().err


def test_invocations_of_one_function_run_concurrently(api: LocalApi):
    # Given a function that returns only while a second invocation of it is running
    # When two callers call it at once
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda _: _post(f"{api.url}/v1/pair"), range(2)))

    # Then both are answered: one invocation does not hold up the other
    assert [response.status for response in responses] == [HTTPStatus.OK, HTTPStatus.OK]


def test_a_body_up_to_the_payload_limit_reaches_the_function(api: LocalApi):
    # Given a body of exactly HTTP API's 10 MB limit
    body = b"x" * PAYLOAD_LIMIT_BYTES

    # When it is posted
    response = _post(f"{api.url}/v1/bare", body, **{"content-type": "text/plain"})

    # Then the function answers it
    assert response.status == HTTPStatus.OK


def test_a_body_over_the_payload_limit_is_api_gateways_413(api: LocalApi):
    # Given a body one byte over HTTP API's 10 MB limit
    body = b"x" * (PAYLOAD_LIMIT_BYTES + 1)

    # When it is posted
    response = _post(f"{api.url}/v1/echo", body, **{"content-type": "text/plain"})

    # Then API Gateway's own answer refuses it before the function
    assert response.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json() == {"message": "Request Entity Too Large"}


def test_a_chunked_body_reaches_the_function(api: LocalApi):
    # Given a body sent with Transfer-Encoding: chunked (no Content-Length)
    body = b'{"session": {"type": "realtime", "audio": {"output": {"voice": "nope"}}}}'
    connection = http.client.HTTPConnection("127.0.0.1", _port(api), timeout=10)

    # When it is posted in three chunks
    connection.request("POST", "/v1/echo", body=iter([body[:10], body[10:40], body[40:]]), headers=JSON)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()

    # Then the function sees the whole body, as API Gateway would pass it on
    assert response.status == HTTPStatus.CREATED
    assert answer["event"]["body"] == body.decode()


@pytest.mark.parametrize("length", ["-1", "abc", "1x", "2, 2"])
def test_a_malformed_content_length_is_a_bad_request(api: LocalApi, capsys: pytest.CaptureFixture[str], length: str):
    # Given a request whose Content-Length is not a number of bytes
    request = f"POST /v1/echo HTTP/1.1\r\nHost: local\r\nContent-Length: {length}\r\n\r\n{{}}".encode()

    # When it is sent
    response = _exchange(api, request)

    # Then it is refused at once, without a hang or a traceback
    assert response.status == HTTPStatus.BAD_REQUEST
    assert "Traceback" not in capsys.readouterr().err


def test_http_1_0_keep_alive_is_honoured(api: LocalApi):
    # Given an HTTP/1.0 client that asks to keep its connection
    request = (
        b"POST /v1/bare HTTP/1.0\r\nConnection: keep-alive\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    connection = socket.create_connection(("127.0.0.1", _port(api)), timeout=10)
    answers = []

    # When it sends two requests on the one connection
    for _ in range(2):
        connection.sendall(request)
        response = http.client.HTTPResponse(connection, method="POST")
        response.begin()
        answers.append((response.status, response.getheader("connection"), response.read()))
    connection.close()

    # Then both are answered, each saying the connection stays open (HTTP/1.0 closes unless told)
    assert answers == [(HTTPStatus.OK, "Keep-Alive", b'{"message": "inferred"}')] * 2


def test_fifty_clients_are_all_served_without_a_reset(api: LocalApi):
    # Given 50 clients, each sending 100 requests, each on a new connection (what fills a listen backlog)
    port = _port(api)

    def client(_: int) -> list[str]:
        failures = []
        for _ in range(100):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("POST", "/v1/bare", body=b"{}", headers={**JSON, "Connection": "close"})
                status = connection.getresponse().status
                connection.close()
            except OSError as error:
                failures.append(repr(error))
            else:
                if status != HTTPStatus.OK:
                    failures.append(str(status))
        return failures

    # When they all run at once
    with ThreadPoolExecutor(50) as pool:
        failures = [failure for failed in pool.map(client, range(50)) for failure in failed]

    # Then all 5,000 are answered: no connection reset, no error
    assert failures == []


def test_a_comma_delimited_list_parameter_is_a_list_of_trimmed_members_as_cloudformation_has_it() -> None:
    # Given a template with a CommaDelimitedList parameter
    template = {"Parameters": {"Origins": {"Type": "CommaDelimitedList", "Default": ""}}}

    # When it is left empty, or given with spaces after the commas
    empty = Resolver(template, {}, "us-east-1").value({"Ref": "Origins"}, "test")
    given = Resolver(template, {"Origins": "https://a.example, https://b.example"}, "us-east-1")

    # Then it is [""] (as CloudFormation has it), or each member without its spaces
    assert empty == [""]
    assert given.value({"Ref": "Origins"}, "test") == ["https://a.example", "https://b.example"]


LISTED = {
    "Parameters": {
        "Origins": {"Type": "CommaDelimitedList", "Default": "", "AllowedPattern": r"^$|^https?://[^/\s]+$"},
        "Levels": {"Type": "CommaDelimitedList", "Default": "INFO", "AllowedValues": ["DEBUG", "INFO"]},
    }
}


def test_a_comma_delimited_lists_allowed_pattern_and_values_apply_to_each_member() -> None:
    # Given CommaDelimitedList parameters with an AllowedPattern and AllowedValues
    # When several members are given, each allowed (the joined string would not match the pattern)
    resolver = Resolver(LISTED, {"Origins": "https://a.example, http://localhost:5173", "Levels": "DEBUG,INFO"}, "x")

    # Then they are accepted, member by member; and one member outside them is refused, by name
    assert resolver.value({"Ref": "Origins"}, "test") == ["https://a.example", "http://localhost:5173"]
    with pytest.raises(TemplateError, match=re.escape("(its member 'https://b.example/app') does not match")):
        Resolver(LISTED, {"Origins": "https://a.example,https://b.example/app"}, "x")
    with pytest.raises(TemplateError, match=re.escape("(its member 'TRACE') is not one of")):
        Resolver(LISTED, {"Levels": "INFO,TRACE"}, "x")


@pytest.mark.parametrize(
    ("origins", "expected"),
    [
        ("", {"NoneGiven": True, "HasLocalhost": False, "AllLocal": True}),
        ("http://localhost:5173", {"NoneGiven": False, "HasLocalhost": True, "AllLocal": True}),
        ("http://localhost:5173,https://a.example", {"NoneGiven": False, "HasLocalhost": True, "AllLocal": False}),
    ],
)
def test_conditions_take_the_rule_functions_on_a_list(origins: str, expected: dict[str, bool]) -> None:
    # Given conditions written with the rule functions (as a template's Rules use them)
    template = {
        **LISTED,
        "Conditions": {
            "NoneGiven": {"Fn::EachMemberEquals": [{"Ref": "Origins"}, ""]},
            "HasLocalhost": {"Fn::Contains": [{"Ref": "Origins"}, "http://localhost:5173"]},
            "AllLocal": {"Fn::EachMemberIn": [{"Ref": "Origins"}, ["", "http://localhost:5173"]]},
        },
    }

    # When they are evaluated for the parameter's value
    resolver = Resolver(template, {"Origins": origins}, "x")

    # Then each is what CloudFormation evaluates it to
    assert {name: resolver.condition(name, "test") for name in expected} == expected
    assert resolver.condition({"Fn::Not": [{"Fn::EachMemberEquals": [{"Ref": "Origins"}, ""]}]}, "t") is bool(origins)
