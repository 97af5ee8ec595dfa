"""AWS Lambda's Invoke API, asynchronously: the one module that starts another function (the supervisor of a call).

An asynchronous invocation (``X-Amz-Invocation-Type: Event``) is queued by Lambda, which answers 202 at once and
runs the function later, its return value unread. The request is signed here (aws_signature.py) and sent with
urllib3 (aws_api.py), as the quota store's are: boto3's import is no part of any cold start. A fault that may pass
is raised as AwsUnavailable, a function that cannot be invoked (none by that name, access denied, a payload too
large) as AwsMisconfigured; their words are Lambda's, and a caller says what either means for what it was doing.
"""

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import urllib3

from voice_access.clients import aws_api
from voice_access.clients.aws_signature import CredentialsMissing
from voice_access.clients.deadline import POOL_CLASSES, Deadline

# Lambda queues an asynchronous invocation and answers at once.
_TIMEOUT = urllib3.Timeout(connect=0.5, read=1.5)
# One connect, a retry, one answer: how long a caller lets an invocation take, by bounding its deadline.
BUDGET_SECONDS = 2.5
_pools = urllib3.PoolManager(
    num_pools=1,
    maxsize=2,  # a successor invoked while another is in flight: never more at once
    retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, backoff_factor=0.05),
)
_pools.pool_classes_by_scheme = POOL_CLASSES


def invoke_async(endpoint: str, function_name: str, payload: dict[str, Any], region: str, deadline: Deadline) -> None:
    """Queue an invocation of ``function_name`` (a name or an ARN) with ``payload`` as its event, by ``deadline``.
    AwsUnavailable, AwsMisconfigured."""
    path = f"/2015-03-31/functions/{quote(function_name, safe='')}/invocations"
    try:
        answer = aws_api.send(
            _pools,
            endpoint,
            "POST",
            path,
            json.dumps(payload, separators=(",", ":")).encode(),
            {"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
            service="lambda",
            region=region,
            timeout=_TIMEOUT,
            deadline=deadline,
        )
    except CredentialsMissing as missing:
        raise aws_api.AwsMisconfigured("lambda", str(missing)) from None
    except aws_api.Unanswered as failed:
        raise aws_api.unanswered("lambda", failed) from None
    if answer.status != HTTPStatus.ACCEPTED:
        raise aws_api.refused("lambda", "Invoke", answer)
