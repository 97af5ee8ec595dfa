"""Calls the service opened, in the quota store: their records, their slots (calls open at once) and their metering
into the caller's budgets and the money brake.

Every write is one conditional request on items DynamoDB writes one at a time (clients/quota_store.py), so two
writers (two supervisors of one call over a hand-over, two opens by one caller) never count twice nor pass a limit,
and nothing is read first to decide a write. Items (key ``pk``):

- ``call#<call id>``: the call's record: ``user`` (the caller's safety identifier), ``profile``, ``kind`` ("call" or
  "live_session"), ``model``, ``started_at`` and ``deadline_at`` (epoch seconds), ``generation`` and ``holder`` (the
  supervisor that holds it: each successor's generation is one more; its holder token tells it from another
  supervisor started for the same generation), ``ended_at`` and ``end_reason`` once ended, and what was metered:
  ``tokens_in``, ``tokens_out``, ``cost_micro_usd``, ``seconds`` (a Realtime call's seconds counted, by its elapsed
  time) or ``billed_seconds`` (a Live session's, as OpenAI bills them). It expires (TTL ``expires_at``) 35 days after
  the start. Whichever write comes first (the open's record, the supervisor's attach or a meter) makes it, and the
  start's fields are set only where absent, so their order does not matter.
- ``meter#<call id>#<event key>``: one per metered event (a response's usage, a transcription's): the write that makes
  it is the write that counts the event, so an event is counted once however often and by however many supervisors
  it is metered. It expires a day after the call's deadline.
- ``budget#<profile>#<unit>#<seconds>#<index>#<user>``: a budget's counter ``used`` (micro-dollars or seconds of
  calls) for one caller in one window (index floor(now / seconds): fixed windows aligned to the epoch, as a quota's);
  it expires when its window ends. ``brake$#<seconds>#<index>``: the money brake's, every caller's cost together.
- ``open#<profile>#<user>``: the caller's calls open at once with the profile: slot k is held by the lease
  ``l<k>`` until the expiry ``s<k>`` (epoch seconds), for k below the profile's concurrent_calls. A slot whose
  expiry has passed is free, by the condition of the write that takes it (not by DynamoDB's TTL, which deletes late).

Metering adds whatever was used (usage is a fact, never refused) and then reads the counters: a spent budget ends the
call (the supervisor's part), and refuses the caller's next open (``check_budgets``).
"""

import contextlib
import hashlib
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from voice_access.clients import quota_store
from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Cancelled, Refused, Store, StoreMisconfigured, StoreUnavailable
from voice_access.domain.errors import RateLimited
from voice_access.domain.limits import DAY_SECONDS, Budget, Limits
from voice_access.domain.policy.model import Price
from voice_access.domain.policy.records import Record
from voice_access.domain.pricing import Usage, cost_of_seconds
from voice_access.domain.quota import _human as human_wait
from voice_access.observability import count, logger

# How long a call's record stays after its start: a month's figures, and a few days to read them.
RECORD_DAYS = 35
# An event key or call id longer than this (or not printable ASCII) is keyed by its SHA-256 instead.
_MAX_KEY_PART = 200
# How many times meter_seconds writes when other writers keep moving the stored count first: one per supervisor
# that may write at once (two over a hand-over), and room to spare.
_SECONDS_TRIES = 5
# What this process last counted of each call's cumulative seconds: where meter_seconds starts (a guess: the write's
# condition checks it, and a refusal gives the stored count).
_counted_seconds: dict[tuple[str, str], int] = {}
_REMEMBERED_CALLS = 64
_BUDGET = "used"  # a budget's (and the brake's) counter
_COUNTS = ("tokens_in", "tokens_out", "cost_micro_usd", "seconds", "billed_seconds")


class CallStart(Record):
    """A call the service opened, as its supervisor and its backstop are told of it."""

    call_id: str
    kind: str  # "call" | "live_session"
    profile: str
    user: str  # the caller's safety identifier
    model: str
    started_at: float  # epoch seconds
    deadline_at: float  # when it must end
    lease: str | None = None  # the slot's lease, when the profile limits calls at once
    slot: int | None = None


