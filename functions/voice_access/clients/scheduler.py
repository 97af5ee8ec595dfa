"""Amazon EventBridge Scheduler: the one module that speaks to it, for a call's backstop.

A backstop is a one-time schedule (``at(...)``, in UTC) that invokes a function once with a given event, even if
everything that should have ended the call died, and deletes itself once it has run. Its requests are REST-JSON
(``POST /schedules/<name>``, ``DELETE /schedules/<name>?groupName=...``), signed here (aws_signature.py) and sent
with urllib3 (aws_api.py), as the quota store's are. A fault that may pass is raised as AwsUnavailable, a schedule
that cannot be made (no such group, access denied, a role Scheduler may not pass) as AwsMisconfigured.
"""

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import urllib3

from voice_access.clients import aws_api
from voice_access.clients.aws_signature import CredentialsMissing
from voice_access.clients.deadline import POOL_CLASSES, Deadline

_TIMEOUT = urllib3.Timeout(connect=0.5, read=1.5)
# One connect, a retry, one answer: how long a caller lets a request take, by bounding its deadline.
BUDGET_SECONDS = 2.5
# Scheduler runs a target again this many times when the invocation itself fails (Lambda throttling it, say).
_RETRIES = 2
# A backstop's name: 1 to 64 of these (a schedule's name may hold "." too; its idempotency token may not).
_NAME = re.compile(r"[0-9A-Za-z_-]{1,64}")
_pools = urllib3.PoolManager(
    num_pools=1,
    maxsize=2,
    retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, backoff_factor=0.05),
)
_pools.pool_classes_by_scheme = POOL_CLASSES


def backstop_name(call_id: str, again_at: float | None = None) -> str:
    """The name of a call's backstop: "end-<call_id>", or for an id too long (or odd) for a schedule's name,
    "end-" and a digest of it. A backstop made again (the call could not be hung up), firing at ``again_at``, is
    named by that time too ("end-<call_id>-<epoch seconds>"), apart from the first and from each other."""
    key = call_id if again_at is None else f"{call_id}-{math.ceil(again_at)}"
    name = f"end-{key}"
    if _NAME.fullmatch(name):
        return name
    return "end-" + hashlib.sha256(key.encode()).hexdigest()[:60]


def create_backstop(
    endpoint: str,
    group: str,
    name: str,
    at_epoch: float,
    target_arn: str,
    role_arn: str,
    input: dict[str, Any],
    region: str,
    deadline: Deadline,
) -> None:
    """A one-time schedule ``name`` in ``group`` that invokes ``target_arn`` (as ``role_arn``) with ``input`` at
    ``at_epoch`` (rounded up to the second), then deletes itself, made by ``deadline``. One of that name already
    there is taken for this one (a backstop's name is its call's). AwsUnavailable, AwsMisconfigured."""
    at = datetime.fromtimestamp(math.ceil(at_epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request = {
        "GroupName": group,
        "ScheduleExpression": f"at({at})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": target_arn,
            "RoleArn": role_arn,
            "Input": json.dumps(input, separators=(",", ":")),
            "RetryPolicy": {"MaximumRetryAttempts": _RETRIES},
        },
        "ActionAfterCompletion": "DELETE",
        # Scheduler's idempotency token (botocore makes one up): the name's, so that a resent request is the same.
        "ClientToken": name,
    }
    answer = _send(endpoint, "POST", name, "", json.dumps(request, separators=(",", ":")).encode(), region, deadline)
    if answer.status == HTTPStatus.OK or answer.code == "ConflictException":
        return
    raise aws_api.refused("scheduler", "CreateSchedule", answer)


def delete_backstop(endpoint: str, group: str, name: str, region: str, deadline: Deadline) -> bool:
    """Delete the schedule ``name`` of ``group`` by ``deadline``: False when there is none (it ran, or was deleted
    already). AwsUnavailable, AwsMisconfigured."""
    answer = _send(endpoint, "DELETE", name, f"groupName={quote(group, safe='')}", b"", region, deadline)
    if answer.status == HTTPStatus.OK:
        return True
    if answer.status == HTTPStatus.NOT_FOUND and answer.code == "ResourceNotFoundException":
        return False
    raise aws_api.refused("scheduler", "DeleteSchedule", answer)


def _send(
    endpoint: str, method: str, name: str, query: str, body: bytes, region: str, deadline: Deadline
) -> aws_api.Answer:
    headers = {"Content-Type": "application/json"} if body else {}
    try:
        return aws_api.send(
            _pools,
            endpoint,
            method,
            f"/schedules/{quote(name, safe='')}",
            body,
            headers,
            query=query,
            service="scheduler",
            region=region,
            timeout=_TIMEOUT,
            deadline=deadline,
        )
    except CredentialsMissing as missing:
        raise aws_api.AwsMisconfigured("scheduler", str(missing)) from None
    except aws_api.Unanswered as failed:
        raise aws_api.unanswered("scheduler", failed) from None
