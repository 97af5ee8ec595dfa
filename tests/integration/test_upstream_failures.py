"""Every way OpenAI can fail, through the real handler over loopback HTTP: an honest status, OpenAI's
error envelope with a message a person can act on, a metric by kind, and never the key or a traceback.
"""

import contextlib
import email.utils
import gzip
import ipaddress
import json
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, cast

import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local.user_pool import UserPool
from openai_stub.schema import beta_errors
from openai_stub.server import Fault, OpenAIStub
from tests import function_caches
from tests.callers import expected_safety_identifier
from tests.events import load_event
from tests.keys import TEST_API_KEY
from tests.lambda_context import LambdaContext, lambda_context_with
from tests.local_api import serving_default
from tests.output import Output
from tests.policies import shipped_policy, without_quotas
from tests.probes import run_probe
from voice_access.edge.app import lambda_handler

pytestmark = pytest.mark.usefixtures("function_env")

BETA_DISABLED = Fault.error(
    HTTPStatus.BAD_REQUEST,
    code="beta_api_shape_disabled",
    message="The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
)


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def invoke(event: dict[str, Any], context: LambdaContext) -> Answer:
    answer = lambda_handler(event, context)
    return Answer(answer["statusCode"], answer["headers"], json.loads(answer["body"]))


def mint(context: LambdaContext, event_name: str = "client_secrets.json") -> Answer:
    return invoke(load_event(event_name), context)


def assert_error_envelope(answer: Answer, *, error_type: str, code: str, param: str | None = None) -> str:
    """The answer is OpenAI's error envelope, free of the key and of tracebacks; returns its message."""
    assert answer.body == {
        "error": {"type": error_type, "message": answer.body["error"]["message"], "param": param, "code": code}
    }
    assert beta_errors("ErrorResponse", answer.body) == []
    assert answer.headers["Content-Type"] == "application/json"
    message: str = answer.body["error"]["message"]
    assert TEST_API_KEY not in json.dumps(answer.body)
    assert "Traceback" not in message
    assert 'File "' not in message
    return message


def assert_no_traceback_logged(output: Output) -> None:
    assert "Traceback" not in output.text()
    assert not [line for line in output.logs() if "exception" in line]
    assert output.metric_count("UnexpectedErrors") == 0


def use_upstream(monkeypatch: pytest.MonkeyPatch, base_url: str) -> None:
    """Point the function at another OpenAI; settings are read once per container, so re-read them."""
    monkeypatch.setenv("OPENAI_UPSTREAM_URL", base_url)
    function_caches.reread_settings()