class Metered(Record):
    """What a meter did: ``counted`` False when nothing was added (the event was counted already, or the seconds were
    no more than those counted); ``spent``, a budget (or the money brake) used up as the counters stand after it,
    described ("the profile's budget of $1.00 per day"); what this write added."""

    counted: bool
    spent: str | None
    cost_micro_usd: int
    seconds: int = 0


class Standing(Record):
    """One of a caller's limits as it stands: a budget's ``used`` of its ``limit`` (in its unit's whole counts: micro-
    dollars, seconds) until ``resets_at``; or, with ``budget`` None, its calls open of those allowed at once."""

    budget: Budget | None
    limit: int
    used: int
    resets_at: int | None  # epoch seconds; None for calls open

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class BudgetSpent(RateLimited):
    """A caller's budget (or every caller's money brake: code "spend_brake") is used up until ``resets_at``."""

    def __init__(self, message: str, *, code: str, budget: Budget, used: int, resets_at: int, now: float) -> None:
        wait = max(1, math.ceil(resets_at - now))
        super().__init__(
            message, code=code, retry_after_seconds=wait, limit=budget.limit, remaining=max(0, budget.limit - used)
        )
        self.budget, self.resets_at = budget, resets_at


class TooManyCalls(RateLimited):
    """A caller has as many calls open with a profile as it allows at once. ``retry_after_seconds``: when the soonest
    of them surely frees (its slot's expiry, even if its end is lost); ending one frees one at once."""


