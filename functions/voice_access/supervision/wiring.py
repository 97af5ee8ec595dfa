"""The parties a supervisor speaks to, made real for one invocation: its settings, the policy and the API key read
as the minting function reads them (config/settings.py, config/policy_file.py, clients/secrets.py), the call's
ledger in the quota store, OpenAI (the sideband, the hang-up), Lambda (the successor) and Scheduler (the backstop).
"""

import time
from collections.abc import Mapping
from typing import Any

from voice_access.clients import aws_lambda, openai_api, scheduler, sideband
from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Store
from voice_access.clients.secrets import Credentials, api_keys
from voice_access.config.policy_file import PolicyError, cached_policy
from voice_access.config.settings import Settings, SettingsError
from voice_access.config.supervisor_settings import SupervisorSettings
from voice_access.domain import ledger, quota, supervising
from voice_access.domain.call_order import Order
from voice_access.domain.errors import DependencyUnavailable, ServiceError, ServiceMisconfigured
from voice_access.domain.limits import Budget, Limits
from voice_access.domain.policy.model import Policy, Price
from voice_access.domain.pricing import Usage
from voice_access.domain.supervisor_parties import CallLedger, Clock
from voice_access.observability import count, logger

# For a context that does not say how long the invocation has (one made by hand): the template's timeout.
DEFAULT_INVOCATION_SECONDS = 900.0
# How long the keys may take to read, at the start of a watch of minutes (each read, when Secrets Manager is out of
# reach: they are read again, after these pauses, for as long as a sideband may take to re-attach).
KEYS_SECONDS = 10.0
KEYS_FIRST_PAUSE = 0.25
KEYS_MAX_PAUSE = 2.0
# When a call cannot be supervised for its policy: the reason its record gets.
POLICY_INVALID = "policy_invalid"


class CannotSupervise(Exception):
    """The call cannot be supervised (its settings, or the API key, cannot be read): raised, once logged and counted,
    so that Lambda's failure destination (and its alarm) has the invocation; the call's backstop remains."""


def run(order: Order, context: object, environment: Mapping[str, str]) -> str:
    """Carry ``order`` out for an invocation with ``context``: the reason the call ended, or how this invocation left
    it. CannotSupervise when the deployment is broken; CallNotHungUp when the call could not be hung up."""
    clock = SystemClock()
    remaining = _remaining_seconds(context)
    invocation = Deadline(clock.monotonic() + remaining)
    try:
        settings = SupervisorSettings.from_environment(environment)
    except SettingsError as broken:
        logger.error("cannot supervise the call: the deployment is misconfigured", problem=str(broken))
        count("ConfigurationErrors", reason="settings_invalid")
        raise CannotSupervise("the supervisor's settings cannot be read") from None
    service = settings.service
    keys = read_keys(service, settings.sideband_reattach_seconds, invocation, clock)
    if isinstance(keys, ServiceError):  # logged and counted where it was raised
        logger.error("cannot supervise the call without the api key", code=keys.code)
        if order.action == "backstop":
            # This backstop is the call's last: another, a minute on, before this one fails (a schedule needs no key)
            supervising.backstop_again(order, OpenAIUpstream(settings, "", order, context, invocation), clock)
        raise CannotSupervise("the api key cannot be read")
    policy: Policy | None
    try:
        policy = cached_policy(service.policy_path)
    except PolicyError as broken:
        logger.error("the policy cannot be read: ending the call", problem=str(broken))
        count("ConfigurationErrors", reason="policy_invalid")
        policy = None
    profile = policy.profiles.get(order.profile) if policy is not None else None
    limits = profile.limits if profile is not None else None
    brake = policy.money_brake if policy is not None else None
    store = quota.store_of(service)
    call = ledger.CallStart(
        call_id=order.call_id,
        kind=order.kind,
        profile=order.profile,
        user=order.user,
        model=order.model,
        started_at=order.started_at,
        deadline_at=order.deadline_at,
        lease=order.lease,
        slot=order.slot,
    )
    books: CallLedger = StoreLedger(store, call, limits, brake, invocation) if store is not None else NoLedger()
    upstream = OpenAIUpstream(settings, keys.api_key, order, context, invocation)
    if order.action == "backstop":
        ended = supervising.backstop(order, policy, books, upstream, clock)
        return supervising.BACKSTOP if ended else supervising.NOT_NEEDED
    if policy is None or profile is None:
        if policy is not None:
            logger.error("the call's profile is not in the policy: ending the call")
            count("ConfigurationErrors", reason="policy_invalid")
        supervising.end_now(order, policy, books, upstream, clock, POLICY_INVALID)
        return POLICY_INVALID
    times = supervising.timing(
        clock.monotonic(),
        remaining,
        order.deadline_at - clock.time(),
        settings.handover_after_seconds,
        settings.sideband_reattach_seconds,
        settings.meter_tick_seconds,
    )
    return supervising.supervise(order, policy, profile, books, upstream, clock, times)


def read_keys(
    service: Settings, within_seconds: float, invocation: Deadline, clock: Clock
) -> Credentials | ServiceError:
    """The keys, read again while Secrets Manager is out of reach, for up to ``within_seconds``; else why not."""
    until = clock.monotonic() + within_seconds
    pause = KEYS_FIRST_PAUSE
    while True:
        keys = api_keys.held_or_refusal(service, deadline=invocation.within(KEYS_SECONDS))
        if not isinstance(keys, DependencyUnavailable) or clock.monotonic() + pause >= until:
            return keys
        clock.sleep(pause)
        pause = min(pause * 2, KEYS_MAX_PAUSE)


