"""EventBridge Scheduler's one-time schedules, locally: the template's schedule groups in moto, which stores the
schedules a function creates there (through AWS_ENDPOINT_URL_SCHEDULER), and a poller that fires them.

The groups are made from their own Properties (Name, Tags). The poller reads the enabled schedules of those groups
from moto every ``interval`` seconds, and fires each `at(yyyy-mm-ddThh:mm:ss)` schedule once its time has come in
its ScheduleExpressionTimezone (UTC by default): its target, a Lambda function's ARN, is invoked asynchronously with
the target's Input (local/lambda_service.py), as Scheduler invokes a Lambda target; then, with ActionAfterCompletion
DELETE, the schedule is deleted, as Scheduler deletes it. A schedule is fired once. rate() and cron() schedules do
not fire here (nothing creates them). A target that cannot be invoked is reported on stderr, not retried.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botocore.exceptions import BotoCoreError, ClientError

from local.aws import REGION, scheduler_client
from local.cloudformation import TemplateError
from local.created import Created, Resource, declared, local_name, refused_by_moto
from local.running import Running

_GROUP = "AWS::Scheduler::ScheduleGroup"
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
# Seconds between two reads of the schedules.
POLL_SECONDS = 1.0


class ScheduleGroup(Resource):
    def attributes(self) -> dict[str, str]:
        """Its Ref (its name), Arn and Name, for local.cloudformation.Resolver's ``physical``."""
        return {"Ref": self.name, "Arn": self.arn, "Name": self.name}


class ScheduleGroups(Created[ScheduleGroup]):
    """The template's schedule groups in moto at ``endpoint_url``."""

    kind = "schedule group"

    @property
    def groups(self) -> tuple[ScheduleGroup, ...]:
        return self.resources

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(group.name for group in self.groups)


def create_from_template(
    template_path: Path | str,
    overrides: Mapping[str, str],
    endpoint_url: str,
    region: str = REGION,
    *,
    unique: bool = False,
) -> ScheduleGroups:
    """Create every schedule group of the template present under ``overrides`` in moto at ``endpoint_url``, named as
    its Name says, else "local-<logical id>"; ``unique``: with random characters appended (for each test on one moto
    server)."""
    resources = declared(template_path, overrides, region, _GROUP)
    client = scheduler_client(endpoint_url, region)
    created: list[ScheduleGroup] = []
    for logical_id, properties in resources:
        if unknown := sorted(set(properties) - {"Name", "Tags"}):
            raise TemplateError(f"{logical_id}: the local Scheduler cannot honour {', '.join(unknown)} (Name, Tags)")
        name = local_name(properties.get("Name"), logical_id, unique=unique)
        tags = [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in properties.get("Tags") or []]
        with refused_by_moto(logical_id, "Scheduler", "group"):
            arn = str(client.create_schedule_group(Name=name, Tags=tags)["ScheduleGroupArn"])
        created.append(ScheduleGroup(logical_id, name, arn))
    return ScheduleGroups(endpoint_url, tuple(created))


@dataclass(frozen=True)
class Fired:
    """A schedule the poller fired: its target invoked (``request_id``) or not (``error``), and deleted or kept."""

    group: str
    name: str
    target: str
    request_id: str | None
    error: str | None
    deleted: bool


