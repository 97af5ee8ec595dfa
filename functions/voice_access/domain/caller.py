"""Who is asking: the caller an authorizer vouched for, as a typed value.

The edge builds it from what vouched for the caller (edge/claims.py: API Gateway's authorizer context); the
domain receives a Caller and never an event. Raw claims go nowhere else: logs and metrics name a caller only by
its pseudonymous safety identifier (safety.py).
"""

from typing import Literal

AuthMethod = Literal["jwt", "iam"]


# Not a NamedTuple (about 60 us of every cold start to define): compared by its values, never used as a tuple.
class Caller:
    __slots__ = ("auth", "groups", "issuer", "scopes", "subject")

    def __init__(
        self,
        issuer: str,
        subject: str,
        auth: AuthMethod = "jwt",
        groups: frozenset[str] = frozenset(),
        scopes: frozenset[str] = frozenset(),
    ) -> None:
        self.issuer = issuer  # the token's "iss"; for IAM, "aws-iam:" and the account
        self.subject = subject  # the token's "sub"; for IAM, the principal's ARN
        self.auth = auth
        self.groups = groups
        self.scopes = scopes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Caller) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"Caller{self._values()!r}"

    def _values(self) -> tuple[str, str, AuthMethod, frozenset[str], frozenset[str]]:
        return self.issuer, self.subject, self.auth, self.groups, self.scopes
