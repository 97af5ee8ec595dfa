"""`make run`'s terminal: one short line per request instead of the function's JSON log lines.

Lambda keeps what a function writes to stdout; so does this: each JSON log line says what became of its
request (matched by ``correlation_id``, the API Gateway request id), EMF documents are dropped (they are
CloudWatch's), a warning or an error (or a reload of the policy) is printed at once in short, and anything else
passes through.
What a request or the function's log brings is printed with its control characters escaped.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

from local.exchanges import AccessRecord

# Keys every Powertools log line carries: the short form leaves them out.
_STANDARD_KEYS = frozenset(
    {"level", "location", "message", "timestamp", "service", "cold_start", "correlation_id", "xray_trace_id"}
    | {"function_name", "function_memory_size", "function_arn", "function_request_id", "sampling_rate"}
    | {"exception", "exception_name", "stack_trace", "_aws"}
)
_LOUD_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
# What the functions log below a warning that a developer still needs to see at once: the policy's reload, and a
# call's supervisor starting and the call's end (the supervisor runs in a process of its own, with no request line).
_NOTEWORTHY = frozenset({"policy reloaded", "supervising call", "call ended"})


class Console:
    """Writes to ``terminal``: a line per request (``request``) and what the function logs loudly."""

    def __init__(self, terminal: TextIO) -> None:
        self._terminal = terminal
        self._lock = threading.Lock()
        self._outcomes: dict[str, str] = {}
        self.function_output = _Lines(self._function_line)

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """sys.stdout is the function's output meanwhile: import the function inside, so its logger writes here."""
        previous, sys.stdout = sys.stdout, self.function_output
        try:
            yield
        finally:
            sys.stdout = previous

    def request(self, record: AccessRecord) -> None:
        """The request's line: time, method, path, status, duration, what became of it, and the gateway's note."""
        with self._lock:
            outcome = self._outcomes.pop(record.request_id, "")
        # The gateway's note: why it answered itself, or that it let the request in unchecked (AUTH=none).
        said = "; ".join(part for part in (outcome, record.note) if part)
        line = f"{record.started:%H:%M:%S} {record.method} {record.path} {record.status} {record.duration_ms:.0f} ms"
        self._print(f"{line}  {said}" if said else line)

    def _function_line(self, line: str) -> None:
        record = _json_object(line)
        if record is None:
            self._print(line)  # something the function printed itself
            return
        if "_aws" in record and "level" not in record:
            return  # an EMF document
        message, level = str(record.get("message", "")), str(record.get("level", "")).upper()
        outcome, request_id = _outcome(message, record), str(record.get("correlation_id") or "")
        if outcome and request_id:
            with self._lock:
                self._outcomes[request_id] = outcome
        if level in _LOUD_LEVELS or message in _NOTEWORTHY:
            fields = " ".join(f"{key}={_text(value)}" for key, value in record.items() if key not in _STANDARD_KEYS)
            self._print(f"{datetime.now():%H:%M:%S} {level} {message}" + (f"  {fields}" if fields else ""))
            if record.get("exception"):
                self._print(*("  " + line for line in str(record["exception"]).split("\n")))

    def _print(self, *lines: str) -> None:
        """Each line on a line of its own: what it holds cannot start another, nor drive the terminal."""
        text = "".join(printable(line) + "\n" for line in lines)
        with self._lock:
            self._terminal.write(text)
            self._terminal.flush()


def printable(text: str, limit: int | None = None) -> str:
    """``text`` from a request or a function, fit for a terminal line: clipped to ``limit`` characters, and
    every character that is not printable escaped (ESC, CR, LF, U+2028, ...), so that it cannot move the
    cursor, recolour the terminal or start a line of its own."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _outcome(message: str, record: dict[str, Any]) -> str:
    if message == "client secret minted":
        return f"client secret minted (profile {record.get('profile')})"
    if message == "request rejected":
        param = record.get("param")
        return f"rejected: {record.get('reason')}" + (f" (param {param})" if param else "")
    if message == "request failed":
        return f"failed: {record.get('reason')}"
    if message == "unexpected error":
        return "failed: unexpected error (see above)"
    return ""


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line to ``sink``; each thread's partial line waits apart."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink
        self._partial = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        pending: str = getattr(self._partial, "text", "") + text
        *lines, self._partial.text = pending.split("\n")
        for line in lines:
            self._sink(line)
        return len(text)