def _remaining_seconds(context: object) -> float:
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    return remaining_ms() / 1000 if callable(remaining_ms) else DEFAULT_INVOCATION_SECONDS


def _own_name(context: object) -> str:
    """This function, for its successor: its ARN as invoked (with the version or alias it runs as), else its name."""
    return str(getattr(context, "invoked_function_arn", "") or getattr(context, "function_name", ""))


def _own_arn(context: object) -> str | None:
    """This function's ARN without a version or alias (what the backstop's role may invoke); None when the context
    does not give it."""
    parts = str(getattr(context, "invoked_function_arn", "") or "").split(":")
    if len(parts) < 7 or (parts[0], parts[2], parts[5]) != ("arn", "lambda", "function"):
        return None
    return ":".join(parts[:7])


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class StoreLedger:
    """domain/ledger.py for one call, each write within the invocation."""

    def __init__(
        self, store: Store, call: ledger.CallStart, limits: Limits | None, brake: Budget | None, invocation: Deadline
    ) -> None:
        self.store, self.call, self.limits, self.brake, self.invocation = store, call, limits, brake, invocation

    def attach(self, generation: int, holder: str) -> bool:
        return ledger.attach(self.store, self.call.call_id, generation, holder, self.invocation)

    def holding(self) -> ledger.Holding:
        return ledger.holding(self.store, self.call.call_id, self.invocation)

    def meter(self, event_key: str, usage: Usage, cost_micro_usd: int) -> ledger.Metered:
        return ledger.meter(
            self.store,
            self.call,
            event_key,
            usage,
            cost_micro_usd,
            self.limits,
            self.brake,
            time.time(),
            self.invocation,
        )

    def meter_seconds(self, cumulative_seconds: int, price: Price | None) -> ledger.Metered:
        return ledger.meter_seconds(
            self.store, self.call, cumulative_seconds, price, self.limits, self.brake, time.time(), self.invocation
        )

    def end(self, reason: str, ended_at: float) -> bool:
        return ledger.end(self.store, self.call, reason, ended_at, self.invocation)


class NoLedger:
    """A deployment without a quota store (no QUOTA_TABLE_NAME; the open refuses a profile with budgets or calls at
    once there): nothing is recorded or metered, and no record says who holds the call, so a predecessor takes its
    successor as attached once it has started it."""

    def attach(self, generation: int, holder: str) -> bool:
        return True

    def holding(self) -> None:
        return None

    def meter(self, event_key: str, usage: Usage, cost_micro_usd: int) -> ledger.Metered:
        return ledger.Metered(True, None, cost_micro_usd)

    def meter_seconds(self, cumulative_seconds: int, price: Price | None) -> ledger.Metered:
        return ledger.Metered(False, None, 0)

    def end(self, reason: str, ended_at: float) -> bool:
        return True


class OpenAIUpstream:
    """The call at OpenAI (its sideband and hang-up, with the API key), the successor through Lambda's Invoke API, and
    the backstop in Scheduler; each within the invocation."""

    def __init__(
        self, settings: SupervisorSettings, api_key: str, order: Order, context: object, invocation: Deadline
    ) -> None:
        self.settings, self.api_key, self.order = settings, api_key, order
        self.own_name, self.own_arn = _own_name(context), _own_arn(context)
        self.invocation = invocation

    def attach(self) -> sideband.Sideband:
        return sideband.attach(self.settings.service.upstream_url, self.order.kind, self.order.call_id, self.api_key)

    def hang_up(self) -> bool:
        service, order = self.settings.service, self.order
        path = "/v1/realtime/calls" if order.kind == "call" else "/v1/live/sessions"
        connect, read = self.settings.upstream_connect_timeout_seconds, self.settings.upstream_read_timeout_seconds
        return openai_api.hang_up(
            service.upstream(f"{path}/{order.call_id}/hangup"),
            self.api_key,
            self.invocation.within(connect + read + 1),
            key_source=service.api_key_source,
            connect_timeout=connect,
            read_timeout=read,
            safety_identifier=order.user,
        )

    def start_successor(self, event: dict[str, Any]) -> None:
        service = self.settings.service
        aws_lambda.invoke_async(
            service.lambda_endpoint,
            self.own_name,
            event,
            service.aws_region,
            self.invocation.within(aws_lambda.BUDGET_SECONDS),
        )

    def forget_backstop(self) -> None:
        service = self.settings.service
        if service.backstop_schedule_group is None:
            return
        scheduler.delete_backstop(
            service.scheduler_endpoint,
            service.backstop_schedule_group,
            scheduler.backstop_name(self.order.call_id),
            service.aws_region,
            self.invocation.within(scheduler.BUDGET_SECONDS),
        )

    def make_backstop(self, at_epoch: float, event: dict[str, Any]) -> None:
        service = self.settings.service
        group, role, target = service.backstop_schedule_group, service.backstop_role_arn, self.own_arn
        if group is None or role is None or target is None:
            logger.error(
                "cannot make a backstop: BACKSTOP_SCHEDULE_GROUP, BACKSTOP_ROLE_ARN or the function's ARN is missing"
            )
            count("ConfigurationErrors", reason="settings_invalid")
            raise ServiceMisconfigured("This service cannot schedule a backstop.", code="settings_invalid")
        scheduler.create_backstop(
            service.scheduler_endpoint,
            group,
            scheduler.backstop_name(self.order.call_id, at_epoch),
            at_epoch,
            target,
            role,
            event,
            service.aws_region,
            self.invocation.within(scheduler.BUDGET_SECONDS),
        )
