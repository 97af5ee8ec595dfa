"""Reading the key from Secrets Manager's API (the template's default): what only that path meets. Answers moto
never gives (a 200 that is not JSON, a signature AWS refuses, a throttle named only in a header) come from a
stand-in that answers GetSecretValue as scripted. test_api_key_secret.py runs the shared behaviour on both paths.
"""

import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from openai_stub.server import OpenAIStub
from tests.events import load_event
from tests.lambda_context import LambdaContext
from tests.output import Output
from voice_access.edge.app import lambda_handler

pytestmark = pytest.mark.usefixtures("function_env")


class _ScriptedSecretsManager(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.targets: list[str] = []
        super().__init__(("127.0.0.1", 0), _Answering)


class _Answering(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server = cast(_ScriptedSecretsManager, self.server)
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        server.targets.append(self.headers.get("X-Amz-Target", ""))
        self.send_response(server.status)
        for name, value in {**server.headers, "Content-Length": str(len(server.body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(server.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def scripted(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[_ScriptedSecretsManager]:
    status, headers, body = request.param
    server = _ScriptedSecretsManager(status, headers, body)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


AMZ_JSON = {"Content-Type": "application/x-amz-json-1.1"}


@pytest.mark.parametrize(
    ("scripted", "status", "code", "metric"),
    [
        pytest.param(
            (200, {"Content-Type": "text/html"}, b"<html>a proxy's page</html>"),
            HTTPStatus.SERVICE_UNAVAILABLE,
            "secrets_unavailable",
            ("DependencyErrors", {"dependency": "secretsmanager"}),
            id="200-not-json",
        ),
        pytest.param(
            (
                400,
                {**AMZ_JSON, "X-Amzn-ErrorType": "InvalidSignatureException:http://internal.amazon.com/"},
                json.dumps({"message": "Credential should be scoped to a valid region."}).encode(),
            ),
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "api_key_unreadable",
            ("ConfigurationErrors", {"reason": "api_key_unreadable"}),
            id="signature-refused",
        ),
        pytest.param(
            (400, AMZ_JSON, json.dumps({"__type": "com.amazonaws.secretsmanager#ThrottlingException"}).encode()),
            HTTPStatus.SERVICE_UNAVAILABLE,
            "secrets_unavailable",
            ("DependencyErrors", {"dependency": "secretsmanager"}),
            id="throttled",
        ),
        pytest.param(
            (200, AMZ_JSON, json.dumps({"Name": "openai-api-key", "SecretBinary": "c2stdGVzdA=="}).encode()),
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "api_key_malformed",
            ("ConfigurationErrors", {"reason": "api_key_malformed"}),
            id="binary-only",
        ),
    ],
    indirect=["scripted"],
)
def test_secrets_managers_answer_is_read_as_the_sdks_read_it(
    scripted: _ScriptedSecretsManager,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    status: int,
    code: str,
    metric: tuple[str, dict[str, str]],
) -> None:
    # Given Secrets Manager's answer to GetSecretValue
    # When a client secret is requested
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context)

    # Then the caller gets the status that says who must act (retry, or the operator), counted as such, and
    # nothing went upstream
    assert answer["statusCode"] == status
    assert json.loads(answer["body"])["error"]["code"] == code
    name, dimensions = metric
    assert output.metric_count(name, **dimensions) == 1
    assert scripted.targets == ["secretsmanager.GetSecretValue"]
    assert openai_stub.requests == []
    if code == "api_key_malformed":
        assert "a binary secret: the key must be the secret's string" in output.text()
