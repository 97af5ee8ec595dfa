"""A loopback stand-in for OpenAI's Realtime token endpoints, faithful to the official schema.

`POST /v1/realtime/client_secrets` checks the key and validates the body against
`RealtimeCreateClientSecretRequest`, then answers with a spec-shaped client secret;
`POST /v1/realtime/translations/client_secrets` does the same with the translation schemas. Both
require an `OpenAI-Safety-Identifier` header (OpenAI takes one and does not insist; the stub does, so
that a mint without the end user's identifier fails in tests). The beta
paths answer the real `beta_api_shape_disabled` error; anything else is `unknown_url`.
`POST /v1/realtime/calls` opens a WebRTC call, and `GET /v1/realtime` a WebSocket session
(realtime_peer.py), with a client secret the stub minted, any number of them until it expires (else 401); a
browser page on any origin may open a call, as with OpenAI, while the minting routes answer no other web origin.
A server opens a call with the API key instead: `POST /v1/realtime/calls` with a multipart/form-data body (parts
`sdp` and `session`, as openai-python 3.63.0 sends them); and a GPT-Live session with `POST /v1/live/sessions`
(JSON `{"session", "transport"}`, checked strictly against the SDK's types: live.py). Both need the safety
identifier as a mint does (a Live session may carry it as `session.safety_identifier` instead of the header).
With the API key a server attaches sidebands to a call (`GET /v1/realtime?call_id=rtc_...`, a WebSocket) or a Live
session (`GET /v1/live/sessions/{id}/attach`), and hangs either up (`POST /v1/realtime/calls/{id}/hangup`,
`POST /v1/live/sessions/{id}/hangup`); a client secret attaches none (401, as the hangup routes refuse one), and a
call that is unknown or has ended is a 404 (realtime_peer.py says what a sideband carries). `OpenAIStub.peer` has
the tests' hooks on calls (their sidebands, their next response's usage or function call).
Bodies are bounded (413) and read with a socket timeout (408), so neither a large nor a short body holds a
thread. Tests queue
faults (error statuses, a slow or dripping answer, bad bodies, a dropped connection) and read back what
was received: the most recent requests and answers, so that a long run (the benchmark) stays small.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hmac
import json
import re
import secrets
import socket
import socketserver
import string
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, Self, cast
from urllib.parse import parse_qs, urlsplit

from local.running import Running, serve_in_background
from openai_stub.schema import Violation, ga_violations

if TYPE_CHECKING:  # aiortc is imported on the first call only: most uses of the stub never open one
    from openai_stub.realtime_peer import CallState, RealtimePeer

CLIENT_SECRETS_PATH = "/v1/realtime/client_secrets"
TRANSLATION_CLIENT_SECRETS_PATH = "/v1/realtime/translations/client_secrets"
# Each minting route and the schema of the body it takes.
REQUEST_SCHEMAS = {
    CLIENT_SECRETS_PATH: "RealtimeCreateClientSecretRequest",
    TRANSLATION_CLIENT_SECRETS_PATH: "RealtimeTranslationClientSecretCreateRequest",
}
BETA_PATHS = frozenset({"/v1/realtime/sessions", "/v1/realtime/transcription_sessions"})
CALLS_PATH = "/v1/realtime/calls"
MODELS_PATH = "/v1/models"  # with the key: make run checks OPENAI_API_KEY there at start, minting nothing
REALTIME_PATH = "/v1/realtime"
_HANGUP = re.compile(re.escape(CALLS_PATH) + r"/([A-Za-z0-9_-]{1,64})/hangup")
LIVE_SESSIONS_PATH = "/v1/live/sessions"
_LIVE_HANGUP = re.compile(re.escape(LIVE_SESSIONS_PATH) + r"/([A-Za-z0-9_-]{1,64})/hangup")
_LIVE_ATTACH = re.compile(re.escape(LIVE_SESSIONS_PATH) + r"/([A-Za-z0-9_-]{1,64})/attach")
_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LIVE_ID_PREFIX = "live_"
# The parts of a server's call (RealtimeCallCreateRequest's multipart encoding) and the type each must declare.
CALL_FORM_PARTS = {"sdp": "application/sdp", "session": "application/json"}
# A browser page on any origin may open a call, as with OpenAI (no cookies are involved).
_CALLS_CORS = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "Location"))
# What a page's fetch of the calls route sends: the Agents SDK for JavaScript adds X-OpenAI-Agents-SDK to every
# offer (@openai/agents-realtime, openaiRealtimeWebRtc).
CALLS_ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-OpenAI-Agents-SDK")
# A browser's WebSocket cannot set headers: the client secret comes as a subprotocol.
AUTH_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
# Chromium 156's offer for one audio track and the events channel is 1.5 KiB, 2 KiB with its host candidates
# gathered (about 100 bytes a candidate): 64 KiB leaves room for any real offer and refuses a flood.
MAX_OFFER_BYTES = 64 * 1024
# The function sends at most 16 KiB of request body, translated (functions/voice_access/edge/request_body.py).
MAX_BODY_BYTES = 1024 * 1024
# A client that sends less body than it announced, or nothing on a kept-alive connection, frees its thread then.
READ_TIMEOUT_SECONDS = 30.0
DEFAULT_EXPIRES_SECONDS = 600
OVERSIZED_BYTES = 2 * 1024 * 1024
# Requests and answers kept (the most recent); minted values are kept for longer, as the tests' secret
# guard reads them all after each test (reset() empties them).
HISTORY = 1000
MINTED_HISTORY = 10_000

# What OpenAI answers to a beta-shaped call since the beta Realtime API was switched off (NOTES.md).
BETA_DISABLED_ERROR: dict[str, Any] = {
    "error": {
        "type": "invalid_request_error",
        "code": "beta_api_shape_disabled",
        "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
        "param": None,
    }
}
_UNPARSABLE_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
_PCM: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
_SERVER_VAD: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
_TRANSCRIPTION_VAD: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
}
_DEFAULT_INSTRUCTIONS = "You are a helpful, witty, and friendly AI."
SAFETY_IDENTIFIER_HEADER = "OpenAI-Safety-Identifier"
# OpenAI's `safety_identifier` is at most 64 characters; a header value is printable ASCII.
_SAFETY_IDENTIFIER = re.compile(r"[\x20-\x7e]{1,64}")
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stub received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: object | None  # the parsed body, None when empty or not JSON
    schema_errors: list[str] = field(default_factory=list)  # the verdict of the route's request schema
    # The OpenAI-Safety-Identifier header as sent, else a Live session's `session.safety_identifier`; None if absent.
    safety_identifier: str | None = None
    form: dict[str, str] | None = None  # a multipart body's parts by name (a server's call), None if not multipart


@dataclass(frozen=True, slots=True)
class _IssuedSecret:
    """What a minted client secret opens: calls and WebSocket sessions, any number before `expires_at`, each
    starting with `session`."""

    expires_at: int
    session: dict[str, Any]


class FaultKind(StrEnum):
    """What a queued fault does to the request it meets."""

    ERROR = "error"  # answer `status` with OpenAI's error envelope and `headers`
    DELAY = "delay"  # wait `seconds` (or until stop()), then answer as usual
    DRIP_HEADERS = "drip_headers"  # a client secret whose status line and headers come a byte every `seconds`
    DRIP_BODY = "drip_body"  # a client secret: headers at once, then its body a byte every `seconds`
    NON_JSON = "non_json"  # `status` with a body that is not what OpenAI sends (an HTML page, or `body`)
    MISSING_VALUE = "missing_value"  # 200 with a spec-shaped body lacking `value`
    ALTERED = "altered"  # 200 with a spec-shaped body whose top-level `fields` are replaced
    OVERSIZED = "oversized"  # 200 with a valid body of at least `size` bytes
    DROP = "drop"  # close the connection without an answer


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour for the next request; build one with the class methods.

    Faults meet whatever request comes next. On a server's Live session or call (`POST /v1/live/sessions`, a
    multipart `POST /v1/realtime/calls`) errors, delays, non-JSON bodies and drops do what they do to a mint; drips
    send the route's own answer, `altered` replaces a Live answer's top-level fields or a call's headers
    (`Fault.altered(Location=None)` drops one), `oversized` pads the SDP answer; `missing_value` answers a client
    secret's shape."""

    kind: FaultKind
    status: HTTPStatus = HTTPStatus.OK
    error_type: str = ""
    code: str | None = None
    param: str | None = None
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    size: int = 0
    compressed: bool = False
    fields: tuple[tuple[str, Any], ...] = ()
    body: bytes = b""

    @classmethod
    def error(
        cls,
        status: HTTPStatus,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """`status` with an OpenAI error envelope; type and message default to what OpenAI sends."""
        default_type = "server_error" if status >= HTTPStatus.INTERNAL_SERVER_ERROR else "invalid_request_error"
        return cls(
            FaultKind.ERROR,
            status=status,
            error_type=error_type or default_type,
            code=code,
            param=param,
            message=message or status.phrase,
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def unauthorized(cls) -> Fault:
        """401 `invalid_api_key`, as for a revoked key."""
        return cls.error(HTTPStatus.UNAUTHORIZED, code="invalid_api_key", message="Incorrect API key provided.")

    @classmethod
    def rate_limited(cls, retry_after: int | None = 7) -> Fault:
        """429 `rate_limit_exceeded`, with `Retry-After: <seconds>` unless `retry_after` is None."""
        return cls.error(
            HTTPStatus.TOO_MANY_REQUESTS,
            error_type="requests",
            code="rate_limit_exceeded",
            message="Rate limit reached for requests. Please try again later.",
            headers={} if retry_after is None else {"Retry-After": str(retry_after)},
        )

    @classmethod
    def server_error(cls) -> Fault:
        """500 `server_error`."""
        return cls.error(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            message="The server had an error while processing your request. Sorry about that!",
        )

    @classmethod
    def unavailable(cls, retry_after: int | None = None) -> Fault:
        """503 `server_error` (overloaded), with `Retry-After` when given."""
        return cls.error(
            HTTPStatus.SERVICE_UNAVAILABLE,
            message="The server is overloaded or not ready yet.",
            headers={} if retry_after is None else {"Retry-After": str(retry_after)},
        )

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer as usual after `seconds`; stop() or reset() cuts the wait short and drops the connection."""
        return cls(FaultKind.DELAY, seconds=seconds)

    @classmethod
    def drip_headers(cls, interval: float) -> Fault:
        """Answer a client secret, its status line and headers one byte every `interval` seconds (then the
        body at once); stop() or reset() cuts it short and drops the connection."""
        return cls(FaultKind.DRIP_HEADERS, seconds=interval)

    @classmethod
    def drip_body(cls, interval: float) -> Fault:
        """Answer a client secret, the headers at once, then the body one byte every `interval` seconds;
        stop() or reset() cuts it short and drops the connection."""
        return cls(FaultKind.DRIP_BODY, seconds=interval)

    @classmethod
    def non_json(cls, body: bytes = b"", status: HTTPStatus = HTTPStatus.OK) -> Fault:
        """`status` whose body is HTML, as from a misbehaving proxy, or these bytes, sent as JSON."""
        return cls(FaultKind.NON_JSON, status=status, body=body)

    @classmethod
    def missing_value(cls) -> Fault:
        """200 JSON with `expires_at` and `session` but no `value`."""
        return cls(FaultKind.MISSING_VALUE)

    @classmethod
    def altered(cls, **fields: Any) -> Fault:
        """200 with a spec-shaped client secret whose top-level `fields` are replaced (`expires_at=True`)."""
        return cls(FaultKind.ALTERED, fields=tuple(fields.items()))

    @classmethod
    def oversized(cls, size: int = OVERSIZED_BYTES, *, compressed: bool = False) -> Fault:
        """200 with a valid client secret whose body is at least `size` bytes (a huge `instructions`); if
        `compressed`, sent gzip-encoded (unasked), so that its declared length is a few kilobytes."""
        return cls(FaultKind.OVERSIZED, size=size, compressed=compressed)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection after reading the request, without an answer."""
        return cls(FaultKind.DROP)


class OpenAIStub(Running):
    """OpenAI on 127.0.0.1, in a daemon thread: `with OpenAIStub("sk-test-1") as stub: stub.base_url`."""

    def __init__(
        self,
        api_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        history: int = HISTORY,
        max_call_seconds: float | None = None,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self.api_key = api_key
        self.max_call_seconds = max_call_seconds  # for sessions opened from now on; None: the peer's own bound
        self.read_timeout = read_timeout  # for connections accepted from now on
        self._issued: OrderedDict[str, _IssuedSecret] = OrderedDict()
        self._peer: RealtimePeer | None = None
        self._address = (host, port)
        self._lock = threading.Lock()
        # Set by stop() and reset(): a delayed answer must not land in a later test's records.
        self._cancel_delays = threading.Event()
        self._requests: deque[RecordedRequest] = deque(maxlen=history)
        self._minted: deque[str] = deque(maxlen=max(history, MINTED_HISTORY))
        self._answers: deque[bytes] = deque(maxlen=history)
        self._faults: deque[Fault] = deque()
        self._handler_errors: list[BaseException] = []
        self._open_sockets: set[socket.socket] = set()
        self._connections = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the stub is already running")
        self._cancel_delays = threading.Event()
        self._server = _Server(self._address, self)
        self._thread = serve_in_background(self._server, "openai-stub")
        return self

    def stop(self) -> None:
        """Stop serving, cut delayed answers short and close every open connection."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        with self._lock:
            self._cancel_delays.set()
        server.shutdown()
        with self._lock:
            open_sockets = list(self._open_sockets)
        for sock in open_sockets:
            # Idle keep-alive connections would otherwise hold their handler threads.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join()
        self._server = self._thread = None
        with self._lock:
            peer, self._peer = self._peer, None
        if peer is not None:
            peer.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, without /v1: the value for OPENAI_UPSTREAM_URL."""
        if self._server is None:
            raise RuntimeError("the stub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received since reset(), oldest first, at most `history` of them (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def minted(self) -> list[str]:
        """The client secret values issued since reset(), the last 10,000 at least (a copy)."""
        with self._lock:
            return list(self._minted)

    @property
    def answers(self) -> list[bytes]:
        """The response bodies sent since reset(), byte for byte, oldest first, at most `history` (a copy)."""
        with self._lock:
            return list(self._answers)

    @property
    def calls(self) -> list[CallState]:
        """The Realtime calls and Live sessions opened since reset() (the live ones from before too), oldest
        first."""
        with self._lock:
            peer = self._peer
        return [] if peer is None else peer.calls

    def wait_for_call(self, call_id: str, *, until: Literal["audio", "ended"], timeout: float = 10.0) -> CallState:
        """The call `call_id` once the client's audio has reached it (`until="audio"`) or once it has ended;
        TimeoutError after `timeout` seconds."""
        with self._lock:
            peer = self._peer
        if peer is None:
            raise KeyError(call_id)
        return peer.wait(call_id, until=until, timeout=timeout)

    @property
    def peer(self) -> RealtimePeer:
        """The Realtime peer serving this stub's calls and Live sessions, with its hooks for tests (next_response,
        drop_sidebands, send_on_sidebands, wait_until)."""
        return self._realtime_peer()

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (reset() keeps it: open connections stay open)."""
        with self._lock:
            return self._connections

    @property
    def handler_errors(self) -> list[BaseException]:
        """Unexpected exceptions in request handlers (a stub bug); a client going away is not one."""
        with self._lock:
            return list(self._handler_errors)

    def inject(self, fault: Fault) -> None:
        """Queue `fault` for the next request; faults apply first in, first out, once each."""
        with self._lock:
            self._faults.append(fault)

    def reset(self) -> None:
        """Forget recorded requests, minted secrets and queued faults; drop answers still being delayed."""
        with self._lock:
            self._cancel_delays.set()
            self._cancel_delays = threading.Event()
            self._requests.clear()
            self._minted.clear()
            self._issued.clear()
            self._answers.clear()
            self._faults.clear()
            self._handler_errors.clear()
            peer = self._peer
        if peer is not None:
            peer.forget_ended()

    def _record(self, request: RecordedRequest) -> tuple[Fault | None, threading.Event]:
        """Keep `request`; the fault it meets, and the event that cuts a delay short."""
        with self._lock:
            self._requests.append(request)
            return (self._faults.popleft() if self._faults else None), self._cancel_delays

    def _mint(self, requested: Mapping[str, Any], route: str, *, issued: bool = True) -> dict[str, Any]:
        """A client secret for a valid request to `route` (a key of REQUEST_SCHEMAS); `minted` keeps it if
        `issued`."""
        expires_after = requested.get("expires_after") or {}
        expires_at = int(time.time()) + int(expires_after.get("seconds", DEFAULT_EXPIRES_SECONDS))
        value = "ek_" + secrets.token_hex(16)
        if route == TRANSLATION_CLIENT_SECRETS_PATH:
            session = _translation_session(requested.get("session") or {}, expires_at)
        else:
            session = _session(requested.get("session") or {"type": "realtime"}, expires_at)
        if issued:
            with self._lock:
                self._minted.append(value)
                if route == CLIENT_SECRETS_PATH:
                    self._issued[value] = _IssuedSecret(expires_at, session)
                    while len(self._issued) > MINTED_HISTORY:
                        self._issued.popitem(last=False)
        return {"value": value, "expires_at": expires_at, "session": session}

    def _session_for(self, secret: str) -> dict[str, Any] | str:
        """The session a call or WebSocket opened with `secret` starts with, or why the secret opens none."""
        with self._lock:
            issued = self._issued.get(secret)
        if issued is None:
            return (
                "Incorrect API key provided: not a client secret this stub minted (or minted before its "
                "reset). Mint one with POST /v1/realtime/client_secrets."
            )
        if issued.expires_at <= time.time():
            return "The client secret has expired: mint a new one."
        return copy.deepcopy(issued.session)

    def _realtime_peer(self) -> RealtimePeer:
        from openai_stub.realtime_peer import RealtimePeer  # aiortc loads on the first session only

        with self._lock:
            if self._peer is None:
                self._peer = RealtimePeer()
            return self._peer

    def _open_call(self, secret: str, offer_sdp: str) -> tuple[str, str] | str:
        """A call for `secret` (its id and SDP answer), or why the secret opens none. Raises OfferError."""
        session = self._session_for(secret)
        if isinstance(session, str):
            return session
        return self._realtime_peer().open_call(offer_sdp, session, max_call_seconds=self.max_call_seconds)

    def _open_server_call(self, offer_sdp: str, requested: Mapping[str, Any]) -> tuple[str, str]:
        """A call opened with the API key for a valid RealtimeSessionCreateRequestGA: its id and SDP answer, the
        session starting as a client secret minted for it would. Raises OfferError."""
        session = _session(requested, int(time.time()) + DEFAULT_EXPIRES_SECONDS)
        return self._realtime_peer().open_call(offer_sdp, session, max_call_seconds=self.max_call_seconds)

    def _open_live_session(self, offer_sdp: str, requested: Mapping[str, Any]) -> tuple[str, str]:
        """A GPT-Live session for a valid MediaSessionConfigParam: its `live_...` id and SDP answer. Raises
        OfferError."""
        return self._realtime_peer().open_live_session(offer_sdp, requested, max_call_seconds=self.max_call_seconds)

    def _serve_websocket(self, sock: socket.socket, request: bytes, session: dict[str, Any]) -> None:
        self._realtime_peer().serve_websocket(sock, request, session, max_call_seconds=self.max_call_seconds)

    def _hang_up(self, call_id: str) -> bool:
        with self._lock:
            peer = self._peer
        return peer is not None and peer.hang_up(call_id)

    def _serve_sideband(self, sock: socket.socket, request: bytes, call_id: str, *, live: bool) -> bool:
        """Serve a sideband of `call_id` until it closes; False, having sent nothing, when there is no such call."""
        with self._lock:
            peer = self._peer
        return peer is not None and peer.serve_sideband(sock, request, call_id, live=live)

    def _accepted(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open_sockets.add(sock)

    def _released(self, sock: socket.socket) -> None:
        with self._lock:
            self._open_sockets.discard(sock)

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self._handler_errors.append(error)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() closes connections itself; joining handler threads could wait on a slow client.
    block_on_close = False

    def __init__(self, address: tuple[str, int], stub: OpenAIStub) -> None:
        self.stub = stub
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall in a sandbox.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.stub._accepted(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.stub._released(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Quiet: a client that went away is routine; anything else is kept for tests to see.
        error = sys.exception()
        if error is not None and not isinstance(error, OSError):
            self.stub._failed(error)


class _BadRequestError(Exception):
    """The request framing itself is broken, too large or too slow; answer `status` and close."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a client pool can reuse one connection
    server_version = "openai-stub"
    # Headers and body go out in two writes: without this, Nagle and the client's delayed ACK add ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests`, not stderr."""

    @property
    def _stub(self) -> OpenAIStub:
        return cast(_Server, self.server).stub

    def setup(self) -> None:
        super().setup()
        # An idle keep-alive connection, or a body shorter than announced, gives the thread back.
        self.connection.settimeout(self._stub.read_timeout)

    def _handle(self) -> None:
        route = urlsplit(self.path).path
        try:
            body = self._read_body(MAX_OFFER_BYTES if route == CALLS_PATH else MAX_BODY_BYTES)
        except _BadRequestError as error:
            self._send_error(error.status, str(error), code=_FRAMING_CODES.get(error.status), close=True)
            return
        parsed, parsable = _parse_json(body)
        schema = REQUEST_SCHEMAS.get(route) if self.command == "POST" else None
        violations = ga_violations(schema, parsed) if parsable and schema else []
        safety_identifier = self.headers.get(SAFETY_IDENTIFIER_HEADER)
        form: _Form | _FormProblem | None = None
        if self.command == "POST" and route == LIVE_SESSIONS_PATH and parsable:
            from openai_stub.live import request_violations  # the SDK's types load for Live sessions only

            violations = request_violations(parsed)
            if safety_identifier is None:
                safety_identifier = _session_safety_identifier(parsed)
        elif self.command == "POST" and route == CALLS_PATH and self.headers.get_content_type() == _MULTIPART:
            form = _read_form(body, self.headers.get("Content-Type") or "")
            violations = _form_violations(form) if isinstance(form, dict) else []
        fault, cancelled = self._stub._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                json=parsed,
                schema_errors=[str(violation) for violation in violations],
                safety_identifier=safety_identifier,
                form=_form_texts(form) if isinstance(form, dict) else None,
            )
        )
        if fault is not None and fault.kind is FaultKind.DELAY and cancelled.wait(fault.seconds):
            self.close_connection = True
            return
        shaped = self.command == "POST" and route in (LIVE_SESSIONS_PATH, CALLS_PATH)
        if fault is not None and fault.kind in _SHAPING_FAULTS and shaped:
            # The route's own answer, dripped, altered or padded.
            self._route(route, body, parsed, parsable, violations, form, _Shape(fault, cancelled))
            return
        if fault is not None and fault.kind is not FaultKind.DELAY:
            valid = schema is not None and parsable and not violations
            minting = route if route in REQUEST_SCHEMAS else CLIENT_SECRETS_PATH
            self._answer_fault(fault, parsed if valid and isinstance(parsed, dict) else {}, minting, cancelled)
            return
        self._route(route, body, parsed, parsable, violations, form)

    # Every method takes one path: what OpenAI serves no method for is its unknown_url 404.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _route(
        self,
        route: str,
        body: bytes,
        parsed: object,
        parsable: bool,
        violations: list[Violation],
        form: _Form | _FormProblem | None = None,
        shape: _Shape | None = None,
    ) -> None:
        if self.command == "POST" and route == CALLS_PATH:
            self._open_call(body, form, shape)
            return
        if self.command == "POST" and route == LIVE_SESSIONS_PATH:
            self._open_live_session(parsed, parsable, violations, shape)
            return
        if self.command == "POST" and (hangup := _LIVE_HANGUP.fullmatch(route)):
            self._hang_up_live(hangup[1])
            return
        if self.command == "GET" and route == REALTIME_PATH:
            self._open_websocket()
            return
        if self.command == "GET" and (attach := _LIVE_ATTACH.fullmatch(route)):
            self._attach_sideband(attach[1], live=True)
            return
        if self.command == "POST" and (hangup := _HANGUP.fullmatch(route)):
            self._hang_up(hangup[1])
            return
        if self.command == "GET" and route == MODELS_PATH:
            self._list_models()
            return
        if self.command != "POST" or (route not in REQUEST_SCHEMAS and route not in BETA_PATHS):
            self._send_error(HTTPStatus.NOT_FOUND, f"Invalid URL ({self.command} {route})", code="unknown_url")
            return
        if not self._authorized():
            self._send_error(
                HTTPStatus.UNAUTHORIZED,
                # Never echo the key (OpenAI shows a masked one; a stub need not show any).
                "Incorrect API key provided." if self.headers.get("Authorization") else "Missing API key.",
                code="invalid_api_key",
            )
            return
        if route in BETA_PATHS:
            self._send_json(HTTPStatus.BAD_REQUEST, BETA_DISABLED_ERROR)
            return
        if problem := _safety_identifier_problem(self.headers.get(SAFETY_IDENTIFIER_HEADER)):
            self._send_error(HTTPStatus.BAD_REQUEST, problem, code="invalid_safety_identifier")
            return
        if self._refused_as_not_json(parsable):
            return
        if violations:
            first = violations[0]
            self._send_error(
                HTTPStatus.BAD_REQUEST,
                f"Invalid '{first.param}': {first.message}" if first.param else f"Invalid body: {first.message}",
                param=first.param,
                code="invalid_value",
            )
            return
        self._send_json(HTTPStatus.OK, self._stub._mint(cast(dict[str, Any], parsed), route))

    def do_OPTIONS(self) -> None:
        """A browser's preflight for the calls route (not recorded: a queued fault is for the call itself)."""
        if not urlsplit(self.path).path.startswith(CALLS_PATH):
            self._handle()
            return
        allow = (
            ("Access-Control-Allow-Methods", "POST"),
            ("Access-Control-Allow-Headers", ", ".join(CALLS_ALLOWED_HEADERS)),
            ("Access-Control-Max-Age", "600"),
        )
        self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", headers=allow)

    def _refused_as_not_json(self, parsable: bool) -> bool:
        """Whether the body was refused, as OpenAI does, for not being the JSON its Content-Type must declare."""
        if self.headers.get_content_type() != "application/json":
            self._send_error(
                HTTPStatus.BAD_REQUEST,
                f"Invalid Content-Type header ({self.headers.get('Content-Type')}), expected application/json.",
            )
            return True
        if not parsable:
            self._send_error(HTTPStatus.BAD_REQUEST, _UNPARSABLE_JSON)
            return True
        return False

    def _open_call(self, body: bytes, form: _Form | _FormProblem | None, shape: _Shape | None) -> None:
        """OpenAI's `POST /v1/realtime/calls`: with a client secret, the SDP offer in and the answer out; with the
        API key, a multipart/form-data body (`_open_server_call`)."""
        scheme, _, secret = (self.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or not secret:
            message = "Missing bearer authentication in header: send Authorization: Bearer <client secret>."
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
            return
        if form is not None:
            self._open_server_call(form, shape)
            return
        if self.headers.get_content_type() != "application/sdp":
            self._send_error(
                HTTPStatus.BAD_REQUEST,
                f"Invalid Content-Type header ({self.headers.get('Content-Type')}), expected application/sdp.",
                code="invalid_content_type",
            )
            return
        if self._authorized():
            # The call's session must come from somewhere: a client secret's, or the multipart's `session` part.
            message = (
                "Incorrect API key provided: a raw application/sdp offer opens a call with a client secret this stub "
                "minted. With the API key, send multipart/form-data with the parts 'sdp' and 'session'."
            )
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
            return
        try:
            offer = body.decode("utf-8")
        except UnicodeDecodeError:
            self._send_error(HTTPStatus.BAD_REQUEST, "Invalid SDP offer: it is not UTF-8 text.", code="invalid_offer")
            return
        self._answer_call(lambda: self._stub._open_call(secret, offer), shape)

    def _open_server_call(self, form: _Form | _FormProblem, shape: _Shape | None) -> None:
        """`POST /v1/realtime/calls` with the API key: RealtimeCallCreateRequest as multipart/form-data, a part
        `sdp` (application/sdp) and at most one `session` (application/json, a RealtimeSessionCreateRequestGA)."""
        if not self._authorized():
            message = "Incorrect API key provided: a multipart call is opened with the API key."
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
            return
        if problem := _safety_identifier_problem(self.headers.get(SAFETY_IDENTIFIER_HEADER)):
            self._send_error(HTTPStatus.BAD_REQUEST, problem, code="invalid_safety_identifier")
            return
        if isinstance(form, _FormProblem):
            self._send_error(HTTPStatus.BAD_REQUEST, form.message, param=form.param, code=form.code)
            return
        try:
            offer = form["sdp"].decode("utf-8")
        except UnicodeDecodeError:
            message = "Invalid SDP offer: it is not UTF-8 text."
            self._send_error(HTTPStatus.BAD_REQUEST, message, param="sdp", code="invalid_offer")
            return
        requested: object = {"type": "realtime"}
        if "session" in form:
            requested, parsable = _parse_json(form["session"])
            if not parsable:
                self._send_error(HTTPStatus.BAD_REQUEST, _UNPARSABLE_JSON, param="session", code="invalid_json")
                return
        if violations := ga_violations("RealtimeCallCreateRequest", {"sdp": offer, "session": requested}):
            first = violations[0]
            message = f"Invalid '{first.param}': {first.message}" if first.param else f"Invalid body: {first.message}"
            self._send_error(HTTPStatus.BAD_REQUEST, message, param=first.param, code="invalid_value")
            return
        session = cast(dict[str, Any], requested)
        self._answer_call(lambda: self._stub._open_server_call(offer, session), shape, param="sdp")

    def _answer_call(
        self, open_call: Callable[[], tuple[str, str] | str], shape: _Shape | None, *, param: str | None = None
    ) -> None:
        """201 with the SDP answer and the call's Location, or why no call opened (`param` names the offer)."""
        from openai_stub.realtime_peer import OfferError  # aiortc loads on the first call only

        try:
            opened = open_call()
        except OfferError as error:
            self._send_error(HTTPStatus.BAD_REQUEST, f"Invalid SDP offer: {error}", param=param, code="invalid_offer")
            return
        except Exception as error:  # the caller gets an answer, whatever the peer did
            self._peer_failed(error)
            return
        if isinstance(opened, str):
            self._send_error(HTTPStatus.UNAUTHORIZED, opened, code="invalid_api_key")
            return
        call_id, answer = opened
        location = (("Location", f"{CALLS_PATH}/{call_id}"),)
        self._answer(HTTPStatus.CREATED, answer.encode(), "application/sdp", location, shape)

    def _open_live_session(
        self, parsed: object, parsable: bool, violations: list[Violation], shape: _Shape | None
    ) -> None:
        """OpenAI's `POST /v1/live/sessions` with the API key: LiveCreateParams in (openai-python 3.63.0), the
        `live_...` id and the SDP answer out (LiveCreateResponse)."""
        from openai_stub.realtime_peer import OfferError, offer_problem  # aiortc loads on the first session only

        if not self._authorized():
            missing = not self.headers.get("Authorization")
            message = "Missing API key." if missing else "Incorrect API key provided."
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
            return
        if self._refused_as_not_json(parsable):
            return
        if violations:
            first = violations[0]
            self._send_error(HTTPStatus.BAD_REQUEST, first.message, param=first.param, code=first.code)
            return
        body = cast(dict[str, Any], parsed)
        session, offer = body["session"], body["transport"]["sdp"]
        if problem := _live_safety_identifier_problem(self.headers.get(SAFETY_IDENTIFIER_HEADER), session):
            message, param = problem
            self._send_error(HTTPStatus.BAD_REQUEST, message, param=param, code="invalid_safety_identifier")
            return
        if offer_error := offer_problem(offer):
            message = f"Invalid SDP offer: {offer_error}"
            self._send_error(HTTPStatus.BAD_REQUEST, message, param="transport.sdp", code="invalid_offer")
            return
        try:
            session_id, answer = self._stub._open_live_session(offer, session)
        except OfferError as error:
            message = f"Invalid SDP offer: {error}"
            self._send_error(HTTPStatus.BAD_REQUEST, message, param="transport.sdp", code="invalid_offer")
            return
        except Exception as error:  # the caller gets an answer, whatever the peer did
            self._peer_failed(error)
            return
        created = {"session": {"id": session_id}, "transport": {"type": "webrtc", "sdp": answer}}
        self._answer(HTTPStatus.OK, json.dumps(created).encode(), "application/json", (), shape)

    def _peer_failed(self, error: Exception) -> None:
        self._send_error(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            f"The local Realtime peer could not open the call ({type(error).__name__}); try again.",
            code="server_error",
            error_type="server_error",
        )

    def _answer(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...],
        shape: _Shape | None,
    ) -> None:
        """A call's or Live session's answer, as a queued fault shapes it: dripped (DRIP_HEADERS, DRIP_BODY), its
        top-level JSON fields replaced or, on an SDP answer, its headers (ALTERED; None drops one), or padded to
        `size` bytes in the SDP, gzip-encoded if `compressed` (OVERSIZED)."""
        fault = None if shape is None else shape.fault
        if fault is None or shape is None:
            self._send(status, body, content_type, headers=headers)
            return
        if fault.kind is FaultKind.ALTERED and content_type == "application/json":
            body = json.dumps(json.loads(body) | dict(fault.fields)).encode()
        elif fault.kind is FaultKind.ALTERED:
            replaced = {name.lower().replace("_", "-"): value for name, value in fault.fields}
            kept = [(name, value) for name, value in headers if name.lower() not in replaced]
            headers = (*kept, *((name, str(value)) for name, value in replaced.items() if value is not None))
        elif fault.kind is FaultKind.OVERSIZED:
            body = _padded(body, content_type, fault.size)
            if fault.compressed:
                headers = (*headers, ("Content-Encoding", "gzip"))
                body = gzip.compress(body)
        if fault.kind in (FaultKind.DRIP_HEADERS, FaultKind.DRIP_BODY):
            self._drip(fault, body, shape.cancelled, status=status, content_type=content_type, headers=headers)
            return
        self._send(status, body, content_type, headers=headers)

    def _open_websocket(self) -> None:
        """OpenAI's `GET /v1/realtime` over WebSocket with a client secret: `Authorization: Bearer <secret>`, or
        from a browser the subprotocols `realtime` and `openai-insecure-api-key.<secret>`. Serves the session on
        this connection until it closes."""
        if call_id := parse_qs(urlsplit(self.path).query).get("call_id"):
            self._attach_sideband(call_id[0], live=False)
            return
        secret = _websocket_secret(self)
        if secret is None:
            message = (
                "Missing bearer authentication: send Authorization: Bearer <client secret>, or from a browser the "
                f"WebSocket subprotocols 'realtime' and '{AUTH_SUBPROTOCOL_PREFIX}<client secret>'."
            )
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key", close=True)
            return
        session = self._stub._session_for(secret)
        if isinstance(session, str):
            self._send_error(HTTPStatus.UNAUTHORIZED, session, code="invalid_api_key", close=True)
            return
        self.close_connection = True
        lines = [self.requestline, *(f"{name}: {value}" for name, value in self.headers.items()), "", ""]
        self._stub._serve_websocket(self.connection, "\r\n".join(lines).encode("latin-1"), session)

    def _attach_sideband(self, call_id: str, *, live: bool) -> None:
        """A sideband: `GET /v1/realtime?call_id=...` (`live`: `GET /v1/live/sessions/{id}/attach`) over WebSocket
        with the API key, to a call or Live session that has not ended. Serves it on this connection until it
        closes."""
        scheme, _, credential = (self.headers.get("Authorization") or "").partition(" ")
        if scheme != "Bearer" or not credential:
            message = "Missing bearer authentication: attach a sideband with Authorization: Bearer <API key>."
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key", close=True)
            return
        if not self._authorized():
            message = "Incorrect API key provided: a sideband attaches with the API key, not a client secret."
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key", close=True)
            return
        self.close_connection = True
        lines = [self.requestline, *(f"{name}: {value}" for name, value in self.headers.items()), "", ""]
        request = "\r\n".join(lines).encode("latin-1")
        if self._stub._serve_sideband(self.connection, request, call_id, live=live):
            return
        shown = f"'{call_id}'" if _CALL_ID.fullmatch(call_id) else "that id"  # a query's call_id may be anything
        if live:
            message, code = f"No active Live session with {shown}.", "session_not_found"
        else:
            message, code = f"No live call with {shown}.", "call_not_found"
        self._send_error(HTTPStatus.NOT_FOUND, message, param=None if live else "call_id", code=code, close=True)

    def _hang_up(self, call_id: str) -> None:
        """OpenAI's `POST /v1/realtime/calls/{call_id}/hangup`, with the API key (a server's call)."""
        if not self._authorized():
            self._send_error(HTTPStatus.UNAUTHORIZED, "Incorrect API key provided.", code="invalid_api_key")
        elif not call_id.startswith(LIVE_ID_PREFIX) and self._stub._hang_up(call_id):
            self._send(HTTPStatus.OK, b"", "application/json")
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"No live call with id '{call_id}'.", code="call_not_found")

    def _hang_up_live(self, session_id: str) -> None:
        """`POST /v1/live/sessions/{session_id}/hangup` (openai-python 3.63.0's `live.sessions.hangup`), with the
        API key: the session ends with `session.closed` (reason `close_requested`, "an application close or
        hangup request")."""
        if not self._authorized():
            self._send_error(HTTPStatus.UNAUTHORIZED, "Incorrect API key provided.", code="invalid_api_key")
        elif session_id.startswith(LIVE_ID_PREFIX) and self._stub._hang_up(session_id):
            self._send(HTTPStatus.OK, b"", "application/json")
        else:
            message = f"No active Live session with id '{session_id}'."
            self._send_error(HTTPStatus.NOT_FOUND, message, code="session_not_found")

    def _list_models(self) -> None:
        """OpenAI's `GET /v1/models`, the key checked as a mint checks it; the stub serves no model of its own."""
        if not self._authorized():
            missing = not self.headers.get("Authorization")
            message = "Missing API key." if missing else "Incorrect API key provided."
            self._send_error(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
            return
        self._send_json(HTTPStatus.OK, {"object": "list", "data": []})

    def _authorized(self) -> bool:
        expected = f"Bearer {self._stub.api_key}".encode()
        given = (self.headers.get("Authorization") or "").encode()
        return hmac.compare_digest(given, expected)

    def _answer_fault(self, fault: Fault, requested: dict[str, Any], route: str, cancelled: threading.Event) -> None:
        match fault.kind:
            case FaultKind.ERROR:
                self._send_error(
                    fault.status,
                    fault.message,
                    error_type=fault.error_type,
                    param=fault.param,
                    code=fault.code,
                    headers=fault.headers,
                )
            case FaultKind.DRIP_HEADERS | FaultKind.DRIP_BODY:
                self._drip(fault, json.dumps(self._stub._mint(requested, route)).encode(), cancelled)
            case FaultKind.NON_JSON if fault.body:
                self._send(fault.status, fault.body, "application/json")
            case FaultKind.NON_JSON:
                page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                self._send(fault.status, page, "text/html; charset=utf-8")
            case FaultKind.MISSING_VALUE:
                answer = self._stub._mint(requested, route, issued=False)
                del answer["value"]
                self._send_json(HTTPStatus.OK, answer)
            case FaultKind.ALTERED:
                fields = dict(fault.fields)
                answer = self._stub._mint(requested, route, issued="value" not in fields)
                self._send_json(HTTPStatus.OK, answer | fields)
            case FaultKind.OVERSIZED:
                answer = self._stub._mint(requested, route)
                session = answer["session"]
                # Pad a string the client is meant to read, so the body stays spec-valid.
                if session["type"] == "translation":
                    session["audio"]["output"]["language"] = "x" * fault.size
                elif session["type"] == "transcription":
                    session["audio"]["input"]["transcription"]["prompt"] = "x" * fault.size
                else:
                    session["instructions"] = "x" * fault.size
                if fault.compressed:
                    body = gzip.compress(json.dumps(answer).encode())
                    self._send(HTTPStatus.OK, body, "application/json", headers=(("Content-Encoding", "gzip"),))
                else:
                    self._send_json(HTTPStatus.OK, answer)
            case FaultKind.DROP | FaultKind.DELAY:
                self.close_connection = True

    def _drip(
        self,
        fault: Fault,
        body: bytes,
        cancelled: threading.Event,
        *,
        status: HTTPStatus = HTTPStatus.OK,
        content_type: str = "application/json",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """An answer (by default a 200 JSON) whose head (DRIP_HEADERS) or body (DRIP_BODY) is written a byte every
        `fault.seconds`."""
        with self._stub._lock:
            self._stub._answers.append(body)
        if urlsplit(self.path).path.startswith(CALLS_PATH):
            headers = (*_CALLS_CORS, *headers)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}x-request-id: req_{secrets.token_hex(16)}\r\n\r\n"
        ).encode()
        dripped = head if fault.kind is FaultKind.DRIP_HEADERS else body
        try:
            for part in (head, body):
                if part is not dripped:
                    self.wfile.write(part)
                    continue
                for index in range(len(part)):
                    if cancelled.wait(fault.seconds):
                        self.close_connection = True
                        return
                    self.wfile.write(part[index : index + 1])
        except OSError:
            self.close_connection = True  # the client gave up

    def _read_body(self, limit: int) -> bytes:
        """The request's body, at most `limit` bytes (else 413, unread); 408 when it does not all come within the
        read timeout."""
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._read_chunked(limit)
            length = self.headers.get("Content-Length")
            if length is None:
                return b""
            if not length.isdigit():
                raise _BadRequestError(f"Invalid Content-Length header ({length[:40]}).")
            if int(length) > limit:
                raise _too_large(limit)
            body = self.rfile.read(int(length))
        except TimeoutError:
            raise _BadRequestError(_SHORT_BODY, HTTPStatus.REQUEST_TIMEOUT) from None
        if len(body) < int(length):
            raise _BadRequestError("The body ended before its Content-Length.")
        return body

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        received = 0
        while True:
            # int() alone would take "-1" (then read(-1) reads to the end of the stream), "+5", "0x10" or "1_0".
            framed = _CHUNK_SIZE_LINE.fullmatch(self.rfile.readline(MAX_CHUNK_LINE_BYTES + 1))
            if framed is None:
                raise _BadRequestError(_BAD_CHUNK)
            size = int(framed[1], 16)
            if size == 0:
                self._read_trailers()
                return b"".join(chunks)
            received += size
            if received > limit:
                raise _too_large(limit)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                raise _BadRequestError(_BAD_CHUNK)
            chunks.append(chunk)

    def _read_trailers(self) -> None:
        """The trailer section, up to its blank line: read and dropped, at most MAX_TRAILER_LINES lines of
        MAX_TRAILER_BYTES in all (else 400), so a client cannot keep the thread reading."""
        left = MAX_TRAILER_BYTES
        for _ in range(MAX_TRAILER_LINES + 1):
            line = self.rfile.readline(left + 1)
            if line == b"\r\n":
                return
            left -= len(line)
            if left < 0 or not line.endswith(b"\r\n"):
                break
        raise _BadRequestError(_BAD_TRAILERS)

    def _send_error(
        self,
        status: HTTPStatus,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        envelope = {"error": {"type": error_type, "message": message, "param": param, "code": code}}
        self._send_json(status, envelope, headers=headers, close=close)

    def _send_json(
        self,
        status: HTTPStatus,
        payload: Mapping[str, Any],
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        body = json.dumps(payload).encode()
        self._send(status, body, "application/json", headers=headers, close=close)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        with self._stub._lock:
            self._stub._answers.append(body)
        if urlsplit(self.path).path.startswith(CALLS_PATH):
            headers = (*_CALLS_CORS, *headers)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-request-id", "req_" + secrets.token_hex(16))
            for name, value in headers:
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            # The client gave up (e.g. its read timeout fired during a delay fault).
            self.close_connection = True


_FRAMING_CODES = {HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "request_too_large", HTTPStatus.REQUEST_TIMEOUT: "timeout"}
_SHORT_BODY = "The request body did not arrive in time: send as many bytes as the Content-Length header announces."
# A chunk's size line (RFC 9112 7.1): at most 8 hex digits (4 GiB, past any route's bound), then extensions.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_CHUNK_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,8})(?:[ \t]*;[ \t]*%b(?:[ \t]*=[ \t]*(?:%b|%b))?)*\r\n" % (_TOKEN, _TOKEN, _QUOTED)
)
MAX_CHUNK_LINE_BYTES = 1024
MAX_TRAILER_LINES = 16
MAX_TRAILER_BYTES = 8 * 1024
_BAD_CHUNK = (
    "The chunked request body is malformed: send each chunk as its size in 1 to 8 hexadecimal digits, CRLF, "
    "that many bytes and CRLF, and end with a chunk of size 0 (RFC 9112 section 7.1)."
)
_BAD_TRAILERS = (
    f"The chunked request body's trailer section is malformed or too long: send at most {MAX_TRAILER_LINES} "
    f"trailer lines of {MAX_TRAILER_BYTES // 1024} KiB in all, each ending in CRLF, then an empty line."
)


def _too_large(limit: int) -> _BadRequestError:
    return _BadRequestError(
        f"The request body is over {limit // 1024} KiB, the most this route takes.", HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    )


def _websocket_secret(handler: BaseHTTPRequestHandler) -> str | None:
    """The client secret of a WebSocket upgrade: its bearer token, or a browser's secret subprotocol."""
    scheme, _, secret = (handler.headers.get("Authorization") or "").partition(" ")
    if scheme == "Bearer" and secret:
        return secret
    for header in handler.headers.get_all("Sec-WebSocket-Protocol") or []:
        for offered in header.split(","):
            if offered.strip().startswith(AUTH_SUBPROTOCOL_PREFIX):
                return offered.strip().removeprefix(AUTH_SUBPROTOCOL_PREFIX) or None
    return None


def _safety_identifier_problem(value: str | None) -> str | None:
    """Why the header is unusable, or None. The value is never echoed: it may be a user's identity."""
    if value is None:
        return (
            f"Missing {SAFETY_IDENTIFIER_HEADER} header. This stub requires the end user's safety identifier on "
            "every client secret request."
        )
    if not _SAFETY_IDENTIFIER.fullmatch(value):
        return (
            f"Invalid {SAFETY_IDENTIFIER_HEADER} header: expected 1 to 64 printable ASCII characters, got "
            f"{len(value)} characters."
        )
    return None


def _parse_json(body: bytes) -> tuple[object | None, bool]:
    """The parsed body and whether it parsed; an empty body does not."""
    if not body:
        return None, False
    try:
        return json.loads(body), True
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None, False


def _session(requested: Mapping[str, Any], expires_at: int) -> dict[str, Any]:
    if requested.get("type") == "transcription":
        return _transcription_session(requested, expires_at)
    return _realtime_session(requested)


def _realtime_session(requested: Mapping[str, Any]) -> dict[str, Any]:
    """RealtimeSessionCreateResponseGA: the request over the defaults of OpenAI's example answer.

    The example shows `transcription: null` and `include: null`, which the response schema rejects;
    the stub leaves those keys out unless the request set them.
    """
    audio = requested.get("audio") or {}
    audio_in, audio_out = audio.get("input") or {}, audio.get("output") or {}
    audio_input: dict[str, Any] = {"format": audio_in.get("format", _PCM)}
    if audio_in.get("transcription") is not None:
        audio_input["transcription"] = audio_in["transcription"]
    audio_input["noise_reduction"] = audio_in.get("noise_reduction")
    audio_input["turn_detection"] = _turn_detection(
        audio_in, {"server_vad": _SERVER_VAD, "semantic_vad": _SEMANTIC_VAD}
    )
    session: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": _random_id("sess_"),
        "model": requested.get("model", "gpt-realtime"),
        "output_modalities": requested.get("output_modalities", ["audio"]),
        "instructions": requested.get("instructions", _DEFAULT_INSTRUCTIONS),
        "tools": requested.get("tools", []),
        "tool_choice": requested.get("tool_choice", "auto"),
        "max_output_tokens": requested.get("max_output_tokens", "inf"),
        "tracing": requested.get("tracing"),
        "truncation": requested.get("truncation", "auto"),
        "prompt": requested.get("prompt"),
        "expires_at": 0,
        "audio": {
            "input": audio_input,
            "output": {
                "format": audio_out.get("format", _PCM),
                "voice": audio_out.get("voice", "alloy"),
                "speed": audio_out.get("speed", 1.0),
            },
        },
    }
    if "reasoning" in requested:
        session["reasoning"] = requested["reasoning"]
    if requested.get("include") is not None:
        session["include"] = requested["include"]
    return session


