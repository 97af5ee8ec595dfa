"""SigV4 checked as AWS checks it, for the local stand-ins that take signed requests (local/aws.py, the local AWS;
local/iam_authorizer.py, an AWS_IAM route): the Authorization header's parts, the signing time against this clock,
and the signature botocore's own signer computes for the request. Each caller words its refusals as its service."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<day>\d{8})/(?P<region>[\w-]+)/(?P<service>[\w-]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


def parse(authorization: str) -> re.Match[str] | None:
    """The parts of a SigV4 Authorization header (key, day, region, service, headers, signature); None when it is
    not one."""
    return _AUTHORIZATION.fullmatch(authorization)


def signed_at(timestamp: str) -> datetime | None:
    """The time an X-Amz-Date names; None when it names none."""
    try:
        return datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def skew(signed: datetime, window: timedelta, now: datetime) -> Literal["expired", "not yet current"] | None:
    """Whether a request signed at ``signed`` is more than ``window`` before ``now`` or after it; None within it."""
    if signed < now - window:
        return "expired"
    if signed > now + window:
        return "not yet current"
    return None


class Expected(NamedTuple):
    signed_headers: str  # the SignedHeaders botocore would name for these headers
    signature: str


def expected(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    service: str,
    region: str,
    timestamp: str,
) -> Expected:
    """What botocore's signer makes of this request, signed at ``timestamp`` (its X-Amz-Date)."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(credentials, service, region)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return Expected(signer.signed_headers(signer.headers_to_sign(request)), signature)


def equal(one: str, other: str) -> bool:
    """``one == other``, in a time that does not tell where they differ (for keys and signatures)."""
    return hmac.compare_digest(one.encode(), other.encode())
