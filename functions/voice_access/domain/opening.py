"""What opening a session for a caller shares, whichever way it is opened (a GPT-Live session, a Realtime call): the
limits checked around OpenAI's open, and the call handed to its supervisor once it is open.

Before OpenAI is asked: the caller's budgets and the money brake (a spent one refuses, naming it and when it frees),
a unit of the caller's windows and the spend brake as a mint takes one, and a slot of the caller's calls open at
once. A failure of OpenAI's gives them back as a mint's would (the slot always: no call holds it).

Once OpenAI has opened it, three things start side by side: the call's record in the quota store, its supervisor
(an asynchronous invocation of the supervisor function, which attaches to the call's sideband for as long as it
lives) and its backstop (a one-time schedule that ends the call shortly after its deadline, even if every supervisor
died). If any of them fails, the call is not left running unsupervised: it is hung up at OpenAI, what the open took
is given back, and the caller gets a 503 saying so (fail closed), logged and counted (SupervisionFailures).
"""

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote

from voice_access.clients import aws_lambda, scheduler
from voice_access.clients.deadline import Deadline
from voice_access.clients.openai_api import hang_up
from voice_access.clients.quota_store import Store, StoreMisconfigured, StoreUnavailable
from voice_access.clients.secrets import api_keys
from voice_access.domain import ledger, quota
from voice_access.domain.errors import (
    NotSupervised,
    ServiceError,
    ServiceMisconfigured,
    UpstreamKeyRejected,
    UpstreamRejected,
)
from voice_access.domain.ledger import CallStart
from voice_access.domain.limits import Limits, Window
from voice_access.domain.policy.model import Policy, Profile
from voice_access.domain.policy.rules import policys_refusal
from voice_access.observability import count, log_opened, logger

type Kind = Literal["call", "live_session"]

# A slot of the caller's calls open at once frees itself this long after the call's deadline, if its end is lost.
SLOT_GRACE_SECONDS = 120
# The backstop ends a call this long after its deadline: the supervisor ends it at the deadline, if it is alive.
BACKSTOP_GRACE_SECONDS = 30
# Undoing an open that could not be supervised happens perhaps at the request's deadline: in the margin kept to
# answer (deadline.py's ANSWER_MARGIN_SECONDS), and within a bound of its own.
_UNDO_SECONDS = 0.75
_UNDO_BUDGET_SECONDS = 2.0
# What a refusal of a full window calls each kind (one, many), and the name of its id in its "session opened" line.
_WORDS: dict[str, tuple[str, str]] = {
    "call": ("call", "calls"),
    "live_session": ("GPT-Live session", "GPT-Live sessions"),
}
_ID_FIELD = {"call": "call_id", "live_session": "session_id"}
# OpenAI's hang-up of each kind, by its id.
_HANG_UP_PATHS = {"call": "/v1/realtime/calls/{}/hangup", "live_session": "/v1/live/sessions/{}/hangup"}


if TYPE_CHECKING:  # a Protocol class costs about 80 us of a cold start to define, for type checking only

    class Opened(Protocol):
        """What OpenAI answered an open with: how long it took."""

        @property
        def latency_ms(self) -> float: ...

    class Deployment(quota.Deployment, Protocol):
        """What a deployment's settings (config/settings.py) say of the quota store, OpenAI, the supervisor and the
        backstops; a function that opens calls has every supervision setting (``unsupervised()`` is None)."""

        @property
        def api_key_source(self) -> str: ...
        @property
        def supervisor_function_name(self) -> str | None: ...
        @property
        def supervisor_function_arn(self) -> str | None: ...
        @property
        def backstop_schedule_group(self) -> str | None: ...
        @property
        def backstop_role_arn(self) -> str | None: ...
        @property
        def lambda_endpoint(self) -> str: ...
        @property
        def scheduler_endpoint(self) -> str: ...
        def upstream(self, path: str) -> str: ...


