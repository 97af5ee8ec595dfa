"""OpenAI, the one upstream: mint a client secret through GA ``POST /v1/realtime/client_secrets``, open a
GPT-Live session or a Realtime call from a browser's SDP offer (``POST /v1/live/sessions``,
``POST /v1/realtime/calls``), and hang either up.

One urllib3 pool per container, so a warm invocation reuses the TLS connection. Only connection
failures are retried (the request never left); a read timeout is not, as a second wait would not
fit in the function's timeout. The whole exchange keeps to the request's deadline (deadline.py).
Nothing here puts the API key or a minted value into a message, and OpenAI's own words reach an
answer, a log line or a metric only clipped to a safe character set.
"""

import email.utils
import functools
import json
import math
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import urllib3
from urllib3 import HTTPConnectionPool
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, TimeoutError
from urllib3.util import parse_url

from voice_access.clients.deadline import POOL_CLASSES, Deadline, keeping_to
from voice_access.domain.errors import (
    UpstreamFailed,
    UpstreamKeyRejected,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from voice_access.observability import count, logger, milliseconds, traced

# A client-secret answer is a few kilobytes; anything far bigger is not OpenAI answering.
MAX_RESPONSE_BYTES = 256 * 1024
# OpenAI's error `code` and `param` are identifiers and paths (`session.tools[0].name`); its `message`
# is a sentence. Clipped to these before they reach an answer, a log line or a metric dimension.
MAX_TOKEN_CHARS = 64
MAX_MESSAGE_CHARS = 500
# Patterns of refusals only, compiled on first use (re caches them): not every cold start.
_UNSAFE_CHARACTERS = r"[^A-Za-z0-9_.\[\]-]"
# Retry-After beyond this is passed on as this. The OpenAI SDKs do not retry at all past 120 s, so any
# longer wait still reads as "not now", and no upstream can park callers for longer.
MAX_RETRY_AFTER_SECONDS = 300
_ASCII_DIGITS = r"[0-9]+"  # str.isdigit() takes "²" and other digits
# A minted `expires_at` is at most OpenAI's longest TTL away, give or take a day of clock skew.
_LONGEST_TTL_SECONDS = 7200
_CLOCK_SKEW_SECONDS = 86400

_pools = urllib3.PoolManager(
    num_pools=2,
    maxsize=2,
    # One more try when the connection could not be made: the request never left.
    retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, backoff_factor=0.05),
)
_pools.pool_classes_by_scheme = POOL_CLASSES  # connections that keep to the request's deadline
_USER_AGENT = "openai-realtime-token-vending/0.1"


@functools.cache
def _upstream(url: str, connect_timeout: float, read_timeout: float) -> tuple[HTTPConnectionPool, str, urllib3.Timeout]:
    """The pool, path and timeout for a URL, worked out once: a warm request goes straight to its pool."""
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    return _pools.connection_from_url(url), parse_url(url).request_uri, timeout


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class Minted:
    __slots__ = ("body", "expires_at", "latency_ms", "text", "value")

    def __init__(self, value: str, expires_at: int, body: dict[str, Any], text: str, latency_ms: float) -> None:
        self.value = value
        self.expires_at = expires_at
        self.body = body  # OpenAI's whole answer: the client secret and the effective session
        self.text = text  # the same answer as OpenAI sent it, for callers of the GA endpoint to get unchanged
        self.latency_ms = (
            latency_ms  # of the call to OpenAI: the caller counts it with the mint, in one metrics document
        )


@traced
def create_client_secret(
    url: str,
    api_key: str,
    body: dict[str, Any],
    *,
    safety_identifier: str,
    key_source: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: Deadline,
) -> Minted:
    """POST the GA request by ``deadline``; return the minted secret or raise UpstreamFailed (or one of its kinds)
    or UpstreamRejected.

    ``safety_identifier`` names the end user to OpenAI (safety.py); ``key_source`` says where ``api_key``
    came from, for the words of a refusal of it. The timeouts bound each phase
    (connect, and each read); the deadline bounds them all together.
    """
    return _exchange(
        url,
        json.dumps(body).encode(),
        "application/json",
        api_key,
        safety_identifier,
        key_source,
        connect_timeout,
        read_timeout,
        deadline,
        "mint a client secret",
        (HTTPStatus.OK,),
        lambda raw, latency_ms, _: _minted(raw, latency_ms),
    )


