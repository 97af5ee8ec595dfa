"""AWS_IAM authorization of an API Gateway HTTP API, locally: SigV4 checked against the local credentials.

Locally there is one IAM principal for the API, a backend's fixed fake credentials (access key and secret
"testing", as moto's documentation has them; the local AWS itself takes only the run's own random ones, see
local/aws.py). A request signed with them for execute-api in the
gateway's region passes, and the function gets the iam authorizer context API Gateway would give; anything
else is API Gateway's 403. The canonical request, string to sign and signature are botocore's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from botocore.credentials import Credentials

from local import sigv4
from local.jwt_authorizer import Refused

# What a local backend signs execute-api requests with (CallerAuth=iam); they open nothing in the local AWS.
LOCAL_ACCESS_KEY_ID = "testing"
LOCAL_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - fake, and the same on every machine
# SigV4 signatures are accepted within 5 minutes of the request's X-Amz-Date.
_MAX_SKEW = timedelta(minutes=5)
# API Gateway's messages for a request IAM refuses.
_MISSING = "Forbidden"
_UNKNOWN_KEY = "The security token included in the request is invalid."
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_EXPIRED = "Signature expired"


def _forbidden(message: str, why: str) -> Refused:
    return Refused(HTTPStatus.FORBIDDEN, why, None, message=message)


class IamAuthorizer:
    """SigV4 for execute-api in ``region``, by the local credentials of account ``account``."""

    def __init__(self, region: str, account: str) -> None:
        self.region = region
        self.account = account

    def describe(self) -> str:
        return f"AWS_IAM: SigV4 for execute-api in {self.region} with the local credentials ({LOCAL_ACCESS_KEY_ID})"

    def authorize(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> dict[str, Any]:
        """The event's requestContext.authorizer for this request as the client sent it; Refused otherwise."""
        joined: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        found = sigv4.parse(joined.get("authorization", "").strip())
        if found is None:
            raise _forbidden(_MISSING, "no SigV4 signature in the Authorization header")
        if found["key"] != LOCAL_ACCESS_KEY_ID:
            raise _forbidden(_UNKNOWN_KEY, f"the access key is not the local one ({LOCAL_ACCESS_KEY_ID})")
        if (found["region"], found["service"]) != (self.region, "execute-api"):
            raise _forbidden(_MISMATCH, f"signed for {found['service']} in {found['region']}")
        timestamp = joined.get("x-amz-date", "")
        signed_at = sigv4.signed_at(timestamp)
        if signed_at is None:
            raise _forbidden(_MISSING, "no X-Amz-Date")
        if sigv4.skew(signed_at, _MAX_SKEW, datetime.now(UTC)) or not timestamp.startswith(found["day"]):
            raise _forbidden(_EXPIRED, "signed more than 5 minutes from now")
        signed = found["headers"].split(";")
        if "host" not in signed or any(name not in joined for name in signed):
            raise _forbidden(_MISMATCH, "a signed header is missing")
        expected = sigv4.expected(
            method,
            f"http://{joined['host']}{target}",
            {name: joined[name] for name in signed},
            body,
            Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY),
            "execute-api",
            self.region,
            timestamp,
        )
        if not sigv4.equal(expected.signature, found["signature"]):
            raise _forbidden(_MISMATCH, "the signature does not match the local credentials'")
        user = "AIDALOCALCALLER00000"
        return {
            "iam": {
                "accessKey": LOCAL_ACCESS_KEY_ID,
                "accountId": self.account,
                "callerId": user,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:iam::{self.account}:user/local-caller",
                "userId": user,
            }
        }
