"""What the function's own AWS clients send, caught before it leaves (no socket), beside what botocore would send for
the same operation and how botocore's own signer signs the function's request: for the unit tests of the REST
clients (aws_lambda.py, scheduler.py)."""

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
import urllib3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.credentials import Credentials

from local.sigv4 import expected

ACCESS_KEY_ID = "AKIDEXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"


@dataclass
class Sent:
    """One request as a client handed it to urllib3."""

    method: str
    target: str  # path?query, as sent
    body: bytes
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]


class _Response:
    def __init__(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.status, self.data, self.headers = status, data, headers


@dataclass
class Catching:
    """A PoolManager stand-in: records each request, answers with ``answers`` in turn (the last again when they run
    out), or raises ``failure``."""

    answers: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=lambda: [(200, b"{}", {})])
    failure: Exception | None = None
    sent: list[Sent] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)

    def connection_from_url(self, url: str) -> "Catching":
        self.endpoints.append(url)
        return self

    def urlopen(self, method: str, url: str, *, body: bytes, headers: dict[str, str], timeout: Any) -> _Response:
        self.sent.append(Sent(method, url, body, dict(headers)))
        if self.failure is not None:
            raise self.failure
        status, data, answer_headers = self.answers[min(len(self.sent), len(self.answers)) - 1]
        return _Response(status, data, answer_headers)


@contextmanager
def catching(monkeypatch: pytest.MonkeyPatch, module: Any, **answers: Any) -> Iterator[Catching]:
    """``module``'s pools replaced by a Catching, with the example credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    pools = Catching(**answers)
    monkeypatch.setattr(module, "_pools", pools)
    yield pools


def botocores_signature(sent: Sent, endpoint: str, service: str, region: str = REGION) -> str:
    """The signature botocore's SigV4 signer makes of ``sent`` (its method, URL, signed headers and body), at the
    moment its X-Amz-Date names."""
    signed = sent.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {name: value for name, value in sent.headers.items() if name.lower() in signed}
    headers["Host"] = urlsplit(endpoint).netloc
    return expected(
        sent.method,
        endpoint + sent.target,
        headers,
        sent.body,
        Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        service,
        region,
        sent.headers["X-Amz-Date"],
    ).signature


def signature_of(sent: Sent) -> str:
    return sent.headers["Authorization"].rpartition("Signature=")[2]


def botocores_request(service: str, operation: str, endpoint: str, answer: bytes = b"{}", **params: Any) -> Sent:
    """The request botocore's own client makes for ``operation`` (e.g. "invoke") with ``params``, caught before it
    is sent."""
    client = botocore.session.get_session().create_client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    caught: list[Sent] = []

    def before_send(request: Any, **_: Any) -> AWSResponse:
        split = urlsplit(request.url)
        target = split.path + (f"?{split.query}" if split.query else "")
        body = request.body if isinstance(request.body, bytes) else (request.body or b"")
        headers = {
            name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()
        }
        caught.append(Sent(request.method, target, body, headers))
        status = 202 if operation == "invoke" else 200
        raw = urllib3.HTTPResponse(body=io.BytesIO(answer), status=status, preload_content=False)
        return AWSResponse(request.url, raw.status, HTTPHeaders(), raw)

    client.meta.events.register("before-send", before_send)  # type: ignore[arg-type]  # a hook may answer for AWS
    getattr(client, operation)(**params)
    return caught[0]