class LiveOpened:
    """A GPT-Live session OpenAI opened: its id, and its answer as OpenAI sent it (the SDP answer in it)."""

    __slots__ = ("latency_ms", "session_id", "text")

    def __init__(self, session_id: str, text: str, latency_ms: float) -> None:
        self.session_id = session_id
        self.text = text
        self.latency_ms = latency_ms


@traced
def create_live_session(
    url: str,
    api_key: str,
    body: dict[str, Any],
    *,
    safety_identifier: str,
    key_source: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: Deadline,
) -> LiveOpened:
    """POST ``{"session", "transport"}`` to OpenAI's ``/v1/live/sessions`` by ``deadline``, as create_client_secret
    posts a mint: the session opened, or the same errors."""
    return _exchange(
        url,
        json.dumps(body).encode(),
        "application/json",
        api_key,
        safety_identifier,
        key_source,
        connect_timeout,
        read_timeout,
        deadline,
        "open the session",
        (HTTPStatus.OK,),
        lambda raw, latency_ms, _: _live_opened(raw, latency_ms),
    )


class Called:
    """A Realtime call OpenAI opened: its id, OpenAI's SDP answer, and how long OpenAI took."""

    __slots__ = ("call_id", "latency_ms", "sdp")

    def __init__(self, call_id: str, sdp: str, latency_ms: float) -> None:
        self.call_id = call_id
        self.sdp = sdp
        self.latency_ms = latency_ms


@traced
def open_call(
    url: str,
    api_key: str,
    offer_sdp: str,
    session: dict[str, Any],
    *,
    safety_identifier: str,
    key_source: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: Deadline,
) -> Called:
    """POST the browser's offer and the session to OpenAI's ``/v1/realtime/calls`` as the SDKs' ``calls.create``
    sends them (multipart: ``sdp`` application/sdp, ``session`` application/json) by ``deadline``: the call opened
    (201, its SDP answer, its id in ``Location``), or the same errors as a mint."""
    boundary = os.urandom(16).hex()
    parts = [
        ("sdp", "application/sdp", offer_sdp),
        ("session", "application/json", json.dumps(session, separators=(",", ":"))),
    ]
    payload = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\nContent-Type: {kind}\r\n\r\n{text}\r\n'
        for name, kind, text in parts
    )
    return _exchange(
        url,
        (payload + f"--{boundary}--\r\n").encode(),
        f"multipart/form-data; boundary={boundary}",
        api_key,
        safety_identifier,
        key_source,
        connect_timeout,
        read_timeout,
        deadline,
        "open the call",
        (HTTPStatus.CREATED,),
        _called,
    )


@traced
def hang_up(
    url: str,
    api_key: str,
    deadline: Deadline,
    *,
    key_source: str,
    connect_timeout: float,
    read_timeout: float,
    safety_identifier: str | None = None,
) -> bool:
    """POST OpenAI's hang-up of a call or a Live session (``url``: ``/v1/realtime/calls/{id}/hangup`` or
    ``/v1/live/sessions/{id}/hangup``) by ``deadline``, as the SDKs' ``hangup`` does (no body): True when it hung
    up, False when OpenAI knows no such call live (404: it has ended); else the same errors as a mint."""
    return _exchange(
        url,
        b"",
        None,
        api_key,
        safety_identifier,
        key_source,
        connect_timeout,
        read_timeout,
        deadline,
        "hang up",
        (HTTPStatus.OK, HTTPStatus.ACCEPTED, HTTPStatus.NO_CONTENT, HTTPStatus.NOT_FOUND),
        lambda _, __, response: bool(response.status != HTTPStatus.NOT_FOUND),
    )


