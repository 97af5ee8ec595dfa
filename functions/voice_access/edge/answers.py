"""The HTTP answers (API Gateway HTTP API, payload 2.0): for each domain error its status, OpenAI's error envelope
and headers, chosen here once; for a mint, OpenAI's rate-limit headers for the caller's quota."""

import json
import math
import time
from http import HTTPStatus
from typing import Any, Protocol

from voice_access.domain.errors import (
    DependencyUnavailable,
    InvalidRequest,
    OutOfTime,
    PermissionDenied,
    RateLimited,
    ServiceError,
    ServiceMisconfigured,
    UpstreamFailed,
    UpstreamKeyRejected,
    UpstreamRateLimited,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from voice_access.domain.quota import Counted
from voice_access.edge.request_body import RequestTooLarge, UnsupportedMediaType
from voice_access.observability import count, logger

# Each error's status and the `type` of OpenAI's envelope; an error not listed answers as its nearest base class.
_STATUS_AND_TYPE: dict[type[ServiceError], tuple[HTTPStatus, str]] = {
    ServiceError: (HTTPStatus.INTERNAL_SERVER_ERROR, "server_error"),
    InvalidRequest: (HTTPStatus.BAD_REQUEST, "invalid_request_error"),
    RequestTooLarge: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "invalid_request_error"),
    UnsupportedMediaType: (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "invalid_request_error"),
    PermissionDenied: (HTTPStatus.FORBIDDEN, "invalid_request_error"),
    RateLimited: (HTTPStatus.TOO_MANY_REQUESTS, "requests"),  # OpenAI's own type for a request rate limit
    ServiceMisconfigured: (HTTPStatus.INTERNAL_SERVER_ERROR, "server_error"),
    DependencyUnavailable: (HTTPStatus.SERVICE_UNAVAILABLE, "server_error"),
    OutOfTime: (HTTPStatus.GATEWAY_TIMEOUT, "server_error"),
    UpstreamFailed: (HTTPStatus.BAD_GATEWAY, "upstream_error"),
    UpstreamTimedOut: (HTTPStatus.GATEWAY_TIMEOUT, "upstream_error"),
    UpstreamUnavailable: (HTTPStatus.BAD_GATEWAY, "upstream_error"),  # or OpenAI's own 503 or 504, passed on
    UpstreamRateLimited: (HTTPStatus.TOO_MANY_REQUESTS, "rate_limit_error"),
    UpstreamKeyRejected: (HTTPStatus.BAD_GATEWAY, "upstream_error"),
}
# The SDKs retry a 429 after Retry-After up to a minute; past that they would retry in vain at their own pace.
_SDK_RETRY_WAIT_SECONDS = 60
# A refusal by a window of requests (mints, sessions opened): OpenAI's x-ratelimit-*-requests headers describe it. A
# spent budget (dollars, seconds of calls) and calls open at once are no count of requests, and go without them.
_REQUESTS_RATE_LIMIT = "rate_limit_exceeded"


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class Answer:
    """A success's body (JSON, unless ``content_type`` says otherwise), the headers it adds, and its status."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: str,
        headers: dict[str, str],
        status: HTTPStatus = HTTPStatus.OK,
        content_type: str = "application/json",
    ) -> None:
        self.body = body
        self.headers = headers
        self.status = status
        self.content_type = content_type


class Granted(Protocol):
    """What a request was granted (a client secret minted, a session opened): OpenAI's answer, and the window of
    the caller's quota it is nearest the end of (None: no quota applies)."""

    @property
    def text(self) -> str: ...

    @property
    def tightest(self) -> Counted | None: ...


def minted(mint: Granted) -> Answer:
    """OpenAI's answer (a minted client secret, a session opened), with OpenAI's rate-limit headers for the window
    the caller is nearest the end of."""
    counted = mint.tightest
    if counted is None:
        return Answer(mint.text, {})
    return Answer(
        mint.text, rate_limit_headers(counted.window.limit, counted.remaining, counted.resets_at - time.time())
    )


