"""The OpenAI API key and the safety identifier key, read from Secrets Manager (moto's server, over HTTP)
through the real handler: the JSON secret, the TTL cache, rotation, and failing closed with words an
operator can act on (the bare key of earlier versions among them: it has no safety identifier key).
"""

import json
import socket
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NamedTuple

import pytest

from openai_stub.schema import beta_errors
from openai_stub.server import OpenAIStub
from tests import function_caches
from tests.callers import expected_safety_identifier
from tests.events import load_event
from tests.keys import TEST_API_KEY, TEST_SAFETY_KEY
from tests.lambda_context import LambdaContext
from tests.output import Output
from voice_access.edge.app import lambda_handler

pytestmark = pytest.mark.usefixtures("function_env")

# Keys the stub does not accept, each distinct so a leak of one is unmistakable.
REVOKED_KEY = "sk-test-revoked-7c1d"
NEXT_KEY = "sk-test-next-5b8e"
NEXT_SAFETY_KEY = "safety-test-next-0e6b2d9c4a8f1e3b7d5c9a2f"


def secret_json(api_key: str = TEST_API_KEY, safety_identifier_key: str = TEST_SAFETY_KEY, **extra: Any) -> str:
    """The secret as the README has the operator store it."""
    return json.dumps({"api_key": api_key, "safety_identifier_key": safety_identifier_key, **extra})


def safety_identifiers(stub: OpenAIStub) -> list[str | None]:
    return [request.safety_identifier for request in stub.requests]


class Answer(NamedTuple):
    status: int
    body: dict[str, Any]


def mint(context: LambdaContext) -> Answer:
    answer = lambda_handler(load_event("client_secrets.json"), context)
    return Answer(answer["statusCode"], json.loads(answer["body"]))


def bearer_tokens(stub: OpenAIStub) -> list[str]:
    return [request.headers.get("authorization", "") for request in stub.requests]