def _exchange[T](
    url: str,
    payload: bytes,
    content_type: str | None,
    api_key: str,
    safety_identifier: str | None,
    key_source: str,
    connect_timeout: float,
    read_timeout: float,
    deadline: Deadline,
    what: str,
    expected: tuple[int, ...],
    read: Callable[[bytes, float, Any], T],
) -> T:
    """POST ``payload`` (of ``content_type``; None: no body) by ``deadline``, and ``read`` OpenAI's answer of an
    ``expected`` status (its bytes, read within MAX_RESPONSE_BYTES, how long it took, the response: its status and
    headers); any other status raised as its error (``what`` OpenAI failed to do, in its words), and a failure's
    latency counted on its own."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": _USER_AGENT}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if safety_identifier is not None:
        headers["OpenAI-Safety-Identifier"] = safety_identifier
    try:
        pool, path, timeout = _upstream(url, connect_timeout, read_timeout)
        with keeping_to(deadline):
            response = pool.urlopen(
                "POST",
                path,
                body=payload,
                headers=headers,
                timeout=timeout,
                preload_content=False,
            )
            try:
                # An unencoded answer of declared length within the cap is read in one go; anything else
                # only up to just past the cap (a compressed length says nothing about the size decoded).
                known = (
                    response.length_remaining is not None
                    and response.length_remaining <= MAX_RESPONSE_BYTES
                    and not response.headers.get("Content-Encoding")
                )
                raw = response.read() if known else response.read(MAX_RESPONSE_BYTES + 1)
            except HTTPError:
                response.close()  # never back into the pool half read
                raise
    except (MaxRetryError, HTTPError) as exc:
        # Failures count their latency on their own: a timeout is the latency that matters most.
        milliseconds("UpstreamLatency", (time.perf_counter() - started) * 1000)
        raise _transport_error(exc, deadline) from None
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        if len(raw) > MAX_RESPONSE_BYTES:
            response.close()  # neither read the rest into memory nor reuse the connection
            raise _invalid_answer("oversized", len(raw))
        response.release_conn()
        if response.status not in expected:
            raise _status_error(response.status, raw, response.headers.get("Retry-After"), key_source, what)
        return read(raw, latency_ms, response)
    except (UpstreamFailed, UpstreamRejected):
        milliseconds("UpstreamLatency", latency_ms)
        raise


def _transport_error(exc: Exception, deadline: Deadline) -> UpstreamFailed:
    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
    # NewConnectionError (refused, DNS) subclasses ConnectTimeoutError in urllib3 2: test it first. Past the
    # deadline, whatever urllib3 made of the cut (a timeout, a broken connection) is a timeout.
    if deadline.passed or (isinstance(reason, TimeoutError) and not isinstance(reason, NewConnectionError)):
        _count_error("timeout")
        logger.warning("openai did not answer in time", deadline_passed=deadline.passed)
        return UpstreamTimedOut("OpenAI did not answer in time. Retry in a moment.", code="upstream_timeout")
    _count_error("connection")
    logger.warning("openai unreachable", error_type=type(reason).__name__)
    return UpstreamUnavailable("This service could not reach OpenAI. Retry in a moment.", code="upstream_unreachable")


def _status_error(
    status: int, raw: bytes, retry_after: str | None, key_source: str, what: str
) -> UpstreamFailed | UpstreamRejected:
    _count_error(str(status))
    error = _error_object(raw)
    upstream_code = _token(error.get("code"))
    logger.warning(f"openai refused to {what}", upstream_status=status, upstream_code=upstream_code)
    seconds = _retry_after(retry_after)
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        if upstream_code == "insufficient_quota":
            message = "OpenAI reports that this service's quota is used up; the operator must check billing."
        else:
            message = "OpenAI is rate limiting this service. " + (
                f"Retry after {seconds} seconds." if seconds else "Retry later."
            )
        return UpstreamRateLimited(message, code=upstream_code or "rate_limit_exceeded", retry_after_seconds=seconds)
    if upstream_code == "beta_api_shape_disabled":
        logger.error("openai took the call for a beta one; check OPENAI_UPSTREAM_URL", upstream_status=status)
        count("ConfigurationErrors", reason="upstream_misconfigured")
        return UpstreamFailed(
            "OpenAI refused the call as the retired beta API: this service's upstream URL is misconfigured. "
            "The operator must fix it (see the service's logs).",
            code="upstream_misconfigured",
        )
    if status in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY):
        # Our checks passed but OpenAI still refused the combination: the caller can act on its words.
        return UpstreamRejected(
            f"OpenAI rejected the session configuration: {_message(error.get('message')) or 'no reason given'}",
            code=upstream_code or "invalid_value",
            param=_token(error.get("param")),
        )
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        logger.error("openai rejected the api key", upstream_status=status, key_source=key_source)
        count("ConfigurationErrors", reason="upstream_auth_failed")
        return UpstreamKeyRejected(
            f"OpenAI rejected this service's API key: {key_source}. The operator must replace it with a valid API key.",
            code="upstream_auth_failed",
        )
    if status in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT):
        return UpstreamUnavailable(
            f"OpenAI is unavailable (HTTP {status}). Retry in a moment.",
            code="upstream_unavailable",
            upstream_status=status,
            retry_after_seconds=seconds,
        )
    return UpstreamFailed(
        f"OpenAI failed to {what} (HTTP {status}). Retry in a moment; if it persists, "
        "the operator should check the service's logs.",
        code="upstream_error",
    )


def _token(value: object) -> str | None:
    """An upstream `code` or `param` cut down to a safe character set and length; None if nothing is left."""
    if not isinstance(value, str):
        return None
    return re.sub(_UNSAFE_CHARACTERS, "", value[: 4 * MAX_TOKEN_CHARS])[:MAX_TOKEN_CHARS] or None


def _message(value: object) -> str | None:
    """An upstream `message` without control or format characters, clipped."""
    if not isinstance(value, str):
        return None
    printable = "".join(c for c in value[: 2 * MAX_MESSAGE_CHARS] if c.isprintable()).strip()
    return printable[:MAX_MESSAGE_CHARS] or None


def _retry_after(value: str | None) -> int | None:
    """Whole seconds from OpenAI's Retry-After (ASCII digits or an HTTP date), capped; None for anything else."""
    value = (value or "").strip()
    if not value:
        return None
    if re.fullmatch(_ASCII_DIGITS, value):
        digits = value.lstrip("0") or "0"
        seconds = int(digits) if len(digits) < 10 else MAX_RETRY_AFTER_SECONDS
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, as HTTP dates are
            when = when.replace(tzinfo=UTC)
        seconds = max(0, math.ceil((when - datetime.now(UTC)).total_seconds()))
    return min(max(seconds, 1), MAX_RETRY_AFTER_SECONDS)  # 0 would invite a retry storm


