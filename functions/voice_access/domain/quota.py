"""What a mint counts, and how a refusal reads: the per-caller windows and the spend brake, in the quota store.

A mint first takes one unit from each window that applies, with one conditional addition per item of the store
(clients/quota_store.py): the caller's item (every window of the profile's per-caller limits, in one item, so they
move together) and, when a spend brake is set, the brake's item. The store's additions are atomic and conditional,
so concurrent mints can never take more than a window holds, and go side by side; when one item refuses and the
other took a unit, that unit is given back. A mint that then fails upstream gives its units back the same way, so
the caller's quota counts only secrets it received. A give-back the store does not answer in time may have been
applied all the same: it is logged as unconfirmed, not as failed.

The profiles listing reads what is left (``standing``) with one read of the store, and writes nothing.

A window is counted by its unit, limit and length alone (domain/limits.py), so a window of another unit is another
counter of the same items. Items (key ``pk``):
- ``caller#<profile>#<longest window>#<its index>#<safety id>``, one counter ``<unit's counter><seconds>_<index>``
  per window (a mint window's: ``w<seconds>_<index>``). The key holds the caller's 64-hex safety identifier, so no
  subject, however long or odd, can break a key or share a counter. A window's index is floor(now / seconds):
  windows are fixed and aligned to the Unix epoch. Each write removes each shorter window's counter of the window
  just before; older ones, left when a caller skipped windows, stay (at most one per mint, so bounded by the
  longest window's limit) until the item expires (TTL ``expires_at``) when its longest window ends.
- ``brake#<seconds>#<index>`` with a counter named for its unit (``mints``): every caller's mints of every profile.
  A single item: at most 1,000 write units a second (DynamoDB's per-partition ceiling), so 1,000 mints a second,
  50 times the API's default throttle (README, "Quotas").
"""

import math
import time
from typing import TYPE_CHECKING, Protocol

from voice_access.clients import quota_store
from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Addition, Counts, Full, Store, StoreMisconfigured, StoreUnavailable
from voice_access.domain.errors import (
    DependencyUnavailable,
    InvalidRequest,
    OutOfTime,
    RateLimited,
    ServiceMisconfigured,
    UpstreamRateLimited,
)
from voice_access.domain.limits import DAY_SECONDS, Limits, Window
from voice_access.domain.policy.model import Policy
from voice_access.domain.policy.records import Record
from voice_access.observability import count, logger

# What a mint adds to each of its windows.
_A_MINT = 1
# Giving units back after OpenAI failed happens perhaps at the request's deadline: in the margin kept to answer.
_RELEASE_BUDGET_SECONDS = 0.5


if TYPE_CHECKING:  # a Protocol class costs about 80 us of every cold start to define, for type checking only

    class Deployment(Protocol):
        """Where a deployment's settings say the quota store is."""

        @property
        def quota_table_name(self) -> str | None: ...
        @property
        def dynamodb_endpoint(self) -> str: ...
        @property
        def aws_region(self) -> str: ...


def store_of(settings: "Deployment") -> Store | None:
    """The deployment's quota store; None when it has no QUOTA_TABLE_NAME."""
    if settings.quota_table_name is None:
        return None
    return Store(settings.quota_table_name, settings.dynamodb_endpoint, settings.aws_region)


def spend_brake(mints_per_day: int, policy: Policy) -> Window | None:
    """SpendBrakeMintsPerDay (``mints_per_day``) when set (the deployment's word), else the policy's own."""
    if mints_per_day:
        return Window(mints=mints_per_day, seconds=DAY_SECONDS)
    return policy.spend_brake


