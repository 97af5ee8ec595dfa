"""The callers of test events, and the safety identifier OpenAI should get for each, computed here with
hmac and hashlib as the README documents it (not with the function's code)."""

import hashlib
import hmac
from typing import Any

from tests.keys import TEST_SAFETY_KEY


def expected_safety_identifier(event: dict[str, Any], key: str = TEST_SAFETY_KEY) -> str:
    """HMAC-SHA256 over the event caller's issuer and subject, each UTF-8 and after its length in 8 bytes."""
    authorizer = event["requestContext"]["authorizer"]
    if "jwt" in authorizer:
        claims = authorizer["jwt"]["claims"]
        issuer, subject = claims["iss"], claims["sub"]
    else:
        iam = authorizer["iam"]
        issuer, subject = f"aws-iam:{iam['accountId']}", iam["userArn"] or iam["userId"]
    message = b"".join(len(part).to_bytes(8, "big") + part for part in (issuer.encode(), subject.encode()))
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
