"""`make bench`'s supervisor section: what watching a call costs, beside what the call costs.

The supervisor's handler, as `sam build` built SupervisorFunction (with its layers: the dependencies' and its own
websockets), runs as Lambda runs an asynchronous invocation in a new execution environment: a fresh interpreter
(supervisor_child.py) with the template's environment for the function, pointed at the same stand-ins as the
minting function's runs (moto's Secrets Manager, DynamoDB and Scheduler; the OpenAI stub). It supervises two calls
side by side for the same stretch of call time, each to its maximum length (the stretch), where it hangs it up:

- a Realtime call of the shipped "voice" profile, on which the bench, from a sideband of its own, asks for a
  response every ``turn_seconds`` (5 s by default: a conversational turn, the user speaking and the model answering
  in about that time). Each response is the stub's (about a second of speech, its transcript, usage that the
  supervisor meters into the caller's budgets);
- a GPT-Live session of the shipped "live" profile, whose usage OpenAI reports each second.

For each: the process's CPU time (user and system, every thread's) from the end of the import to the handler's
return, per minute of call; the import apart; the peak resident set; the events the call sent on its sidebands per
minute (counted on the bench's own sideband, which gets every one the supervisor gets); and what Lambda bills for it
per 1,000 call minutes at the template's MemorySize, beside the model's price per 1,000 minutes of the same call
(the shipped policy's prices: the stub's usage per response at the turn rate; GPT-Live's per_minute). A supervisor
is billed for its wall time, as long as the call: its cost is its memory size's, whatever its CPU. Its CPU is
reported as a share of what Lambda gives that memory size (a full vCPU at 1,769 MB), and of 128 MB's.

The run counts only if the supervisor did its work: each call ended at its maximum length, and every response (or
billed second) metered exactly once at the shipped price, as its record in the store says.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from local.aws import REGION, dynamodb_client
from local.quota_table import LocalTables
from local.secrets_manager import LocalSecretsManager
from local.template import read_functions
from openai_stub.server import OpenAIStub

ROOT = Path(__file__).resolve().parents[1]
# The stub's Realtime peer shares the function's session rules: the source's package, as make run's peer has it.
FUNCTIONS = ROOT / "functions"
HERE = Path(__file__).resolve().parent
TEMPLATE = ROOT / "template.yaml"
FUNCTION = "SupervisorFunction"
LAYERS = ("DependenciesLayer", "SupervisorLayer")
TABLE = "QuotaTable"
USER = "5afe" * 16  # the caller's safety identifier, as the opening names it
# A response on the stub takes about two seconds (a second of speech, waited on a second more when no one plays
# it): a turn is asked for only if it can be done before the call's end.
RESPONSE_SECONDS = 3.0
# Lambda's price (arm64, us-east-1), and the CPU it gives: a full vCPU at 1,769 MB, in proportion below.
GB_SECOND_USD = 0.0000133334
REQUEST_USD = 0.20 / 1e6
FULL_VCPU_MB = 1769
# An invocation of a long call starts its successor a minute before its timeout (domain/supervising.py): each covers
# its timeout less that minute. The first is the open's; calls are taken to last MEAN_CALL_MINUTES on average.
HANDOVER_LEAD_SECONDS = 60
MEAN_CALL_MINUTES = 5.0
SMALLER_MB = 128
SAMPLE_CALL_MINUTES = 1000

# The shipped profiles' sessions as the service opens them, and their prices, from the build's own code: printed by
# this, run with it on sys.path (the bench's interpreter does not import the function's package).
_SESSIONS = """
import json, sys
from pathlib import Path
import voice_access
from voice_access.config.policy_file import cached_policy
from voice_access.domain import pricing
from voice_access.domain.policy.rules import check_session, ga_param
policy = cached_policy(Path(voice_access.__file__).parent / "config" / "policy.json")
voice = check_session({}, "voice", policy.profiles["voice"], ga_param)
live = check_session({}, "live", policy.profiles["live"], ga_param)
response = pricing.usage_of_response(json.loads(sys.argv[1]))
print(json.dumps({
    "voice": voice,
    "live": live,
    "response_micro_usd": pricing.cost_micro_usd(response, policy.prices[voice["model"]]),
    "live_per_minute": policy.prices[live["model"]].per_minute,
}))
"""


@dataclass
class Supervised:
    """One call, its supervisor's process and what each reported."""

    kind: str  # "call" or "live_session"
    profile: str
    session: dict[str, Any]
    call_id: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    log: Path = Path()
    child: subprocess.Popen[bytes] | None = None
    report_fd: int = -1
    report: dict[str, Any] = field(default_factory=dict)
    # The bench's own sideband: what it sent and counted, or why it failed.
    turns: int = 0
    events: int = 0
    sideband_seconds: float = 0.0
    failure: BaseException | None = None


