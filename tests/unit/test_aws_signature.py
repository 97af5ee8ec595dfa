"""SigV4 by hand (aws_signature.py): the same Authorization as botocore's own signer, and as AWS's published
test suite; the secret key never shown."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.signing import botocore_signed
from voice_access.clients import aws_api
from voice_access.clients import quota_store as quota
from voice_access.clients.aws_signature import AwsCredentials, CredentialsMissing, signed_headers
from voice_access.clients.deadline import Deadline

ACCESS_KEY_ID = "AKIDEXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKEN//////////wEaDExample+token/value=="
NOW = datetime(2026, 11, 28, 18, 30, 5, tzinfo=UTC)
DYNAMODB_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.UpdateItem"}
UPDATE = {
    "TableName": "local-QuotaTable",
    "Key": {"pk": {"S": "caller#assistant#86400#20420#" + "ab" * 32}},
    "UpdateExpression": "ADD #c0 :one",
    "ExpressionAttributeNames": {"#c0": "w60_29407110"},
    "ExpressionAttributeValues": {":one": {"N": "1"}, ":note": {"S": "café ☕ 日本語 \U0001f600"}},
}


def ours(
    credentials: AwsCredentials, *, host: str, headers: dict[str, str], body: bytes, **scope: Any
) -> dict[str, str]:
    return signed_headers(credentials, method="POST", host=host, path="/", headers=headers, body=body, **scope)


CASES = [
    pytest.param(
        "https://dynamodb.us-east-1.amazonaws.com/", "us-east-1", "dynamodb", DYNAMODB_HEADERS, b"", id="empty"
    ),
    pytest.param(
        "https://dynamodb.eu-west-1.amazonaws.com/",
        "eu-west-1",
        "dynamodb",
        DYNAMODB_HEADERS,
        json.dumps(UPDATE, ensure_ascii=False).encode(),
        id="json-unicode",
    ),
    pytest.param(
        "https://dynamodb.cn-north-1.amazonaws.com.cn/",
        "cn-north-1",
        "dynamodb",
        DYNAMODB_HEADERS,
        json.dumps({"blob": "é" * 524_280}, ensure_ascii=False).encode(),  # 1 MiB
        id="1mb",
    ),
    pytest.param(
        "https://sts.ap-southeast-2.amazonaws.com/",
        "ap-southeast-2",
        "sts",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"Action=GetCallerIdentity&Version=2011-06-15",
        id="another-service",
    ),
    pytest.param(
        "https://dynamodb.us-west-2.amazonaws.com/",
        "us-west-2",
        "dynamodb",
        {**DYNAMODB_HEADERS, "X-Custom-Spaces": "  a   b \t c  ", "X-Trailing": "value   ", "X-Leading": "   value"},
        b"{}",
        id="header-whitespace",
    ),
    pytest.param(
        "https://dynamodb.us-east-2.amazonaws.com/",
        "us-east-2",
        "dynamodb",
        {"content-TYPE": "application/x-amz-json-1.0", "x-AMZ-target": "DynamoDB_20120810.UpdateItem", "X-b": "1"},
        b"{}",
        id="mixed-case-names",
    ),
    pytest.param("http://127.0.0.1:4566/", "us-east-1", "dynamodb", DYNAMODB_HEADERS, b"{}", id="loopback-port"),
    pytest.param("http://[::1]:4566/", "us-east-1", "dynamodb", DYNAMODB_HEADERS, b"{}", id="ipv6-loopback-port"),
    pytest.param("https://localhost:8443/", "eu-central-1", "dynamodb", DYNAMODB_HEADERS, b"{}", id="https-port"),
]


@pytest.mark.parametrize("session_token", [None, SESSION_TOKEN], ids=["long-term", "session"])
@pytest.mark.parametrize(("url", "region", "service", "headers", "body"), CASES)
def test_the_signature_is_botocores(
    session_token: str | None,
    url: str,
    region: str,
    service: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    # Given credentials (with or without a session token) and a request
    credentials = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, session_token)
    host = url.split("/")[2]  # as the Host header carries it: botocore keeps a port that is not the default

    # When both sign it at the same moment
    mine = ours(credentials, host=host, headers=headers, body=body, region=region, service=service, now=NOW)
    theirs = botocore_signed(credentials, url=url, headers=headers, body=body, region=region, service=service, now=NOW)

    # Then the Authorization, the date and the token are the same, and every header sent is signed
    assert mine["Authorization"] == theirs["Authorization"]
    assert mine["X-Amz-Date"] == theirs["X-Amz-Date"] == "20261128T183005Z"
    assert mine.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token") == session_token
    signed = mine["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert signed == sorted({name.lower() for name in mine if name != "Authorization"} | {"host"})


def test_the_signature_changes_with_the_body_the_host_and_the_day() -> None:
    # Given one request
    credentials = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    scope = {"region": "us-east-1", "service": "dynamodb"}
    base = ours(credentials, host="dynamodb.us-east-1.amazonaws.com", headers={}, body=b"{}", now=NOW, **scope)

    # When one thing differs
    others = [
        ours(credentials, host="dynamodb.us-east-1.amazonaws.com", headers={}, body=b"{ }", now=NOW, **scope),
        ours(credentials, host="127.0.0.1:4566", headers={}, body=b"{}", now=NOW, **scope),
        ours(
            credentials,
            host="dynamodb.us-east-1.amazonaws.com",
            headers={},
            body=b"{}",
            now=datetime(2026, 11, 29, 18, 30, 5, tzinfo=UTC),
            **scope,
        ),
    ]

    # Then so does the signature
    signatures = {base["Authorization"].rpartition("=")[2], *(o["Authorization"].rpartition("=")[2] for o in others)}
    assert len(signatures) == 4


# AWS's published SigV4 test suite (aws-sig-v4-test-suite: credentials AKIDEXAMPLE, us-east-1, service
# "service", 2015-08-30T12:36:00Z): the cases without a query string, which is all this signer signs.
SUITE_NOW = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
SUITE_SCOPE = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
SUITE_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7"
    "mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d"
    "+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)


@pytest.mark.parametrize(
    ("method", "headers", "token", "authorization"),
    [
        pytest.param(
            "POST",
            {},
            None,
            "SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            id="post-vanilla",
        ),
        pytest.param(
            "POST",
            {"My-Header1": "VALUE1"},
            None,
            "SignedHeaders=host;my-header1;x-amz-date, "
            "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            id="post-header-value-case",
        ),
        pytest.param(
            "POST",
            {},
            SUITE_TOKEN,
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            id="post-sts-header-before",
        ),
        pytest.param(
            "GET",
            {},
            None,
            "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            id="get-vanilla",
        ),
        pytest.param(
            "GET",
            {"My-Header1": " value1", "My-Header2": ' "a   b   c"'},
            None,
            "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
            "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            id="get-header-value-trim",
        ),
    ],
)
def test_the_signature_is_aws_published_one(
    method: str, headers: dict[str, str], token: str | None, authorization: str
) -> None:
    # Given a request of AWS's test suite
    credentials = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, token)

    # When
    signed = signed_headers(
        credentials,
        method=method,
        host="example.amazonaws.com",
        path="/",
        headers=headers,
        body=b"",
        region="us-east-1",
        service="service",
        now=SUITE_NOW,
    )

    # Then it is AWS's own answer
    assert signed["Authorization"] == f"{SUITE_SCOPE}, {authorization}"
    assert signed["X-Amz-Date"] == "20150830T123600Z"


def test_the_credentials_never_show_the_secret_key_or_the_token() -> None:
    # Given
    credentials = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)

    # When it is shown as a traceback, a log line or a debugger would show it
    shown = [repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}", repr([credentials])]

    # Then
    for text in shown:
        assert SECRET_ACCESS_KEY not in text
        assert SESSION_TOKEN not in text


def test_the_signed_headers_never_carry_the_secret_key() -> None:
    # Given / When
    signed = ours(
        AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN),
        host="dynamodb.us-east-1.amazonaws.com",
        headers=DYNAMODB_HEADERS,
        body=b"{}",
        region="us-east-1",
        service="dynamodb",
        now=NOW,
    )

    # Then
    assert not any(SECRET_ACCESS_KEY in value for value in signed.values())


def test_credentials_are_read_from_lambdas_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the variables Lambda sets, with an empty session token (as `sam local` may give)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "")

    # When
    credentials = AwsCredentials.from_environment()

    # Then
    assert credentials == AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None)


@pytest.mark.parametrize("missing", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_missing_credentials_are_named_without_a_value(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    # Given one of the two unset
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.delenv(missing)

    # When
    with pytest.raises(CredentialsMissing) as caught:
        AwsCredentials.from_environment()

    # Then the message names the variables and holds no credential
    assert missing in str(caught.value)
    assert SECRET_ACCESS_KEY not in str(caught.value)


class _Signed(Exception):
    """Stops a quota store request once it is signed: nothing is sent."""


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://dynamodb.us-east-1.amazonaws.com:443", "dynamodb.us-east-1.amazonaws.com"),
        ("http://127.0.0.1:80", "127.0.0.1"),
        ("http://127.0.0.1:4566", "127.0.0.1:4566"),  # another port is kept, as http.client sends it
    ],
)
def test_an_endpoint_with_its_schemes_default_port_signs_the_host_as_sent(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, host: str
) -> None:
    # Given a quota store whose endpoint spells out its scheme's default port
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    hosts: list[str] = []

    def sign(credentials: AwsCredentials, **request: Any) -> dict[str, str]:
        hosts.append(request["host"])
        raise _Signed

    monkeypatch.setattr(aws_api, "signed_headers", sign)

    # When a request to it is signed
    with pytest.raises(_Signed):
        quota._request(quota.Store("local-QuotaTable", endpoint, "us-east-1"), "UpdateItem", {}, Deadline.after(1))

    # Then the host signed is the Host header http.client sends (and botocore signs): without the default port
    assert hosts == [host]