def called(call: Granted, location: str) -> Answer:
    """A call opened: OpenAI's SDP answer, 201, where the call is (``Location``, as OpenAI says it), and the quota's
    rate-limit headers."""
    granted = minted(call)
    return Answer(granted.body, {**granted.headers, "Location": location}, HTTPStatus.CREATED, "application/sdp")


def listed(listing: dict[str, Any]) -> Answer:
    return Answer(json.dumps(listing, separators=(",", ":")), {})


def ok(answer: Answer, request_id: str) -> dict[str, Any]:
    return _response(answer.status, answer.body, request_id, {"Content-Type": answer.content_type, **answer.headers})


def status_of(error: ServiceError) -> HTTPStatus:
    if isinstance(error, UpstreamUnavailable) and error.upstream_status is not None:
        return HTTPStatus(error.upstream_status)
    return _status_and_type(error)[0]


def envelope(error: ServiceError) -> dict[str, Any]:
    """OpenAI's error envelope: {"error": {"type", "message", "param", "code"}}."""
    return {
        "error": {
            "type": _status_and_type(error)[1],
            "message": error.message,
            "param": error.param,
            "code": error.code,
        }
    }


def headers_of(error: ServiceError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited) and error.code == _REQUESTS_RATE_LIMIT:
        headers = rate_limit_headers(error.limit, error.remaining, error.retry_after_seconds)
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    # Told not to, the SDKs do not retry in vain: a key OpenAI refuses stays refused until an operator acts, and past
    # a minute's Retry-After they would retry a full window at their own pace.
    if isinstance(error, UpstreamKeyRejected) or (
        isinstance(error, RateLimited) and error.retry_after_seconds > _SDK_RETRY_WAIT_SECONDS
    ):
        headers["x-should-retry"] = "false"
    return headers


def refused(error: ServiceError, endpoint: str, request_id: str) -> dict[str, Any]:
    """The answer to a request ``error`` stopped, logged and, when it was the caller's to fix, counted."""
    status = status_of(error)
    if status < HTTPStatus.INTERNAL_SERVER_ERROR and status != HTTPStatus.TOO_MANY_REQUESTS:
        logger.info("request rejected", endpoint=endpoint, reason=error.code, param=error.param)
        count("RequestsRejected", endpoint=endpoint, reason=error.metric_reason)
    else:
        logger.warning("request failed", endpoint=endpoint, reason=error.code, status=int(status))
    return _json(status, envelope(error), request_id, headers_of(error))


def unexpected(request_id: str) -> dict[str, Any]:
    logger.exception("unexpected error")
    count("UnexpectedErrors")
    failure = {
        "error": {
            "type": "server_error",
            "message": "The service failed unexpectedly. Retry in a moment; the operator can find it in the logs.",
            "param": None,
            "code": "internal_error",
        }
    }
    return _json(HTTPStatus.INTERNAL_SERVER_ERROR, failure, request_id)


def not_found(request_id: str) -> dict[str, Any]:
    unknown = {
        "error": {"type": "invalid_request_error", "message": "Unknown route.", "param": None, "code": "unknown_url"}
    }
    return _json(HTTPStatus.NOT_FOUND, unknown, request_id)


def rate_limit_headers(limit: int, remaining: int, resets_in_seconds: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": duration(resets_in_seconds),
    }


def duration(seconds: float) -> str:
    """OpenAI's form for x-ratelimit-reset-requests: "1s", "6m0s", "2h0m0s"."""
    whole = max(0, math.ceil(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _status_and_type(error: ServiceError) -> tuple[HTTPStatus, str]:
    return next(_STATUS_AND_TYPE[kind] for kind in type(error).__mro__ if kind in _STATUS_AND_TYPE)


def _json(
    status: HTTPStatus, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return _response(status, json.dumps(body, separators=(",", ":")), request_id, headers)


def _response(status: HTTPStatus, body: str, request_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP API (payload 2.0) response, with a JSON body unless ``headers`` name another Content-Type."""
    return {
        "statusCode": int(status),
        "headers": {
            "Content-Type": "application/json",
            # A client secret is a credential, and a caller's profiles are its own: no cache may keep the answer.
            "Cache-Control": "no-store",
            "x-request-id": request_id,
            **(headers or {}),
        },
        "body": body,
        "isBase64Encoded": False,
    }