def _transcription_session(requested: Mapping[str, Any], expires_at: int) -> dict[str, Any]:
    """RealtimeTranscriptionSessionCreateResponseGA, shaped like OpenAI's example answer.

    The example's `format: "pcm16"`, `language: null` and `noise_reduction: null` fail the response
    schema; the stub sends a format object and leaves the nulls out.
    """
    audio_in = (requested.get("audio") or {}).get("input") or {}
    audio_input: dict[str, Any] = {
        "format": audio_in.get("format", _PCM),
        "transcription": audio_in.get("transcription") or {"model": "gpt-4o-transcribe", "prompt": ""},
    }
    if audio_in.get("noise_reduction") is not None:
        audio_input["noise_reduction"] = audio_in["noise_reduction"]
    audio_input["turn_detection"] = _turn_detection(audio_in, {"server_vad": _TRANSCRIPTION_VAD})
    session: dict[str, Any] = {
        "id": _random_id("sess_"),
        "type": "transcription",
        "object": "realtime.transcription_session",
        "expires_at": expires_at,
    }
    if requested.get("include") is not None:
        session["include"] = requested["include"]
    session["audio"] = {"input": audio_input}
    return session


def _translation_session(requested: Mapping[str, Any], expires_at: int) -> dict[str, Any]:
    """RealtimeTranslationSession, shaped like OpenAI's example answer: the input's transcription and noise
    reduction as requested or null, the output language only when requested."""
    audio = requested.get("audio") or {}
    audio_in, audio_out = audio.get("input") or {}, audio.get("output") or {}
    output = {"language": audio_out["language"]} if "language" in audio_out else {}
    return {
        "id": _random_id("sess_"),
        "type": "translation",
        "expires_at": expires_at,
        "model": requested.get("model", "gpt-realtime-translate"),
        "audio": {
            "input": {
                "transcription": audio_in.get("transcription"),
                "noise_reduction": audio_in.get("noise_reduction"),
            },
            "output": output,
        },
    }