@pytest.fixture
def closed_port_url(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """OPENAI_UPSTREAM_URL on a loopback port nobody listens on: every connect is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    use_upstream(monkeypatch, url)
    return url


@pytest.fixture
def own_stub(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, output: Output, caplog: pytest.LogCaptureFixture
) -> Iterator[OpenAIStub]:
    """A stub no earlier test has connected to, so its connection count is this test's alone.

    The shared stub's port outlives tests and so does the function's pool: it may hold a connection already.
    """
    with OpenAIStub(api_key=TEST_API_KEY) as stub:
        use_upstream(monkeypatch, stub.base_url)
        yield stub
        minted, errors = stub.minted, stub.handler_errors
    assert not errors, errors
    # conftest's guard knows only the shared stub's secrets.
    shown = output.text() + caplog.text
    assert not [value for value in minted if value in shown], "a minted secret appeared in the output"


class _Refusal(NamedTuple):
    param: str | None
    code: str
    message: str


class _RefusingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        server = cast(_RefusingServer, self.server)
        server.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        refusal = server.refusal
        body = json.dumps(
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": refusal.message,
                    "param": refusal.param,
                    "code": refusal.code,
                }
            }
        ).encode()
        self.send_response(HTTPStatus.BAD_REQUEST)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _RefusingServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True

    def __init__(self, refusal: _Refusal) -> None:
        self.refusal = refusal
        self.requests: list[Any] = []
        super().__init__(("127.0.0.1", 0), _RefusingHandler)


@pytest.fixture
def openai_refusing(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[_Refusal], _RefusingServer]]:
    """OpenAI answering every mint with one 400 that names a `param`: the stub's faults cannot name one."""
    servers: list[_RefusingServer] = []

    def start(refusal: _Refusal) -> _RefusingServer:
        server = _RefusingServer(refusal)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        host, port = server.server_address[:2]
        use_upstream(monkeypatch, f"http://{host!s}:{port}")
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- each failure, its status and its words ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code", "kind", "advice"),
    [
        pytest.param(
            Fault.delay(30), HTTPStatus.GATEWAY_TIMEOUT, "upstream_timeout", "timeout", "Retry", id="read-timeout"
        ),
        pytest.param(Fault.drop(), HTTPStatus.BAD_GATEWAY, "upstream_unreachable", "connection", "Retry", id="dropped"),
        pytest.param(Fault.server_error(), HTTPStatus.BAD_GATEWAY, "upstream_error", "500", "Retry", id="500"),
        pytest.param(
            Fault.unavailable(), HTTPStatus.SERVICE_UNAVAILABLE, "upstream_unavailable", "503", "Retry", id="503"
        ),
        pytest.param(
            Fault.unauthorized(),
            HTTPStatus.BAD_GATEWAY,
            "upstream_auth_failed",
            "401",
            "operator must replace it with a valid API key",
            id="401",
        ),
        pytest.param(
            Fault.non_json(),
            HTTPStatus.BAD_GATEWAY,
            "upstream_invalid_response",
            "invalid_response",
            "Retry",
            id="200-not-json",
        ),
        pytest.param(
            Fault.missing_value(),
            HTTPStatus.BAD_GATEWAY,
            "upstream_invalid_response",
            "invalid_response",
            "Retry",
            id="200-without-value",
        ),
        pytest.param(
            Fault.oversized(),
            HTTPStatus.BAD_GATEWAY,
            "upstream_invalid_response",
            "invalid_response",
            "Retry",
            id="200-oversized",
        ),
        pytest.param(
            Fault.oversized(compressed=True),
            HTTPStatus.BAD_GATEWAY,
            "upstream_invalid_response",
            "invalid_response",
            "Retry",
            id="200-oversized-once-decompressed",
        ),
        pytest.param(
            BETA_DISABLED, HTTPStatus.BAD_GATEWAY, "upstream_misconfigured", "400", "operator", id="beta-disabled"
        ),
    ],
)
def test_an_upstream_failure_gets_an_honest_status_and_actionable_envelope(
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    fault: Fault,
    status: HTTPStatus,
    code: str,
    kind: str,
    advice: str,
) -> None:
    # Given OpenAI misbehaves this way on the next request
    openai_stub.inject(fault)

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller gets the status that says whose problem it is, and words to act on
    assert answer.status == status
    message = assert_error_envelope(answer, error_type="upstream_error", code=code)
    assert advice in message
    # And the failure is counted by kind, its latency on its own (by service), OpenAI was asked once, no mint
    # was counted and no traceback was logged
    metrics = output.metrics()
    assert sum(int(sum(m["UpstreamErrors"])) for m in metrics if m.get("kind") == kind) == 1
    latencies = [m for m in metrics if "UpstreamLatency" in m]
    assert [m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for m in latencies] == [[["service"]]]
    assert not [m for m in metrics if "ClientSecretsMinted" in m]
    assert len(openai_stub.requests) == 1
    assert_no_traceback_logged(output)
    # And the failure's lines name the caller by its safety identifier, as a mint's line would
    expected = expected_safety_identifier(load_event("client_secrets.json"))
    failed = [line for line in output.logs() if line["message"] == "request failed"]
    assert [line["user"] for line in failed] == [expected]


def test_a_refused_connection_is_a_502_upstream_unreachable(
    closed_port_url: str, lambda_context: LambdaContext, output: Output
) -> None:
    # Given nothing listens where OpenAI should be

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller gets a 502 saying OpenAI could not be reached, counted as a connection failure
    assert answer.status == HTTPStatus.BAD_GATEWAY
    assert "could not reach OpenAI" in assert_error_envelope(
        answer, error_type="upstream_error", code="upstream_unreachable"
    )
    assert output.metric_count("UpstreamErrors", kind="connection") == 1
    assert any(line["message"] == "openai unreachable" for line in output.logs())


def test_a_refused_connection_is_retried_a_bounded_number_of_times(
    closed_port_url: str, lambda_context: LambdaContext, output: Output, caplog: pytest.LogCaptureFixture
) -> None:
    # Given nothing listens where OpenAI should be

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the connect was retried once (the request never left), then the caller got a 5xx envelope
    retries = [r for r in caplog.records if r.name.startswith("urllib3") and r.getMessage().startswith("Retrying")]
    assert len(retries) == 1
    assert answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR
    assert "Retry" in assert_error_envelope(answer, error_type="upstream_error", code=answer.body["error"]["code"])
    assert output.metric_count("UpstreamErrors") == 1
    assert_no_traceback_logged(output)


