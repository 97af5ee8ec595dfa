"""The quota store: mint counters in DynamoDB, and the one module that speaks to it.

A mint first takes one unit from each counter that applies, with one conditional UpdateItem per item: the
caller's item (every window of the profile's per-caller limits, in one item, so they move together) and,
when a spend brake is set, the brake's item. Each write is atomic and conditional (DynamoDB serialises
writes to an item), so concurrent mints can never take more than a window holds, and nothing is read
first. The two items are written side by side (one round trip of waiting); when one refuses and the other
took a unit, that unit is given back. A mint that then fails upstream gives its units back the same way,
so the caller's quota counts only secrets it received. A give-back the store does not answer in time may
have been applied all the same: it is logged as unconfirmed, not as failed.

The profiles listing reads what is left (``standing``) with one BatchGetItem, and writes nothing.

Items (key ``pk``):
- ``caller#<profile>#<longest window>#<its index>#<safety id>``, one number attribute ``w<seconds>_<index>``
  per window. The key holds the caller's 64-hex safety identifier, so no subject, however long or odd, can
  break a key or share a counter. A window's index is floor(now / seconds): windows are fixed and aligned to
  the Unix epoch. Each write removes each shorter window's attribute of the window just before; older ones,
  left when a caller skipped windows, stay (at most one per mint, so bounded by the longest window's limit)
  until the item expires (TTL ``expires_at``) when its longest window ends.
- ``brake#<seconds>#<index>`` with ``mints``: every caller's mints of every profile. A single item: at most
  1,000 write units a second (DynamoDB's per-partition ceiling), so 1,000 mints a second, 50 times the API's
  default throttle (README, "Quotas").

Requests are signed here (aws_signature.py) and sent with urllib3, as the OpenAI client sends its own.
"""

import functools
import json
import math
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NamedTuple

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError
from urllib3.util import parse_url

from voice_access.clients.aws_signature import AwsCredentials, CredentialsMissing, signed_headers
from voice_access.clients.deadline import POOL_CLASSES, Deadline, keeping_to
from voice_access.config.settings import Settings
from voice_access.domain.errors import DependencyUnavailable, OutOfTime, RateLimited, ServiceMisconfigured
from voice_access.domain.limits import DAY_SECONDS, Limits, Window
from voice_access.domain.policy.model import Policy
from voice_access.observability import count, logger

_TIMEOUT = urllib3.Timeout(connect=0.5, read=1.0)
# One connect, a retry, one answer: the store may not hold a mint up for longer.
_BUDGET_SECONDS = 2.0
# Less than this left, a write would time out and be blamed on the store: the request is out of time.
_MIN_STORE_SECONDS = 0.05
# Giving units back after OpenAI failed happens perhaps at the request's deadline: in the margin kept to answer.
_RELEASE_BUDGET_SECONDS = 0.5
# What a refused or failed mint tells the caller to wait before trying again when the store is out of reach.
STORE_RETRY_AFTER_SECONDS = 2
_UPDATE = "UpdateItem"
_READ = "BatchGetItem"
# DynamoDB's ceiling on the keys of one BatchGetItem.
_BATCH_KEYS = 100
# Errors that may pass (throttling, an outage); any other error of DynamoDB's needs an operator.
_PASSING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "ExpiredTokenException",  # the execution role's credentials rotate
}
_pools = urllib3.PoolManager(
    num_pools=1,
    maxsize=2,  # the caller's item and the brake's, side by side
    retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, backoff_factor=0.05),
)
_pools.pool_classes_by_scheme = POOL_CLASSES


class Store(NamedTuple):
    """Where the counters are: the table, DynamoDB's endpoint and the region to sign for."""

    table: str
    endpoint: str
    region: str


def store_of(settings: Settings) -> Store | None:
    """The deployment's quota store; None when it has no QUOTA_TABLE_NAME."""
    if settings.quota_table_name is None:
        return None
    return Store(settings.quota_table_name, settings.dynamodb_endpoint, settings.aws_region)


def spend_brake(mints_per_day: int, policy: Policy) -> Window | None:
    """SpendBrakeMintsPerDay (``mints_per_day``) when set (the deployment's word), else the policy's own."""
    if mints_per_day:
        return Window(mints=mints_per_day, seconds=DAY_SECONDS)
    return policy.spend_brake


