"""What a function that opens calls needs to start their supervision, for tests that open calls and Live sessions
without running supervisors: a loopback Lambda Invoke API that records each asynchronous invocation (the supervisor's
event) and answers as Lambda does (or as a test tells it to fail), EventBridge Scheduler in the tests' moto server with
a schedule group of the test's own, and the end of each recorded call as its supervisor would record it."""

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote

import boto3
from werkzeug.serving import BaseWSGIServer, make_server

from local.aws import FAKE_CREDENTIALS, REGION, signed_requests_only
from local.running import Running, serve_in_background
from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Store
from voice_access.domain import ledger

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_INVOKE = "/2015-03-31/functions/"


@dataclass(frozen=True)
class Invocation:
    """One Invoke request as the function sent it: the function it names, its invocation type and its event."""

    function: str
    invocation_type: str
    event: dict[str, Any]

    @property
    def call(self) -> ledger.CallStart:
        """The call the event names, as the supervisor reads it."""
        call = self.event["call"]
        return ledger.CallStart(
            call["id"],
            call["kind"],
            call["profile"],
            call["user"],
            call["model"],
            call["started_at"],
            call["deadline_at"],
            call["lease"],
            call["slot"],
        )


class LambdaInvocations(Running):
    """Lambda's Invoke API on 127.0.0.1, for requests signed (SigV4) with the local AWS's credentials: each
    invocation recorded and answered 202 (queued), or with the next failure ``fail_next`` queued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._invocations: list[Invocation] = []
        self._failures: deque[tuple[int, str]] = deque()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LambdaInvocations is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._server = make_server("127.0.0.1", 0, signed_requests_only(self._wsgi), threaded=True)
        self._thread = serve_in_background(self._server, "lambda-invocations")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def fail_next(self, status: HTTPStatus, error_type: str) -> None:
        """Answer the next invocation with Lambda's error ``error_type`` (e.g. 404 ResourceNotFoundException)."""
        with self._lock:
            self._failures.append((status, error_type))

    def invocations(self) -> list[Invocation]:
        """Every invocation received (failed ones too), oldest first."""
        with self._lock:
            return list(self._invocations)

    def _wsgi(self, environ: "WSGIEnvironment", start_response: "StartResponse") -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(_INVOKE) or not path.endswith("/invocations"):
            return _answer(start_response, HTTPStatus.NOT_FOUND, "UnknownOperationException")
        function = unquote(path.removeprefix(_INVOKE).removesuffix("/invocations"))
        invocation = Invocation(function, str(environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "")), json.loads(body))
        with self._lock:
            self._invocations.append(invocation)
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            return _answer(start_response, *failure)
        start_response("202 Accepted", [("Content-Length", "0")])
        return [b""]


def _answer(start_response: "StartResponse", status: int, error_type: str) -> Iterable[bytes]:
    body = json.dumps({"Type": "User", "message": f"local Lambda: {error_type}"}).encode()
    headers = [("Content-Type", "application/json"), ("X-Amzn-ErrorType", error_type)]
    start_response(f"{status} {HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def scheduler_client(moto_url: str) -> Any:  # no stubs for EventBridge Scheduler installed
    return boto3.client(
        "scheduler",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass(frozen=True)
class Supervision:
    """Where a function starts its calls' supervisors (``invocations``, recorded) and backstops (moto's Scheduler, in
    ``group``), and the environment that points it there (the rest of the supervision settings are the template's)."""

    invocations: LambdaInvocations
    group: str
    environment: dict[str, str]


@contextmanager
def supervised(moto_url: str) -> Iterator[Supervision]:
    """A recording Invoke API and a schedule group of its own in the moto server at ``moto_url``."""
    group = f"backstops-{uuid.uuid4().hex[:12]}"
    scheduler_client(moto_url).create_schedule_group(Name=group)
    with LambdaInvocations() as invocations:
        environment = {
            "AWS_ENDPOINT_URL_LAMBDA": invocations.url,
            "AWS_ENDPOINT_URL_SCHEDULER": moto_url,
            "BACKSTOP_SCHEDULE_GROUP": group,
        }
        yield Supervision(invocations, group, environment)


def end_calls(invocations: LambdaInvocations, table: str, moto_url: str) -> None:
    """End every call supervised so far, as its supervisor records an end (and frees its slot)."""
    store = Store(table, moto_url, REGION)
    for invocation in invocations.invocations():
        if invocation.event.get("action") == "supervise":
            ledger.end(store, invocation.call, "test", time.time(), Deadline.after(5))
