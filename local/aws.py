"""The local AWS of `make run`, `make invoke` and the tests: one moto server (Secrets Manager, Cognito,
DynamoDB)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from local.running import Running, serve_in_background

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

REGION = "us-east-1"
# What a Lambda execution role hands the function; moto accepts any credentials.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def secrets_manager_client(endpoint_url: str, region: str = REGION) -> SecretsManagerClient:
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def cognito_client(endpoint_url: str, region: str = REGION) -> CognitoIdentityProviderClient:
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def dynamodb_client(endpoint_url: str, region: str = REGION) -> Any:  # no stubs for DynamoDB installed
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


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


class LocalAws(Running):
    """moto's server mode on 127.0.0.1 (a free port): every service moto has, over real HTTP, with DynamoDB's
    requests answered one at a time (see one_dynamodb_request_at_a_time)."""

    def __init__(self) -> None:
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._endpoint_url: str | None = None
        # DynamoDB's requests answered, and moto's seconds answering them, by operation ("UpdateItem"): what
        # `make bench` counts per mint.
        self.dynamodb_requests: Counter[str] = Counter()
        self.dynamodb_seconds: defaultdict[str, float] = defaultdict(float)

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
        app: Any = one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app), self._answered)
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._server = server
        self._thread = serve_in_background(server, "local-aws")
        host, port = server.server_address[:2]
        self._endpoint_url = f"http://{host!s}:{port}"
        return self

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
