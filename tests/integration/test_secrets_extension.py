"""Reading the key through the AWS Parameters and Secrets Lambda Extension (a stand-in over real HTTP,
in front of moto's Secrets Manager): what only that path does. test_api_key_secret.py runs the shared
behaviour (forms, cache, rotation, failing closed) on both paths.
"""

import json
import os
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
import urllib3

from local.secrets_extension import TOKEN_HEADER, SecretsExtension
from openai_stub.server import OpenAIStub
from tests import function_caches
from tests.events import load_event
from tests.keys import TEST_API_KEY
from tests.lambda_context import LambdaContext, lambda_context_with
from tests.output import Output
from tests.probes import run_probe
from voice_access.edge.app import lambda_handler

pytestmark = pytest.mark.usefixtures("function_env")

PROBE = """
import json, sys
from voice_access.edge.app import lambda_handler
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "f", 256, "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
status = lambda_handler(json.load(open("events/client_secrets.json")), Context())["statusCode"]
print(json.dumps({"boto3": "boto3" in sys.modules, "client": "botocore.client" in sys.modules, "status": status}))
"""


@pytest.fixture(params=["extension"])
def secrets_via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_key_comes_from_the_extension_with_the_session_token(
    extension_server: SecretsExtension, openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a function with the extension attached (the template sets its port)
    before = extension_server.requests

    # When a warm container mints three times
    statuses = [lambda_handler(load_event("client_secrets.json"), lambda_context)["statusCode"] for _ in range(3)]

    # Then the extension was asked once (it checks the session token), and OpenAI got the key
    assert statuses == [HTTPStatus.OK] * 3
    assert extension_server.requests - before == 1
    assert output.metric_count("SecretFetches", via="extension") == 1
    assert {request.headers.get("authorization") for request in openai_stub.requests} == {f"Bearer {TEST_API_KEY}"}


def test_an_extension_that_refuses_the_session_token_fails_closed(
    monkeypatch: pytest.MonkeyPatch, openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given the function sends a session token the extension does not accept
    monkeypatch.setenv("AWS_SESSION_TOKEN", "not-this-function")
    function_caches.reread_settings()

    # When a client secret is requested
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context)

    # Then nothing is minted: a 500 an operator can act on, counted, and nothing went upstream
    assert answer["statusCode"] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert json.loads(answer["body"])["error"]["code"] == "api_key_unreadable"
    assert output.metric_count("ConfigurationErrors", reason="api_key_unreadable") == 1
    assert openai_stub.requests == []


@pytest.mark.parametrize("port_set", [True, False], ids=["extension", "direct"])
def test_neither_reader_imports_boto3(port_set: bool) -> None:
    # Given the function's environment with the extension's port set, or without it (Secrets Manager's API)
    port = os.environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] if port_set else ""  # empty is unset

    # When a fresh process imports the handler and mints
    result, _ = run_probe(PROBE, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=port)

    # Then it minted either way without loading boto3 or botocore's client: the direct read is a request the
    # function signs itself (Powertools imports the botocore package alone, 0.5 ms, to register its user agent)
    assert result["status"] == HTTPStatus.OK
    assert (result["boto3"], result["client"]) == (False, False)


# --- a slow extension -------------------------------------------------------------------------------------

DRIP_INTERVAL = 0.25  # well within the extension path's 3 s read timeout: only a total bound stops it
REMAINING_MS = 2_000  # the invocation's time left; its deadline is a second before


class _DrippingExtension(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, drip: str) -> None:
        self.drip = drip  # "headers" or "body"
        self.stopped = threading.Event()
        super().__init__(("127.0.0.1", 0), _DrippingExtensionHandler)


