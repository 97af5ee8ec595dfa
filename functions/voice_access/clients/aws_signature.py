"""AWS Signature Version 4 for the function's own AWS calls (the quota store, the secret), without botocore.

botocore's import is most of boto3's 160 ms of cold start, and the quota store and the secret are on the path
of every cold mint: signing one POST needs hashlib and hmac. This is AWS's documented algorithm and nothing more
(a path and a query string as they are sent, no chunked payloads, no S3), and tests/unit/test_aws_signature.py
checks it against botocore's own signer, signature for signature, on a set of requests.
"""

import functools
import hashlib
import hmac
import os
from datetime import UTC, datetime
from urllib.parse import quote

_ALGORITHM = "AWS4-HMAC-SHA256"


class CredentialsMissing(Exception):
    """The environment holds no AWS credentials (Lambda always sets them)."""


# Not a NamedTuple (about 60 us of every cold start to define): compared by its values, never used as a tuple.
class AwsCredentials:
    __slots__ = ("access_key_id", "secret_access_key", "session_token")

    def __init__(self, access_key_id: str, secret_access_key: str, session_token: str | None = None) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AwsCredentials) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "AwsCredentials(...)"  # never the secret key, in a traceback or a debugger

    def _values(self) -> tuple[str, str, str | None]:
        return self.access_key_id, self.secret_access_key, self.session_token

    @classmethod
    def from_environment(cls) -> "AwsCredentials":
        """The execution role's credentials, as Lambda sets them (read per request: they rotate)."""
        access_key_id = os.environ.get("AWS_ACCESS_KEY_ID", "")
        secret_access_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not access_key_id or not secret_access_key:
            raise CredentialsMissing("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
        return cls(access_key_id, secret_access_key, os.environ.get("AWS_SESSION_TOKEN") or None)


def signed_headers(
    credentials: AwsCredentials,
    *,
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    region: str,
    service: str,
    query: str = "",
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` with X-Amz-Date, X-Amz-Security-Token (with a session token) and Authorization added, every
    header signed. ``host`` is as the Host header carries it (no default port); ``path`` (without "." or ".."
    segments) and ``query`` ("a=1&b=x%3Ay", no "?") are URI-encoded, as they are sent."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    day = moment[:8]
    signing = {**headers, "X-Amz-Date": moment}
    if credentials.session_token:
        signing["X-Amz-Security-Token"] = credentials.session_token
    canonical = {name.lower(): " ".join(value.split()) for name, value in {**signing, "Host": host}.items()}
    names = sorted(canonical)
    request = "\n".join(
        [
            method,
            # Encoded once more, as every service but S3 signs it (botocore: a ":" sent as %3A is signed as %253A).
            quote(path, safe="/~"),
            _canonical_query(query),
            *(f"{name}:{canonical[name]}" for name in names),
            "",
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, moment, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _signing_key(credentials.secret_access_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signing["Authorization"] = (
        f"{_ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signing


def _canonical_query(query: str) -> str:
    """The query's pairs as sent, sorted by name then value (botocore's canonical query string of a URL)."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{name}={value}" for name, value in pairs)


# The key changes only with the day and the credentials: four HMACs of every request, about 5 us of its 12.
@functools.lru_cache(maxsize=4)
def _signing_key(secret_access_key: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_access_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
