"""EventBridge Scheduler's one-time schedules as the local run gives them (local/scheduler.py): a small template's
schedule group made in moto, schedules created there with the SDK as a function creates them, fired at their
target (a function of the template, invoked asynchronously) once due, and deleted after when they say so."""

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.aws import REGION, scheduler_client
from local.lambda_service import State
from local.stand_ins import AsyncInvocations, start_async_invocations

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  BackstopFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: backstop.handler
      Timeout: 30
      EventInvokeConfig:
        MaximumRetryAttempts: 0
  Backstops:
    Type: AWS::Scheduler::ScheduleGroup
"""
BACKSTOP = """
def handler(event, context):
    with open(event["runs"], "a") as runs:
        runs.write(context.aws_request_id + "\\n")
"""
TARGET = f"arn:aws:lambda:{REGION}:123456789012:function:local-BackstopFunction"


class Now:
    """The scheduler's clock, moved on by the test."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def invocations(tmp_path: Path, secrets_manager_url: str, now: Now) -> Iterator[AsyncInvocations]:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "backstop.py").write_text(BACKSTOP)
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    with ExitStack() as running:
        yield start_async_invocations(
            running, tmp_path / "template.yaml", {}, secrets_manager_url, unique=True, now=now
        )


def create_schedule(
    secrets_manager_url: str, group: str, name: str, at: datetime, payload: dict[str, Any], delete: bool = True
) -> None:
    """A one-time schedule of ``payload`` to the backstop function, as a function creates it (UTC, no window)."""
    scheduler_client(secrets_manager_url).create_schedule(
        Name=name,
        GroupName=group,
        ScheduleExpression=f"at({at:%Y-%m-%dT%H:%M:%S})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": TARGET,
            "RoleArn": "arn:aws:iam::123456789012:role/local-BackstopSchedulerRole",
            "Input": json.dumps(payload),
            "RetryPolicy": {"MaximumRetryAttempts": 2},
        },
        **({"ActionAfterCompletion": "DELETE"} if delete else {}),
    )


def schedule_names(secrets_manager_url: str, group: str) -> list[str]:
    schedules = scheduler_client(secrets_manager_url).list_schedules(GroupName=group)["Schedules"]
    return [schedule["Name"] for schedule in schedules if schedule["GroupName"] == group]


def test_a_one_time_schedule_fires_once_at_its_target_and_is_deleted(
    invocations: AsyncInvocations, secrets_manager_url: str, tmp_path: Path
) -> None:
    # Given a one-time schedule due now, in the template's group, to delete after completion
    (group,) = invocations.schedule_groups.names
    runs = tmp_path / "runs"
    create_schedule(secrets_manager_url, group, "end-rtc_due", datetime.now(UTC), {"runs": str(runs)})

    # When the scheduler reads the schedules
    fired = invocations.scheduler.wait_for_fired("end-rtc_due")

    # Then its target ran once with its Input, and the schedule is gone, and stays fired once after more readings
    assert (fired.group, fired.target, fired.error, fired.deleted) == (group, TARGET, None, True)
    invocation = invocations.functions.wait_for("BackstopFunction")
    assert (invocation.request_id, invocation.state, invocation.event) == (
        fired.request_id,
        State.SUCCEEDED,
        {"runs": str(runs)},
    )
    assert schedule_names(secrets_manager_url, group) == []
    invocations.scheduler.wait_for_poll()
    invocations.scheduler.wait_for_poll()
    assert len(invocations.functions.invocations()) == 1
    assert runs.read_text().splitlines() == [invocation.request_id]


def test_a_schedule_fires_when_its_time_comes_and_not_before(
    invocations: AsyncInvocations, secrets_manager_url: str, now: Now, tmp_path: Path
) -> None:
    # Given a one-time schedule an hour ahead
    (group,) = invocations.schedule_groups.names
    create_schedule(
        secrets_manager_url, group, "end-rtc_later", now() + timedelta(hours=1), {"runs": str(tmp_path / "r")}
    )

    # When the scheduler reads the schedules before its time, and then at its time
    invocations.scheduler.wait_for_poll()
    before = (invocations.scheduler.fired(), schedule_names(secrets_manager_url, group))
    now.offset += timedelta(hours=1)
    fired = invocations.scheduler.wait_for_fired("end-rtc_later")

    # Then it had not fired before, and fired at its time
    assert before == ([], ["end-rtc_later"])
    assert invocations.functions.wait_for("BackstopFunction").request_id == fired.request_id


def test_a_schedule_kept_after_completion_fires_once(
    invocations: AsyncInvocations, secrets_manager_url: str, tmp_path: Path
) -> None:
    # Given a one-time schedule due now, without ActionAfterCompletion DELETE
    (group,) = invocations.schedule_groups.names
    create_schedule(secrets_manager_url, group, "kept", datetime.now(UTC), {"runs": str(tmp_path / "r")}, delete=False)

    # When the scheduler fires it, then reads the schedules twice more
    fired = invocations.scheduler.wait_for_fired("kept")
    invocations.scheduler.wait_for_poll()
    invocations.scheduler.wait_for_poll()

    # Then it ran once, and the schedule is still there
    assert fired.deleted is False
    assert [invocation.request_id for invocation in invocations.functions.invocations()] == [fired.request_id]
    assert schedule_names(secrets_manager_url, group) == ["kept"]


def test_a_schedule_whose_target_is_no_function_is_reported_and_deleted(
    invocations: AsyncInvocations, secrets_manager_url: str
) -> None:
    # Given a one-time schedule due now whose target names no function of the template
    (group,) = invocations.schedule_groups.names
    scheduler_client(secrets_manager_url).create_schedule(
        Name="astray",
        GroupName=group,
        ScheduleExpression=f"at({datetime.now(UTC):%Y-%m-%dT%H:%M:%S})",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": f"{TARGET}-gone", "RoleArn": "arn:aws:iam::123456789012:role/r", "Input": "{}"},
        ActionAfterCompletion="DELETE",
    )

    # When the scheduler fires it
    fired = invocations.scheduler.wait_for_fired("astray")

    # Then nothing ran, the failure is told, and the schedule is deleted as after its last try
    assert fired.request_id is None
    assert fired.error is not None
    assert fired.error.startswith("FunctionNotFound")
    assert invocations.functions.invocations() == []
    assert schedule_names(secrets_manager_url, group) == []
