"""Domain errors. Each knows the HTTP status and the OpenAI error envelope it maps to.

Messages are written for the person calling the API. They never carry the API key, a minted
client secret or an upstream body verbatim.
"""

from http import HTTPStatus
from typing import Any


class ApiError(Exception):
    """An answer in OpenAI's error envelope: {"error": {"type", "message", "param", "code"}}."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    @property
    def metric_reason(self) -> str:
        """The `reason` dimension it is counted under: one of this service's own codes."""
        return self.code

    def envelope(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message, "param": self.param, "code": self.code}}


class InvalidRequest(ApiError):
    """The caller sent something we refuse; nothing went upstream."""

    status = HTTPStatus.BAD_REQUEST
    type = "invalid_request_error"


class UpstreamRejected(InvalidRequest):
    """OpenAI refused a request our checks passed; its code is OpenAI's, so its count is under one reason."""

    @property
    def metric_reason(self) -> str:
        return "upstream_rejected"  # OpenAI's codes are not ours to mint metric dimensions from


class PermissionDenied(ApiError):
    """The caller is known but may not have what it asked for (a profile its claims do not open)."""

    status = HTTPStatus.FORBIDDEN
    type = "invalid_request_error"


class RateLimited(ApiError):
    """A caller (or every caller: the spend brake) has minted as many client secrets as a window allows."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    type = "requests"  # OpenAI's own type for a request rate limit


class UnsupportedMediaType(InvalidRequest):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class RequestTooLarge(InvalidRequest):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class ServiceMisconfigured(ApiError):
    """The deployment is broken (policy, settings, secret): a 500 until an operator fixes it."""


class CallerUnidentified(ServiceMisconfigured):
    """The request reached the function without a caller API Gateway vouched for: a route without an
    authorizer, or an issuer whose tokens name no subject. Every deployed route has one, so a 500."""


class DependencyUnavailable(ApiError):
    """An AWS dependency failed in a way that may pass: the caller may retry."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    type = "server_error"


class OutOfTime(ApiError):
    """The invocation had no time left to ask anyone: nothing was asked."""

    status = HTTPStatus.GATEWAY_TIMEOUT
    type = "server_error"


class UpstreamError(ApiError):
    """OpenAI did not mint: the status says whose problem it is."""

    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        status: HTTPStatus,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param, headers=headers)
        self.status = status
        if error_type:
            self.type = error_type
