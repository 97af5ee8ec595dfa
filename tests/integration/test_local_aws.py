"""The local AWS (local/aws.py) answers, as AWS does, only requests signed with its run's credentials, and no
other web origin: a page in the developer's browser cannot read the secret it holds (the developer's real key,
with OPENAI_API_KEY) nor reach the user pool's admin API. What Cognito serves unauthenticated stays open."""

import http.client
import json
import re
import socket
import stat
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from local.aws import BODY_LIMIT, FAKE_CREDENTIALS, LocalAws, secrets_manager_client
from local.secrets_manager import LocalSecretsManager
from local.token import state_path
from local.user_pool import UserPool, create_from_template
from tests.deployment import REGION
from tests.keys import TEST_API_KEY
from tests.local_run import STUB_API_KEY, local_run
from tests.paths import TEMPLATE
from tests.signing import botocore_signed
from voice_access.clients.aws_signature import AwsCredentials

PAGE = "http://localhost:5173"  # any page open in the developer's browser
_http = urllib3.PoolManager(retries=False, timeout=30)
# What each service's X-Amz-Target starts with, and the name it signs with.
SIGNING_NAMES = {
    "secretsmanager": "secretsmanager",
    "DynamoDB_20120810": "dynamodb",
    "AWSCognitoIdentityProviderService": "cognito-idp",
}


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with LocalAws() as aws:
        yield aws


@pytest.fixture(scope="module")
def secret(aws: LocalAws) -> Iterator[LocalSecretsManager]:
    with LocalSecretsManager(api_key=TEST_API_KEY, aws=aws) as secret:
        yield secret


@pytest.fixture(scope="module")
def pool(aws: LocalAws) -> UserPool:
    pool = create_from_template(TEMPLATE, {}, aws.endpoint_url, REGION)
    assert pool is not None
    return pool