def measure(
    *,
    stub: OpenAIStub,
    aws_endpoint: str,
    secrets: LocalSecretsManager,
    tables: LocalTables,
    logs: Path,
    build: Path,
    runtime: Path,
    seconds: float,
    turn_seconds: float,
    api_key: str,
) -> dict[str, Any]:
    """Supervise a Realtime call and a GPT-Live session side by side for ``seconds`` of call each; their figures."""
    if str(FUNCTIONS) not in sys.path:
        sys.path.append(str(FUNCTIONS))
    from openai_stub.realtime_peer import RESPONSE_USAGE  # here: it needs FUNCTIONS on sys.path

    overrides = {"OpenAIApiKeySecretArn": secrets.secret_arn, "OpenAIUpstreamUrl": stub.base_url}
    function = read_functions(TEMPLATE, overrides, REGION, tables.physical)[FUNCTION]
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}",
        "LAMBDA_TASK_ROOT": str(build / FUNCTION),
        "LAMBDA_RUNTIME_DIR": str(runtime),
        **secrets.client_environment(),
        **function.environment,
        **tables.function_environment(),
        # The backstop's schedule it deletes at the end, and (never reached here) its successor's Invoke API: moto.
        "AWS_ENDPOINT_URL_SCHEDULER": aws_endpoint,
        "AWS_ENDPOINT_URL_LAMBDA": aws_endpoint,
    }
    sys_path = [str(build / FUNCTION), *(str(build / layer / "python") for layer in LAYERS), str(runtime)]
    shipped = _shipped(build, RESPONSE_USAGE)
    calls = [
        Supervised("call", "voice", shipped["voice"]),
        Supervised("live_session", "live", shipped["live"] | {"safety_identifier": USER}),
    ]
    offer = _offer()
    try:
        for call in calls:
            _open(stub, call, offer, seconds)
            call.log = logs / f"supervisor-{call.kind}.log"
            _start(call, sys_path, function.handler, function.timeout, function.memory_size, environment)
            _wait_attached(stub, call)  # one import at a time: the other's would compete for the same cores
        drivers = [
            threading.Thread(target=_drive, args=(stub, call, api_key, turn_seconds), name=f"drive-{call.kind}")
            for call in calls
        ]
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join()
        for call in calls:
            _finish(call, seconds)
    finally:
        for call in calls:
            if call.child is not None and call.child.poll() is None:
                call.child.kill()
                call.child.wait()
    dynamodb = dynamodb_client(aws_endpoint)
    records = {call.kind: _record(dynamodb, tables.name(TABLE), call.call_id) for call in calls}
    responses = stub.peer.wait_until(calls[0].call_id, lambda state: state.ended is not None, timeout=30).responses
    check_supervised(calls, records, responses, RESPONSE_USAGE["input_tokens"], shipped)
    per_response_usd = shipped["response_micro_usd"] / 1e6
    model_per_minute = {
        "call": per_response_usd * 60 / turn_seconds,
        "live_session": float(shipped["live_per_minute"]),
    }
    return {
        "seconds": seconds,
        "memory_mb": function.memory_size,
        "timeout_seconds": function.timeout,
        **{
            call.kind: call_figures(
                call, records[call.kind], model_per_minute[call.kind], function.memory_size, function.timeout, seconds
            )
            for call in calls
        },
        "call_responses": responses,
        "turn_seconds": turn_seconds,
        "model_usd_per_response": per_response_usd,
        "method": {
            "drive": f"a Realtime call of the shipped voice profile with a response asked for every {turn_seconds:g} s"
            " on a sideband of the bench's (the stub's response: its speech, transcript and usage); a GPT-Live"
            " session of the shipped live profile, its usage reported each second; side by side",
            "cpu": "the supervisor process's user+sys time (every thread's) from the end of its import to its"
            " handler's return (attach, the call, the hang-up and the record's end), per minute of call",
            "events": "messages the call sent on its sidebands, counted on the bench's own sideband, per minute",
            "lambda_cost": f"billed wall time (the call's, every second of it) at MemorySize, plus each invocation's"
            f" init (the import, x {FULL_VCPU_MB}/MemorySize: an upper bound) and request; invocations: one per call"
            f" ({MEAN_CALL_MINUTES:g}-minute calls) and one per {function.timeout - HANDOVER_LEAD_SECONDS} s of call"
            f" (a successor; at most, as if every call were long); ${GB_SECOND_USD} per GB-second and $0.20 per"
            " million requests (arm64)",
            "model_cost": "the shipped policy's prices: the stub's usage per response (metered by the supervisor)"
            " x responses per minute at the turn rate; GPT-Live's per_minute",
            "cpu_share": f"CPU seconds per second of call over what Lambda gives a memory size (MB/{FULL_VCPU_MB} of"
            " a vCPU)",
        },
    }