class Supervised[T]:
    """What OpenAI opened, the reservation of the caller's windows it took (None: none apply), and the call as its
    supervisor was told of it."""

    __slots__ = ("call", "opened", "reservation", "waited_ms")

    def __init__(self, opened: T, reservation: quota.Reservation | None, call: CallStart, waited_ms: float) -> None:
        self.opened = opened
        self.reservation = reservation
        self.call = call
        self.waited_ms = waited_ms  # starting the supervision: its record, its supervisor and its backstop


def open_supervised[T: "Opened"](
    kind: Kind,
    profile_name: str,
    profile: Profile,
    user: str,
    api_key: str,
    session: dict[str, Any],
    *,
    service: "Deployment",
    policy: Policy,
    brake: Window | None,
    timeouts: tuple[float, float],
    deadline: Deadline,
    open_upstream: Callable[[], T],
    id_of: Callable[[T], str],
) -> Supervised[T]:
    """``open_upstream()`` (the call or Live session ``session`` describes, for ``user``: its safety identifier),
    within the profile's limits (and the spend brake on mints, ``brake``), and then supervised and logged; ``id_of``
    its id. A full window's refusal names what is counted (a call, a GPT-Live session). Its failure is raised, what
    it took given back where a mint's would be, a refusal of a field the policy set made the operator's, and a key
    OpenAI refused forgotten. NotSupervised (a 503) when it was opened but could not be supervised, and so was hung
    up (with ``api_key``, and OpenAI's ``timeouts``: connect, read)."""
    limits, money_brake = profile.limits, policy.money_brake
    store = quota.store_of(service)
    if store is None and (
        money_brake is not None or (limits is not None and (limits.budgets or limits.concurrent_calls))
    ):
        raise _no_store()
    started_at = time.time()
    if store is not None:
        _store_step(
            profile_name,
            limits,
            "budget check",
            lambda: ledger.check_budgets(store, profile_name, limits, money_brake, user, started_at, deadline),
        )
    windows = limits if limits is not None and limits.per_caller else None
    reservation = quota.reserve(store, profile_name, windows, brake, user, deadline=deadline, words=_WORDS[kind])
    call = CallStart(
        call_id="",
        kind=kind,
        profile=profile_name,
        user=user,
        model=str(session.get("model") or ""),
        started_at=started_at,
        deadline_at=started_at + profile.call_seconds,
    )
    try:
        call = _holding_a_slot(store, call, limits, deadline)
    except BaseException:
        if reservation is not None:
            quota.release(reservation)
        raise
    try:
        opened = open_upstream()
    except BaseException as raised:
        _free_slot(store, call, _undo_deadline(deadline))
        failure = raised
        if isinstance(raised, UpstreamKeyRejected):
            api_keys.forget()  # a rotated key is read again at once, not after the cache's TTL
        elif isinstance(raised, UpstreamRejected) and profile.set_by_policy(raised.param, session):
            failure = policys_refusal(raised)  # the operator's to fix: given back, as any failure of ours
        if reservation is not None and quota.gives_back(failure):
            quota.release(reservation)
        if failure is raised:
            raise
        raise failure from None
    call = CallStart(**{**_fields(call), "call_id": id_of(opened)})
    started = time.perf_counter()
    _supervise(store, call, session, api_key, reservation, service, timeouts, deadline)
    supervised = Supervised(opened, reservation, call, (time.perf_counter() - started) * 1000)
    log_opened(
        kind,
        profile_name,
        opened.latency_ms,
        model=session.get("model"),
        **{_ID_FIELD[kind]: call.call_id},
        supervision_ms=round(supervised.waited_ms, 2),
        **({"quota_ms": round(reservation.waited_ms, 2)} if reservation else {}),
    )
    return supervised


def supervise_event(call: CallStart, session: dict[str, Any], generation: int = 0) -> dict[str, Any]:
    """The supervisor's event for ``call``: attach to it (as supervisor ``generation``) and hold it to ``session``,
    the session it was opened with."""
    return {"action": "supervise", "call": call_event(call), "session": session, "generation": generation}


