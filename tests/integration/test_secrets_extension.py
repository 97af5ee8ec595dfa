"""Reading the key through the AWS Parameters and Secrets Lambda Extension (a stand-in over real HTTP,
in front of moto's Secrets Manager): what only that path does. test_api_key_secret.py runs the shared
behaviour (forms, cache, rotation, failing closed) on both paths.
"""

import json
import os
import subprocess
import sys
from http import HTTPStatus

import pytest

from local.openai_stub import OpenAIStub
from local.secrets_extension import SecretsExtension
from tests.conftest import ROOT, TEST_API_KEY, LambdaContext, Output, load_event
from token_vending.app import lambda_handler
from token_vending.settings import get_settings

pytestmark = pytest.mark.usefixtures("function_env")

PROBE = """
import json, sys
from token_vending.app import lambda_handler
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
    get_settings.cache_clear()

    # When a client secret is requested
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context)

    # Then nothing is minted: a 500 an operator can act on, counted, and nothing went upstream
    assert answer["statusCode"] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert json.loads(answer["body"])["error"]["code"] == "api_key_unreadable"
    assert output.metric_count("ConfigurationErrors", reason="api_key_unreadable") == 1
    assert openai_stub.requests == []


@pytest.mark.parametrize(("port_set", "imported"), [(True, False), (False, True)])
def test_boto3_is_imported_only_without_the_extension(port_set: bool, imported: bool) -> None:
    # Given the function's environment with the extension's port set, or without it
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    if not port_set:
        del environment["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"]

    # When a fresh process imports the handler and mints
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(probe.stdout.strip().splitlines()[-1])

    # Then it minted either way, and boto3 and botocore's client were loaded only to read the key without the
    # extension (Powertools imports the botocore package itself, 0.5 ms, to register its user agent)
    assert result["status"] == HTTPStatus.OK
    assert (result["boto3"], result["client"]) == (imported, imported)