class SchedulePoller(Running):
    """Fires the one-time schedules of ``groups`` (in moto at ``endpoint_url``) when due, with ``invoke`` (a
    function's name or ARN and the payload -> the request id), reading them every ``interval`` seconds;
    ``now``: the clock schedules are due by."""

    def __init__(
        self,
        endpoint_url: str,
        groups: Sequence[str],
        invoke: Callable[[str, bytes], str],
        *,
        region: str = REGION,
        interval: float = POLL_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.groups = tuple(groups)
        self._endpoint_url = endpoint_url
        self._invoke = invoke
        self._region = region
        self._interval = interval
        self._now = now
        self._client: Any = None
        self._fired: list[Fired] = []
        self._done: set[tuple[str, str]] = set()  # (ARN, last modified) of each schedule fired and kept
        self._told: set[str] = set()  # the schedules said on stderr not to fire here
        self._polls_started = self._polls_done = 0
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._client = scheduler_client(self._endpoint_url, self._region)
        self._thread = threading.Thread(target=self._loop, name="local-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def poke(self) -> None:
        """Read the schedules now rather than at the end of the interval."""
        self._wake.set()

    def fired(self) -> list[Fired]:
        """The schedules fired so far, oldest first."""
        with self._changed:
            return list(self._fired)

    def wait_for_fired(self, name: str, timeout: float = 60.0) -> Fired:
        """The schedule ``name`` once fired (and deleted, if it asks to be); TimeoutError if not in ``timeout`` s."""
        with self._changed:
            if not self._changed.wait_for(lambda: any(fired.name == name for fired in self._fired), timeout):
                raise TimeoutError(f"schedule {name} did not fire in {timeout} s")
            return next(fired for fired in self._fired if fired.name == name)

    def wait_for_poll(self, timeout: float = 60.0) -> None:
        """Return once a whole reading of the schedules that starts after this call is done (with ``poke``, at
        once); TimeoutError if not in ``timeout`` seconds."""
        with self._changed:
            wanted = self._polls_started + 1
        self.poke()
        with self._changed:
            if not self._changed.wait_for(lambda: self._polls_done >= wanted, timeout):
                raise TimeoutError(f"the schedules were not read in {timeout} s")

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._changed:
                self._polls_started += 1
            self._wake.clear()
            try:
                self._poll()
            except (BotoCoreError, ClientError) as error:  # moto going away with the run, or a fault of its own
                if not self._stopping.is_set():
                    print(f"local Scheduler: could not read the schedules: {error}", file=sys.stderr)
            with self._changed:
                self._polls_done += 1
                self._changed.notify_all()
            self._wake.wait(self._interval)

    def _poll(self) -> None:
        for group in self.groups:
            pages = self._client.get_paginator("list_schedules").paginate(GroupName=group)
            names = [
                summary["Name"]
                for page in pages
                for summary in page.get("Schedules", [])
                if summary.get("GroupName") == group and summary.get("State") == "ENABLED"
            ]
            for name in names:
                if self._stopping.is_set():
                    return
                try:
                    schedule = self._client.get_schedule(GroupName=group, Name=name)
                except self._client.exceptions.ResourceNotFoundException:
                    continue  # deleted since the listing
                due = self._due(schedule)
                if due is not None and due <= self._now():
                    self._fire(group, schedule)

    def _due(self, schedule: Mapping[str, Any]) -> datetime | None:
        """When a one-time schedule is due; None for any other schedule (said once on stderr)."""
        expression = str(schedule.get("ScheduleExpression", ""))
        found = _AT.fullmatch(expression)
        zone_name = str(schedule.get("ScheduleExpressionTimezone") or "UTC")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            found = None
        if found is None:
            if schedule["Arn"] not in self._told:
                self._told.add(schedule["Arn"])
                said = f"{expression} in {zone_name}"
                print(f"local Scheduler: {schedule['Name']} ({said}) does not fire here: only at(...)", file=sys.stderr)
            return None
        return datetime.fromisoformat(found[1]).replace(tzinfo=zone)

    def _fire(self, group: str, schedule: Mapping[str, Any]) -> None:
        key = (str(schedule["Arn"]), str(schedule.get("LastModificationDate")))
        if key in self._done:
            return
        target = schedule.get("Target") or {}
        arn, payload = str(target.get("Arn", "")), str(target.get("Input") or "{}")
        request_id: str | None = None
        error: str | None = None
        try:
            request_id = self._invoke(arn, payload.encode())
        except (LookupError, ValueError, RuntimeError) as refused:
            error = f"{type(refused).__name__}: {refused}"
            print(f"local Scheduler: {schedule['Name']} could not invoke {arn}: {error}", file=sys.stderr)
        self._done.add(key)
        deleted = schedule.get("ActionAfterCompletion") == "DELETE"
        if deleted:
            with contextlib.suppress(self._client.exceptions.ResourceNotFoundException):  # its creator deleted it
                self._client.delete_schedule(GroupName=group, Name=schedule["Name"])
        with self._changed:
            self._fired.append(Fired(group, str(schedule["Name"]), arn, request_id, error, deleted))
            self._changed.notify_all()