class Counted(NamedTuple):
    """One window's count: after a mint took a unit, or as it stood when a mint was refused."""

    window: Window
    used: int
    resets_at: int  # epoch seconds

    @property
    def remaining(self) -> int:
        return max(0, self.window.mints - self.used)


class _Item(NamedTuple):
    """One counter item a mint writes: its key, and its attributes (one per window) with their windows."""

    key: str
    attributes: dict[str, Counted]  # attribute name -> its window, resets_at and (later) its count
    expires_at: int
    ended: tuple[str, ...] = ()  # attributes of windows just ended, to remove
    brake: bool = False


class Reservation(NamedTuple):
    """The units a mint took, to give back if OpenAI fails; what to tell the caller about its quota."""

    store: Store
    items: list[_Item]
    counted: list[Counted]
    waited_ms: float
    brake_used: int | None = None

    @property
    def tightest(self) -> Counted:
        """The count the caller is nearest the end of: the fewest mints left, then the soonest reset."""
        return min(self.counted, key=lambda c: (c.remaining, c.resets_at))


def reserve(
    store: Store | None,
    profile: str,
    limits: Limits | None,
    brake: Window | None,
    user: str,
    *,
    deadline: Deadline,
) -> Reservation | None:
    """Take a unit from every counter that applies to ``user`` minting with ``profile``; None when none does.

    RateLimited when a window is full (nothing taken); DependencyUnavailable when the store is out of reach
    (or None, minting unchecked, when the profile fails open); ServiceMisconfigured when it cannot be used.
    """
    if limits is None and brake is None:
        return None
    if store is None:
        raise _misconfigured("quota_store_missing", "the policy sets limits but the function has no QUOTA_TABLE_NAME")
    if deadline.remaining() < _MIN_STORE_SECONDS:
        logger.warning("no time left to ask the quota store")
        raise OutOfTime("This request ran out of time before it could be served. Retry in a moment.", code="timeout")
    now = time.time()
    items = []
    if limits is not None:
        items.append(_caller_item(profile, limits.per_caller, user, now))
    if brake is not None:
        items.append(_brake_item(brake, now))
    started = time.perf_counter()
    budget = deadline.within(_BUDGET_SECONDS)
    outcomes = _side_by_side([functools.partial(_take, store, item, budget) for item in items])
    waited_ms = (time.perf_counter() - started) * 1000
    taken = [item for item, outcome in zip(items, outcomes, strict=True) if outcome is None]
    problems = [outcome for outcome in outcomes if outcome is not None]
    if not problems:
        return _reservation(store, items, waited_ms)
    if not all(isinstance(problem, _Fault) for problem in problems):
        _give_back(store, taken, "refused", deadline.within(_BUDGET_SECONDS))
        for problem in problems:
            if not isinstance(problem, _Full | _Fault):
                raise problem  # misconfigured, or a bug: as it is
        # A full window is a definite answer, whatever else failed: the one that frees last says when to retry.
        refusals = [problem for problem in problems if isinstance(problem, _Full)]
        raise _refusal(max(refusals, key=lambda full: full.counted.resets_at), profile, now)
    if limits is not None and limits.on_store_failure == "allow":
        # The counters it reached keep their units (a failed brake leaves the caller's limit in force).
        logger.warning("quota store unavailable: minting without a quota check", profile=profile, counted=len(taken))
        count("QuotaFailOpen", profile=profile)
        return _reservation(store, taken, waited_ms) if taken else None
    _give_back(store, taken, "store failed", deadline.within(_BUDGET_SECONDS))
    raise _unavailable()


def _reservation(store: Store, items: list[_Item], waited_ms: float) -> Reservation:
    counted = [counted for item in items for counted in item.attributes.values()]
    brake_used = next((item.attributes["mints"].used for item in items if item.brake), None)
    return Reservation(store, items, counted, waited_ms, brake_used)


def release(reservation: Reservation) -> None:
    """Give a reservation's units back (OpenAI did not mint); a failure is logged and counted, never raised."""
    _give_back(reservation.store, reservation.items, "not minted", Deadline.after(_RELEASE_BUDGET_SECONDS))


class Standing(NamedTuple):
    """What is left of a caller's windows, and whether the spend brake is reached, as the store holds them now."""

    per_caller: dict[str, list[Counted]]  # by profile, each of its windows in the policy's order
    brake: Counted | None