def _error_object(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser follows
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def _minted(raw: bytes, latency_ms: float) -> Minted:
    try:
        text = raw.decode()
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser follows
        raise _invalid_answer("not json", len(raw)) from None
    if not (
        isinstance(body, dict)
        and isinstance(body.get("value"), str)
        and body["value"]
        and type(body.get("expires_at")) is int  # not a bool, which isinstance(_, int) takes
        and _plausible_expiry(body["expires_at"])
    ):
        raise _invalid_answer("no client secret", len(raw))
    return Minted(value=body["value"], expires_at=body["expires_at"], body=body, text=text, latency_ms=latency_ms)


def _called(raw: bytes, latency_ms: float, response: Any) -> Called:
    call_id = re.fullmatch(r"/v1/realtime/calls/(rtc_[A-Za-z0-9_-]{1,128})", str(response.headers.get("Location", "")))
    try:
        answer = raw.decode()
    except UnicodeDecodeError:
        answer = ""
    if call_id is None or not answer.startswith("v=0"):
        raise _invalid_answer("no call id or no sdp answer", len(raw), "Realtime call")
    return Called(call_id[1], answer, latency_ms)


def _live_opened(raw: bytes, latency_ms: float) -> LiveOpened:
    try:
        text = raw.decode()
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid_answer("not json", len(raw), "a GPT-Live session") from None
    session, transport = (body.get("session"), body.get("transport")) if isinstance(body, dict) else (None, None)
    if not (
        isinstance(session, dict)
        and isinstance(session.get("id"), str)
        and session["id"]
        and isinstance(transport, dict)
        and isinstance(transport.get("sdp"), str)
        and transport["sdp"]
    ):
        raise _invalid_answer("no session or no sdp answer", len(raw), "a GPT-Live session")
    return LiveOpened(session["id"], text, latency_ms)


def _plausible_expiry(expires_at: int) -> bool:
    """Unix seconds no further than a day of clock skew from the 10 s to 2 h OpenAI mints for."""
    now = time.time()
    return now - _CLOCK_SKEW_SECONDS <= expires_at <= now + _LONGEST_TTL_SECONDS + _CLOCK_SKEW_SECONDS


def _invalid_answer(problem: str, size: int, what: str = "a client secret") -> UpstreamFailed:
    _count_error("invalid_response")
    logger.error(f"openai answered without a usable {what}", problem=problem, body_bytes=size)
    return UpstreamFailed(
        f"OpenAI answered without a usable {what}. Retry in a moment.", code="upstream_invalid_response"
    )


def _count_error(kind: str) -> None:
    count("UpstreamErrors", kind=kind)
