"""`make bench`'s supervisor section: a supervisor billed for its wall time at its memory size, whatever its CPU, beside
the model's price; and a run that does not meter each response exactly once does not count."""

import json
from pathlib import Path

import pytest

from bench.supervisor import Supervised, call_figures, check_supervised

MINUTE_OF_CALL = 60.0


def supervised(tmp_path: Path, kind: str, *, cpu_ms: float, events: int) -> Supervised:
    """A call whose supervisor imported in 100 ms and worked ``cpu_ms`` of CPU over a minute of call, its log saying
    it ended the call at its length."""
    call = Supervised(kind, "voice" if kind == "call" else "live", {"model": "gpt-realtime-2.1"})
    call.report = {
        "import_ms": 100.0,
        "import_cpu_ms": 95.0,
        "handler_ms": 60_500.0,
        "handler_user_ms": cpu_ms * 0.75,
        "handler_sys_ms": cpu_ms * 0.25,
        "peak_rss_kb": 28 * 1024,
        "websockets_imported": True,
        "boto3_imported": False,
        "botocore_imported": False,
        "pydantic_imported": False,
    }
    call.events, call.sideband_seconds = events, MINUTE_OF_CALL
    call.log = tmp_path / f"{kind}.log"
    call.log.write_text(json.dumps({"level": "INFO", "message": "call ended", "reason": "max_length"}) + "\n")
    return call


def test_a_supervisor_is_billed_for_the_calls_time_at_its_memory_size_not_for_its_cpu(tmp_path: Path) -> None:
    # Given a supervisor that used 0.6 s of CPU over a minute of call with 240 events, at 256 MB and a 900 s timeout
    call = supervised(tmp_path, "call", cpu_ms=600.0, events=240)

    # When its figures are made, beside a model at $0.26 a minute
    figures = call_figures(call, {}, 0.26, memory_mb=256, timeout=900, seconds=MINUTE_OF_CALL)

    # Then its CPU is 0.6 s a minute, 0.01 of a vCPU: 6.9% of the 256/1769 of one that 256 MB gets, 13.8% of 128 MB's
    assert figures["cpu_seconds_per_call_minute"] == 0.6
    assert figures["cpu_ms_per_event"] == 2.5
    assert figures["cpu_share_of_256mb"] == 0.0691
    assert figures["cpu_share_of_128mb"] == 0.1382
    # And 1,000 call minutes bill 60,000 s of wall time at 0.25 GB, plus each invocation's init (100 ms x 1769/256)
    # and request: 200 opens of 5-minute calls and 60,000 / 840 successors
    invocations = 200 + 60_000 / 840
    billed = 60_000 + invocations * 0.1 * 1769 / 256
    assert figures["lambda_invocations_per_1000_call_minutes"] == 271.4
    assert figures["lambda_usd_per_1000_call_minutes"] == round(billed * 0.25 * 0.0000133334 + invocations * 2e-7, 4)
    assert figures["lambda_usd_per_1000_call_minutes"] == 0.2007
    assert figures["lambda_usd_per_1000_call_minutes_at_128mb"] == 0.1004
    # And beside the model's $260 per 1,000 minutes it is 0.077%
    assert figures["model_usd_per_1000_call_minutes"] == 260.0
    assert figures["lambda_share_of_model"] == 0.00077


def test_a_supervisor_that_metered_a_response_twice_does_not_count(tmp_path: Path) -> None:
    # Given a call of 2 responses (468 tokens in, 21,729 micro-dollars each) and a Live session of 30 billed seconds
    calls = [supervised(tmp_path, "call", cpu_ms=1, events=1), supervised(tmp_path, "live_session", cpu_ms=1, events=1)]
    shipped = {"response_micro_usd": 21_729, "live_per_minute": 0.05}
    live = {"end_reason": "max_length", "billed_seconds": "30", "cost_micro_usd": "25000"}
    exact = {"end_reason": "max_length", "tokens_in": "936", "cost_micro_usd": "43458"}

    # When their records say each was metered once, Then the run counts
    check_supervised(calls, {"call": exact, "live_session": live}, 2, 468, shipped)

    # When the call's record counts a response twice, Then the bench refuses the run
    twice = exact | {"tokens_in": "1404", "cost_micro_usd": "65187"}
    with pytest.raises(SystemExit, match="metered as"):
        check_supervised(calls, {"call": twice, "live_session": live}, 2, 468, shipped)

    # When the call ended for another reason than its length, Then too
    lost = exact | {"end_reason": "sideband_lost"}
    with pytest.raises(SystemExit, match="not its maximum length"):
        check_supervised(calls, {"call": lost, "live_session": live}, 2, 468, shipped)