def _shipped(build: Path, response_usage: dict[str, Any]) -> dict[str, Any]:
    environment = {**os.environ, "PYTHONPATH": str(build / FUNCTION), "PYTHONDONTWRITEBYTECODE": "1"}
    printed = subprocess.run(  # noqa: S603 - our own interpreter and the build's code
        [sys.executable, "-P", "-c", _SESSIONS, json.dumps(response_usage)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if printed.returncode != 0:
        raise SystemExit(f"make bench: the shipped profiles' sessions could not be read:\n{printed.stderr}")
    shipped: dict[str, Any] = json.loads(printed.stdout)
    return shipped


def _offer() -> str:
    """A browser's SDP offer (a microphone and the events channel), made by aiortc; never connected."""

    from openai_stub.realtime_peer import offer_loopback_candidates  # as RESPONSE_USAGE

    async def create() -> str:
        offer_loopback_candidates()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp: str = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(create())


def _open(stub: OpenAIStub, call: Supervised, offer: str, seconds: float) -> None:
    """The call opened at the stub, and the event its supervisor is started with: as the service opens one."""
    if call.kind == "call":
        call.call_id, _ = stub.peer.open_call(offer, call.session)
    else:
        call.call_id, _ = stub.peer.open_live_session(offer, call.session)
    now = time.time()
    call.event = {
        "action": "supervise",
        "call": {
            "id": call.call_id,
            "kind": call.kind,
            "profile": call.profile,
            "user": USER,
            "model": call.session["model"],
            "started_at": now,
            "deadline_at": now + seconds,
            "lease": None,
            "slot": None,
        },
        "session": call.session,
        "generation": 0,
    }


def _start(
    call: Supervised, sys_path: list[str], handler: str, timeout: int, memory_mb: int, environment: dict[str, str]
) -> None:
    read_end, write_end = os.pipe()
    config = {
        "sys_path": sys_path,
        "handler": handler,
        "event": call.event,
        "function_name": FUNCTION,
        "memory_mb": memory_mb,
        "timeout_seconds": timeout,
        "report_fd": write_end,
    }
    with call.log.open("ab") as log:
        call.child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys._base_executable, "-I", "-B", str(HERE / "supervisor_child.py"), json.dumps(config)],  # type: ignore[attr-defined]
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            cwd=tempfile.gettempdir(),
        )
    os.close(write_end)
    call.report_fd = read_end


def _wait_attached(stub: OpenAIStub, call: Supervised) -> None:
    try:
        stub.peer.wait_until(call.call_id, lambda state: state.sidebands >= 1, timeout=60)
    except TimeoutError:
        tail = _tail(call.log)
        raise SystemExit(f"make bench: the {call.kind}'s supervisor did not attach; see its log:\n{tail}") from None


def _drive(stub: OpenAIStub, call: Supervised, api_key: str, turn_seconds: float) -> None:
    """With the supervisor attached, a sideband of the bench's on the call until the call ends: for a Realtime call
    a response.create every ``turn_seconds`` while one can be done before the call's end; every message counted."""
    try:
        deadline_at = call.event["call"]["deadline_at"]
        ends = time.monotonic() + (deadline_at - time.time())
        give_up = ends + 60
        base = stub.base_url.replace("http://", "ws://", 1)
        path = f"/v1/realtime?call_id={call.call_id}"
        if call.kind != "call":
            path = f"/v1/live/sessions/{call.call_id}/attach"
        with connect(
            base + path,
            additional_headers={"Authorization": f"Bearer {api_key}"},
            compression=None,
            proxy=None,
            open_timeout=10,
        ) as band:
            attached = next_turn = time.monotonic()
            if call.kind != "call":
                next_turn = math.inf
            while (now := time.monotonic()) < give_up:
                if now >= next_turn:
                    if now + RESPONSE_SECONDS <= ends:
                        band.send(json.dumps({"type": "response.create"}))
                        call.turns += 1
                    next_turn += turn_seconds
                try:
                    band.recv(timeout=max(0.0, min(next_turn, give_up) - now))
                except TimeoutError:
                    continue
                except ConnectionClosed:  # the call ended: the stub closes its sidebands
                    call.sideband_seconds = time.monotonic() - attached
                    return
                call.events += 1
        raise RuntimeError(f"the {call.kind} did not end within a minute of its maximum length")
    except BaseException as failure:
        call.failure = failure