def backstop_event(call: CallStart) -> dict[str, Any]:
    """The backstop's event for ``call``: end it, if it has not ended."""
    return {"action": "backstop", "call": call_event(call)}


def call_event(call: CallStart) -> dict[str, Any]:
    """A call as the supervisor's events carry it."""
    return {
        "id": call.call_id,
        "kind": call.kind,
        "profile": call.profile,
        "user": call.user,
        "model": call.model,
        "started_at": call.started_at,
        "deadline_at": call.deadline_at,
        "lease": call.lease,
        "slot": call.slot,
    }


def _fields(call: CallStart) -> dict[str, Any]:
    return {name: getattr(call, name) for name in CallStart.__annotations__}


def _holding_a_slot(store: Store | None, call: CallStart, limits: Limits | None, deadline: Deadline) -> CallStart:
    """``call`` holding a slot of the caller's calls open at once, under a new lease (as it is when the profile limits
    none)."""
    if store is None or limits is None or limits.concurrent_calls is None:
        return call
    lease = os.urandom(16).hex()
    slot = _store_step(
        call.profile,
        limits,
        "slot",
        lambda: ledger.take_slot(
            store, call.profile, limits, call.user, lease, call.deadline_at + SLOT_GRACE_SECONDS, deadline
        ),
    )
    if slot is None:
        return call
    return CallStart(**{**_fields(call), "lease": lease, "slot": slot})


def _store_step[R](profile_name: str, limits: Limits | None, what: str, step: Callable[[], R]) -> R | None:
    """``step()`` of the quota store; when the store is out of reach and the profile fails open, None (logged and
    counted, as a mint's quota check); a store that cannot be used, logged and counted as a mint's."""
    try:
        return step()
    except StoreUnavailable:
        if limits is not None and limits.on_store_failure == "allow":
            logger.warning(f"quota store unavailable: opening without a {what}", profile=profile_name)
            count("QuotaFailOpen", profile=profile_name)
            return None
        raise
    except StoreMisconfigured as failure:
        raise _misconfigured("quota_store_misconfigured", failure.problem) from None


def _supervise(
    store: Store | None,
    call: CallStart,
    session: dict[str, Any],
    api_key: str,
    reservation: quota.Reservation | None,
    service: "Deployment",
    timeouts: tuple[float, float],
    deadline: Deadline,
) -> None:
    """Start ``call``'s record, its supervisor and its backstop side by side; if any fails, hang the call up and give
    back what its open took, and raise NotSupervised (a bug's exception, as it is)."""
    region = service.aws_region
    steps: dict[str, Callable[[], object]] = {
        "supervisor": lambda: aws_lambda.invoke_async(
            service.lambda_endpoint,
            service.supervisor_function_name or "",
            supervise_event(call, session),
            region,
            deadline.within(aws_lambda.BUDGET_SECONDS),
        ),
        "backstop": lambda: scheduler.create_backstop(
            service.scheduler_endpoint,
            service.backstop_schedule_group or "",
            scheduler.backstop_name(call.call_id),
            call.deadline_at + BACKSTOP_GRACE_SECONDS,
            service.supervisor_function_arn or "",
            service.backstop_role_arn or "",
            backstop_event(call),
            region,
            deadline.within(scheduler.BUDGET_SECONDS),
        ),
    }
    if store is not None:
        steps["record"] = lambda: ledger.record_start(store, call, deadline)
    failures = {step: outcome for step, outcome in _side_by_side(steps).items() if isinstance(outcome, Exception)}
    if not failures:
        return
    for step, failure in failures.items():
        reason = failure.code if isinstance(failure, ServiceError) else type(failure).__name__
        logger.error(
            "call not supervised: hanging it up",
            step=step,
            reason=reason,
            kind=call.kind,
            profile=call.profile,
            call_id=call.call_id,
        )
        count("SupervisionFailures", step=step)
    undo = _undo_deadline(deadline)
    undoing: dict[str, Callable[[], object]] = {
        "hang_up": lambda: _hang_up(call, api_key, service, timeouts, undo),
        "give_back": lambda: quota.release(reservation) if reservation is not None else None,
    }
    if "backstop" not in failures:
        undoing["backstop"] = lambda: scheduler.delete_backstop(
            service.scheduler_endpoint,
            service.backstop_schedule_group or "",
            scheduler.backstop_name(call.call_id),
            region,
            undo,
        )
    if store is not None and "record" not in failures:
        undoing["record"] = lambda: ledger.end(store, call, "not_supervised", time.time(), undo)  # frees its slot
    else:
        undoing["slot"] = lambda: _free_slot(store, call, undo)
    undone = _side_by_side(undoing)
    if isinstance(undone["hang_up"], Exception) or undone["hang_up"] is None:
        logger.error(
            "could not hang up a call that is not supervised",
            kind=call.kind,
            call_id=call.call_id,
            backstopped="backstop" not in failures,
        )
        count("SupervisionFailures", step="hang_up")
    for step in ("backstop", "record"):
        if isinstance(undone.get(step), Exception):
            logger.warning("could not undo a step of an unsupervised call", step=step, call_id=call.call_id)
    bug = next((failure for failure in failures.values() if not isinstance(failure, ServiceError)), None)
    if bug is not None:
        raise bug
    raise NotSupervised(
        f"OpenAI opened the {'call' if call.kind == 'call' else 'GPT-Live session'}, but this service could not "
        "supervise it, so it ended it at once. Retry in a moment.",
        code="call_not_supervised",
        retry_after_seconds=2,
    )