def get_secret_value(endpoint_url: str, secret_arn: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
    """GetSecretValue to the local AWS at ``endpoint_url`` as a page's fetch() would send it: no signature."""
    return _http.request(
        "POST",
        endpoint_url,
        body=json.dumps({"SecretId": secret_arn}),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"}
        | headers,
    )


def signed_headers(aws: LocalAws, target: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """The headers of a POST of ``body`` to ``target``, signed (botocore's SigV4 signer) with the run's
    credentials as if at ``at`` (now by default)."""
    return botocore_signed(
        AwsCredentials(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        url=f"{aws.endpoint_url}/",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
        body=body,
        region=REGION,
        service=SIGNING_NAMES[target.split(".")[0]],
        now=at or datetime.now(UTC),
    )


def raw_request(aws: LocalAws, headers: dict[str, str], body: bytes) -> bytes:
    """A POST as bytes on the wire: ``headers`` as given (Content-Length too), then ``body``."""
    host = aws.endpoint_url.removeprefix("http://")
    lines = ["POST / HTTP/1.1", f"Host: {host}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def connected(aws: LocalAws) -> socket.socket:
    host, port = aws.endpoint_url.removeprefix("http://").split(":")
    # Far longer than any server timeout here: the client never gives up first.
    return socket.create_connection((host, int(port)), timeout=120)


def from_a_page(client: Any) -> None:
    """``client``'s requests name PAGE as their Origin (unsigned, as a browser adds it)."""

    def add_origin(request: Any, **_: Any) -> None:
        request.headers["Origin"] = PAGE

    client.meta.events.register("before-send", add_origin)


def cors_headers(answer: urllib3.BaseHTTPResponse | AWSResponse) -> list[str]:
    return [name for name in answer.headers if name.lower().startswith("access-control-")]


def test_a_preflight_from_a_page_is_refused_without_cors(aws: LocalAws, secret: LocalSecretsManager) -> None:
    # Given a page on another origin that would read the secret (its fetch needs a preflight: X-Amz-Target)
    preflight = {
        "Origin": PAGE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target",
    }

    # When the browser asks the local AWS first
    answer = _http.request("OPTIONS", aws.endpoint_url, headers=preflight)

    # Then it is refused, with no CORS header: the browser sends nothing after it
    assert answer.status == HTTPStatus.FORBIDDEN
    assert cors_headers(answer) == []


@pytest.mark.parametrize(
    "authorization",
    [None, "garbage", "other-key", "wrong-secret"],
    ids=["unsigned", "not-sigv4", "unknown-access-key", "wrong-secret-key"],
)
def test_a_request_not_signed_with_the_runs_credentials_gets_no_secret(
    aws: LocalAws, secret: LocalSecretsManager, authorization: str | None
) -> None:
    # Given GetSecretValue with an Origin, unsigned or signed with other credentials
    if authorization in ("other-key", "wrong-secret"):
        other = {
            "AWS_ACCESS_KEY_ID": "testing" if authorization == "other-key" else FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        client = secrets_manager_client(aws.endpoint_url, credentials=other)
        from_a_page(client)

        # When it is sent, Then it is refused as AWS refuses it
        with pytest.raises(ClientError) as refused:
            client.get_secret_value(SecretId=secret.secret_arn)
        expected = "UnrecognizedClientException" if authorization == "other-key" else "InvalidSignatureException"
        assert refused.value.response["Error"]["Code"] == expected
        assert TEST_API_KEY not in str(refused.value.response)
        return
    headers = {"Origin": PAGE} | ({"Authorization": authorization} if authorization else {})

    # When it is sent
    answer = get_secret_value(aws.endpoint_url, secret.secret_arn, headers)

    # Then it is refused: no secret, no CORS header, and AWS's error
    assert answer.status == HTTPStatus.FORBIDDEN
    assert TEST_API_KEY.encode() not in answer.data
    assert cors_headers(answer) == []
    assert json.loads(answer.data)["__type"] == "MissingAuthenticationTokenException"


def test_a_signed_request_whose_body_was_changed_is_refused(aws: LocalAws, secret: LocalSecretsManager) -> None:
    # Given a signed ListSecrets, its body changed after signing
    client = secrets_manager_client(aws.endpoint_url)

    def tamper(request: Any, **_: Any) -> None:
        request.body = b'{"MaxResults": 1}'

    client.meta.events.register("before-send", tamper)

    # When it is sent, Then the signature does not match
    with pytest.raises(ClientError) as refused:
        client.list_secrets()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_a_request_signed_with_the_runs_credentials_is_answered_without_cors(
    aws: LocalAws, secret: LocalSecretsManager
) -> None:
    # Given the run's own client (what the function and make token have), sending an Origin as a page would
    client = secrets_manager_client(aws.endpoint_url)
    answers: list[AWSResponse] = []
    from_a_page(client)
    client.meta.events.register("after-call", lambda http_response, **_: answers.append(http_response))

    # When it reads the secret
    value = client.get_secret_value(SecretId=secret.secret_arn)

    # Then it gets it, and still no CORS header (moto's own are dropped)
    assert json.loads(value["SecretString"])["api_key"] == TEST_API_KEY
    assert cors_headers(answers[0]) == []


def test_the_user_pools_admin_api_needs_a_signature(aws: LocalAws, pool: UserPool) -> None:
    # Given AdminCreateUser, unsigned, from a page
    body = json.dumps({"UserPoolId": pool.pool_id, "Username": "mallory@example.test"})
    target = "AWSCognitoIdentityProviderService.AdminCreateUser"
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, "Origin": PAGE}

    # When it is sent
    answer = _http.request("POST", aws.endpoint_url, body=body, headers=headers)

    # Then it is refused, and the pool has no such user
    assert answer.status == HTTPStatus.FORBIDDEN
    assert cors_headers(answer) == []
    with pytest.raises(ClientError, match="UserNotFoundException"):
        pool._client().admin_get_user(UserPoolId=pool.pool_id, Username="mallory@example.test")


def test_moto_s_own_api_needs_a_signature_too(aws: LocalAws, secret: LocalSecretsManager) -> None:
    # Given moto's dashboard data (every backend's state, secrets and all), unsigned
    # When it is asked for, Then it is refused
    answer = _http.request("GET", f"{aws.endpoint_url}/moto-api/data.json", headers={"Origin": PAGE})
    assert answer.status == HTTPStatus.FORBIDDEN
    assert TEST_API_KEY.encode() not in answer.data


@pytest.mark.parametrize("document", ["jwks.json", "openid-configuration"])
def test_what_cognito_serves_unauthenticated_stays_open(aws: LocalAws, pool: UserPool, document: str) -> None:
    # Given the user pool's JWKS or OIDC discovery document, as a relying party reads it (unsigned)
    url = f"{aws.endpoint_url}/{urllib.parse.quote(pool.pool_id)}/.well-known/{document}"

    # When it is asked for, Then it is served, without CORS
    answer = _http.request("GET", url, headers={"Origin": PAGE})
    assert answer.status == HTTPStatus.OK
    assert json.loads(answer.data)
    assert cors_headers(answer) == []


def test_a_body_over_the_limit_is_refused_unread(aws: LocalAws) -> None:
    # Given a signed request that says its body is over the limit (and sends none of it)
    headers = signed_headers(aws, "secretsmanager.ListSecrets", b"") | {"Content-Length": str(BODY_LIMIT + 1)}

    # When it is sent, Then it is refused at once (413), its body unread
    answer = _http.request("POST", aws.endpoint_url, headers=headers, body=b"", preload_content=True)
    assert answer.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


def test_an_unsigned_request_is_refused_before_its_body_is_read(aws: LocalAws) -> None:
    # Given an unsigned request that says its body is 100 bytes and sends 2 of them (and keeps its connection)
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.ListSecrets"}
    with connected(aws) as connection:
        connection.sendall(raw_request(aws, headers | {"Content-Length": "100"}, b"{}"))

        # When the server answers, Then it refuses it without waiting for the rest of the body
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        assert answer.status == HTTPStatus.FORBIDDEN
        assert json.loads(answer.read())["__type"] == "MissingAuthenticationTokenException"


@pytest.fixture
def impatient_aws() -> Iterator[LocalAws]:
    with LocalAws(socket_timeout=2) as aws:
        yield aws


@pytest.mark.parametrize("stalled", ["headers-unfinished", "signed-body-short"])
def test_a_client_that_stops_sending_loses_its_connection_unanswered(impatient_aws: LocalAws, stalled: str) -> None:
    # Given a client that stops sending: mid-headers, or after 2 bytes of a signed request's 100-byte body
    aws = impatient_aws
    if stalled == "headers-unfinished":
        sent = raw_request(aws, {"Content-Type": "application/x-amz-json-1.1"}, b"").removesuffix(b"\r\n")
    else:
        headers = signed_headers(aws, "secretsmanager.ListSecrets", b"{}" + b" " * 98)
        sent = raw_request(aws, headers | {"Content-Length": "100"}, b"{}")
    with connected(aws) as connection:
        connection.sendall(sent)

        # When it waits, Then the server closes the connection (past its socket timeout) without answering
        assert connection.recv(65536) == b""

    # And the server still answers the next request
    assert "SecretList" in secrets_manager_client(aws.endpoint_url).list_secrets()


@pytest.mark.parametrize(
    "target",
    ["secretsmanager.ListSecrets", "DynamoDB_20120810.ListTables", "AWSCognitoIdentityProviderService.ListUserPools"],
)
@pytest.mark.parametrize(
    ("at", "words"),
    [(datetime(2020, 1, 1, tzinfo=UTC), "Signature expired"), (None, "Signature not yet current")],
    ids=["in-2020", "a-day-ahead"],
)
def test_a_request_signed_far_from_now_is_refused_as_aws_refuses_it(
    aws: LocalAws, target: str, at: datetime | None, words: str
) -> None:
    # Given a request signed correctly with the run's credentials, but dated far outside AWS's window
    body = b'{"MaxResults": 1}'
    headers = signed_headers(aws, target, body, at or datetime.now(UTC) + timedelta(days=1))

    # When it is sent
    answer = _http.request("POST", aws.endpoint_url, body=body, headers=headers)

    # Then it is refused as AWS refuses it (400 InvalidSignatureException, AWS's words)
    assert answer.status == HTTPStatus.BAD_REQUEST
    refusal = json.loads(answer.data)
    assert refusal["__type"] == "InvalidSignatureException"
    assert words in refusal["message"]


def test_a_request_signed_now_is_answered(aws: LocalAws) -> None:
    # Given the same request as above, signed now (what the refusals above are measured against)
    body = b'{"MaxResults": 1}'
    headers = signed_headers(aws, "secretsmanager.ListSecrets", body)

    # When it is sent, Then it is answered
    answer = _http.request("POST", aws.endpoint_url, body=body, headers=headers)
    assert answer.status == HTTPStatus.OK, answer.data


@pytest.mark.parametrize("key", ["ASIALOCALÉÉÉÉÉÉÉÉÉÉÉÉ", "testing"], ids=["non-ascii", "too-short"])
def test_an_access_key_not_shaped_as_aws_s_is_refused(aws: LocalAws, key: str) -> None:
    # Given a request whose Authorization names an access key AWS never issues (sent as latin-1, as HTTP allows)
    headers = signed_headers(aws, "secretsmanager.ListSecrets", b"{}")
    headers["Authorization"] = headers["Authorization"].replace(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], key)

    # When it is sent
    answer = _http.request("POST", aws.endpoint_url, body=b"{}", headers=headers)

    # Then it is refused as an unknown key is (not a 500 with a traceback)
    assert answer.status == HTTPStatus.BAD_REQUEST, answer.data
    assert json.loads(answer.data)["__type"] == "UnrecognizedClientException"


def test_the_environments_credentials_reach_it(aws: LocalAws, secret: LocalSecretsManager) -> None:
    # Given an ordinary boto3 client configured by what make run hands its function
    environment = secret.client_environment()
    client = boto3.client(
        "secretsmanager",
        endpoint_url=environment["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        aws_session_token="a-session-token",  # as Lambda's role credentials carry one
    )

    # When it reads the secret, Then it gets it; and the credentials are not the well-known "testing" ones
    assert json.loads(client.get_secret_value(SecretId=secret.secret_arn)["SecretString"])["api_key"] == TEST_API_KEY
    assert "testing" not in environment.values()


def test_make_runs_local_aws_refuses_a_page_and_make_token_still_signs_in() -> None:
    # Given make run, whose start text names its moto server and secret
    with local_run() as service:
        [line] = [line for line in service.printed if "Secrets Manager: moto at " in line]
        found = re.search(r"moto at (http://\S+), secret (\S+)", line)
        assert found, line
        endpoint, secret_arn = found[1], found[2]

        # When a page sends GetSecretValue to it, unsigned
        answer = get_secret_value(endpoint, secret_arn, {"Origin": PAGE})

        # Then it gets neither the key nor CORS
        assert answer.status == HTTPStatus.FORBIDDEN
        assert STUB_API_KEY.encode() not in answer.data
        assert cors_headers(answer) == []
        # And make token, which signs with the run's credentials from the state file (this user's only), works
        assert service.token()
        assert stat.S_IMODE(state_path(service.port).stat().st_mode) == 0o600
