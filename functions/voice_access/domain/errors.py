"""Domain errors: what went wrong, in the service's words, for any function of it to raise and to answer.

Each says what happened by its class, and carries a message for the person calling, a ``code``, the field it is
about (``param``) and the facts a caller may act on (how long to wait). None knows HTTP: the edge that answers
over HTTP chooses a status, an envelope and headers for each (edge/answers.py). Messages never carry the API key,
a minted client secret or an upstream body verbatim.
"""


class ServiceError(Exception):
    """Something this service will not or cannot do for a request: nothing was minted."""

    def __init__(
        self, message: str, *, code: str, param: str | None = None, retry_after_seconds: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.retry_after_seconds = retry_after_seconds  # when a retry may pass; None: not known, or not for waiting

    @property
    def metric_reason(self) -> str:
        """The `reason` dimension it is counted under: one of this service's own codes."""
        return self.code


class InvalidRequest(ServiceError):
    """The caller sent something we refuse; nothing went upstream."""


class UpstreamRejected(InvalidRequest):
    """OpenAI refused a request our checks passed; its code is OpenAI's, so its count is under one reason."""

    @property
    def metric_reason(self) -> str:
        return "upstream_rejected"  # OpenAI's codes are not ours to mint metric dimensions from


class PermissionDenied(ServiceError):
    """The caller is known but may not have what it asked for (a profile its claims do not open)."""


class RateLimited(ServiceError):
    """A caller (or every caller: the spend brake) has minted as many client secrets as a window allows, until
    ``retry_after_seconds`` from now; ``limit`` and ``remaining`` are that window's."""

    retry_after_seconds: int

    def __init__(self, message: str, *, code: str, retry_after_seconds: int, limit: int, remaining: int) -> None:
        super().__init__(message, code=code, retry_after_seconds=retry_after_seconds)
        self.limit = limit
        self.remaining = remaining


class ServiceMisconfigured(ServiceError):
    """The deployment is broken (policy, settings, secret): nothing passes until an operator fixes it."""


class CallerUnidentified(ServiceMisconfigured):
    """The request reached the function without a caller API Gateway vouched for: a route without an
    authorizer, or an issuer whose tokens name no subject. Every deployed route has one, so the deployment's fault."""


class DependencyUnavailable(ServiceError):
    """An AWS dependency failed in a way that may pass: the caller may retry."""


class OutOfTime(ServiceError):
    """The invocation had no time left to ask anyone: nothing was asked."""


class UpstreamFailed(ServiceError):
    """OpenAI did not mint, and the fault is not the caller's: its answer was unusable, or a key or field it
    refused is the operator's to fix."""


class UpstreamTimedOut(UpstreamFailed):
    """OpenAI did not answer in time."""


class UpstreamUnavailable(UpstreamFailed):
    """OpenAI could not be reached, or said it is unavailable: ``upstream_status`` is the status it answered with
    (503 or 504), None when it was not reached."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        upstream_status: int | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message, code=code, retry_after_seconds=retry_after_seconds)
        self.upstream_status = upstream_status


class UpstreamRateLimited(UpstreamFailed):
    """OpenAI is rate limiting this service (or its quota is used up): every caller is refused alike."""


class UpstreamKeyRejected(UpstreamFailed):
    """OpenAI refused this service's API key: a retry fails the same way until an operator replaces it."""


class NotSupervised(DependencyUnavailable):
    """OpenAI opened a call (or a Live session), but its supervision could not be started (its record, its supervisor
    or its backstop), so the service hung it up rather than leave it unsupervised: the caller may retry."""
