"""The local AWS of `make run`, `make invoke` and the tests: one moto server (Secrets Manager, Cognito,
DynamoDB, SQS, EventBridge Scheduler), which, as AWS, answers only requests signed (SigV4) with its credentials, and
no other web origin.

moto itself takes any credentials and answers every origin with CORS: a page open in the developer's browser
could read the secret it holds (the developer's real OpenAI key, with OPENAI_API_KEY) or reach the user
pool's admin API. What AWS serves unauthenticated (the user pool's JWKS and OIDC discovery) stays open.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self

import boto3
from botocore.auth import SIGV4_TIMESTAMP
from botocore.credentials import Credentials
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from local import sigv4
from local.running import Running, serve_in_background, timing_out

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# botocore logs whole requests and answers at DEBUG, and the stand-ins' boto3 calls carry the secret (the key they
# put into Secrets Manager, the key the extension stand-in hands on): never let it.
logging.getLogger("botocore").setLevel(logging.INFO)

REGION = "us-east-1"
# What a Lambda execution role hands the function, and what this process's local AWS requires of every
# request: new for each run (each process), so that nothing outside the run can sign a request to it.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIALOCAL" + secrets.token_hex(6).upper(),
    "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
}
# Requests above this are refused unread (413): DynamoDB's largest, a batch write, is 16 MB.
BODY_LIMIT = 16 * 1024 * 1024
# Cognito serves these unauthenticated: the gateway's JWT authorizer (and any relying party) reads them.
_OPEN_PATHS = re.compile(r"/[\w-]+/\.well-known/(jwks\.json|openid-configuration)")
# How far a request's X-Amz-Date may be from this clock before AWS refuses it: 5 minutes for Secrets Manager,
# 15 for DynamoDB and Cognito (what each one's "Signature expired" names).
_CLOCK_SKEW = {"secretsmanager": timedelta(minutes=5)}
_DEFAULT_CLOCK_SKEW = timedelta(minutes=15)
# Seconds the server waits on a client's socket (the rest of a request, or its reading of the answer).
SOCKET_TIMEOUT = 30.0


def secrets_manager_client(
    endpoint_url: str, region: str = REGION, credentials: Mapping[str, str] = FAKE_CREDENTIALS
) -> SecretsManagerClient:
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def cognito_client(
    endpoint_url: str, region: str = REGION, credentials: Mapping[str, str] = FAKE_CREDENTIALS
) -> CognitoIdentityProviderClient:
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )


def dynamodb_client(endpoint_url: str, region: str = REGION) -> Any:  # no stubs for DynamoDB installed
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def sqs_client(endpoint_url: str, region: str = REGION) -> Any:  # no stubs for SQS installed
    return _client("sqs", endpoint_url, region)


def scheduler_client(endpoint_url: str, region: str = REGION) -> Any:  # no stubs for EventBridge Scheduler installed
    return _client("scheduler", endpoint_url, region)


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def signed_requests_only(app: WSGIApplication) -> WSGIApplication:
    """``app``, answering as AWS does only requests signed (SigV4, checked with botocore's own signer) with
    FAKE_CREDENTIALS, but for Cognito's JWKS and OIDC discovery; with no CORS headers, and every preflight refused
    (nothing in a browser needs the local AWS)."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            return _refuse(start_response, 403, "AccessDeniedException", "the local AWS answers no web page (no CORS)")
        if not (environ.get("REQUEST_METHOD") == "GET" and _OPEN_PATHS.fullmatch(str(environ.get("PATH_INFO")))):
            try:
                signed = _signed_now(environ)  # before reading a byte of the body
                body = _body(environ)
                _check_signature(environ, body, signed)
            except _Refused as refused:
                return _refuse(start_response, *refused.args)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))

        def without_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
            return start_response(status, kept, exc_info)

        return app(environ, without_cors)

    return guarded


