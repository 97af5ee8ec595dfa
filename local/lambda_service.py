"""Lambda's asynchronous invocations, locally: the Invoke API on loopback, each invocation a process of its own.

A function reaches it through AWS_ENDPOINT_URL_LAMBDA (the SDKs' endpoint variable, which the run gives every
function): `POST /2015-03-31/functions/<name or ARN>/invocations` with `X-Amz-Invocation-Type: Event`, signed
(SigV4) with the run's credentials and checked as the local AWS checks it (local/aws.py), is answered 202 and run
in the background. Names resolve as the template's Ref and Fn::GetAtt ... Arn of the function resolve
(local/template.py's read_functions). Synchronous invocations (RequestResponse) are refused: nothing needs them.

Each invocation runs as Lambda runs one in a new execution environment: a fresh process
(local/execution_environment.py) with the function's environment (the runtime's variables, the template's, the
run's), its code root as its working directory and on sys.path, a context counting down from its Timeout, and killed
(SIGKILL, with whatever it started) at that timeout. What it writes goes to this process's stdout and stderr, where
the other functions' logs go, and is kept with the invocation. As the function's EventInvokeConfig says, a failed
attempt (an exception, a timeout, a crash) is tried again after 1 and then 2 minutes, up to MaximumRetryAttempts; an
event that waited longer than MaximumEventAgeInSeconds (ReservedConcurrentExecutions makes events wait) is not run;
either is sent to the OnFailure SQS queue (in moto) as Lambda's destination record.

For tests: ``invocations()``, ``wait_for()`` and ``wait_until()`` (an invocation reaching a state), ``kill()`` (a
crash of a running one) and ``override()`` (a function's environment or timeout, for the invocations after it).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs

from werkzeug.serving import BaseWSGIServer, make_server

from local.aws import REGION, SOCKET_TIMEOUT, TimingOutRequestHandler, signed_requests_only, sqs_client
from local.cloudformation import ACCOUNT_ID
from local.lambda_runtime import runtime_environment
from local.running import Running, serve_in_background, timing_out
from local.template import LocalFunction

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# The repository, whose local/ the invocation's process runs (it takes it off its sys.path before the function's
# code is imported).
REPOSITORY = Path(__file__).resolve().parent.parent
# Lambda's waits before the second and the third attempt of a failed asynchronous invocation.
RETRY_DELAYS = (60.0, 120.0)
# Lambda's limit on an asynchronous invocation's payload.
PAYLOAD_LIMIT_BYTES = 256 * 1024
# How long the init phase (importing the handler) may take, as in Lambda.
INIT_SECONDS = 10.0
# How long a process that reported its outcome may take to exit before it is killed.
_EXIT_SECONDS = 5.0
_SILENT: dict[str, Any] = {}  # no report in time (compared by identity)
_INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<function>[^/]+)/invocations")
# A function's name, name:qualifier, ARN (with a qualifier or not) or partial ARN (account:function:name).
_FUNCTION = re.compile(
    r"(?:arn:(?P<partition>[\w-]+):lambda:(?P<region>[\w-]+):)?(?:(?P<account>\d{12}):function:)?"
    r"(?P<name>[\w-]{1,64})(?::(?P<qualifier>[\w$-]+))?"
)


class State(StrEnum):
    """Where an asynchronous invocation is. A failed attempt with a retry left goes back to QUEUED."""

    QUEUED = "queued"  # waiting for a retry, or for the function's reserved concurrency
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the last attempt raised, or its process exited on its own
    KILLED = "killed"  # the last attempt's process was killed: at its timeout, by kill(), or by a signal
    EXPIRED = "expired"  # never run: older than MaximumEventAgeInSeconds


DONE = frozenset({State.SUCCEEDED, State.FAILED, State.KILLED, State.EXPIRED})


class FunctionNotFound(LookupError):
    """No function of the template has that name or ARN (Lambda's ResourceNotFoundException)."""


class NotRunning(LookupError):
    """kill(): the invocation has no attempt running."""


@dataclass(frozen=True)
class Invocation:
    """One asynchronous invocation (one event, whatever its attempts), as it stands."""

    request_id: str
    function: str  # the function's logical id
    event: Any
    state: State
    attempts: int
    output: str  # what its processes wrote to stdout and stderr, lines in the order they came
    error: dict[str, Any] | None  # the last failed attempt's error payload (errorType, errorMessage), if any

    @property
    def done(self) -> bool:
        return self.state in DONE


@dataclass
class _Record:
    request_id: str
    function: LocalFunction
    event: Any
    received: float  # the clock's time of its arrival
    state: State = State.QUEUED
    attempts: int = 0
    output: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    process: subprocess.Popen[bytes] | None = None
    failure: State = State.FAILED  # what the last failed attempt makes it once done: FAILED or KILLED

    def snapshot(self) -> Invocation:
        return Invocation(
            self.request_id,
            self.function.logical_id,
            self.event,
            self.state,
            self.attempts,
            "".join(self.output),
            self.error,
        )


def destination_record(
    invocation: Invocation, function_arn: str, condition: str, timestamp: datetime | None = None
) -> dict[str, Any]:
    """What Lambda sends a function's OnFailure destination for ``invocation``: ``condition`` is
    "RetriesExhausted" or "EventAgeExceeded"; an event never run has no response."""
    when = (timestamp or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": when,
        "requestContext": {
            "requestId": invocation.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": invocation.attempts,
        },
        "requestPayload": invocation.event,
    }
    if invocation.attempts:
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        record["responsePayload"] = invocation.error
    return record


class LocalLambda(Running):
    """``functions`` (by logical id) invoked asynchronously through the Invoke API on 127.0.0.1 (a free port).

    ``aws_endpoint_url``: the local AWS holding the OnFailure queues; ``environment``: what the run adds to every
    function's (credentials, endpoints); ``layer_environments``: what a layer adds to the functions it is attached
    to, by its ARN (the secrets extension's port); ``clock``: time.time, for an event's age; ``retry_delays``:
    Lambda's waits before each retry.
    """

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        aws_endpoint_url: str,
        *,
        region: str = REGION,
        environment: Mapping[str, str] | None = None,
        layer_environments: Mapping[str, Mapping[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        socket_timeout: float = SOCKET_TIMEOUT,
    ) -> None:
        self.functions = dict(functions)
        self.region = region
        self._aws_endpoint_url = aws_endpoint_url
        self._environment = dict(environment or {})
        self._layer_environments = {arn: dict(added) for arn, added in (layer_environments or {}).items()}
        self._clock = clock
        self._retry_delays = tuple(retry_delays)
        self._socket_timeout = socket_timeout
        self._overrides: dict[str, dict[str, str | None]] = {}
        self._timeouts: dict[str, float] = {}
        self._records: list[_Record] = []
        self._running = dict.fromkeys(self.functions, 0)
        # Every change of an invocation (its state, a line of output) is announced here.
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._sqs: Any = None

    @property
    def url(self) -> str:
        """The Invoke API's URL, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("LocalLambda is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def function_environment(self) -> dict[str, str]:
        """What sends a function's Lambda requests here: the SDKs' service-specific endpoint variable."""
        return {"AWS_ENDPOINT_URL_LAMBDA": self.url}

    def start(self) -> Self:
        self._sqs = sqs_client(self._aws_endpoint_url, self.region)
        server = make_server(
            "127.0.0.1",
            0,
            signed_requests_only(self._wsgi),
            threaded=True,
            request_handler=timing_out(TimingOutRequestHandler, self._socket_timeout),
        )
        self._server = server
        self._server_thread = serve_in_background(server, "local-lambda")
        return self

    def stop(self) -> None:
        """Stop taking invocations and kill the running ones (sent to no destination: the run is over)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join()
        with self._changed:
            self._changed.notify_all()
            running = [record.process for record in self._records if record.process is not None]
        for process in running:
            _kill(process)
        for thread in self._threads:
            thread.join(timeout=30)

    # The tests' API

    def invocations(self, function: str | None = None) -> list[Invocation]:
        """Every asynchronous invocation so far (of the function with logical id ``function``), oldest first."""
        with self._changed:
            return [r.snapshot() for r in self._records if function in (None, r.function.logical_id)]

    def wait_until[T](self, condition: Callable[[list[Invocation]], T], timeout: float = 60.0) -> T:
        """``condition``'s first truthy answer on the invocations so far, asked again at every change of them;
        TimeoutError naming each invocation's state if none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (answer := condition([record.snapshot() for record in self._records])):
                left = deadline - time.monotonic()
                if left <= 0:
                    states = ", ".join(f"{r.function.logical_id} {r.request_id} {r.state}" for r in self._records)
                    raise TimeoutError(f"not in {timeout} s; the invocations: {states or 'none'}")
                self._changed.wait(left)
            return answer

    def wait_for(
        self, function: str, states: State | Collection[State] = DONE, timeout: float = 60.0, index: int = 0
    ) -> Invocation:
        """The ``index``-th invocation (0: the first) of the function with logical id ``function``, once it is in
        one of ``states`` (by default: done); TimeoutError if not within ``timeout`` seconds."""
        wanted = {states} if isinstance(states, State) else set(states)

        def reached(invocations: list[Invocation]) -> Invocation | None:
            of_function = [invocation for invocation in invocations if invocation.function == function]
            if len(of_function) > index and of_function[index].state in wanted:
                return of_function[index]
            return None

        found = self.wait_until(reached, timeout)
        assert found is not None  # wait_until returns a truthy answer
        return found

    def kill(self, request_id: str) -> None:
        """Kill the invocation's running process (and what it started) as a crash would: the attempt fails
        (Runtime.ExitError) and is retried or sent to the destination as any failure. NotRunning if it is not
        running."""
        with self._changed:
            record = next((r for r in self._records if r.request_id == request_id), None)
            if record is None or record.state != State.RUNNING or record.process is None:
                raise NotRunning(f"invocation {request_id} is not running")
            _kill(record.process)

    def override(
        self, function: str, environment: Mapping[str, str | None] | None = None, timeout: float | None = None
    ) -> None:
        """For the function with logical id ``function``'s invocations from now on: ``environment`` over the
        template's (None: a variable left out) and another ``timeout`` in seconds."""
        if function not in self.functions:
            raise FunctionNotFound(f"no function {function} (the template's: {', '.join(self.functions)})")
        self._overrides.setdefault(function, {}).update(environment or {})
        if timeout is not None:
            self._timeouts[function] = timeout

    # Invoking

    def invoke_async(self, function: str, payload: bytes) -> str:
        """Queue an invocation of the function named ``function`` (a name or an ARN, as Lambda takes it) with the
        JSON ``payload``; its request id. FunctionNotFound, or ValueError if the payload is not JSON."""
        local_function = self._named(function)
        event = json.loads(payload) if payload.strip() else {}
        record = _Record(str(uuid.uuid4()), local_function, event, self._clock())
        thread = threading.Thread(target=self._run, args=(record,), name=f"lambda-{record.request_id[:8]}", daemon=True)
        with self._changed:
            if self._stopping.is_set():
                raise RuntimeError("LocalLambda is stopped")
            self._records.append(record)
            self._threads = [*(running for running in self._threads if running.is_alive()), thread]
            thread.start()  # under the lock: stop() joins only threads started
            self._changed.notify_all()
        return record.request_id

    def _named(self, identifier: str) -> LocalFunction:
        """The function ``identifier`` names (name, name:qualifier, ARN or partial ARN); only $LATEST runs here."""
        found = _FUNCTION.fullmatch(identifier)
        if found is not None and found["region"] in (None, self.region) and found["account"] in (None, ACCOUNT_ID):
            for function in self.functions.values():
                if function.name == found["name"] and found["qualifier"] in (None, "$LATEST"):
                    return function
        arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{identifier}"
        raise FunctionNotFound(f"Function not found: {identifier if identifier.startswith('arn:') else arn}")

    def _run(self, record: _Record) -> None:
        """Every attempt of one invocation, then its destination if it failed; it ends done, unless the service
        stops first."""
        config = record.function.event_invoke
        for attempt in range(config.maximum_retry_attempts + 1):
            if attempt > 0:
                self._set(record, State.QUEUED)
                if self._stopping.wait(self._retry_delays[min(attempt, len(self._retry_delays)) - 1]):
                    break
            if not self._admitted(record):
                if not self._stopping.is_set():
                    self._send_to_destination(record, "EventAgeExceeded")
                break
            try:
                succeeded = self._attempt(record)
            finally:
                with self._changed:
                    self._running[record.function.logical_id] -= 1
                    self._changed.notify_all()
            if succeeded:
                self._set(record, State.SUCCEEDED)
                break
            if self._stopping.is_set():
                self._set(record, record.failure)
                break
        else:
            self._send_to_destination(record, "RetriesExhausted")

    def _admitted(self, record: _Record) -> bool:
        """Whether the invocation may run now, once the function's reserved concurrency has room for it; False
        when it grew older than its MaximumEventAgeInSeconds first, or the service stops."""
        limit, logical_id = record.function.reserved_concurrency, record.function.logical_id
        with self._changed:
            while not self._stopping.is_set():
                age_left = record.function.event_invoke.maximum_event_age_seconds - (self._clock() - record.received)
                if age_left <= 0:
                    return False
                if limit is None or self._running[logical_id] < limit:
                    self._running[logical_id] += 1
                    return True
                self._changed.wait(age_left)
        return False

    def _attempt(self, record: _Record) -> bool:
        """One attempt in a process of its own; whether it succeeded (if not, ``record.error`` says why)."""
        function = record.function
        timeout = self._timeouts.get(function.logical_id, function.timeout)
        reading, writing = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, on a module of ours
                [sys.executable, "-m", "local.execution_environment", str(writing)],
                cwd=function.code_uri,
                env=self._process_environment(function),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(writing,),
                start_new_session=True,  # a group of its own: killed with what it starts, and no terminal's Ctrl-C
            )
        except OSError as error:
            os.close(reading)
            record.error = {"errorType": "Runtime.Unknown", "errorMessage": f"could not start: {error.strerror}"}
            record.failure = State.FAILED
            self._set(record, State.RUNNING, attempts=record.attempts + 1)
            return False
        finally:
            os.close(writing)
        with self._changed:
            record.process = process
            if self._stopping.is_set():  # stop() listed the processes to kill before this one
                _kill(process)
        self._set(record, State.RUNNING, attempts=record.attempts + 1)
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        outcomes: queue.Queue[dict[str, Any] | None] = queue.Queue()
        readers = [
            _thread(self._log, record, process.stdout, "stdout"),
            _thread(self._log, record, process.stderr, "stderr"),
            _thread(_outcomes, os.fdopen(reading, "rb"), outcomes),
        ]
        invocation = {
            "event": record.event,
            "request_id": record.request_id,
            "invoked_function_arn": function.arn,
            "timeout": timeout,
        }
        try:
            process.stdin.write(json.dumps(invocation).encode() + b"\n")
            process.stdin.flush()
        except OSError:
            pass  # it died already: its outcome says so
        timed_out = ""
        outcome = _next(outcomes, INIT_SECONDS)
        if outcome is _SILENT:
            timed_out = "Init"
        elif outcome is not None and "deadline" in outcome:
            outcome = _next(outcomes, float(outcome["deadline"]) - time.monotonic())
            timed_out = "Task" if outcome is _SILENT else ""
        if timed_out:
            _kill(process)
        try:
            process.wait(_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.wait()
        for reader in readers:
            reader.join(_EXIT_SECONDS)  # a process it started in a session of its own may hold a pipe open
        process.stdin.close()
        with self._changed:
            record.process = None
        if outcome is not None and "result" in outcome:
            return True
        record.error = self._error(record, process, None if timed_out else outcome, timed_out, timeout)
        record.failure = State.KILLED if process.returncode < 0 else State.FAILED
        return False

    def _error(
        self,
        record: _Record,
        process: subprocess.Popen[bytes],
        outcome: dict[str, Any] | None,
        timed_out: str,
        timeout: float,
    ) -> dict[str, Any]:
        """The error payload Lambda reports for a failed attempt."""
        prefix = f"RequestId: {record.request_id} Error:"
        if timed_out:
            seconds = INIT_SECONDS if timed_out == "Init" else timeout
            message = f"{prefix} {timed_out} timed out after {seconds:.2f} seconds"
            print(f"{record.request_id} {timed_out} timed out after {seconds:.2f} seconds", file=sys.stderr)
            return {"errorType": "Sandbox.Timedout", "errorMessage": message}
        if outcome is not None and isinstance(outcome.get("error"), dict):
            return {**outcome["error"], "requestId": record.request_id}
        code = process.returncode
        status = (
            f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}" if code < 0 else f"exit status {code}"
        )
        if code == -signal.SIGKILL:
            status = "signal: killed"  # as Lambda words it
        return {"errorType": "Runtime.ExitError", "errorMessage": f"{prefix} Runtime exited with error: {status}"}

    def _process_environment(self, function: LocalFunction) -> dict[str, str]:
        """The environment of the function's new execution environment."""
        environment = {
            "PATH": os.environ.get("PATH", os.defpath),
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(function.code_uri),
            "PYTHONPATH": str(REPOSITORY),  # for local.execution_environment alone: it takes it off sys.path
            "PYTHONUNBUFFERED": "1",  # its log reaches the terminal (and the tests) as it is written
            **runtime_environment(function, self.region, function.name),
            **function.environment,
            **self._environment,
            **{
                name: value
                for layer in function.layers
                for name, value in self._layer_environments.get(layer, {}).items()
            },
            **self.function_environment(),
        }
        for name, value in self._overrides.get(function.logical_id, {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return environment

    def _log(self, record: _Record, pipe: IO[bytes], stream: str) -> None:
        """The process's ``stream`` line by line: kept with the invocation and written where function logs go."""
        for raw in pipe:
            line = raw.decode(errors="replace")
            with self._changed:
                record.output.append(line)
                self._changed.notify_all()
            target = sys.stdout if stream == "stdout" else sys.stderr
            target.write(line if line.endswith("\n") else line + "\n")
            target.flush()
        pipe.close()

    def _set(self, record: _Record, state: State, attempts: int | None = None) -> None:
        with self._changed:
            record.state = state
            if attempts is not None:
                record.attempts = attempts
            self._changed.notify_all()

    def _send_to_destination(self, record: _Record, condition: str) -> None:
        """Send the failed invocation's record to the function's OnFailure queue; then it is done."""
        function = record.function
        final = record.failure if record.attempts else State.EXPIRED
        queue_arn = function.event_invoke.on_failure
        said = f"{function.logical_id} invocation {record.request_id}: {condition}"
        if queue_arn is None:
            print(f"{said}, dropped (no OnFailure destination)", file=sys.stderr)
        else:
            body = json.dumps(destination_record(record.snapshot(), function.arn, condition))
            name, owner = queue_arn.rsplit(":", 1)[1], queue_arn.split(":")[4]
            try:
                url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=owner)["QueueUrl"]
                self._sqs.send_message(QueueUrl=url, MessageBody=body)
            except Exception as error:  # Lambda would retry; here the developer is told
                print(f"{said}, not sent to {name}: {type(error).__name__}: {error}", file=sys.stderr)
            else:
                print(f"{said}, sent to its OnFailure destination {name}", file=sys.stderr)
        self._set(record, final)

    # The Invoke API

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        path = _INVOKE_PATH.fullmatch(str(environ.get("PATH_INFO", "")))
        if environ.get("REQUEST_METHOD") != "POST" or path is None:
            return _answer(start_response, HTTPStatus.NOT_FOUND, request_id, "UnknownOperationException", "")
        qualifier = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Qualifier", [None])[0]
        body: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        invocation_type = str(environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse")
        try:
            function = self._named(path["function"])
            if qualifier not in (None, "$LATEST"):
                raise FunctionNotFound(f"Function not found: {function.arn}:{qualifier}")
        except FunctionNotFound as error:
            return _answer(start_response, HTTPStatus.NOT_FOUND, request_id, "ResourceNotFoundException", str(error))
        if invocation_type not in ("Event", "DryRun"):
            message = f"only asynchronous invocations (X-Amz-Invocation-Type: Event) run locally, not {invocation_type}"
            return _answer(
                start_response, HTTPStatus.BAD_REQUEST, request_id, "InvalidParameterValueException", message
            )
        if len(body) > PAYLOAD_LIMIT_BYTES:
            message = f"Request must be smaller than {PAYLOAD_LIMIT_BYTES} bytes for the InvokeAsync operation"
            return _answer(
                start_response, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, request_id, "RequestTooLargeException", message
            )
        try:
            json.loads(body or b"{}")
        except ValueError:
            message = "Could not parse request body into json"
            return _answer(
                start_response, HTTPStatus.BAD_REQUEST, request_id, "InvalidRequestContentException", message
            )
        if invocation_type == "DryRun":
            return _answer(start_response, HTTPStatus.NO_CONTENT, request_id)
        try:
            request_id = self.invoke_async(function.name, body)
        except RuntimeError:
            return _answer(start_response, HTTPStatus.SERVICE_UNAVAILABLE, request_id, "ServiceException", "stopping")
        return _answer(start_response, HTTPStatus.ACCEPTED, request_id)


def _answer(
    start_response: StartResponse, status: HTTPStatus, request_id: str, error: str = "", message: str = ""
) -> list[bytes]:
    """Lambda's answer: empty, or its error shape (x-amzn-ErrorType names the error, as botocore reads it)."""
    headers = [("x-amzn-RequestId", request_id), ("Content-Type", "application/json")]
    body = b""
    if error:
        body = json.dumps({"Type": "User", "Message": f"local Lambda: {message}" if message else error}).encode()
        headers.append(("x-amzn-ErrorType", error))
    start_response(f"{status.value} {status.phrase}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _outcomes(pipe: IO[bytes], into: queue.Queue[dict[str, Any] | None]) -> None:
    """Each JSON line the process reports, then None when it closes its end."""
    with pipe:
        for line in pipe:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                into.put(message)
    into.put(None)


def _next(outcomes: queue.Queue[dict[str, Any] | None], seconds: float) -> dict[str, Any] | None:
    """The process's next report within ``seconds``: None when it closed its end, _SILENT when it said nothing."""
    try:
        return outcomes.get(timeout=max(0.0, seconds))
    except queue.Empty:
        return _SILENT


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and its group (what it started), as Lambda ends an execution environment."""
    with contextlib.suppress(ProcessLookupError):  # gone already
        os.killpg(process.pid, signal.SIGKILL)
