"""Who is asking: the caller an authorizer vouched for, as a typed value.

The edge builds it from what vouched for the caller (edge/claims.py: API Gateway's authorizer context); the
domain receives a Caller and never an event. Raw claims go nowhere else: logs and metrics name a caller only by
its pseudonymous safety identifier (safety.py).
"""

from typing import Literal

from voice_access.domain.policy.records import Record

AuthMethod = Literal["jwt", "iam"]


class Caller(Record):
    issuer: str  # the token's "iss"; for IAM, "aws-iam:" and the account
    subject: str  # the token's "sub"; for IAM, the principal's ARN
    auth: AuthMethod = "jwt"
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
