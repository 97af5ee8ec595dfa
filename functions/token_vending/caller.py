"""Who is asking: the caller API Gateway's authorizer vouched for, as a typed value.

The handler builds it from the authorizer's context (JWT claims, or the IAM principal); the domain
receives a Caller and never the event. Raw claims go nowhere else: logs and metrics name a caller
only by its pseudonymous safety identifier (safety.py).
"""

from dataclasses import dataclass, field
from typing import Literal

AuthMethod = Literal["jwt", "iam"]


@dataclass(frozen=True)
class Caller:
    issuer: str  # the token's "iss"; for IAM, "aws-iam" and the account
    subject: str  # the token's "sub"; for IAM, the principal's ARN
    auth: AuthMethod = "jwt"
    groups: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