class Counted(Record):
    """One window's count: after a mint took a unit, or as it stood when a mint was refused."""

    window: Window
    used: int
    resets_at: int  # epoch seconds

    @property
    def remaining(self) -> int:
        return max(0, self.window.limit - self.used)


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class _Item:
    """One item a mint writes: its key, and its counters (one per window) with their windows."""

    __slots__ = ("brake", "counters", "ended", "expires_at", "key")

    def __init__(
        self, key: str, counters: dict[str, Counted], expires_at: int, ended: tuple[str, ...] = (), brake: bool = False
    ) -> None:
        self.key = key
        self.counters = counters  # counter -> its window, resets_at and (once taken or read) its count
        self.expires_at = expires_at
        self.ended = ended  # counters of windows just ended, to remove
        self.brake = brake

    def counting(self, counts: Counts) -> "_Item":
        """The item with its counters' counts as the store gave them."""
        counted = {name: Counted(c.window, counts[name], c.resets_at) for name, c in self.counters.items()}
        return _Item(self.key, counted, self.expires_at, self.ended, self.brake)


class Reservation:
    """The units a mint took, to give back if OpenAI fails; what to tell the caller about its quota."""

    __slots__ = ("brake_used", "counted", "items", "store", "waited_ms")

    def __init__(
        self, store: Store, items: list[_Item], counted: list[Counted], waited_ms: float, brake_used: int | None = None
    ) -> None:
        self.store = store
        self.items = items
        self.counted = counted
        self.waited_ms = waited_ms
        self.brake_used = brake_used

    @property
    def tightest(self) -> Counted:
        """The count the caller is nearest the end of: the least left, then the soonest reset."""
        return min(self.counted, key=lambda c: (c.remaining, c.resets_at))


def reserve(
    store: Store | None,
    profile: str,
    limits: Limits | None,
    brake: Window | None,
    user: str,
    *,
    deadline: Deadline,
    words: tuple[str, str] | None = None,
) -> Reservation | None:
    """Take a unit from every window that applies to ``user`` minting with ``profile``; None when none does.
    ``words``: what a refusal calls what is counted (one, many), when it is not a client secret.

    RateLimited when a window is full (nothing taken); DependencyUnavailable when the store is out of reach
    (or None, minting unchecked, when the profile fails open); ServiceMisconfigured when it cannot be used.
    """
    windows = limits.per_caller if limits is not None else []
    if not windows and brake is None:
        return None  # a profile with budgets or calls at once only: the ledger counts those
    if store is None:
        raise _misconfigured("quota_store_missing", "the policy sets limits but the function has no QUOTA_TABLE_NAME")
    _check_time(deadline)
    now = time.time()
    items = []
    if windows:
        items.append(_caller_item(profile, windows, user, now))
    if brake is not None:
        items.append(_brake_item(brake, now))
    additions = [_taking(item) for item in items]
    started = time.perf_counter()
    answers = quota_store.add_all(store, additions, deadline.within(quota_store.BUDGET_SECONDS))
    waited_ms = (time.perf_counter() - started) * 1000
    outcomes = [_in_mint_words(answer) for answer in answers]
    taken = [item.counting(outcome) for item, outcome in zip(items, outcomes, strict=True) if isinstance(outcome, dict)]
    problems = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    if not problems:
        return _reservation(store, taken, waited_ms)
    if not all(isinstance(problem, StoreUnavailable) for problem in problems):
        _give_back(store, taken, "refused", deadline.within(quota_store.BUDGET_SECONDS))
        for problem in problems:
            if not isinstance(problem, Full | StoreUnavailable):
                raise problem  # misconfigured, or a bug: as it is
        # A full window is a definite answer, whatever else failed: the one that frees last says when to retry.
        refusals = [
            (_full_window(item, outcome), item.brake)
            for item, outcome in zip(items, outcomes, strict=True)
            if isinstance(outcome, Full)
        ]
        counted, braked = max(refusals, key=lambda refusal: refusal[0].resets_at)
        raise _refusal(counted, braked, profile, now, words)
    if limits is not None and limits.on_store_failure == "allow":
        # The counters it reached keep their units (a failed brake leaves the caller's limit in force).
        logger.warning("quota store unavailable: minting without a quota check", profile=profile, counted=len(taken))
        count("QuotaFailOpen", profile=profile)
        return _reservation(store, taken, waited_ms) if taken else None
    _give_back(store, taken, "store failed", deadline.within(quota_store.BUDGET_SECONDS))
    raise _unavailable()