def standing(
    store: Store | None, limits: dict[str, Limits], brake: Window | None, user: str, *, deadline: Deadline
) -> Standing:
    """The counts of ``user``'s windows of each profile in ``limits``, and the spend brake's, read and never written.

    One strongly consistent BatchGetItem (a batch per 100 items, side by side): a count read right after a mint
    includes it, where an eventually consistent read may not, for twice the read units of items this small.
    DependencyUnavailable when the store is out of reach; ServiceMisconfigured when it cannot be used.
    """
    now = time.time()
    callers = {profile: _caller_item(profile, limit.per_caller, user, now) for profile, limit in limits.items()}
    items = [*callers.values(), *([_brake_item(brake, now)] if brake is not None else [])]
    if not items:
        return Standing({}, None)
    if store is None:
        raise _misconfigured("quota_store_missing", "the policy sets limits but the function has no QUOTA_TABLE_NAME")
    if deadline.remaining() < _MIN_STORE_SECONDS:
        logger.warning("no time left to ask the quota store")
        raise OutOfTime("This request ran out of time before it could be served. Retry in a moment.", code="timeout")
    budget = deadline.within(_BUDGET_SECONDS)
    batches = [items[start : start + _BATCH_KEYS] for start in range(0, len(items), _BATCH_KEYS)]
    found: dict[str, dict[str, Any]] = {}
    outcomes = _side_by_side([functools.partial(_read, store, batch, budget, found) for batch in batches])
    for outcome in outcomes:
        if isinstance(outcome, _Fault):
            raise _unavailable()
        if outcome is not None:
            raise outcome  # misconfigured, or a bug: as it is
    counted = {item.key: _counted_in(item, found.get(item.key, {})) for item in items}
    return Standing(
        {profile: counted[item.key] for profile, item in callers.items()},
        counted[items[-1].key][0] if brake is not None else None,
    )


def _read(store: Store, items: list[_Item], deadline: Deadline, found: dict[str, dict[str, Any]]) -> None:
    """Read ``items`` (at most 100) with one BatchGetItem into ``found`` by key; _Fault if DynamoDB leaves any
    unread (throttled), as it may."""
    names = {f"#a{i}": name for i, name in enumerate(sorted({n for item in items for n in item.attributes}))}
    request = {
        "RequestItems": {
            store.table: {
                "Keys": [{"pk": {"S": item.key}} for item in items],
                "ConsistentRead": True,
                "ProjectionExpression": ", ".join(["pk", *names]),
                "ExpressionAttributeNames": names,
            }
        }
    }
    answer = _request(store, _READ, request, deadline)
    if answer.get("UnprocessedKeys"):
        raise _fault("UnprocessedKeys", unanswered=False)
    responses = answer.get("Responses")
    read = responses.get(store.table) if isinstance(responses, dict) else None
    for item in read if isinstance(read, list) else []:
        key = item.get("pk", {}).get("S") if isinstance(item, dict) else None
        if isinstance(key, str):
            found[key] = item


def _counted_in(item: _Item, stored: dict[str, Any]) -> list[Counted]:
    """Each window of ``item`` with its count as ``stored`` holds it (none: nothing minted in it yet)."""
    return [Counted(c.window, _number(stored.get(name)), c.resets_at) for name, c in item.attributes.items()]


def _unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "This service could not reach its quota store, so it mints nothing for now. Retry in a moment.",
        code="quota_store_unavailable",
        retry_after_seconds=STORE_RETRY_AFTER_SECONDS,
    )


