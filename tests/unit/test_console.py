"""`make run`'s short terminal lines, from the function's own log lines."""

import io
import json
from datetime import datetime

import pytest

from local.console import Console
from local.exchanges import AccessRecord

REQUEST_ID = "Xy12AbCdEfGh"
STARTED = datetime(2026, 5, 4, 12, 1, 2)
POWERTOOLS = {
    "location": "x:1",
    "timestamp": "2026-05-04 12:01:02,000+0000",
    "service": "token-vending",
    "cold_start": False,
    "function_name": "TokenVendingFunction",
    "function_request_id": "f0e1",
    "correlation_id": REQUEST_ID,
}


@pytest.fixture
def terminal() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def console(terminal: io.StringIO) -> Console:
    return Console(terminal)


def _log(console: Console, level: str, message: str, **fields: object) -> None:
    console.function_output.write(json.dumps({"level": level, "message": message, **POWERTOOLS, **fields}) + "\n")


def _request(console: Console, status: int = 200, note: str = "") -> None:
    console.request(AccessRecord(STARTED, "POST", "/v1/realtime/client_secrets", status, 14.2, REQUEST_ID, note))


def test_a_mint_is_one_line_with_its_profile(console: Console, terminal: io.StringIO):
    # Given the function's mint line, which carries its EMF metrics, and a separate EMF document
    _log(console, "INFO", "client secret minted", profile="assistant", _aws={"CloudWatchMetrics": []})
    console.function_output.write(json.dumps({"_aws": {"CloudWatchMetrics": []}, "SecretFetches": [1.0]}) + "\n")

    # When the gateway reports the request
    _request(console)

    # Then the terminal holds one short line for it, and neither JSON document
    assert terminal.getvalue() == (
        "12:01:02 POST /v1/realtime/client_secrets 200 14 ms  client secret minted (profile assistant)\n"
    )


def test_a_refusal_names_its_reason_and_param(console: Console, terminal: io.StringIO):
    # Given the function's refusal line
    _log(console, "INFO", "request rejected", reason="invalid_value", param="session.audio.output.voice")

    # When the gateway reports the request
    _request(console, 400)

    # Then the line says why, and which field
    assert terminal.getvalue().endswith(" 400 14 ms  rejected: invalid_value (param session.audio.output.voice)\n")


def test_warnings_and_errors_are_printed_at_once_in_short(console: Console, terminal: io.StringIO):
    # Given a missing secret: an error line with its details, then the request's failure
    _log(console, "ERROR", "cannot use the openai api key secret", reason="missing", secret_id="arn:secret")
    _log(console, "WARNING", "request failed", reason="api_key_missing", status=500)

    # When the gateway reports the request
    _request(console, 500)

    # Then both are visible without Powertools' standard keys, and the request line says it failed
    lines = terminal.getvalue().splitlines()
    assert lines[0].endswith(" ERROR cannot use the openai api key secret  reason=missing secret_id=arn:secret")
    assert lines[1].endswith(" WARNING request failed  reason=api_key_missing status=500")
    assert lines[2].endswith(" 500 14 ms  failed: api_key_missing")
    assert "correlation_id" not in terminal.getvalue()


def test_an_unexpected_error_shows_its_traceback(console: Console, terminal: io.StringIO):
    # Given the function's log line for an unexpected error
    trace = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'a'"
    _log(console, "ERROR", "unexpected error", exception=trace, exception_name="KeyError")

    # When the gateway reports the request
    _request(console, 500)

    # Then the traceback is there, indented, and the request line points at it
    text = terminal.getvalue()
    assert "\n  Traceback (most recent call last):\n    File \"x.py\", line 1\n  KeyError: 'a'\n" in text
    assert text.endswith("  failed: unexpected error (see above)\n")


def test_what_the_gateway_answered_itself_is_said_and_other_output_passes_through(
    console: Console, terminal: io.StringIO
):
    # Given something the function printed, in two writes as print() does
    console.function_output.write("hello from the function")
    console.function_output.write("\n")

    # When the gateway reports a request it answered itself
    _request(console, 404, "no such route")

    # Then both show
    assert terminal.getvalue().splitlines() == [
        "hello from the function",
        "12:01:02 POST /v1/realtime/client_secrets 404 14 ms  no such route",
    ]


FORGED = "\n12:00:00 POST /v1/realtime/client_secrets 200 3 ms  client secret minted (profile premium)"
CONTROLS = "\x1b[2K\r\u2028\x85\u202e\x07"
ESCAPED = r"\x1b[2K\r\u2028\x85\u202e\x07"
FORGED_ESCAPED = r"\n12:00:00 POST /v1/realtime/client_secrets 200 3 ms  client secret minted (profile premium)"


def test_what_a_request_or_the_function_brings_is_printed_with_its_controls_escaped(
    console: Console, terminal: io.StringIO
):
    # Given a refusal naming a body key that holds a forged request line and terminal controls, another
    # request's warning and traceback with them, and a print of the function's own with them
    _log(console, "INFO", "request rejected", reason="unknown_parameter", param=f"session.x{FORGED}{CONTROLS}")
    _log(console, "WARNING", f"request failed{CONTROLS}", reason=f"x{FORGED}", correlation_id="another")
    _log(
        console,
        "ERROR",
        "unexpected error",
        exception=f"Traceback\nValueError: {CONTROLS}{FORGED}",
        correlation_id="another",
    )
    console.function_output.write(f"printed by the function{CONTROLS}\n")

    # When the gateway reports the request, its path and note holding controls too
    console.request(AccessRecord(STARTED, "POST", f"/v1/x{CONTROLS}", 400, 14.2, REQUEST_ID, f"note{CONTROLS}"))

    # Then no control reaches the terminal: each is escaped where it was
    text = terminal.getvalue()
    assert [character for character in text if not character.isprintable()] == ["\n"] * len(text.splitlines())
    # And no line is forged: a traceback's lines are its own, indented
    lines = text.splitlines()
    assert lines[0].endswith(f" WARNING request failed{ESCAPED}  reason=x{FORGED_ESCAPED}")
    assert lines[1].endswith(" ERROR unexpected error")
    assert lines[2:] == [
        "  Traceback",
        f"  ValueError: {ESCAPED}",
        "  12:00:00 POST /v1/realtime/client_secrets 200 3 ms  client secret minted (profile premium)",
        f"printed by the function{ESCAPED}",
        f"12:01:02 POST /v1/x{ESCAPED} 400 14 ms  rejected: unknown_parameter (param session.x{FORGED_ESCAPED}"
        f"{ESCAPED}); note{ESCAPED}",
    ]