def _reservation(store: Store, items: list[_Item], waited_ms: float) -> Reservation:
    counted = [counted for item in items for counted in item.counters.values()]
    brake_used = next((counted.used for item in items if item.brake for counted in item.counters.values()), None)
    return Reservation(store, items, counted, waited_ms, brake_used)


def gives_back(failure: BaseException) -> bool:
    """Whether a request that failed gives its quota units back: yes when OpenAI failed (5xx, a timeout, out of
    reach, a key or field it refused that is the operator's to fix); no when OpenAI refused the caller's own
    request (a 400) or rate limited it, else a caller could send OpenAI requests without end."""
    return not isinstance(failure, InvalidRequest | UpstreamRateLimited)


def release(reservation: Reservation) -> None:
    """Give a reservation's units back (OpenAI did not mint); a failure is logged and counted, never raised."""
    _give_back(reservation.store, reservation.items, "not minted", Deadline.after(_RELEASE_BUDGET_SECONDS))


class Standing:
    """What is left of a caller's windows, and whether the spend brake is reached, as the store holds them now."""

    __slots__ = ("brake", "per_caller")

    def __init__(self, per_caller: dict[str, list[Counted]], brake: Counted | None) -> None:
        self.per_caller = per_caller  # by profile, each of its windows in the policy's order
        self.brake = brake


def standing(
    store: Store | None, limits: dict[str, Limits], brake: Window | None, user: str, *, deadline: Deadline
) -> Standing:
    """The counts of ``user``'s windows of each profile in ``limits``, and the spend brake's, read and never written
    (strongly consistent: a count read right after a mint includes it).

    DependencyUnavailable when the store is out of reach; ServiceMisconfigured when it cannot be used.
    """
    now = time.time()
    callers = {
        profile: _caller_item(profile, limit.per_caller, user, now)
        for profile, limit in limits.items()
        if limit.per_caller
    }
    items = [*callers.values(), *([_brake_item(brake, now)] if brake is not None else [])]
    if not items:
        return Standing({}, None)
    if store is None:
        raise _misconfigured("quota_store_missing", "the policy sets limits but the function has no QUOTA_TABLE_NAME")
    _check_time(deadline)
    budget = deadline.within(quota_store.BUDGET_SECONDS)
    read = quota_store.read(store, {item.key: list(item.counters) for item in items}, budget)
    for failure in [_in_mint_words(failure) for failure in read.failures]:
        if isinstance(failure, StoreUnavailable):
            raise _unavailable()
        raise failure  # misconfigured, or a bug: as it is
    counted = {item.key: list(item.counting(read.counts[item.key]).counters.values()) for item in items}
    return Standing(
        {profile: counted[item.key] for profile, item in callers.items()},
        counted[items[-1].key][0] if brake is not None else None,
    )


def _check_time(deadline: Deadline) -> None:
    if deadline.remaining() < quota_store.MIN_SECONDS:
        logger.warning("no time left to ask the quota store")
        raise OutOfTime("This request ran out of time before it could be served. Retry in a moment.", code="timeout")