def _turn_detection(audio_in: Mapping[str, Any], defaults: Mapping[str, dict[str, Any]]) -> Any:
    """The requested turn detection over its type's defaults; null (off) stays null."""
    if "turn_detection" not in audio_in:
        return dict(defaults["server_vad"])
    requested = audio_in["turn_detection"]
    if requested is None:
        return None
    return {**defaults.get(requested.get("type", "server_vad"), {}), **requested}


_MULTIPART = "multipart/form-data"
type _Form = dict[str, bytes]


@dataclass(frozen=True, slots=True)
class _FormProblem:
    """Why a multipart body is not a call's form: OpenAI's 400 message, param and code."""

    message: str
    param: str | None = None
    code: str = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class _Shape:
    """A queued fault that shapes a call's or Live session's own answer, and the event that cuts a drip short."""

    fault: Fault
    cancelled: threading.Event


# Faults that shape the answer of a call or Live session rather than replace it (the others apply as to a mint).
_SHAPING_FAULTS = frozenset({FaultKind.DRIP_HEADERS, FaultKind.DRIP_BODY, FaultKind.ALTERED, FaultKind.OVERSIZED})


def _read_form(body: bytes, content_type: str) -> _Form | _FormProblem:
    """The parts of a server's call, by name: exactly one `sdp` and at most one `session`, each a form-data part
    of its declared type (CALL_FORM_PARTS), nothing else; the standard library's parser (compat32, no new
    dependency), with its leniency checked: any defect is refused."""
    from email.parser import BytesParser

    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser().parsebytes(head + body)
    malformed = _FormProblem(
        "Invalid multipart/form-data body: send the parts 'sdp' (application/sdp) and 'session' (application/json), "
        "each with Content-Disposition: form-data and its name, between the boundary of the Content-Type header.",
        code="invalid_multipart",
    )
    if message.defects or not message.is_multipart():
        return malformed
    parts: _Form = {}
    for part in cast(list[Any], message.get_payload()):
        name = part.get_param("name", header="content-disposition")
        if part.defects or part.get_content_disposition() != "form-data" or not isinstance(name, str):
            return malformed
        if name not in CALL_FORM_PARTS:
            return _FormProblem(f"Unknown parameter: '{name[:100]}'.", param=name[:100], code="unknown_parameter")
        if name in parts:
            return _FormProblem(f"Duplicate parameter: '{name}'. Send each part once.", param=name)
        if part.get_content_type() != CALL_FORM_PARTS[name]:
            message_text = (
                f"Invalid content type for '{name}' ({part.get_content_type()}), expected {CALL_FORM_PARTS[name]}."
            )
            return _FormProblem(message_text, param=name, code="invalid_content_type")
        parts[name] = cast(bytes, part.get_payload(decode=True))
    if "sdp" not in parts:
        return _FormProblem("Missing required parameter: 'sdp'.", param="sdp", code="missing_required_parameter")
    return parts