def window_at(seconds: int, now: float) -> tuple[int, int]:
    """The epoch-aligned window of ``seconds`` that ``now`` is in: its index, floor(now / seconds), and when it ends
    (epoch seconds), as the quota's windows (domain/quota.py)."""
    index = int(now // seconds)
    return index, (index + 1) * seconds


def call_key(call_id: str) -> str:
    return f"call#{_key_part(call_id)}"


def marker_key(call_id: str, event_key: str) -> str:
    return f"meter#{_key_part(call_id)}#{_key_part(event_key)}"


def budget_key(profile: str, budget: Budget, index: int, user: str) -> str:
    return f"budget#{profile}#{budget.unit.name}#{budget.seconds}#{index}#{user}"


def brake_key(brake: Budget, index: int) -> str:
    return f"brake$#{brake.seconds}#{index}"


def slots_key(profile: str, user: str) -> str:
    return f"open#{profile}#{user}"


def take_slot(
    store: Store, profile_name: str, limits: Limits | None, user: str, lease: str, expires_at: float, deadline: Deadline
) -> int | None:
    """A slot of the caller's calls open at once taken for ``lease`` until ``expires_at`` (a free one, or one whose
    expiry has passed); None when the profile does not limit them. TooManyCalls when all are held.

    One UpdateItem when slot 0 is free; when it is not, its refusal gives the slots as they stand, and one more takes
    a free one (again, each time another caller's take came first)."""
    allowed = None if limits is None else limits.concurrent_calls
    if allowed is None:
        return None
    now = time.time()
    if not now < expires_at <= now + DAY_SECONDS:
        raise ValueError("a slot expires within a day")  # the item's TTL, a day after the latest, relies on it
    key = slots_key(profile_name, user)
    held: dict[str, Any] | None = None
    for _ in range(allowed + 1):
        slot = 0 if held is None else _free_slot(held, allowed, lease, now)
        if slot is None:
            break
        if held is not None and _holds(held, slot, lease, now):
            return slot  # a take of this lease applied before, its answer lost
        update = _Update()
        expiry = update.name(f"s{slot}")
        update.set(f"s{slot}", _number(math.ceil(expires_at)))  # whole seconds, as counts are read
        update.set(f"l{slot}", _text(lease))
        update.set("expires_at", _number(math.ceil(expires_at) + DAY_SECONDS))
        condition = f"attribute_not_exists({expiry}) OR {expiry} <= {update.value(_number(now))}"
        try:
            quota_store.update(store, update.request(key, condition, all_old=True), _within(deadline))
            return slot
        except Refused as refused:
            held = refused.item
    raise _too_many(profile_name, allowed, held or {}, now)


def release_slot(store: Store, profile_name: str, user: str, slot: int, lease: str, deadline: Deadline) -> None:
    """Free ``slot`` if ``lease`` still holds it (not if it expired and another call took it). One UpdateItem."""
    update = _Update()
    update.remove(f"s{slot}")
    update.remove(f"l{slot}")
    condition = f"{update.name(f'l{slot}')} = {update.value(_text(lease))}"
    with contextlib.suppress(Refused):  # freed already, or taken over since it expired
        quota_store.update(store, update.request(slots_key(profile_name, user), condition), _within(deadline))


def check_budgets(
    store: Store,
    profile_name: str,
    limits: Limits | None,
    brake: Budget | None,
    user: str,
    now: float,
    deadline: Deadline,
) -> None:
    """BudgetSpent when one of the profile's budgets for ``user`` (code "budget_spent") or the money brake (code
    "spend_brake") is used up: the one that frees last, as no open passes until then. One strongly consistent
    BatchGetItem; none without budgets or a brake."""
    counters = _counters(profile_name, limits, brake, user, now)
    if not counters:
        return
    used = _read(store, counters, deadline)
    spent = [counter for counter in counters if used[counter.key] >= counter.budget.limit]
    if spent:
        counter = max(spent, key=lambda spent: spent.resets_at)
        raise _spent_refusal(counter, used[counter.key], profile_name, now)


def record_start(store: Store, call: CallStart, deadline: Deadline) -> None:
    """The call's record: its start, and every count at 0 (those a supervisor has metered already stay). One
    UpdateItem; made again, it changes nothing."""
    update = _Update()
    _start(update, call)
    for name in _COUNTS:
        update.set(name, _number(0), if_absent=True)
    quota_store.update(store, update.request(call_key(call.call_id)), _within(deadline))


class Holding(Record):
    """Who holds a call: its supervisor's ``generation`` (-1: none yet) and ``holder`` token (None: none recorded), and
    whether the call has ``ended``."""

    generation: int
    holder: str | None
    ended: bool


def attach(store: Store, call_id: str, generation: int, holder: str, deadline: Deadline) -> bool:
    """The call is held by the supervisor of ``generation`` with ``holder``: True when it takes the call over (none
    held it, an earlier generation did, or this same supervisor did: a retry after an answer was lost) and the call
    has not ended; False when it has ended, a later generation holds it, or another supervisor of this generation
    does. One UpdateItem."""
    update = _Update()
    update.set("generation", _number(generation))
    update.set("holder", _text(holder))
    update.set("expires_at", _number(math.ceil(time.time()) + RECORD_DAYS * DAY_SECONDS), if_absent=True)
    held, holding = update.name("generation"), update.name("holder")
    mine = update.value(_number(generation))
    condition = (
        f"attribute_not_exists({update.name('ended_at')}) AND "
        f"(attribute_not_exists({held}) OR {held} < {mine} OR "
        f"({held} = {mine} AND {holding} = {update.value(_text(holder))}))"
    )
    try:
        quota_store.update(store, update.request(call_key(call_id), condition), _within(deadline))
    except Refused:
        return False
    return True


def generation_of(store: Store, call_id: str, deadline: Deadline) -> tuple[int, bool]:
    """The generation of the supervisor that holds the call (-1: none yet), and whether it has ended. One GetItem."""
    held = holding(store, call_id, deadline)
    return held.generation, held.ended


def holding(store: Store, call_id: str, deadline: Deadline) -> Holding:
    """Who holds the call, and whether it has ended. One GetItem."""
    item = quota_store.get(store, call_key(call_id), ("generation", "holder", "ended_at"), _within(deadline)) or {}
    generation, holder = _int(item.get("generation")), item.get("holder")
    return Holding(
        -1 if generation is None else generation,
        holder["S"] if isinstance(holder, dict) and isinstance(holder.get("S"), str) else None,
        "ended_at" in item,
    )


def meter(
    store: Store,
    call: CallStart,
    event_key: str,
    usage: Usage,
    cost_micro_usd: int,
    limits: Limits | None,
    brake: Budget | None,
    now: float,
    deadline: Deadline,
) -> Metered:
    """Count one event's usage (``event_key``: "r:<response id>", say) once: its tokens and cost on the call's record,
    its cost on each of the profile's money budgets for the caller and on the money brake, all in one
    TransactWriteItems with the event's marker, whose condition (absent) makes a second meter of it count nothing.
    Then one strongly consistent BatchGetItem of the budgets' counters says whether one is spent.

    StoreUnavailable with ``unanswered`` when the counters could not be read after the write: it may have counted."""
    if type(cost_micro_usd) is not int or cost_micro_usd < 0:
        raise ValueError("a cost is a whole number of micro-dollars, at least 0")
    counters = _counters(call.profile, limits, brake, call.user, now)
    record = _Update()
    _start(record, call)
    record.add("tokens_in", _tokens_in(usage))
    record.add("tokens_out", usage.text_output + usage.audio_output)
    record.add("cost_micro_usd", cost_micro_usd)
    marker = {
        "pk": _text(marker_key(call.call_id, event_key)),
        "expires_at": _number(math.ceil(call.deadline_at) + DAY_SECONDS),
    }
    writes = [
        {"Put": {"Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": record.request(call_key(call.call_id))},
        *_adding(counters, "usd", cost_micro_usd),
    ]
    try:
        quota_store.transact(store, writes, _within(deadline))
        counted = True
    except Cancelled as cancelled:
        if cancelled.reasons[0] != "ConditionalCheckFailed":
            raise _unexpected(cancelled) from None
        counted = False  # another meter of this event counted it
    spent = _spent(store, counters, deadline, counted=counted)
    return Metered(counted, spent, cost_micro_usd if counted else 0)


def meter_seconds(
    store: Store,
    call: CallStart,
    cumulative_seconds: int,
    price: Price | None,
    limits: Limits | None,
    brake: Budget | None,
    now: float,
    deadline: Deadline,
) -> Metered:
    """Count a call's seconds up to ``cumulative_seconds`` (a Live session's billed seconds, as OpenAI reports them
    cumulatively; a Realtime call's elapsed seconds): only the part beyond what its record holds, into the profile's
    call_seconds budgets for the caller, and with ``price`` (per_minute) its cost into the record, the money budgets
    and the money brake. Nothing when the record holds as many already.

    One TransactWriteItems whose condition is the record's count as this process last counted it; when another
    writer moved it, the refusal gives the stored count, and one more counts from there (bounded). Then one strongly
    consistent BatchGetItem of the budgets' counters says whether one is spent."""
    if type(cumulative_seconds) is not int or cumulative_seconds < 0:
        raise ValueError("cumulative seconds are a whole number, at least 0")
    field = "billed_seconds" if call.kind == "live_session" else "seconds"
    counters = _counters(call.profile, limits, brake, call.user, now)
    remembered = (call.call_id, field)
    stored = _counted_seconds.get(remembered, 0)
    for _ in range(_SECONDS_TRIES):
        seconds = cumulative_seconds - stored
        if seconds <= 0:
            break
        cost = 0 if price is None else cost_of_seconds(cumulative_seconds, price) - cost_of_seconds(stored, price)
        record = _Update()
        _start(record, call)
        counted_so_far = record.name(field)
        record.set(field, _number(cumulative_seconds))
        record.add("cost_micro_usd", cost)
        condition = f"{counted_so_far} = {record.value(_number(stored))}"
        if stored == 0:
            condition = f"attribute_not_exists({counted_so_far}) OR {condition}"
        writes = [
            {"Update": record.request(call_key(call.call_id), condition, all_old=True)},
            *_adding(counters, "call_seconds", seconds),
            *_adding(counters, "usd", cost),
        ]
        try:
            quota_store.transact(store, writes, _within(deadline))
        except Cancelled as cancelled:
            if cancelled.reasons[0] != "ConditionalCheckFailed":
                raise _unexpected(cancelled) from None
            stored = _int((cancelled.items[0] or {}).get(field)) or 0
            continue
        _remember(remembered, cumulative_seconds)
        return Metered(True, _spent(store, counters, deadline, counted=True), cost, seconds)
    if cumulative_seconds > stored:
        logger.warning("call seconds not metered: other writers kept moving the count", call_id=call.call_id)
        raise StoreUnavailable("ConditionalCheckFailed", unanswered=False)
    _remember(remembered, stored)
    return Metered(False, _spent(store, counters, deadline, counted=False), 0)


def end(store: Store, call: CallStart, reason: str, ended_at: float, deadline: Deadline) -> bool:
    """The call ended at ``ended_at`` for ``reason``: True for its first end, False when it had ended already (the
    first reason stays). Its slot is freed either way. One UpdateItem, and one more when it holds a slot."""
    update = _Update()
    _start(update, call)
    update.set("ended_at", _number(ended_at))
    update.set("end_reason", _text(reason))
    condition = f"attribute_not_exists({update.name('ended_at')})"
    try:
        quota_store.update(store, update.request(call_key(call.call_id), condition), _within(deadline))
        first = True
    except Refused:
        first = False
    if call.slot is not None and call.lease is not None:
        release_slot(store, call.profile, call.user, call.slot, call.lease, deadline)
    return first


def standing(
    store: Store, profile_name: str, limits: Limits, user: str, now: float, deadline: Deadline
) -> list[Standing]:
    """Each of the profile's budgets for ``user`` as it stands, in the policy's order, then its calls open at once (if
    it limits them). One strongly consistent BatchGetItem; none when it has neither."""
    return standings(store, {profile_name: limits}, user, now, deadline)[profile_name]


def standings(
    store: Store, limits: Mapping[str, Limits], user: str, now: float, deadline: Deadline
) -> dict[str, list[Standing]]:
    """``standing`` of each profile in ``limits``, by profile, with one BatchGetItem per 100 items, side by side."""
    counters = {profile: _counters(profile, limit, None, user, now) for profile, limit in limits.items()}
    slotted = {profile: limit.concurrent_calls for profile, limit in limits.items() if limit.concurrent_calls}
    wanted: dict[str, list[str]] = {counter.key: [_BUDGET] for kept in counters.values() for counter in kept}
    for profile, allowed in slotted.items():
        wanted[slots_key(profile, user)] = [f"s{slot}" for slot in range(allowed)]
    if not wanted:
        return {profile: [] for profile in limits}
    read = quota_store.read(store, wanted, _within(deadline))
    _raise_first(read.failures)
    found: dict[str, list[Standing]] = {}
    for profile in limits:
        found[profile] = [
            Standing(c.budget, c.budget.limit, read.counts[c.key][_BUDGET], c.resets_at) for c in counters[profile]
        ]
        if profile in slotted:
            expiries = read.counts[slots_key(profile, user)].values()
            # read as whole numbers: an expiry within the second it passes counts as held, as a take would see it
            found[profile].append(Standing(None, slotted[profile], sum(expiry > now for expiry in expiries), None))
    return found


# --- the items' parts ---


class _Counter:
    """A budget's counter for a caller (or the brake's) in the window it is in now."""

    __slots__ = ("brake", "budget", "key", "resets_at")

    def __init__(self, key: str, budget: Budget, resets_at: int, *, brake: bool) -> None:
        self.key, self.budget, self.resets_at, self.brake = key, budget, resets_at, brake


def _counters(profile: str, limits: Limits | None, brake: Budget | None, user: str, now: float) -> list[_Counter]:
    """The counters of the profile's budgets for ``user`` (in the policy's order) and of the brake, each once."""
    counters: dict[str, _Counter] = {}
    for budget in [] if limits is None else limits.budgets:
        index, resets_at = window_at(budget.seconds, now)
        key = budget_key(profile, budget, index, user)
        counters.setdefault(key, _Counter(key, budget, resets_at, brake=False))
    if brake is not None:
        index, resets_at = window_at(brake.seconds, now)
        key = brake_key(brake, index)
        counters[key] = _Counter(key, brake, resets_at, brake=True)
    return list(counters.values())


def _adding(counters: Iterable[_Counter], unit: str, amount: int) -> list[dict[str, Any]]:
    """The transaction's writes adding ``amount`` to each counter of ``unit``; none for nothing."""
    if amount <= 0:
        return []
    writes = []
    for counter in counters:
        if counter.budget.unit.name != unit:
            continue
        update = _Update()
        update.add(_BUDGET, amount)
        update.set("expires_at", _number(counter.resets_at))
        writes.append({"Update": update.request(counter.key)})
    return writes


def _read(store: Store, counters: Sequence[_Counter], deadline: Deadline) -> dict[str, int]:
    """Each counter's ``used``, by key (0: none yet), with one strongly consistent read."""
    read = quota_store.read(store, {counter.key: [_BUDGET] for counter in counters}, _within(deadline))
    _raise_first(read.failures)
    return {counter.key: read.counts[counter.key][_BUDGET] for counter in counters}


def _spent(store: Store, counters: Sequence[_Counter], deadline: Deadline, *, counted: bool) -> str | None:
    """The first counter used up, described; None when none is (or there are none)."""
    if not counters:
        return None
    try:
        used = _read(store, counters, deadline)
    except StoreUnavailable as failed:
        # after a write that counted, the caller must know it may have: a retry would count nothing
        raise StoreUnavailable(failed.aws_code, unanswered=failed.unanswered or counted) from None
    for counter in counters:
        if used[counter.key] >= counter.budget.limit:
            if counter.brake:
                return f"the service's money brake of {counter.budget.describe()}"
            return f"the profile's budget of {counter.budget.describe()}"
    return None


def _start(update: "_Update", call: CallStart) -> None:
    """The record's start, set where absent (whichever write comes first makes the record whole)."""
    values = {
        "user": _text(call.user),
        "profile": _text(call.profile),
        "kind": _text(call.kind),
        "model": _text(call.model),
        "started_at": _number(call.started_at),
        "deadline_at": _number(call.deadline_at),
        "expires_at": _number(math.ceil(call.started_at) + RECORD_DAYS * DAY_SECONDS),
    }
    for name, value in values.items():
        update.set(name, value, if_absent=True)


def _tokens_in(usage: Usage) -> int:
    return (
        usage.text_input
        + usage.text_cached_input
        + usage.audio_input
        + usage.audio_cached_input
        + usage.image_input
        + usage.image_cached_input
    )


def _free_slot(held: Mapping[str, Any], allowed: int, lease: str, now: float) -> int | None:
    """The slot this lease holds already, else the first free one (never taken, released, or expired); None."""
    if mine := [slot for slot in range(allowed) if _holds(held, slot, lease, now)]:
        return mine[0]
    expiries = [_float(held.get(f"s{slot}")) for slot in range(allowed)]
    return next((slot for slot, expiry in enumerate(expiries) if expiry is None or expiry <= now), None)


def _holds(held: Mapping[str, Any], slot: int, lease: str, now: float) -> bool:
    expiry = _float(held.get(f"s{slot}"))
    return expiry is not None and expiry > now and held.get(f"l{slot}") == {"S": lease}


def _key_part(part: str) -> str:
    """``part`` as it is when it is short printable ASCII, else its SHA-256: no part breaks a key or makes it long."""
    if 0 < len(part) <= _MAX_KEY_PART and part.isascii() and part.isprintable():
        return part
    return "sha256:" + hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()


def _remember(remembered: tuple[str, str], seconds: int) -> None:
    if len(_counted_seconds) >= _REMEMBERED_CALLS and remembered not in _counted_seconds:
        _counted_seconds.clear()
    _counted_seconds[remembered] = seconds


# --- refusals ---


def _spent_refusal(counter: _Counter, used: int, profile: str, now: float) -> BudgetSpent:
    budget = counter.budget
    wait = max(1, math.ceil(counter.resets_at - now))
    frees = f"{_clock(counter.resets_at, now)} (in {human_wait(wait)})"
    if counter.brake:
        logger.warning("money brake reached", limit=budget.limit, window_seconds=budget.seconds)
        count("QuotaRefusals", limit="money_brake")
        message = (
            f"This service has reached its money brake ({budget.describe()} across all users). It frees at {frees}; "
            "the operator can raise the brake."
        )
        code = "spend_brake"
    else:
        logger.info("budget spent", profile=profile, unit=budget.unit.name, limit=budget.limit)
        count("QuotaRefusals", limit="budget")
        message = f"Budget spent for profile '{profile}': {budget.describe()} for each user. It frees at {frees}."
        code = "budget_spent"
    return BudgetSpent(message, code=code, budget=budget, used=used, resets_at=counter.resets_at, now=now)


def _too_many(profile: str, allowed: int, held: Mapping[str, Any], now: float) -> TooManyCalls:
    expiries = [_float(held.get(f"s{slot}")) for slot in range(allowed)]
    soonest = min((expiry for expiry in expiries if expiry is not None and expiry > now), default=now)
    logger.info("too many calls at once", profile=profile, limit=allowed)
    count("QuotaRefusals", limit="concurrent_calls")
    calls = "call" if allowed == 1 else "calls"
    return TooManyCalls(
        f"Too many calls for profile '{profile}': {allowed} {calls} at once for each user. End one and try again.",
        code="too_many_calls",
        retry_after_seconds=max(1, math.ceil(soonest - now)),
        limit=allowed,
        remaining=0,
    )


def _clock(at: int, now: float) -> str:
    """When ``at`` is, in UTC: "00:00 UTC" within a day of ``now``, else "00:00 UTC on 2025-12-07"."""
    moment = time.gmtime(at)
    clock = time.strftime("%H:%M UTC", moment)
    return clock if at - now <= DAY_SECONDS else f"{clock} on {time.strftime('%Y-%m-%d', moment)}"


# --- DynamoDB's shapes ---


class _Update:
    """An UpdateItem (or a transaction's Update) being written: its clauses, and the names and values they use."""

    __slots__ = ("adds", "names", "removes", "sets", "values")

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}  # attribute -> its placeholder
        self.values: dict[str, dict[str, str]] = {}  # placeholder -> value

    def name(self, attribute: str) -> str:
        return self.names.setdefault(attribute, f"#a{len(self.names)}")

    def value(self, value: dict[str, str]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: dict[str, str], *, if_absent: bool = False) -> None:
        alias, given = self.name(attribute), self.value(value)
        self.sets.append(f"{alias} = if_not_exists({alias}, {given})" if if_absent else f"{alias} = {given}")

    def add(self, attribute: str, amount: int) -> None:
        self.adds.append(f"{self.name(attribute)} {self.value(_number(amount))}")

    def remove(self, attribute: str) -> None:
        self.removes.append(self.name(attribute))

    def request(self, key: str, condition: str | None = None, *, all_old: bool = False) -> dict[str, Any]:
        clauses = [("SET", self.sets), ("ADD", self.adds), ("REMOVE", self.removes)]
        request: dict[str, Any] = {
            "Key": {"pk": _text(key)},
            "UpdateExpression": " ".join(f"{verb} {', '.join(parts)}" for verb, parts in clauses if parts),
            "ExpressionAttributeNames": {alias: attribute for attribute, alias in self.names.items()},
        }
        if self.values:
            request["ExpressionAttributeValues"] = self.values
        if condition is not None:
            request["ConditionExpression"] = condition
        if all_old:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return request


def _text(text: str) -> dict[str, str]:
    return {"S": text}


def _number(number: float) -> dict[str, str]:
    return {"N": str(number) if isinstance(number, int) else repr(float(number))}


def _float(value: Any) -> float | None:
    """A DynamoDB number attribute ({"N": "3.5"}) as a float; None when absent or not a number."""
    try:
        return float(value["N"]) if isinstance(value, dict) else None
    except (KeyError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _within(deadline: Deadline) -> Deadline:
    return deadline.within(quota_store.BUDGET_SECONDS)


def _raise_first(failures: Sequence[Exception]) -> None:
    """A read's failures raised: one an operator must fix first, else the first."""
    for failure in failures:
        if isinstance(failure, StoreMisconfigured):
            raise failure
    if failures:
        raise failures[0]


def _unexpected(cancelled: Cancelled) -> StoreMisconfigured:
    # only the marker's (or the counted seconds') write has a condition: another's refusal is a bug or a stranger
    return StoreMisconfigured(
        f"a ledger write was refused by a condition it does not set: {', '.join(cancelled.reasons)}"
    )