def _caller_item(profile: str, windows: list[Window], user: str, now: float) -> _Item:
    longest = max(windows, key=lambda window: window.seconds)
    longest_index = int(now // longest.seconds)
    counters, ended = {}, []
    for window in windows:
        index = int(now // window.seconds)
        counters[_counter(window, index)] = Counted(window, 0, (index + 1) * window.seconds)
        if window is not longest:
            ended.append(_counter(window, index - 1))
    key = f"caller#{profile}#{longest.seconds}#{longest_index}#{user}"
    return _Item(key, counters, (longest_index + 1) * longest.seconds, tuple(ended))


def _counter(window: Window, index: int) -> str:
    return f"{window.unit.counter}{window.seconds}_{index}"


def _brake_item(brake: Window, now: float) -> _Item:
    index = int(now // brake.seconds)
    resets_at = (index + 1) * brake.seconds
    return _Item(
        f"brake#{brake.seconds}#{index}", {brake.unit.name: Counted(brake, 0, resets_at)}, resets_at, brake=True
    )


def _taking(item: _Item) -> Addition:
    """A mint's addition to ``item``: a unit more in each window, if each then holds at most its limit."""
    return Addition(
        item.key,
        dict.fromkeys(item.counters, _A_MINT),
        {name: counted.window.limit for name, counted in item.counters.items()},
        item.expires_at,
        item.ended,
    )


def _full_window(item: _Item, full: Full) -> Counted:
    """The full window of ``item`` that frees last (until then no mint can pass), with its count."""
    counters = item.counters
    windows = [Counted(counters[name].window, full.counts[name], counters[name].resets_at) for name in full.full]
    if windows:
        return max(windows, key=lambda c: c.resets_at)
    # Full a moment ago and not now (a unit given back in between): as full, for the shortest window.
    shortest = min(item.counters.values(), key=lambda c: c.window.seconds)
    return Counted(shortest.window, shortest.window.limit, shortest.resets_at)


def _give_back(store: Store, items: list[_Item], why: str, deadline: Deadline) -> None:
    """Give a mint's unit back to each item's windows; each give-back the store does not confirm is logged and
    counted (QuotaRefundFailures), as refused or as unconfirmed (perhaps given back after all), never raised."""
    for item in items:
        try:
            quota_store.give_back(store, item.key, dict.fromkeys(item.counters, _A_MINT), deadline)
        except (StoreUnavailable, quota_store.GiveBackRefused, StoreMisconfigured) as failure:
            if isinstance(failure, StoreMisconfigured):
                _misconfigured("quota_store_misconfigured", failure.problem)  # logged and counted, as anywhere
            if isinstance(failure, StoreUnavailable) and failure.unanswered:
                logger.warning("quota give-back unconfirmed: the store did not answer", why=why, brake=item.brake)
            else:
                logger.warning("could not give quota units back", why=why, brake=item.brake)
            count("QuotaRefundFailures")


def _in_mint_words[T](outcome: T) -> T | ServiceMisconfigured:
    """``outcome``, or for a store that cannot be used, the refusal an operator must act on (logged and counted)."""
    if isinstance(outcome, StoreMisconfigured):
        return _misconfigured("quota_store_misconfigured", outcome.problem)
    return outcome


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "This service could not reach its quota store, so it mints nothing for now. Retry in a moment.",
        code="quota_store_unavailable",
        retry_after_seconds=quota_store.RETRY_AFTER_SECONDS,
    )


def _misconfigured(reason: str, problem: str) -> ServiceMisconfigured:
    logger.error("refusing to mint: the quota store cannot be used", reason=reason, problem=problem)
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service cannot use its quota store, so it mints nothing until an operator fixes it (see the "
        "service's logs).",
        code=reason,
    )


# What the spend brake counts once sessions are counted too: client secrets, sessions and calls alike.
_EVERY_KIND = ("client secret or session", "client secrets and sessions")


def _refusal(
    counted: Counted, brake: bool, profile: str, now: float, words: tuple[str, str] | None = None
) -> RateLimited:
    """The refusal of a mint (or of a session, ``words`` saying what it is) by the full window ``counted`` (the spend
    brake's when ``brake``)."""
    window = counted.window
    wait = max(1, math.ceil(counted.resets_at - now))
    if brake:
        logger.warning("spend brake reached", limit=window.limit, window_seconds=window.seconds)
        count("QuotaRefusals", limit="spend_brake")
        message = (
            f"This service has reached its spend brake ({window.describe(None if words is None else _EVERY_KIND)} "
            "across all users). "
            f"Try again in {_human(wait)}; the operator can raise the brake."
        )
    else:
        logger.info("quota reached", profile=profile, limit=window.limit, window_seconds=window.seconds)
        count("QuotaRefusals", limit="caller")
        message = (
            f"Rate limit reached for profile '{profile}': {window.describe(words)} for each user. "
            f"Try again in {_human(wait)}."
        )
    return RateLimited(
        message, code="rate_limit_exceeded", retry_after_seconds=wait, limit=window.limit, remaining=counted.remaining
    )


def _human(seconds: int) -> str:
    """E.g. "42 s", "5 min 3 s", "3 h 12 min"."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