def _hang_up(
    call: CallStart, api_key: str, service: "Deployment", timeouts: tuple[float, float], deadline: Deadline
) -> bool | None:
    """OpenAI's hang-up of ``call``: whether it was live; None when OpenAI could not be asked (logged)."""
    try:
        return hang_up(
            service.upstream(_HANG_UP_PATHS[call.kind].format(quote(call.call_id, safe=""))),
            api_key,
            deadline,
            key_source=service.api_key_source,
            connect_timeout=timeouts[0],
            read_timeout=timeouts[1],
            safety_identifier=call.user,
        )
    except ServiceError:
        return None


def _free_slot(store: Store | None, call: CallStart, deadline: Deadline) -> None:
    """Free the call's slot, if it holds one; a failure is logged and counted (the slot frees itself at its expiry),
    never raised."""
    if store is None or call.slot is None or call.lease is None:
        return
    try:
        ledger.release_slot(store, call.profile, call.user, call.slot, call.lease, deadline)
    except ServiceError:
        logger.warning("could not free a call's slot: it frees itself at its expiry", profile=call.profile)
        count("QuotaRefundFailures")


def _undo_deadline(deadline: Deadline) -> Deadline:
    """The request's deadline, or a moment past it within the margin kept to answer, bounded."""
    now = time.monotonic()
    return Deadline(min(max(deadline.at, now + _UNDO_SECONDS), now + _UNDO_BUDGET_SECONDS))


def _side_by_side(steps: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Run the steps at once (the first in this thread); what each returned or raised, by name."""
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            outcomes[name] = steps[name]()
        except Exception as exc:
            outcomes[name] = exc

    names = list(steps)
    others = [threading.Thread(target=run, args=(name,), daemon=True) for name in names[1:]]
    for thread in others:
        thread.start()
    run(names[0])
    for thread in others:
        thread.join()  # each keeps to its deadline
    return outcomes


def _no_store() -> ServiceMisconfigured:
    return _misconfigured(
        "quota_store_missing",
        "the policy sets budgets, concurrent_calls or a money_brake but the function has no QUOTA_TABLE_NAME",
    )


def _misconfigured(reason: str, problem: str) -> ServiceMisconfigured:
    logger.error("refusing to open: the quota store cannot be used", reason=reason, problem=problem)
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service cannot use its quota store, so it opens nothing until an operator fixes it (see the service's "
        "logs).",
        code=reason,
    )