def _caller_item(profile: str, windows: list[Window], user: str, now: float) -> _Item:
    longest = max(windows, key=lambda window: window.seconds)
    longest_index = int(now // longest.seconds)
    attributes, ended = {}, []
    for window in windows:
        index = int(now // window.seconds)
        attributes[f"w{window.seconds}_{index}"] = Counted(window, 0, (index + 1) * window.seconds)
        if window is not longest:
            ended.append(f"w{window.seconds}_{index - 1}")
    key = f"caller#{profile}#{longest.seconds}#{longest_index}#{user}"
    return _Item(key, attributes, (longest_index + 1) * longest.seconds, tuple(ended))


def _brake_item(brake: Window, now: float) -> _Item:
    index = int(now // brake.seconds)
    resets_at = (index + 1) * brake.seconds
    return _Item(f"brake#{brake.seconds}#{index}", {"mints": Counted(brake, 0, resets_at)}, resets_at, brake=True)


class _Full(Exception):
    def __init__(self, counted: Counted, brake: bool) -> None:
        super().__init__("full")
        self.counted, self.brake = counted, brake


class _Fault(Exception):
    """The store could not be reached, or answered with an error that may pass. ``unanswered``: the request may
    have reached the store, and been applied, with no answer back (a timeout while waiting for it, a server
    error); else it surely was not."""

    def __init__(self, aws_code: str, *, unanswered: bool) -> None:
        super().__init__(aws_code)
        self.unanswered = unanswered


def _take(store: Store, item: _Item, deadline: Deadline) -> None:
    """Add one to each of the item's counters, if every one is under its limit; fill in the counts. _Full
    (with the full window's count) when one is not."""
    names = {f"#c{i}": name for i, name in enumerate(item.attributes)}
    values: dict[str, Any] = {":one": {"N": "1"}, ":expires": {"N": str(item.expires_at)}}
    conditions = []
    for i, counted in enumerate(item.attributes.values()):
        values[f":l{i}"] = {"N": str(counted.window.mints)}
        conditions.append(f"(attribute_not_exists(#c{i}) OR #c{i} < :l{i})")
    ended = {f"#p{i}": name for i, name in enumerate(item.ended)}
    expression = "ADD " + ", ".join(f"{alias} :one" for alias in names) + " SET #e = :expires"
    if ended:
        expression += " REMOVE " + ", ".join(ended)
    try:
        answer = _request(
            store,
            _UPDATE,
            {
                "Key": {"pk": {"S": item.key}},
                "UpdateExpression": expression,
                "ConditionExpression": " AND ".join(conditions),
                "ExpressionAttributeNames": {**names, **ended, "#e": "expires_at"},
                "ExpressionAttributeValues": values,
                "ReturnValues": "UPDATED_NEW",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
            deadline,
        )
    except _ConditionFailed as failed:
        full = [
            Counted(counted.window, used, counted.resets_at)
            for name, counted in item.attributes.items()
            if (used := _number(failed.item.get(name))) >= counted.window.mints
        ]
        if full:  # the one that frees last: until then no mint can pass
            raise _Full(max(full, key=lambda c: c.resets_at), item.brake) from None
        # Full a moment ago and not now (a unit given back in between): as full, for the shortest window.
        shortest = min(item.attributes.values(), key=lambda c: c.window.seconds)
        raise _Full(Counted(shortest.window, shortest.window.mints, shortest.resets_at), item.brake) from None
    updated = answer.get("Attributes", {})
    for name, counted in item.attributes.items():
        item.attributes[name] = Counted(counted.window, _number(updated.get(name)), counted.resets_at)


def _give_back(store: Store, items: list[_Item], why: str, deadline: Deadline) -> None:
    """Give one unit back to each item's counters; each one the store does not confirm is logged and counted
    (QuotaRefundFailures), as refused or as unconfirmed (perhaps given back after all), never raised."""
    for item in items:
        names = {f"#c{i}": name for i, name in enumerate(item.attributes)}
        try:
            _request(
                store,
                _UPDATE,
                {
                    "Key": {"pk": {"S": item.key}},
                    "UpdateExpression": "ADD " + ", ".join(f"{alias} :minus" for alias in names),
                    # Never below zero, nor an attribute made anew: a window that has ended stays ended.
                    "ConditionExpression": " AND ".join(f"{alias} > :zero" for alias in names),
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                },
                deadline,
            )
        except (_Fault, _ConditionFailed, ServiceMisconfigured) as failure:
            if isinstance(failure, _Fault) and failure.unanswered:
                logger.warning("quota give-back unconfirmed: the store did not answer", why=why, brake=item.brake)
            else:
                logger.warning("could not give quota units back", why=why, brake=item.brake)
            count("QuotaRefundFailures")


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.item = item


def _request(store: Store, operation: str, request: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    """One DynamoDB request (``operation``: UpdateItem on the store's table, or BatchGetItem), signed; its answer,
    _ConditionFailed, _Fault or ServiceMisconfigured."""
    request = {"TableName": store.table, **request} if operation == _UPDATE else request
    body = json.dumps(request, separators=(",", ":")).encode()
    url = parse_url(store.endpoint)
    # Signed as http.client sends the Host header: without the scheme's default port.
    host = url.host or ""
    if url.port is not None and url.port != {"https": 443, "http": 80}.get(url.scheme or ""):
        host = f"{host}:{url.port}"
    try:
        credentials = AwsCredentials.from_environment()
    except CredentialsMissing as missing:
        raise _misconfigured("quota_store_misconfigured", str(missing)) from None
    headers = signed_headers(
        credentials,
        method="POST",
        host=host,
        path="/",
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}"},
        body=body,
        region=store.region,
        service="dynamodb",
    )
    try:
        with keeping_to(deadline):
            response = _pools.connection_from_url(store.endpoint).urlopen(
                "POST", "/", body=body, headers=headers, timeout=_TIMEOUT
            )
    except (HTTPError, TimeoutError) as exc:
        raise _fault(type(exc).__name__, unanswered=not _never_sent(exc)) from None
    try:
        parsed = json.loads(response.data) if response.data else {}
    except ValueError:
        parsed = {}
    answer: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    if response.status == HTTPStatus.OK:
        return answer
    aws_code = str(answer.get("__type", "")).rpartition("#")[2] or f"HTTP {response.status}"
    if aws_code == "ConditionalCheckFailedException":
        item = answer.get("Item")
        raise _ConditionFailed(item if isinstance(item, dict) else {})
    if aws_code in _PASSING or response.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        # A server error leaves it open whether the write was applied; a throttle or an expired token says not.
        raise _fault(aws_code, unanswered=response.status >= HTTPStatus.INTERNAL_SERVER_ERROR)
    # DynamoDB's message names what is wrong with the table or the request; it holds no credential.
    message = str(answer.get("message") or answer.get("Message") or "")[:300]
    raise _misconfigured("quota_store_misconfigured", f"DynamoDB refused the {operation}: {aws_code}: {message}")


def _side_by_side(calls: list[Callable[[], None]]) -> list[BaseException | None]:
    """Run the calls at once (the first in this thread); what each raised, or None."""
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(position: int) -> None:
        try:
            calls[position]()
        except Exception as exc:
            outcomes[position] = exc

    others = [threading.Thread(target=run, args=(position,), daemon=True) for position in range(1, len(calls))]
    for thread in others:
        thread.start()
    run(0)
    for thread in others:
        thread.join()  # each keeps to the same budget
    return outcomes


def _refusal(full: _Full, profile: str, now: float) -> RateLimited:
    counted = full.counted
    wait = max(1, math.ceil(counted.resets_at - now))
    if full.brake:
        logger.warning("spend brake reached", limit=counted.window.mints, window_seconds=counted.window.seconds)
        count("QuotaRefusals", limit="spend_brake")
        message = (
            f"This service has reached its spend brake ({counted.window.describe()} across all users). "
            f"Try again in {_human(wait)}; the operator can raise the brake."
        )
    else:
        logger.info("quota reached", profile=profile, limit=counted.window.mints, window_seconds=counted.window.seconds)
        count("QuotaRefusals", limit="caller")
        message = (
            f"Rate limit reached for profile '{profile}': {counted.window.describe()} for each user. "
            f"Try again in {_human(wait)}."
        )
    return RateLimited(
        message,
        code="rate_limit_exceeded",
        retry_after_seconds=wait,
        limit=counted.window.mints,
        remaining=counted.remaining,
    )


def _never_sent(error: BaseException) -> bool:
    """Whether a failed request surely never reached the store: its connection could not be made."""
    reason = error.reason if isinstance(error, MaxRetryError) else error
    return isinstance(reason, ConnectTimeoutError)  # and NewConnectionError, its subclass


def _fault(aws_code: str, *, unanswered: bool) -> _Fault:
    logger.warning("quota store unavailable", aws_code=aws_code)
    count("DependencyErrors", dependency="dynamodb")
    return _Fault(aws_code, unanswered=unanswered)


def _misconfigured(reason: str, problem: str) -> ServiceMisconfigured:
    logger.error("refusing to mint: the quota store cannot be used", reason=reason, problem=problem)
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service cannot use its quota store, so it mints nothing until an operator fixes it (see the "
        "service's logs).",
        code=reason,
    )


def _number(value: Any) -> int:
    """A DynamoDB number attribute ({"N": "3"}) as an int; 0 when absent."""
    try:
        return int(value["N"]) if isinstance(value, dict) else 0
    except (KeyError, ValueError):
        return 0


def _human(seconds: int) -> str:
    """E.g. "42 s", "5 min 3 s", "3 h 12 min"."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
