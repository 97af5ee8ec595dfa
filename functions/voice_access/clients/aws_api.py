"""One signed request to an AWS JSON API (DynamoDB, Secrets Manager), with urllib3 and without botocore.

The function's own AWS calls go through here: the body as JSON, signed for the service (aws_signature.py), sent by a
caller's deadline on the caller's pools. What comes back is the status, the JSON body and AWS's error code; what
each code means is the caller's to say (quota_store.py, secrets.py).
"""

import json
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError
from urllib3.util import parse_url

from voice_access.clients.aws_signature import AwsCredentials, signed_headers
from voice_access.clients.deadline import Deadline, keeping_to

_DEFAULT_PORTS = {"https": 443, "http": 80}


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
    body = json.dumps(payload, separators=(",", ":")).encode()
    url = parse_url(endpoint)
    # Signed as http.client sends the Host header: without the scheme's default port.
    host = url.host or ""
    if url.port is not None and url.port != _DEFAULT_PORTS.get(url.scheme or ""):
        host = f"{host}:{url.port}"
    headers = signed_headers(
        AwsCredentials.from_environment(),
        method="POST",
        host=host,
        path="/",
        headers={"Content-Type": f"application/x-amz-json-{json_version}", "X-Amz-Target": target},
        body=body,
        region=region,
        service=service,
    )
    try:
        with keeping_to(deadline):
            response = pools.connection_from_url(endpoint).urlopen(
                "POST", "/", body=body, headers=headers, timeout=timeout
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
