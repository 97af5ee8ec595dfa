"""A loopback stand-in between the function and moto's DynamoDB that passes requests on, or fails them as
DynamoDB and the network do: throttling (a 400 whose __type names it), a 500, an answer that never comes, a
connection dropped before any answer, a request applied whose answer is lost. The function is pointed at it
with AWS_ENDPOINT_URL_DYNAMODB, as at DynamoDB itself; ``closed_port_url()`` is an endpoint where nothing
listens."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import urlsplit

from local.running import LoopbackHttpServer, Running

# The headers a hop sets for itself: the rest of a request goes to moto as the function sent it.
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})


class StoreFaultKind(StrEnum):
    ERROR = "error"  # answer ``status`` with DynamoDB's JSON error body for ``aws_code``
    HANG = "hang"  # read the request, never answer (until the injector stops)
    DROP = "drop"  # read the request, close the connection without a byte of answer
    LOST = "lost"  # pass the request on (moto applies it), never answer (until the injector stops)
    PASS = "pass"  # pass the request on and its answer back, as with no fault: to queue faults after it


@dataclass(frozen=True)
class StoreFault:
    kind: StoreFaultKind
    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    aws_code: str = ""
    message: str = ""

    @classmethod
    def throttling(cls) -> StoreFault:
        return cls(
            StoreFaultKind.ERROR,
            HTTPStatus.BAD_REQUEST,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )

    @classmethod
    def provisioned_throughput_exceeded(cls) -> StoreFault:
        return cls(
            StoreFaultKind.ERROR,
            HTTPStatus.BAD_REQUEST,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
        )

    @classmethod
    def internal_server_error(cls) -> StoreFault:
        return cls(
            StoreFaultKind.ERROR, HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerError", "Internal server error"
        )

    @classmethod
    def hang(cls) -> StoreFault:
        return cls(StoreFaultKind.HANG)

    @classmethod
    def drop(cls) -> StoreFault:
        return cls(StoreFaultKind.DROP)

    @classmethod
    def lost(cls) -> StoreFault:
        return cls(StoreFaultKind.LOST)

    @classmethod
    def passed(cls) -> StoreFault:
        return cls(StoreFaultKind.PASS)

    def body(self) -> bytes:
        return json.dumps(
            {"__type": f"com.amazonaws.dynamodb.v20120810#{self.aws_code}", "message": self.message}
        ).encode()


class DynamoDBFaults(Running):
    """On 127.0.0.1, in front of the DynamoDB at ``upstream_url`` (moto's): each request meets the next queued
    fault, else the standing one (``fail_every``), else is passed on and moto's answer passed back."""

    def __init__(self, upstream_url: str) -> None:
        self._upstream = urlsplit(upstream_url)
        self._lock = threading.Lock()
        self._queued: deque[StoreFault] = deque()
        self._standing: StoreFault | None = None
        self._targets: list[str] = []
        self._stopping = threading.Event()  # releases the requests being held (HANG)
        self._server: LoopbackHttpServer | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("DynamoDBFaults is not started")
        host, port = self._server.address
        return f"http://{host}:{port}"

    @property
    def targets(self) -> list[str]:
        """The X-Amz-Target of every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._targets)

    def inject(self, *faults: StoreFault) -> None:
        """One fault for each of the next requests, in order."""
        with self._lock:
            self._queued.extend(faults)

    def fail_every(self, fault: StoreFault | None) -> None:
        """``fault`` for every request from now on (None: pass them on again)."""
        with self._lock:
            self._standing = fault

    def start(self) -> Self:
        self._stopping.clear()
        self._server = LoopbackHttpServer(_handler(self), "dynamodb-faults")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            self._server = None

    def _received(self, target: str) -> StoreFault | None:
        with self._lock:
            self._targets.append(target)
            return self._queued.popleft() if self._queued else self._standing

    def _pass_on(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self._upstream.hostname or "127.0.0.1", self._upstream.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def closed_port_url() -> str:
    """http://127.0.0.1:<a port nothing listens on>: a connection there is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _handler(faults: DynamoDBFaults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as DynamoDB's endpoint

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = faults._received(self.headers.get("X-Amz-Target", ""))
            if fault is None or fault.kind in (StoreFaultKind.PASS, StoreFaultKind.LOST):
                # Host too goes on as sent: the function's signature covers it, and the local AWS checks it.
                kept = _HOP_BY_HOP - {"host"}
                headers = {name: value for name, value in self.headers.items() if name.lower() not in kept}
                status, answer_headers, answer = faults._pass_on("POST", self.path, headers, body)
                if fault is not None and fault.kind is StoreFaultKind.LOST:
                    faults._stopping.wait()
                    self.close_connection = True
                    return
                self._answer(status, answer, [(n, v) for n, v in answer_headers if n.lower() not in _HOP_BY_HOP])
            elif fault.kind is StoreFaultKind.ERROR:
                self._answer(fault.status, fault.body(), [("Content-Type", "application/x-amz-json-1.0")])
            elif fault.kind is StoreFaultKind.HANG:
                faults._stopping.wait()
                self.close_connection = True
            else:  # DROP
                self.close_connection = True

        def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read ``targets``

    return Handler
