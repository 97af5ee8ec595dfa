"""One signed request to an AWS API, with urllib3 and without botocore: a JSON API (DynamoDB, Secrets Manager) or a
REST one that answers in JSON (Lambda's Invoke, EventBridge Scheduler).

The function's own AWS calls go through here: the body signed for the service (aws_signature.py), sent by a caller's
deadline on the caller's pools. What comes back is the status, the JSON body and AWS's error code; what each code
means is the caller's to say (quota_store.py, secrets.py, aws_lambda.py, scheduler.py).
"""

import json
from http import HTTPStatus
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError
from urllib3.util import parse_url

from voice_access.clients.aws_signature import AwsCredentials, signed_headers
from voice_access.clients.deadline import Deadline, keeping_to
from voice_access.domain.errors import DependencyUnavailable, ServiceMisconfigured
from voice_access.observability import count, logger

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Errors of AWS's REST APIs (Lambda, EventBridge Scheduler) that may pass: throttling, an outage, a function being
# updated, credentials that rotated. Any other error needs an operator (a missing function or group, access denied).
_PASSING = {
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalServerException",
    "ServiceException",
    "ServiceUnavailableException",
    "ResourceConflictException",
    "ExpiredTokenException",
}


class Unanswered(Exception):
    """No answer came (a timeout, no connection): ``kind`` names the failure, ``maybe_applied`` whether the request
    may have reached the service all the same."""

    def __init__(self, kind: str, *, maybe_applied: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.maybe_applied = maybe_applied


class Answer:
    """The service's answer: its HTTP status, its JSON body (empty when it sent none, or ``json`` False when what it
    sent was not a JSON object), and its error code ("ResourceNotFoundException"), empty on success."""

    __slots__ = ("body", "code", "json", "status")

    def __init__(self, status: int, body: dict[str, Any], *, json: bool = True, error_type: str = "") -> None:
        self.status = status
        self.body = body
        self.json = json
        # As the SDKs read it: the X-Amzn-ErrorType header, else the body's __type, less its namespace
        # ("com.amazonaws.dynamodb.v20120810#") and any ":" detail after the code.
        code = error_type or str(body.get("__type", ""))
        self.code = code.rpartition("#")[2].partition(":")[0] if status >= 300 else ""


def post(
    pools: urllib3.PoolManager,
    endpoint: str,
    target: str,
    payload: dict[str, Any],
    *,
    json_version: str,
    service: str,
    region: str,
    timeout: urllib3.Timeout,
    deadline: Deadline,
) -> Answer:
    """POST ``payload`` as ``target`` (X-Amz-Target: "DynamoDB_20120810.UpdateItem") to ``endpoint``, signed with the
    execution role's credentials, by ``deadline``. CredentialsMissing when there are none; Unanswered."""
    return send(
        pools,
        endpoint,
        "POST",
        "/",
        json.dumps(payload, separators=(",", ":")).encode(),
        {"Content-Type": f"application/x-amz-json-{json_version}", "X-Amz-Target": target},
        service=service,
        region=region,
        timeout=timeout,
        deadline=deadline,
    )


def send(
    pools: urllib3.PoolManager,
    endpoint: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    query: str = "",
    service: str,
    region: str,
    timeout: urllib3.Timeout,
    deadline: Deadline,
) -> Answer:
    """One request to ``endpoint`` (a JSON API's ``POST /``, or a REST API's ``method`` on ``path``?``query``, both
    URI-encoded as sent), signed with the execution role's credentials, by ``deadline``. CredentialsMissing when
    there are none; Unanswered."""
    url = parse_url(endpoint)
    # Signed as http.client sends the Host header: without the scheme's default port.
    host = url.host or ""
    if url.port is not None and url.port != _DEFAULT_PORTS.get(url.scheme or ""):
        host = f"{host}:{url.port}"
    signed = signed_headers(
        AwsCredentials.from_environment(),
        method=method,
        host=host,
        path=path,
        query=query,
        headers=headers,
        body=body,
        region=region,
        service=service,
    )
    try:
        with keeping_to(deadline):
            response = pools.connection_from_url(endpoint).urlopen(
                method, f"{path}?{query}" if query else path, body=body, headers=signed, timeout=timeout
            )
    except (HTTPError, TimeoutError) as exc:
        raise Unanswered(type(exc).__name__, maybe_applied=not _never_sent(exc)) from None
    try:
        parsed = json.loads(response.data) if response.data else {}
    except ValueError:
        parsed = None
    error_type = str(response.headers.get("X-Amzn-ErrorType", ""))
    if not isinstance(parsed, dict):
        return Answer(response.status, {}, json=False, error_type=error_type)
    return Answer(response.status, parsed, error_type=error_type)


def _never_sent(error: BaseException) -> bool:
    """Whether a failed request surely never reached the service: its connection could not be made."""
    reason = error.reason if isinstance(error, MaxRetryError) else error
    return isinstance(reason, ConnectTimeoutError)  # and NewConnectionError, its subclass


class AwsUnavailable(DependencyUnavailable):
    """An AWS service (``dependency``: "lambda", "scheduler") could not be reached, or answered with an error that may
    pass (logged and counted when made). ``unanswered``: it may have applied the request all the same."""

    def __init__(self, dependency: str, aws_code: str, *, unanswered: bool) -> None:
        super().__init__(
            f"This service could not reach AWS ({dependency}). Retry in a moment.", code=f"{dependency}_unavailable"
        )
        self.dependency, self.aws_code, self.unanswered = dependency, aws_code, unanswered


class AwsMisconfigured(ServiceMisconfigured):
    """An AWS service (``dependency``) cannot be used until an operator acts: ``problem`` says why (AWS's words,
    which hold no credential)."""

    def __init__(self, dependency: str, problem: str) -> None:
        super().__init__(
            f"This service cannot use AWS ({dependency}) until an operator fixes it.",
            code=f"{dependency}_misconfigured",
        )
        self.dependency, self.problem = dependency, problem


def unanswered(dependency: str, failed: Unanswered) -> AwsUnavailable:
    """What a request ``dependency`` never answered raises, logged and counted."""
    logger.warning("aws unavailable", dependency=dependency, aws_code=failed.kind)
    count("DependencyErrors", dependency=dependency)
    return AwsUnavailable(dependency, failed.kind, unanswered=failed.maybe_applied)


def refused(dependency: str, operation: str, answer: Answer) -> AwsUnavailable | AwsMisconfigured:
    """What an error ``answer`` of a REST API raises: AwsUnavailable when it may pass (logged and counted), else
    AwsMisconfigured with AWS's code and message."""
    aws_code = answer.code or f"HTTP {answer.status}"
    if aws_code in _PASSING or answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.warning("aws unavailable", dependency=dependency, aws_code=aws_code)
        count("DependencyErrors", dependency=dependency)
        # A server error leaves it open whether the request was applied; a throttle says not.
        return AwsUnavailable(dependency, aws_code, unanswered=answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR)
    message = str(answer.body.get("message") or answer.body.get("Message") or "")[:300]
    return AwsMisconfigured(dependency, f"{dependency} refused the {operation}: {aws_code}: {message}")