class _Refused(Exception):
    """What AWS answers a request it refuses: status, error (its __type) and message."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(status, error, message)


def _body(environ: WSGIEnvironment) -> bytes:
    """The request's body; refused when it is over BODY_LIMIT."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's stream ends where the body does
        body: bytes = stream.read(BODY_LIMIT + 1)
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = stream.read(length) if length <= BODY_LIMIT else b"-" * (BODY_LIMIT + 1)
    if len(body) > BODY_LIMIT:
        raise _Refused(413, "RequestEntityTooLarge", f"a request body is at most {BODY_LIMIT}")
    return body


def _signed_now(environ: WSGIEnvironment) -> re.Match[str]:
    """The request's Authorization, parsed, when its headers alone show it signed now with FAKE_CREDENTIALS' access
    key; refused as AWS refuses it otherwise."""
    signed = sigv4.parse(str(environ.get("HTTP_AUTHORIZATION", "")))
    if signed is None:
        raise _Refused(
            403, "MissingAuthenticationTokenException", "sign the request (SigV4) with make run's credentials"
        )
    if not sigv4.equal(signed["key"], FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]):
        raise _Refused(
            400, "UnrecognizedClientException", "not this run's access key: use the credentials make run hands out"
        )
    timestamp = str(environ.get("HTTP_X_AMZ_DATE", ""))
    signed_at = sigv4.signed_at(timestamp)
    if signed_at is None or not timestamp.startswith(signed["day"]):
        raise _Refused(403, "InvalidSignatureException", "the request's X-Amz-Date is missing or not the day signed")
    _check_clock_skew(timestamp, signed_at, _CLOCK_SKEW.get(signed["service"], _DEFAULT_CLOCK_SKEW))
    return signed


def _check_clock_skew(timestamp: str, signed_at: datetime, window: timedelta) -> None:
    """Refuses, in AWS's words, a request signed more than ``window`` away from this clock."""
    now = datetime.now(UTC)
    skew = sigv4.skew(signed_at, window, now)
    if skew is not None:
        relation, sign = ("now earlier", "-") if skew == "expired" else ("still later", "+")
        bound = now - window if skew == "expired" else now + window
        minutes = window // timedelta(minutes=1)
        message = f"Signature {skew}: {timestamp} is {relation} than {bound:{SIGV4_TIMESTAMP}}"
        raise _Refused(400, "InvalidSignatureException", f"{message} ({now:{SIGV4_TIMESTAMP}} {sign} {minutes} min.)")