def _form_violations(form: _Form) -> list[Violation]:
    """What RealtimeCallCreateRequest refuses in a form's offer and session (none when the session is not JSON)."""
    session, parsable = _parse_json(form["session"]) if "session" in form else ({"type": "realtime"}, True)
    if not parsable:
        return []
    return ga_violations(
        "RealtimeCallCreateRequest", {"sdp": form["sdp"].decode("utf-8", "replace"), "session": session}
    )


def _form_texts(form: _Form) -> dict[str, str]:
    return {name: data.decode("utf-8", "replace") for name, data in form.items()}


def _padded(body: bytes, content_type: str, size: int) -> bytes:
    """A valid answer of at least `size` bytes: an SDP with a long attribute line, or a Live answer whose SDP has
    one."""
    padding = "a=x-stub-padding:" + "x" * size + "\r\n"
    if content_type == "application/sdp":
        return body + padding.encode()
    answer = json.loads(body)
    answer["transport"]["sdp"] += padding
    return json.dumps(answer).encode()


def _session_safety_identifier(body: object) -> str | None:
    """A Live request's `session.safety_identifier`, if it is a string."""
    session = body.get("session") if isinstance(body, dict) else None
    value = session.get("safety_identifier") if isinstance(session, dict) else None
    return value if isinstance(value, str) else None


def _live_safety_identifier_problem(header: str | None, session: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """Why a Live session lacks a usable safety identifier, and the param to name; None when it has one. The
    header or `session.safety_identifier` (the Live way) will do; when both come, they must agree."""
    in_session = session.get("safety_identifier")
    if header is None and in_session is None:
        message = (
            f"Missing {SAFETY_IDENTIFIER_HEADER} header and session.safety_identifier. This stub requires the end "
            "user's safety identifier on every Live session."
        )
        return message, "session.safety_identifier"
    if header is not None and (problem := _safety_identifier_problem(header)):
        return problem, None
    if in_session is None:
        return None
    if not _SAFETY_IDENTIFIER.fullmatch(in_session):
        message = (
            f"Invalid 'session.safety_identifier': expected 1 to 64 printable ASCII characters, got "
            f"{len(in_session)} characters."
        )
        return message, "session.safety_identifier"
    if header is not None and header != in_session:
        message = f"Invalid 'session.safety_identifier': it differs from the {SAFETY_IDENTIFIER_HEADER} header."
        return message, "session.safety_identifier"
    return None


def _random_id(prefix: str, length: int = 21) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