class _DrippingExtensionHandler(BaseHTTPRequestHandler):
    """GetSecretValue's answer, its headers or its body a byte every DRIP_INTERVAL."""

    protocol_version = "HTTP/1.1"
    body = json.dumps({"Name": "openai-api-key", "SecretString": "sk-test-dripped-1a2b"}).encode()

    def do_GET(self) -> None:
        server = cast(_DrippingExtension, self.server)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        parts = head.encode(), self.body
        dripped = parts[0] if server.drip == "headers" else parts[1]
        try:
            for part in parts:
                if part is not dripped:
                    self.wfile.write(part)
                    continue
                for index in range(len(part)):
                    if server.stopped.wait(DRIP_INTERVAL):
                        break
                    self.wfile.write(part[index : index + 1])
        except OSError:
            pass  # the function gave up
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(params=["headers", "body"])
def dripping_extension(request: pytest.FixtureRequest) -> Iterator[_DrippingExtension]:
    server = _DrippingExtension(str(request.param))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stopped.set()
    server.shutdown()
    server.server_close()


def use_extension_port(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(port))
    function_caches.reread_settings()


def test_a_dripping_extension_gets_a_503_before_the_function_times_out(
    dripping_extension: _DrippingExtension,
    extension_server: SecretsExtension,
    monkeypatch: pytest.MonkeyPatch,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
) -> None:
    # Given a cold container whose extension drips its answer
    use_extension_port(monkeypatch, dripping_extension.server_address[1])

    # When an invocation with 2 s left asks for a client secret
    started = time.monotonic()
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context_with(REMAINING_MS))
    elapsed = time.monotonic() - started

    # Then the caller is told to retry, in the envelope, before Lambda would have stopped the function
    assert answer["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    body = json.loads(answer["body"])
    assert body["error"]["code"] == "secrets_unavailable"
    assert "Retry" in body["error"]["message"]
    assert elapsed < REMAINING_MS / 1000
    # And the log says it timed out, and nothing went upstream
    assert any(line.get("aws_code") == "timeout" for line in output.logs())
    assert output.metric_count("DependencyErrors", dependency="secretsmanager") == 1
    assert openai_stub.requests == []
    # And once the extension answers again, the next invocation mints
    use_extension_port(monkeypatch, extension_server.port)
    assert lambda_handler(load_event("client_secrets.json"), lambda_context)["statusCode"] == HTTPStatus.OK


@pytest.mark.parametrize("dripping_extension", ["body"], indirect=True)
def test_a_slow_extension_leaves_time_to_mint_with_the_key_held(
    dripping_extension: _DrippingExtension,
    monkeypatch: pytest.MonkeyPatch,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
) -> None:
    # Given a warm container holding the key, past its TTL, whose extension now drips its answer
    monkeypatch.setenv("SECRET_CACHE_TTL_SECONDS", "0")
    function_caches.reread_settings()
    assert lambda_handler(load_event("client_secrets.json"), lambda_context)["statusCode"] == HTTPStatus.OK
    use_extension_port(monkeypatch, dripping_extension.server_address[1])

    # When the next invocation (15 s left) asks for a client secret
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context)

    # Then the read was cut by its own budget, not the request's deadline, and the key held minted
    assert answer["statusCode"] == HTTPStatus.OK
    assert any(line["message"] == "serving the cached api key past its ttl" for line in output.logs())
    assert len(openai_stub.requests) == 2


@pytest.mark.parametrize("token", [None, "", "local-session-token"], ids=["none", "empty", "the-old-fixed-one"])
def test_the_extension_answers_only_the_functions_session_token_and_no_page(
    extension_server: SecretsExtension, api_key_secret_arn: str, token: str | None
) -> None:
    # Given a GET for the secret from a page on another origin, without this run's session token
    headers = {"Origin": "http://localhost:5173"} | ({TOKEN_HEADER: token} if token is not None else {})
    url = f"http://127.0.0.1:{extension_server.port}/secretsmanager/get?secretId={api_key_secret_arn}"

    # When it is sent, and a preflight too
    answer = urllib3.request("GET", url, headers=headers, retries=False, timeout=30)
    preflight = urllib3.request("OPTIONS", url, headers=headers, retries=False, timeout=30)

    # Then neither gets the key or a CORS header
    assert answer.status == HTTPStatus.UNAUTHORIZED
    assert TEST_API_KEY.encode() not in answer.data
    for each in (answer, preflight):
        assert not [name for name in each.headers if name.lower().startswith("access-control-")]
    assert extension_server.session_token != "local-session-token"