@pytest.fixture(params=["direct", "extension"])
def secrets_via(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both paths: Secrets Manager's API, and the Parameters and Secrets Extension."""
    return str(request.param)


def configure(monkeypatch: pytest.MonkeyPatch, **environment: str) -> None:
    """Change the function's environment; settings are read once per container, so re-read them."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    function_caches.reread_settings()


def assert_not_shown(output: Output, caplog: pytest.LogCaptureFixture, body: dict[str, Any], *values: str) -> None:
    """None of `values` is in the answer or anywhere in the output (conftest's guard knows only TEST_API_KEY)."""
    shown = json.dumps(body) + output.text() + caplog.text
    assert not [value for value in values if value in shown], "a secret value appeared in the answer or output"


@pytest.fixture
def put_key(function_env: dict[str, str], secrets_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Create a secret (string, binary, or no value at all), point the function at it, return its ARN."""

    def create(secret_string: str | None = None, secret_binary: bytes | None = None) -> str:
        value: dict[str, Any] = {}
        if secret_string is not None:
            value["SecretString"] = secret_string
        if secret_binary is not None:
            value["SecretBinary"] = secret_binary
        created = secrets_manager.create_secret(Name=f"openai-api-key-{uuid.uuid4().hex[:8]}", **value)
        arn = str(created["ARN"])
        configure(monkeypatch, OPENAI_API_KEY_SECRET_ID=arn)
        return arn

    return create


# --- reading the key --------------------------------------------------------------------------------------


# Safety identifier keys as an operator makes them: `openssl rand -hex 32`, `openssl rand -base64 32` and 48.
HEX_SAFETY_KEY = "d575265a790a650f69b7be26851e9c56c8da6ca69542db3717015dc6193080b3"
BASE64_SAFETY_KEY = "Pus2pdCUjNyO4XWgNGDmHJxkxXKuc0+4NbJYgRUnWro="
LONG_BASE64_SAFETY_KEY = "1MSt8S6V+EoaL1UNESnxeq9os3jV9GwTpcvYdbRlPScqmC1J4bOE94m8FAS2BEsj"


@pytest.mark.parametrize(
    ("secret_string", "safety_key"),
    [
        pytest.param(secret_json(), TEST_SAFETY_KEY, id="json"),
        pytest.param(
            secret_json(f" {TEST_API_KEY} ", org="org-test") + "\n", TEST_SAFETY_KEY, id="json-padded-extra-field"
        ),
        pytest.param(secret_json(safety_identifier_key=HEX_SAFETY_KEY), HEX_SAFETY_KEY, id="openssl-rand-hex-32"),
        pytest.param(
            secret_json(safety_identifier_key=BASE64_SAFETY_KEY), BASE64_SAFETY_KEY, id="openssl-rand-base64-32"
        ),
        pytest.param(
            secret_json(safety_identifier_key=LONG_BASE64_SAFETY_KEY),
            LONG_BASE64_SAFETY_KEY,
            id="openssl-rand-base64-48",
        ),
    ],
)
def test_the_keys_are_read_from_the_json_secret(
    put_key: Callable[..., str],
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    secret_string: str,
    safety_key: str,
) -> None:
    # Given the secret holds both keys as the README says
    put_key(secret_string)

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then OpenAI was called with exactly that API key, and a safety identifier made with the other key
    assert answer.status == HTTPStatus.OK
    assert bearer_tokens(openai_stub) == [f"Bearer {TEST_API_KEY}"]
    assert safety_identifiers(openai_stub) == [
        expected_safety_identifier(load_event("client_secrets.json"), safety_key)
    ]


def test_a_rotated_safety_identifier_key_changes_the_identifier_once_the_ttl_has_passed(
    put_key: Callable[..., str],
    secrets_manager: Any,
    openai_stub: OpenAIStub,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
    output: Output,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a container that has minted for a caller, with a TTL that has always passed
    arn = put_key(secret_json())
    configure(monkeypatch, SECRET_CACHE_TTL_SECONDS="0")
    assert mint(lambda_context).status == HTTPStatus.OK

    # When the operator rotates the safety identifier key, as the README shows, and the same caller mints twice
    secrets_manager.put_secret_value(SecretId=arn, SecretString=secret_json(safety_identifier_key=NEXT_SAFETY_KEY))
    answers = [mint(lambda_context) for _ in range(2)]

    # Then the caller has a new identifier, stable from then on, and the new key showed nowhere
    assert [answer.status for answer in answers] == [HTTPStatus.OK] * 2
    before, after, again = safety_identifiers(openai_stub)
    assert before != after == again
    assert_not_shown(output, caplog, answers[-1].body, NEXT_SAFETY_KEY)


# --- the TTL cache ----------------------------------------------------------------------------------------


def test_a_warm_container_fetches_the_key_once_per_ttl(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given a warm container with the template's TTL (300 s)

    # When it mints ten times
    statuses = [mint(lambda_context).status for _ in range(10)]

    # Then Secrets Manager was asked once
    assert statuses == [HTTPStatus.OK] * 10
    assert output.metric_count("SecretFetches") == 1
    assert len(openai_stub.requests) == 10


def test_with_a_zero_ttl_every_invocation_fetches_the_key(
    monkeypatch: pytest.MonkeyPatch, lambda_context: LambdaContext, output: Output
) -> None:
    # Given the cache is switched off
    configure(monkeypatch, SECRET_CACHE_TTL_SECONDS="0")

    # When the container mints three times
    statuses = [mint(lambda_context).status for _ in range(3)]

    # Then the key was fetched for each
    assert statuses == [HTTPStatus.OK] * 3
    assert output.metric_count("SecretFetches") == 3


def test_a_rotated_key_is_used_once_the_ttl_has_passed(
    put_key: Callable[..., str],
    secrets_manager: Any,
    openai_stub: OpenAIStub,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
    output: Output,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a container whose secret holds a key OpenAI has revoked, and a TTL that has always passed
    arn = put_key(secret_json(REVOKED_KEY))
    configure(monkeypatch, SECRET_CACHE_TTL_SECONDS="0")
    assert mint(lambda_context).status == HTTPStatus.BAD_GATEWAY

    # When the operator puts the new key in and the next request comes
    secrets_manager.put_secret_value(SecretId=arn, SecretString=secret_json())
    answer = mint(lambda_context)

    # Then it is minted with the new key, without a cold start
    assert answer.status == HTTPStatus.OK
    assert bearer_tokens(openai_stub) == [f"Bearer {REVOKED_KEY}", f"Bearer {TEST_API_KEY}"]
    assert_not_shown(output, caplog, answer.body, REVOKED_KEY)


def test_a_rotated_key_is_not_fetched_within_the_ttl(
    api_key_secret_arn: str,
    secrets_manager: Any,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a warm container that has read the key (template TTL: 300 s)
    assert mint(lambda_context).status == HTTPStatus.OK

    # When the key is rotated and the next request comes within the TTL
    secrets_manager.put_secret_value(SecretId=api_key_secret_arn, SecretString=secret_json(NEXT_KEY))
    answer = mint(lambda_context)

    # Then the cached key is still the one used, and Secrets Manager was not asked again
    assert answer.status == HTTPStatus.OK
    assert bearer_tokens(openai_stub) == [f"Bearer {TEST_API_KEY}"] * 2
    assert output.metric_count("SecretFetches") == 1
    assert_not_shown(output, caplog, answer.body, NEXT_KEY)


def test_a_key_openai_refuses_is_read_again_at_once(
    put_key: Callable[..., str],
    secrets_manager: Any,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a warm container holding a key OpenAI has revoked (template TTL: 300 s)
    arn = put_key(secret_json(REVOKED_KEY))
    assert mint(lambda_context).status == HTTPStatus.BAD_GATEWAY

    # When the operator puts the new key in and the next request comes, well within the TTL
    secrets_manager.put_secret_value(SecretId=arn, SecretString=secret_json())
    answer = mint(lambda_context)

    # Then the refused key was not kept: the new one is read and used at once
    assert answer.status == HTTPStatus.OK
    assert bearer_tokens(openai_stub) == [f"Bearer {REVOKED_KEY}", f"Bearer {TEST_API_KEY}"]
    assert output.metric_count("SecretFetches") == 2
    assert_not_shown(output, caplog, answer.body, REVOKED_KEY)


# --- failing closed ---------------------------------------------------------------------------------------

MISSING_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-api-key-gone-AbCdEf"


@pytest.mark.parametrize(
    ("secret", "reason", "secret_values"),
    [
        pytest.param(None, "api_key_missing", (), id="no-such-secret"),
        pytest.param({}, "api_key_missing", (), id="created-without-a-value"),
        pytest.param(
            {"secret_string": '{"api_key": "sk-test-trunc-9f2a'},
            "api_key_malformed",
            ("sk-test-trunc-9f2a",),
            id="malformed-json",
        ),
        pytest.param(
            {"secret_string": json.dumps({"key": "sk-test-field-3c4d"})},
            "api_key_malformed",
            ("sk-test-field-3c4d",),
            id="json-without-api-key",
        ),
        pytest.param(
            {"secret_string": json.dumps({"api_key": 4711})}, "api_key_malformed", (), id="json-api-key-not-a-string"
        ),
        # Secrets Manager refuses an empty SecretString (minimum length 1): these are the empty keys it allows.
        pytest.param({"secret_string": " \n"}, "api_key_malformed", (), id="empty-bare"),
        pytest.param({"secret_string": json.dumps({"api_key": ""})}, "api_key_malformed", (), id="empty-json"),
        pytest.param(
            {"secret_string": "sk-test-split tail-qz8e7f"},
            "api_key_malformed",
            ("sk-test-split", "tail-qz8e7f"),
            id="key-with-spaces",
        ),
        pytest.param(
            {"secret_string": "sk-test-curly-2b1c\u201d"},
            "api_key_malformed",
            ("sk-test-curly-2b1c",),
            id="key-with-a-pasted-curly-quote",
        ),
        pytest.param(
            {"secret_binary": b"sk-test-binary-6a0b"}, "api_key_malformed", ("sk-test-binary-6a0b",), id="binary-only"
        ),
        # The bare key earlier versions took: there is no safety identifier key beside it.
        pytest.param({"secret_string": TEST_API_KEY}, "safety_identifier_key_missing", (), id="bare-key"),
        pytest.param(
            {"secret_string": f"{TEST_API_KEY}\n"}, "safety_identifier_key_missing", (), id="bare-pasted-with-newline"
        ),
        pytest.param(
            {"secret_string": json.dumps({"api_key": TEST_API_KEY})},
            "safety_identifier_key_missing",
            (),
            id="json-without-safety-key",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="")}, "safety_identifier_key_missing", (), id="empty"
        ),
        pytest.param(
            {"secret_string": json.dumps({"api_key": TEST_API_KEY, "safety_identifier_key": None})},
            "safety_identifier_key_missing",
            (),
            id="null",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="short-safety-key-of-31-chars-xx")},
            "safety_identifier_key_malformed",
            ("short-safety-key-of-31-chars-xx",),
            id="31-characters",
        ),
        # Long enough, but a placeholder or a typo rather than a random key.
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key=" " * 32)},
            "safety_identifier_key_malformed",
            (),
            id="32-spaces",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="a" * 32)},
            "safety_identifier_key_malformed",
            ("a" * 32,),
            id="one-character-32-times",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="0123456" * 10)},
            "safety_identifier_key_malformed",
            ("0123456" * 10,),
            id="7-distinct-characters",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="d575265a790a650f 69b7be26851e9c56c8da6ca6")},
            "safety_identifier_key_malformed",
            ("d575265a790a650f", "69b7be26851e9c56c8da6ca6"),
            id="with-a-space",
        ),
        pytest.param(
            {"secret_string": json.dumps({"api_key": TEST_API_KEY, "safety_identifier_key": 12345678901234567890})},
            "safety_identifier_key_malformed",
            ("12345678901234567890",),
            id="a-number",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="safety-key-with-a-newline-\n-1b9c7e5d3a")},
            "safety_identifier_key_malformed",
            ("safety-key-with-a-newline-",),
            id="not-printable",
        ),
        pytest.param(
            {"secret_string": secret_json(safety_identifier_key="safety-key-n\u00f6t-ascii-4c2e8a6f0d1b9e")},
            "safety_identifier_key_malformed",
            ("safety-key-n\u00f6t-ascii",),
            id="not-ascii",
        ),
    ],
)
def test_an_unusable_secret_fails_closed_and_tells_the_operator(
    put_key: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    caplog: pytest.LogCaptureFixture,
    secret: dict[str, Any] | None,
    reason: str,
    secret_values: tuple[str, ...],
) -> None:
    # Given the function's secret cannot give a usable key
    if secret is None:
        configure(monkeypatch, OPENAI_API_KEY_SECRET_ID=MISSING_ARN)
    else:
        put_key(**secret)

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then nothing is minted: a 500 whose code names the problem and whose message says what to do
    assert answer.status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert answer.body == {
        "error": {"type": "server_error", "message": answer.body["error"]["message"], "param": None, "code": reason}
    }
    assert beta_errors("ErrorResponse", answer.body) == []
    if reason.startswith("safety_identifier_key"):
        assert (
            'operator must store the service\'s secret as JSON with both "api_key" and "safety_identifier_key"'
            in (answer.body["error"]["message"])
        )
        assert "`openssl rand -hex 32`" in answer.body["error"]["message"]
    else:
        assert "operator must put a valid key into the service's secret" in answer.body["error"]["message"]
    # And nothing went upstream, the reason is counted and logged for the operator, without the secret's value
    assert openai_stub.requests == []
    assert output.metric_count("ConfigurationErrors", reason=reason) == 1
    assert any(line.get("reason") == reason and line["level"] == "ERROR" for line in output.logs())
    assert_not_shown(output, caplog, answer.body, *secret_values)


def test_once_the_operator_puts_a_key_in_the_next_request_mints(
    put_key: Callable[..., str], secrets_manager: Any, openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given a fresh stack's empty secret refused a request (template TTL: 300 s)
    arn = put_key()
    assert mint(lambda_context).status == HTTPStatus.INTERNAL_SERVER_ERROR

    # When the operator puts the keys in, as the README says
    secrets_manager.put_secret_value(SecretId=arn, SecretString=secret_json())
    answer = mint(lambda_context)

    # Then the next request mints at once: a failure is never cached
    assert answer.status == HTTPStatus.OK
    assert bearer_tokens(openai_stub) == [f"Bearer {TEST_API_KEY}"]


def test_an_unreachable_secrets_manager_is_a_503_worth_retrying(
    monkeypatch: pytest.MonkeyPatch,
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    secrets_via: str,
) -> None:
    # Given Secrets Manager (or the extension before it) refuses connections: a closed loopback port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if secrets_via == "extension":
        configure(monkeypatch, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=str(port))
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port}")

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller is told to retry, and nothing went upstream
    assert answer.status == HTTPStatus.SERVICE_UNAVAILABLE
    assert answer.body == {
        "error": {
            "type": "server_error",
            "message": answer.body["error"]["message"],
            "param": None,
            "code": "secrets_unavailable",
        }
    }
    assert "Retry" in answer.body["error"]["message"]
    assert openai_stub.requests == []
    assert output.metric_count("DependencyErrors", dependency="secretsmanager") == 1
    assert output.metric_count("ConfigurationErrors") == 0