def _check_signature(environ: WSGIEnvironment, body: bytes, signed: re.Match[str]) -> None:
    """Refuses, as AWS does, a request whose signature is not FAKE_CREDENTIALS' over this body; ``signed``: its
    Authorization, which passed _signed_now."""
    if environ.get("HTTP_X_AMZ_CONTENT_SHA256") not in (None, hashlib.sha256(body).hexdigest()):
        raise _Refused(403, "InvalidSignatureException", "the request's body is not the one signed")
    path = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    expected = sigv4.expected(
        str(environ["REQUEST_METHOD"]),
        f"http://{environ.get('HTTP_HOST', '')}{path}",
        {name: str(environ.get(_environ_key(name), "")) for name in signed["headers"].split(";")},
        body,
        Credentials(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
        signed["service"],
        signed["region"],
        str(environ.get("HTTP_X_AMZ_DATE", "")),
    )
    if expected.signed_headers != signed["headers"]:
        raise _Refused(403, "InvalidSignatureException", "sign the request's headers as botocore does")
    if not sigv4.equal(expected.signature, signed["signature"]):
        raise _Refused(
            403, "InvalidSignatureException", "the signature does not match: use the credentials make run hands out"
        )


def _environ_key(header: str) -> str:
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


def _refuse(start_response: StartResponse, status: int, error: str, message: str) -> Iterable[bytes]:
    body = json.dumps({"__type": error, "message": f"local AWS: {message}"}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", error)]
    start_response(f"{status} {HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def one_dynamodb_request_at_a_time(
    app: WSGIApplication, answered: Callable[[str, float], None] | None = None
) -> WSGIApplication:
    """``app``, answering DynamoDB's requests one at a time (other services' still concurrently), telling
    ``answered`` (if given) each one's operation and the seconds moto took to answer it.

    DynamoDB serialises the writes to an item, so a conditional update is atomic; moto's is a read, a check
    and a write in Python, and two threads can interleave between them: an `ADD n :one` conditional on
    `n < :limit` then admits one more than the limit now and then.
    """
    lock = threading.Lock()

    def serialised(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("DynamoDB_20120810."):
            return app(environ, start_response)
        with lock:
            started = time.perf_counter()
            answer = app(environ, start_response)
            try:
                return list(answer)  # the whole answer made under the lock
            finally:
                close: Callable[[], object] | None = getattr(answer, "close", None)
                if close is not None:
                    close()
                if answered is not None:
                    answered(target.removeprefix("DynamoDB_20120810."), time.perf_counter() - started)

    return serialised


class TimingOutRequestHandler(MotoRequestHandler):
    """moto's request handler with a deadline (``timeout`` seconds) on each wait for the client's socket: a client
    that stops sending (headers never finished, a body shorter than its Content-Length) or reading loses its
    connection, unanswered, instead of holding a thread for good."""

    def connection_dropped(self, error: BaseException, environ: WSGIEnvironment | None = None) -> None:
        self.close_connection = True  # a timed-out socket cannot be read again


class LocalAws(Running):
    """moto's server mode on 127.0.0.1 (a free port): every service moto has, over real HTTP, with DynamoDB's
    requests answered one at a time (see one_dynamodb_request_at_a_time), for requests signed with
    FAKE_CREDENTIALS only (see signed_requests_only), a client's socket waited on at most ``socket_timeout``
    seconds at a time."""

    def __init__(self, socket_timeout: float = SOCKET_TIMEOUT) -> None:
        self.socket_timeout = socket_timeout
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._endpoint_url: str | None = None
        # DynamoDB's requests answered, and moto's seconds answering them, by operation ("UpdateItem"): what
        # `make bench` counts per mint.
        self.dynamodb_requests: Counter[str] = Counter()
        self.dynamodb_seconds: defaultdict[str, float] = defaultdict(float)
        # Every signed request with a target, by target ("secretsmanager.GetSecretValue"): what `make bench` counts of
        # the secret's reads, whoever reads it (the function itself, or the extension stand-in for it).
        self.requests: Counter[str] = Counter()

    @property
    def endpoint_url(self) -> str:
        """The server's URL, e.g. http://127.0.0.1:54321."""
        if self._endpoint_url is None:
            raise RuntimeError("LocalAws is not started")
        return self._endpoint_url

    def start(self) -> Self:
        # moto's per-request access log would drown the gateway's own.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # What moto.server.ThreadedMotoServer serves, with DynamoDB's requests serialised.
        moto: Any = DomainDispatcherApplication(create_backend_app)
        app = self._counting(signed_requests_only(one_dynamodb_request_at_a_time(moto, self._answered)))
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=timing_out(TimingOutRequestHandler, self.socket_timeout)
        )
        self._server = server
        self._thread = serve_in_background(server, "local-aws")
        host, port = server.server_address[:2]
        self._endpoint_url = f"http://{host!s}:{port}"
        return self

    def _counting(self, app: WSGIApplication) -> WSGIApplication:
        def counted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if target := str(environ.get("HTTP_X_AMZ_TARGET", "")):
                self.requests[target] += 1
            return app(environ, start_response)

        return counted

    def _answered(self, operation: str, seconds: float) -> None:
        self.dynamodb_requests[operation] += 1
        self.dynamodb_seconds[operation] += seconds

    def stop(self) -> None:
        """Stop the server; everything in it goes with it."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._endpoint_url = None
