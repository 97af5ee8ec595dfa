"""The Lambda runtime's context object, apart from the runtime so that a function's own process
(local/execution_environment.py) imports nothing else of local/."""

import time
from dataclasses import dataclass


@dataclass
class LambdaContext:
    """The subset of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float  # time.monotonic() at which the invocation times out
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))
