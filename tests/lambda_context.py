"""Stand-ins for the Lambda runtime's context object: the attributes Powertools reads from it."""

import time
import uuid
from dataclasses import dataclass, field
from typing import cast

from aws_lambda_powertools.utilities.typing import LambdaContext as LambdaContext


@dataclass
class FakeLambdaContext:
    function_name: str = "TokenVendingFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:TokenVendingFunction"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


@dataclass
class CountdownLambdaContext(FakeLambdaContext):
    """An invocation with `remaining_ms` left when it starts, counting down as Lambda's context does."""

    remaining_ms: int = 15_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.remaining_ms - int((time.monotonic() - self.started) * 1000))


def lambda_context_with(remaining_ms: int) -> LambdaContext:
    """A fresh invocation's context with `remaining_ms` left (the fixture's always has 15 s)."""
    return cast(LambdaContext, CountdownLambdaContext(remaining_ms=remaining_ms))
