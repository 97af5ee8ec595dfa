"""`make run`'s short terminal shows what a call's supervisor says of the call (it runs in a process of its own,
local/lambda_service.py, so no request line tells of it), from its log lines as they reach make run's stdout."""

import io
import json

from local.console import Console

SUPERVISOR = {
    "location": "x:1",
    "timestamp": "2026-05-04 12:01:02,000+0000",
    "service": "token-vending",
    "cold_start": True,
    "function_name": "local-SupervisorFunction",
    "function_request_id": "f0e1",
}


def test_a_calls_supervision_and_end_are_shown_in_short() -> None:
    # Given make run's short terminal
    terminal = io.StringIO()
    console = Console(terminal)

    # When the supervisor logs that it supervises a call, something routine, and the call's end
    for message, fields in (
        ("supervising call", {"call_id": "rtc_1", "profile": "voice"}),
        ("sideband attached", {"call_id": "rtc_1"}),
        ("call ended", {"call_id": "rtc_1", "reason": "max_length", "seconds": 5.0}),
    ):
        console.function_output.write(json.dumps({"level": "INFO", "message": message, **SUPERVISOR, **fields}) + "\n")

    # Then the start and the end are shown, each with its own fields, and the routine line is not
    lines = [line.split(" ", 1)[1] for line in terminal.getvalue().splitlines()]
    assert lines == [
        "INFO supervising call  call_id=rtc_1 profile=voice",
        "INFO call ended  call_id=rtc_1 reason=max_length seconds=5.0",
    ]