@pytest.mark.parametrize(("retry_after", "advice"), [(7, "Retry after 7 seconds."), (None, "Retry later.")])
def test_rate_limiting_is_passed_on_with_its_retry_after(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, retry_after: int | None, advice: str
) -> None:
    # Given OpenAI rate-limits the next request
    openai_stub.inject(Fault.rate_limited(retry_after))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller is rate-limited too, told when to come back, in the SDKs' rate-limit shape
    assert answer.status == HTTPStatus.TOO_MANY_REQUESTS
    message = assert_error_envelope(answer, error_type="rate_limit_error", code="rate_limit_exceeded")
    assert advice in message
    assert answer.headers.get("Retry-After") == (None if retry_after is None else str(retry_after))
    assert output.metric_count("UpstreamErrors", kind="429") == 1


def test_a_rejected_api_key_tells_the_operator_to_fix_the_secret(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given OpenAI rejects the service's key
    openai_stub.inject(Fault.unauthorized())

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller gets a 502, not a 401 that would blame its own credentials, saying where the key is
    assert answer.status == HTTPStatus.BAD_GATEWAY
    message = assert_error_envelope(answer, error_type="upstream_error", code="upstream_auth_failed")
    assert message == (
        "OpenAI rejected this service's API key: the key in the service's secret. "
        "The operator must replace it with a valid API key."
    )
    # And it tells the SDKs not to retry: the key stays refused until an operator acts
    assert answer.headers["x-should-retry"] == "false"
    # And an error log tells the operator which key
    errors = [line for line in output.logs() if line["level"] == "ERROR"]
    assert [line["key_source"] for line in errors if line["message"] == "openai rejected the api key"] == [
        "the key in the service's secret"
    ]


def test_a_rejected_api_key_names_the_source_the_environment_gives(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the key came from elsewhere than the secret's owner would think (make run: its OPENAI_API_KEY)
    monkeypatch.setenv("OPENAI_API_KEY_SOURCE", "the key in OPENAI_API_KEY given to make run")
    function_caches.reread_settings()
    # And OpenAI rejects it
    openai_stub.inject(Fault.unauthorized())

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the message names that source, not the secret
    message = assert_error_envelope(answer, error_type="upstream_error", code="upstream_auth_failed")
    assert message == (
        "OpenAI rejected this service's API key: the key in OPENAI_API_KEY given to make run. "
        "The operator must replace it with a valid API key."
    )


def test_the_openai_sdk_does_not_retry_a_key_openai_rejects(
    api_key_secret_arn: str, user_pool: UserPool, user_token: Callable[..., str]
) -> None:
    # Given OpenAI rejects every mint with the service's key (it knows another), behind the local API
    with (
        OpenAIStub(api_key="sk-test-another-key") as refusing,
        serving_default(api_key_secret_arn, refusing.base_url, user_pool) as api,
    ):
        # And the official SDK, willing to retry a 502 twice
        client = openai.OpenAI(api_key=user_token(), base_url=f"{api.url}/v1", max_retries=2)

        # When it asks for a client secret
        with pytest.raises(openai.APIStatusError) as raised:
            client.realtime.client_secrets.create(session={"type": "realtime"})
        requests = [request.path for request in refusing.requests]

    # Then it raised at once: OpenAI was asked once, and the answer said not to retry
    assert (raised.value.status_code, raised.value.code) == (HTTPStatus.BAD_GATEWAY, "upstream_auth_failed")
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert requests == ["/v1/realtime/client_secrets"]


def test_beta_api_shape_disabled_is_our_misconfiguration_not_the_callers(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given OpenAI answers that the beta shape is switched off
    openai_stub.inject(BETA_DISABLED)

    # When a beta client asks for a session
    answer = mint(lambda_context, "sessions.json")

    # Then it is a 502 server-side failure, not a 400 the caller could fix
    assert answer.status == HTTPStatus.BAD_GATEWAY
    assert answer.body["error"]["type"] != "invalid_request_error"
    assert answer.body["error"]["param"] is None
    assert output.metric_count("RequestsRejected") == 0
    assert output.metric_count("UpstreamErrors", kind="400") == 1


# --- OpenAI's own 400s, passed on in the caller's names ----------------------------------------------------


@pytest.mark.parametrize(
    ("event_name", "upstream_param", "caller_param"),
    [
        pytest.param("client_secrets.json", "session.audio.output.voice", "session.audio.output.voice", id="ga-as-is"),
        pytest.param("sessions.json", "session.audio.output.voice", "voice", id="beta-voice"),
        pytest.param(
            "sessions.json",
            "session.audio.input.turn_detection.silence_duration_ms",
            "turn_detection.silence_duration_ms",
            id="beta-nested",
        ),
        pytest.param("sessions.json", "session.audio.input.format.rate", "input_audio_format", id="beta-reshaped"),
        pytest.param(
            "transcription_sessions.json",
            "session.audio.input.transcription.language",
            "input_audio_transcription.language",
            id="beta-transcription",
        ),
    ],
)
def test_an_upstream_400_naming_a_param_is_passed_on_in_the_callers_names(
    openai_refusing: Callable[[_Refusal], _RefusingServer],
    lambda_context: LambdaContext,
    output: Output,
    event_name: str,
    upstream_param: str,
    caller_param: str,
) -> None:
    # Given OpenAI refuses a value our policy let through
    upstream = openai_refusing(_Refusal(upstream_param, "invalid_value", f"Invalid value for '{upstream_param}'."))

    # When a client secret is requested
    answer = mint(lambda_context, event_name)

    # Then the caller gets OpenAI's 400 and reason, naming the field as the caller spelled it
    assert answer.status == HTTPStatus.BAD_REQUEST
    message = assert_error_envelope(
        answer, error_type="invalid_request_error", code="invalid_value", param=caller_param
    )
    assert message == f"OpenAI rejected the session configuration: Invalid value for '{upstream_param}'."
    assert len(upstream.requests) == 1
    assert output.metric_count("UpstreamErrors", kind="400") == 1
    assert output.metric_count("RequestsRejected", reason="upstream_rejected") == 1


def test_an_upstream_400_on_a_server_fixed_field_is_not_blamed_on_the_caller(
    openai_refusing: Callable[[_Refusal], _RefusingServer], lambda_context: LambdaContext
) -> None:
    # Given OpenAI no longer accepts the model the policy fixes (e.g. it was retired)
    openai_refusing(_Refusal("session.model", "invalid_value", "Invalid value for 'session.model'."))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then it is a server-side failure, not a 400 about a field the caller may not even send
    assert answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR
    assert answer.body["error"]["type"] != "invalid_request_error"


# --- metrics on success -----------------------------------------------------------------------------------


def test_a_mint_reports_upstream_latency_and_no_upstream_error(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given OpenAI answers normally

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the mint and the latency of its OpenAI call are one EMF document, in milliseconds, published by
    # service alone and by service, endpoint and profile; and no error is counted
    assert answer.status == HTTPStatus.OK
    latencies = [m for m in output.metrics() if "UpstreamLatency" in m]
    assert len(latencies) == 1
    # And that document is the mint's own log line: one line per mint, not two
    assert latencies[0]["message"] == "client secret minted"
    assert latencies[0] in output.logs()
    assert latencies[0]["service"] == "token-vending"
    directive = latencies[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Metrics"] == [
        {"Name": "ClientSecretsMinted", "Unit": "Count"},
        {"Name": "UpstreamLatency", "Unit": "Milliseconds"},
        {"Name": "SpendBrakeUsed", "Unit": "Count"},  # the shipped policy brakes
    ]
    assert directive["Dimensions"] == [["service"], ["service", "endpoint", "profile"]]
    assert latencies[0]["SpendBrakeUsed"] == [1]
    assert sum(latencies[0]["UpstreamLatency"]) > 0
    assert (latencies[0]["endpoint"], latencies[0]["profile"]) == ("client_secrets", "assistant")
    assert output.metric_count("UpstreamErrors") == 0


@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_a_mint_is_counted_when_info_lines_are_not_written(
    lambda_context: LambdaContext, output: Output, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    # Given the function deployed with LogLevel WARNING or ERROR, so the mint's INFO line is not written
    from voice_access.observability import logger

    monkeypatch.setattr(logging.getLogger(logger.name), "level", getattr(logging, level))

    # When a client secret is minted
    answer = mint(lambda_context)

    # Then the mint and its latency are counted all the same, in an EMF document of their own
    assert answer.status == HTTPStatus.OK
    assert not [line for line in output.logs() if line.get("message") == "client secret minted"]
    assert output.metric_count("ClientSecretsMinted", endpoint="client_secrets", profile="assistant") == 1
    (latency,) = [m for m in output.metrics() if "UpstreamLatency" in m]
    assert latency["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "endpoint", "profile"]]


# --- the connection and retries ---------------------------------------------------------------------------


def test_warm_invocations_reuse_one_connection(own_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given a warm container that has never reached OpenAI

    # When it mints ten times (the shipped policy's limit a minute)
    statuses = [mint(lambda_context).status for _ in range(10)]

    # Then every mint succeeded over the one connection opened by the first
    assert statuses == [HTTPStatus.OK] * 10
    assert len(own_stub.requests) == 10
    assert own_stub.connections == 1


@pytest.mark.parametrize(
    "fault", [pytest.param(Fault.drop(), id="dropped"), pytest.param(Fault.oversized(), id="oversized")]
)
def test_after_a_failure_that_closed_the_connection_the_next_mint_succeeds(
    own_stub: OpenAIStub, lambda_context: LambdaContext, fault: Fault
) -> None:
    # Given a mint that failed and left its connection closed
    own_stub.inject(fault)
    assert mint(lambda_context).status == HTTPStatus.BAD_GATEWAY

    # When the next request comes
    answer = mint(lambda_context)

    # Then it is minted over a fresh connection
    assert answer.status == HTTPStatus.OK
    assert answer.body["value"].startswith("ek_")
    assert own_stub.connections == 2


def test_a_read_timeout_is_not_retried_and_the_next_mint_succeeds(
    openai_stub: OpenAIStub, lambda_context: LambdaContext
) -> None:
    # Given OpenAI holds the next answer longer than the read timeout
    openai_stub.inject(Fault.delay(30))

    # When a client secret is requested
    timed_out = mint(lambda_context)

    # Then it fails with a 504 after one request: a second wait would not fit in the function's timeout
    assert timed_out.status == HTTPStatus.GATEWAY_TIMEOUT
    assert len(openai_stub.requests) == 1
    # And the next request is minted
    assert mint(lambda_context).status == HTTPStatus.OK
    assert len(openai_stub.requests) == 2


class _BombHandler(BaseHTTPRequestHandler):
    """A 200 whose gzip body declares a few kilobytes and decodes to 32 MB."""

    protocol_version = "HTTP/1.1"
    body = gzip.compress(b'{"value": "ek_bomb", "expires_at": 1, "session": {"instructions": "' + b"x" * 2**25 + b'"}}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(self.body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


# Run in a process of its own, so that the traced peak is the mint's alone: in the test process, threads left
# by other tests (servers, the Realtime peer) allocate too, and tracemalloc counts every thread.
_TRACED_MINT = """
import json, sys, tracemalloc
from tests.events import load_event
from tests.lambda_context import FakeLambdaContext
from voice_access.edge.app import lambda_handler

event = load_event("client_secrets.json")
lambda_handler(event, FakeLambdaContext())  # the first call reads the key and connects: the second measures the answer
tracemalloc.start()
answer = lambda_handler(event, FakeLambdaContext())
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"status": answer["statusCode"], "body": json.loads(answer["body"]), "peak": peak}))
"""


def test_a_compressed_answer_is_not_decoded_past_the_cap(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an upstream that answers with a small gzip body that decodes to 32 MB (urllib3 decodes unasked),
    # and no quotas (the store's requests would count in the traced memory)
    monkeypatch.setenv("POLICY_PATH", str(shipped_policy(tmp_path, without_quotas)))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _BombHandler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        host, port = server.server_address[:2]
        monkeypatch.setenv("OPENAI_UPSTREAM_URL", f"http://{host!s}:{port}")

        # When a function (a process of its own, as Lambda runs it) is asked for a client secret, with its
        # allocations traced
        try:
            answer, _ = run_probe(_TRACED_MINT)
        finally:
            server.shutdown()

    # Then it is refused as an unusable answer, having decoded little more than the 256 KiB cap
    assert answer["status"] == HTTPStatus.BAD_GATEWAY
    assert answer["body"]["error"]["code"] == "upstream_invalid_response"
    assert answer["peak"] < 8 * 2**20


# --- one deadline per request -----------------------------------------------------------------------------

# A byte every quarter second comes well within the template's 8 s read timeout, so only a bound on the
# whole exchange stops it; the whole answer would take half a minute or more.
DRIP_INTERVAL = 0.25
# The invocation's time left in these tests; the deadline is a second before it.
REMAINING_MS = 2_000


@pytest.fixture
def template_read_timeout(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's read timeout (8 s), not the short one the other fault tests use."""
    monkeypatch.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "8")
    function_caches.reread_settings()


def assert_cut_by_the_deadline(answer: Answer, elapsed: float, output: Output) -> None:
    """A 504 envelope, in time for the caller to get it, and logged and counted as a timeout."""
    assert answer.status == HTTPStatus.GATEWAY_TIMEOUT
    assert "Retry" in assert_error_envelope(answer, error_type="upstream_error", code="upstream_timeout")
    assert elapsed < REMAINING_MS / 1000  # before Lambda would have stopped the function
    assert output.metric_count("UpstreamErrors", kind="timeout") == 1
    [line] = [line for line in output.logs() if line["message"] == "openai did not answer in time"]
    assert line["deadline_passed"] is True
    assert_no_traceback_logged(output)


@pytest.mark.usefixtures("template_read_timeout")
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.drip_headers(DRIP_INTERVAL), id="dripped-headers"),
        pytest.param(Fault.drip_body(DRIP_INTERVAL), id="dripped-body"),
    ],
)
def test_a_dripping_upstream_gets_a_504_before_the_function_times_out(
    own_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, fault: Fault
) -> None:
    # Given a warm container (key read, connection open) and an OpenAI that drips its next answer
    assert mint(lambda_context).status == HTTPStatus.OK
    own_stub.inject(fault)

    # When an invocation with 2 s left asks for a client secret
    started = time.monotonic()
    answer = mint(lambda_context_with(REMAINING_MS))
    elapsed = time.monotonic() - started

    # Then the caller gets our 504 envelope in time, and logs and metrics say timeout
    assert_cut_by_the_deadline(answer, elapsed, output)
    # And the next invocation mints over a fresh connection: the cut one never went back into the pool
    assert mint(lambda_context).status == HTTPStatus.OK
    assert own_stub.connections == 2


@pytest.mark.usefixtures("template_read_timeout")
def test_the_deadline_holds_when_the_handler_runs_in_a_worker_thread(openai_stub: OpenAIStub, output: Output) -> None:
    # Given an OpenAI that drips its next answer, and a handler run off the main thread (as `make run` does)
    openai_stub.inject(Fault.drip_body(DRIP_INTERVAL))

    # When an invocation with 2 s left asks for a client secret
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as worker:
        answer = worker.submit(mint, lambda_context_with(REMAINING_MS)).result()
    elapsed = time.monotonic() - started

    # Then it is cut by the deadline all the same
    assert_cut_by_the_deadline(answer, elapsed, output)


def test_an_invocation_out_of_time_does_not_call_openai(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given a warm container holding the key
    assert mint(lambda_context).status == HTTPStatus.OK

    # When an invocation with less time left than the margin to answer in asks for a client secret
    answer = mint(lambda_context_with(500))

    # Then it gets the 504 at once, and neither the quota store nor OpenAI was asked
    assert answer.status == HTTPStatus.GATEWAY_TIMEOUT
    assert answer.body["error"]["code"] == "timeout"
    assert len(openai_stub.requests) == 1


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 it signed: (CA file, certificate file, key file)."""
    now = datetime.now(UTC)

    def certificate(subject: str, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        )
        if ca:
            usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("token vending test CA", ca_key, x509.Name([]), ca_key, ca=True)
    ca = certificate("token vending test CA", ca_key, ca.subject, ca_key, ca=True)
    server = certificate("127.0.0.1", server_key, ca.subject, ca_key, ca=False)
    files = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


class _DripServer(ThreadingHTTPServer):
    daemon_threads = True
    stopped = threading.Event()
    drip = False


class _DrippingHandler(BaseHTTPRequestHandler):
    """A 200 whose headers come at once and whose body, once the server's `drip` is set, a byte every
    DRIP_INTERVAL."""

    protocol_version = "HTTP/1.1"
    body = json.dumps(
        {"value": "ek_test_tls", "expires_at": int(time.time()) + 600, "session": {"type": "realtime"}}
    ).encode()

    def do_POST(self) -> None:
        server = cast(_DripServer, self.server)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            if not server.drip:
                self.wfile.write(self.body)
                return
            for index in range(len(self.body)):
                if server.stopped.wait(DRIP_INTERVAL):
                    break
                self.wfile.write(self.body[index : index + 1])
        except OSError:
            pass  # the client gave up
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.mark.usefixtures("template_read_timeout")
def test_the_deadline_holds_over_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lambda_context: LambdaContext, output: Output
) -> None:
    # Given an OpenAI over TLS, as in AWS (its CA trusted through SSL_CERT_FILE, which OpenSSL reads), that
    # minted once over a connection still open, and now drips its answers
    ca_file, certificate_file, key_file = _certificates(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate_file, key_file)
    server = _DripServer(("127.0.0.1", 0), _DrippingHandler)
    server.stopped = threading.Event()
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    use_upstream(monkeypatch, f"https://127.0.0.1:{server.server_address[1]}")
    try:
        assert mint(lambda_context).status == HTTPStatus.OK
        server.drip = True

        # When an invocation with 2 s left asks for a client secret
        started = time.monotonic()
        answer = mint(lambda_context_with(REMAINING_MS))
        elapsed = time.monotonic() - started
    finally:
        server.stopped.set()
        server.shutdown()
        server.server_close()

    # Then the TLS connection kept to the deadline too
    assert_cut_by_the_deadline(answer, elapsed, output)


# --- OpenAI's own words, bounded --------------------------------------------------------------------------

LONG_CODE = "long_code_" + "c" * 5_000
LONG_PARAM = "session.audio." + "p" * 5_000
LONG_MESSAGE = "Bad\x1b[31m value\u202e\x00 " + "m" * 5_000


def assert_shown_nowhere(output: Output, caplog: pytest.LogCaptureFixture, answer: Answer, *texts: str) -> None:
    shown = json.dumps(answer.body) + json.dumps(answer.headers) + output.text() + caplog.text
    assert not [text for text in texts if text in shown], "upstream text appeared unclipped"


@pytest.mark.parametrize(
    ("status", "answered_status", "answered_code"),
    [
        (HTTPStatus.BAD_REQUEST, HTTPStatus.BAD_REQUEST, LONG_CODE[:64]),
        (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.TOO_MANY_REQUESTS, LONG_CODE[:64]),
        (HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.BAD_GATEWAY, "upstream_error"),
    ],
)
def test_oversized_upstream_error_text_is_clipped_everywhere(
    openai_stub: OpenAIStub,
    lambda_context: LambdaContext,
    output: Output,
    caplog: pytest.LogCaptureFixture,
    status: HTTPStatus,
    answered_status: HTTPStatus,
    answered_code: str,
) -> None:
    # Given OpenAI refuses with a 5,000-character code, param and message, the message with control characters
    openai_stub.inject(Fault.error(status, code=LONG_CODE, param=LONG_PARAM, message=LONG_MESSAGE))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the answer carries the code clipped to 64 safe characters, never the whole of any of them
    assert answer.status == answered_status
    assert answer.body["error"]["code"] == answered_code
    assert_shown_nowhere(output, caplog, answer, LONG_CODE[:65], LONG_PARAM[:65], "m" * 501, "\x1b", "\u202e")
    # And every metric dimension is one of a few short values
    dimensions = [
        document[name]
        for document in output.metrics()
        for directive in document["_aws"]["CloudWatchMetrics"]
        for names in directive["Dimensions"]
        for name in names
    ]
    assert dimensions
    assert all(len(value) <= 64 for value in dimensions)
    assert_no_traceback_logged(output)


def test_an_upstream_400_passes_its_words_on_clipped_to_safe_characters(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output
) -> None:
    # Given OpenAI refuses a combination with an oversized code, param and message
    openai_stub.inject(Fault.error(HTTPStatus.BAD_REQUEST, code=LONG_CODE, param=LONG_PARAM, message=LONG_MESSAGE))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller still learns what OpenAI said, as much of it as is safe to pass on
    message = assert_error_envelope(
        answer, error_type="invalid_request_error", code=LONG_CODE[:64], param=LONG_PARAM[:64]
    )
    assert message.startswith("OpenAI rejected the session configuration: Bad[31m value ")
    assert message.isprintable()
    assert len(message) <= len("OpenAI rejected the session configuration: ") + 500
    # And the refusal is counted under one reason of our own, not a dimension value OpenAI chooses
    assert output.metric_count("RequestsRejected", reason="upstream_rejected") == 1


def _http_date(seconds_from_now: int) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "passed_on"),
    [
        pytest.param("7", "7", id="seconds"),
        pytest.param("99999", "300", id="capped"),
        pytest.param("9" * 5_000, "300", id="5000-digits"),
        pytest.param("\u00b2", None, id="superscript-two"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("-3", None, id="negative"),
        pytest.param("7, 8", None, id="two-values"),
        pytest.param("soon", None, id="words"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", "1", id="date-passed"),
        pytest.param("0", "1", id="zero"),
        pytest.param("00000000005", "5", id="leading-zeros"),
        pytest.param(_http_date(3_600), "300", id="date-capped"),
    ],
)
@pytest.mark.parametrize("status", [HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE])
def test_retry_after_is_passed_on_only_as_whole_seconds_capped(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, status: HTTPStatus, retry_after: str, passed_on: str | None
) -> None:
    # Given OpenAI asks the service to back off with this Retry-After
    openai_stub.inject(Fault.error(status, code="rate_limit_exceeded", headers={"Retry-After": retry_after}))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller is told to back off too, with whole seconds up to the cap, or no Retry-After at all
    assert answer.status == status
    assert answer.headers.get("Retry-After") == passed_on
    assert f"after {retry_after} seconds" not in answer.body["error"]["message"] or retry_after == passed_on


def test_retry_after_as_an_http_date_becomes_seconds(openai_stub: OpenAIStub, lambda_context: LambdaContext) -> None:
    # Given OpenAI asks the service to come back at a time half a minute away
    openai_stub.inject(Fault.error(HTTPStatus.TOO_MANY_REQUESTS, headers={"Retry-After": _http_date(30)}))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller is told the seconds until then (the date has whole seconds; the clock moved on a little)
    assert answer.status == HTTPStatus.TOO_MANY_REQUESTS
    assert 27 <= int(answer.headers["Retry-After"]) <= 30
    assert f"Retry after {answer.headers['Retry-After']} seconds." in answer.body["error"]["message"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"expires_at": True}, id="expires-at-true"),
        pytest.param({"expires_at": "1756310470"}, id="expires-at-text"),
        pytest.param({"expires_at": 1756310470.5}, id="expires-at-fraction"),
        pytest.param({"value": ""}, id="value-empty"),
        pytest.param({"value": 12345}, id="value-a-number"),
        pytest.param({"expires_at": int("9" * 4000)}, id="expires-at-4000-digits"),
        pytest.param({"expires_at": 0}, id="expires-at-1970"),
    ],
)
def test_a_minted_answer_without_a_usable_value_and_expiry_is_refused(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, fields: dict[str, Any]
) -> None:
    # Given OpenAI answers 200 with a client secret whose value or expiry is not what the schema says
    openai_stub.inject(Fault.altered(**fields))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then the caller gets a 502 saying OpenAI's answer was unusable, counted as such
    assert answer.status == HTTPStatus.BAD_GATEWAY
    assert_error_envelope(answer, error_type="upstream_error", code="upstream_invalid_response")
    assert output.metric_count("UpstreamErrors", kind="invalid_response") == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(HTTPStatus.OK, b"[" * 100_000 + b"]" * 100_000, id="200-nested-deeper-than-the-parser"),
        pytest.param(
            HTTPStatus.BAD_REQUEST, b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="400-nested-error"
        ),
    ],
)
def test_an_answer_nested_deeper_than_the_parser_follows_is_an_upstream_failure_not_a_crash(
    openai_stub: OpenAIStub, lambda_context: LambdaContext, output: Output, status: HTTPStatus, body: bytes
) -> None:
    # Given OpenAI answers with JSON nested deeper than json.loads can follow (200 KB, under the size cap)
    openai_stub.inject(Fault.non_json(body, status=status))

    # When a client secret is requested
    answer = mint(lambda_context)

    # Then an honest upstream status in the envelope, and no traceback
    assert answer.status in (HTTPStatus.BAD_GATEWAY, HTTPStatus.BAD_REQUEST)
    assert answer.body["error"]["code"] in ("upstream_invalid_response", "invalid_value")
    assert_no_traceback_logged(output)


@pytest.fixture
def slow_to_connect_silent_tls_port() -> Iterator[int]:
    """A loopback port whose TCP connect completes only after a SYN retransmission (about 1 s: its accept
    queue is full) and which then never answers a TLS ClientHello."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue: the next SYN is dropped and retransmitted
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    stop, accepted = threading.Event(), []

    def accept_late() -> None:
        stop.wait(0.5)
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])  # and never speak TLS

    thread = threading.Thread(target=accept_late, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        for sock in [*fillers, *accepted, listener]:
            sock.close()


@pytest.mark.usefixtures("function_env")
def test_the_tls_handshake_gets_only_what_the_connect_left_of_the_deadline(
    monkeypatch: pytest.MonkeyPatch, slow_to_connect_silent_tls_port: int
) -> None:
    # Given an OpenAI over TLS that is slow to connect and then silent, and an invocation with 2.5 s left
    # (a deadline 1.5 s away) whose connect timeout alone (2 s) would outlast it
    use_upstream(monkeypatch, f"https://127.0.0.1:{slow_to_connect_silent_tls_port}")
    monkeypatch.setenv("UPSTREAM_CONNECT_TIMEOUT_SECONDS", "2")
    function_caches.reread_settings()

    # When a client secret is requested
    started = time.monotonic()
    answer = mint(lambda_context_with(2_500))
    waited = time.monotonic() - started

    # Then our 504 comes by the deadline (with half a second to spare), not after connect plus a full handshake
    assert answer.status == HTTPStatus.GATEWAY_TIMEOUT
    assert answer.body["error"]["code"] == "upstream_timeout"
    assert waited < 2.0