def _finish(call: Supervised, seconds: float) -> None:
    """The supervisor's report, once it has returned; SystemExit if it failed."""
    assert call.child is not None
    try:
        code = call.child.wait(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        tail = _tail(call.log)
        raise SystemExit(f"make bench: the {call.kind}'s supervisor did not return; see its log:\n{tail}") from None
    with os.fdopen(call.report_fd) as report:  # one line, which the pipe held while the process left
        line = report.readline()
    if code != 0 or not line or call.failure is not None:
        why = f"its sideband: {call.failure!r}" if call.failure is not None else f"exit status {code}"
        raise SystemExit(f"make bench: the {call.kind}'s supervisor failed ({why}); see its log:\n{_tail(call.log)}")
    call.report = json.loads(line)


def _record(dynamodb: Any, table: str, call_id: str) -> dict[str, str]:
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"call#{call_id}"}}, ConsistentRead=True).get("Item")
    if item is None:
        raise SystemExit(f"make bench: no record of call {call_id} in the store")
    return {name: str(next(iter(value.values()))) for name, value in item.items()}


def check_supervised(
    calls: list[Supervised],
    records: dict[str, dict[str, str]],
    responses: int,
    tokens_in_per_response: int,
    shipped: dict[str, Any],
) -> None:
    """Speed bought by dropping a feature does not count: each call ended at its length, metered exactly."""
    for call in calls:
        record = records[call.kind]
        if record.get("end_reason") != "max_length":
            reason = record.get("end_reason")
            raise SystemExit(f"make bench: the {call.kind} ended for {reason}, not its maximum length")
        lines = _lines(call.log)
        if not any(line.get("message") == "call ended" and line.get("reason") == "max_length" for line in lines):
            raise SystemExit(f"make bench: the {call.kind}'s supervisor did not log the call's end")
        if errors := [line["message"] for line in lines if line.get("level") == "ERROR"]:
            raise SystemExit(f"make bench: the {call.kind}'s supervisor logged errors: {errors}")
    realtime = records["call"]
    metered = (int(realtime.get("tokens_in", 0)), int(realtime.get("cost_micro_usd", 0)))
    expected = (responses * tokens_in_per_response, responses * shipped["response_micro_usd"])
    if responses < 1 or metered != expected:
        raise SystemExit(
            f"make bench: the call's {responses} responses were metered as {metered} (tokens in, micro-dollars),"
            f" not {expected}"
        )
    live = records["live_session"]
    billed, cost = int(live.get("billed_seconds", 0)), int(live.get("cost_micro_usd", 0))
    per_minute_micro = round(float(shipped["live_per_minute"]) * 1e6)
    if billed < 1 or cost != -(-billed * per_minute_micro // 60):
        raise SystemExit(f"make bench: the Live session's {billed} billed seconds were metered as {cost} micro-dollars")


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def call_figures(
    call: Supervised, record: dict[str, str], model_per_minute: float, memory_mb: int, timeout: int, seconds: float
) -> dict[str, Any]:
    """One supervised call's figures: its supervisor's CPU, memory and events, and the cost of each per 1,000 call
    minutes, at ``memory_mb`` with invocations of ``timeout`` seconds."""
    report = call.report
    call_minutes = seconds / 60
    cpu_seconds = (report["handler_user_ms"] + report["handler_sys_ms"]) / 1e3
    cpu_per_minute = cpu_seconds / call_minutes
    vcpus = cpu_per_minute / 60  # CPU seconds per second of call
    invocations = SAMPLE_CALL_MINUTES / MEAN_CALL_MINUTES + SAMPLE_CALL_MINUTES * 60 / (timeout - HANDOVER_LEAD_SECONDS)
    init_seconds = report["import_ms"] / 1e3 * FULL_VCPU_MB / memory_mb
    billed_seconds = SAMPLE_CALL_MINUTES * 60 + invocations * init_seconds
    lambda_usd = billed_seconds * memory_mb / 1024 * GB_SECOND_USD + invocations * REQUEST_USD
    model_usd = model_per_minute * SAMPLE_CALL_MINUTES
    return {
        "model": call.session["model"],
        "profile": call.profile,
        "import_ms": round(report["import_ms"], 1),
        "import_cpu_ms": round(report["import_cpu_ms"], 1),
        "handler_seconds": round(report["handler_ms"] / 1e3, 2),
        "cpu_seconds": round(cpu_seconds, 3),
        "user_seconds": round(report["handler_user_ms"] / 1e3, 3),
        "sys_seconds": round(report["handler_sys_ms"] / 1e3, 3),
        "cpu_seconds_per_call_minute": round(cpu_per_minute, 3),
        "cpu_ms_per_event": round(cpu_seconds * 1e3 / call.events, 3) if call.events else None,
        f"cpu_share_of_{memory_mb}mb": round(vcpus / (memory_mb / FULL_VCPU_MB), 4),
        f"cpu_share_of_{SMALLER_MB}mb": round(vcpus / (SMALLER_MB / FULL_VCPU_MB), 4),
        "peak_rss_mb": round(report["peak_rss_kb"] / 1024, 2),
        "events": call.events,
        "events_per_minute": round(call.events / (call.sideband_seconds / 60), 1) if call.sideband_seconds else 0.0,
        "turns": call.turns,
        "tokens_in": int(record.get("tokens_in", 0)),
        "tokens_out": int(record.get("tokens_out", 0)),
        "billed_seconds": int(record.get("billed_seconds", 0)),
        "cost_micro_usd": int(record.get("cost_micro_usd", 0)),
        "lambda_invocations_per_1000_call_minutes": round(invocations, 1),
        "lambda_usd_per_1000_call_minutes": round(lambda_usd, 4),
        "lambda_usd_per_1000_call_minutes_at_128mb": round(
            billed_seconds * SMALLER_MB / 1024 * GB_SECOND_USD + invocations * REQUEST_USD, 4
        ),
        "model_usd_per_minute": round(model_per_minute, 6),
        "model_usd_per_1000_call_minutes": round(model_usd, 2),
        "lambda_share_of_model": round(lambda_usd / model_usd, 5),
        "websockets_imported": report["websockets_imported"],
        "boto3_imported": report["boto3_imported"] or report["botocore_imported"],
        "pydantic_imported": report["pydantic_imported"],
    }


def print_table(results: dict[str, Any]) -> None:
    call, live, memory = results["call"], results["live_session"], results["memory_mb"]
    rows: list[tuple[str, str, str]] = [
        ("model", call["model"], live["model"]),
        ("drive", f"response/{results['turn_seconds']:g} s", "usage/1 s"),
        ("events on the sideband per minute", f"{call['events_per_minute']:.0f}", f"{live['events_per_minute']:.0f}"),
        ("import (ms)", f"{call['import_ms']:.1f}", f"{live['import_ms']:.1f}"),
        ("  CPU to the end of the import (ms)", f"{call['import_cpu_ms']:.1f}", f"{live['import_cpu_ms']:.1f}"),
        (
            "CPU per minute of call, user+sys (s)",
            f"{call['cpu_seconds_per_call_minute']:.3f}",
            f"{live['cpu_seconds_per_call_minute']:.3f}",
        ),
        ("  CPU per event (ms)", _or_dash(call["cpu_ms_per_event"]), _or_dash(live["cpu_ms_per_event"])),
        (
            f"  share of a {memory} MB Lambda's CPU",
            f"{call[f'cpu_share_of_{memory}mb']:.2%}",
            f"{live[f'cpu_share_of_{memory}mb']:.2%}",
        ),
        (
            f"  share of a {SMALLER_MB} MB Lambda's CPU",
            f"{call[f'cpu_share_of_{SMALLER_MB}mb']:.2%}",
            f"{live[f'cpu_share_of_{SMALLER_MB}mb']:.2%}",
        ),
        ("peak RSS (MB)", f"{call['peak_rss_mb']:.2f}", f"{live['peak_rss_mb']:.2f}"),
        (
            f"Lambda per 1,000 call minutes, {memory} MB ($)",
            f"{call['lambda_usd_per_1000_call_minutes']:.4f}",
            f"{live['lambda_usd_per_1000_call_minutes']:.4f}",
        ),
        ("model per minute of call ($)", f"{call['model_usd_per_minute']:.4f}", f"{live['model_usd_per_minute']:.4f}"),
        (
            "model per 1,000 call minutes ($)",
            f"{call['model_usd_per_1000_call_minutes']:.2f}",
            f"{live['model_usd_per_1000_call_minutes']:.2f}",
        ),
        ("Lambda / model", f"{call['lambda_share_of_model']:.3%}", f"{live['lambda_share_of_model']:.3%}"),
    ]
    title = f"supervisor, {results['seconds']:g} s of call on the stub"
    print(f"\n{title:42} {'Realtime call':>16} {'Live session':>16}")
    for label, realtime, live_value in rows:
        print(f"{label:42} {realtime:>16} {live_value:>16}")


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"
