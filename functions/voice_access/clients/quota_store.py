"""The quota store: counters in DynamoDB, and the one module that speaks to it.

A counter is a number attribute of an item (key ``pk``), of any unit, and this module knows nothing of what one
counts: the quota (domain/quota.py) names the items and counters and sets their limits. Amounts are whole numbers,
which DynamoDB adds exactly (a fractional unit is counted in a smaller whole one: money in micro-dollars, say).

- ``add_all``: each addition is one conditional UpdateItem that adds its amounts to an item's counters only if every
  counter then holds at most its limit, sets the item's expiry (TTL ``expires_at``) and removes the counters named.
  DynamoDB serialises the writes to an item, so concurrent additions never pass a limit, and nothing is read first.
  The additions go side by side (one round trip of waiting). One refused: ``Full``, with the counts as they stood.
- ``give_back``: takes amounts off an item's counters, never below zero nor making a counter anew.
- ``read``: the counts as they stand, with strongly consistent BatchGetItem requests (100 keys each, side by side).

For the items whose shape is another module's (domain/ledger.py: calls, their slots and their metering), three raw
requests: ``transact`` (one TransactWriteItems: all its writes or none; a transaction another one on the same items
cancelled is made again, twice at most), ``update`` (one UpdateItem, its condition refused as ``Refused``) and ``get``
(one strongly consistent GetItem).

A fault that may pass (throttling, an outage, no answer in time) is logged, counted and raised as StoreUnavailable
(a DependencyUnavailable), which says whether the request may have been applied all the same; a store that cannot be
used (no credentials, no table, access denied) as StoreMisconfigured (a ServiceMisconfigured). Their words are the
store's: a caller says what either means for what it was doing.

Requests are signed and sent by aws_api.py, with urllib3, as the OpenAI client sends its own.
"""

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import urllib3

from voice_access.clients import aws_api
from voice_access.clients.aws_signature import CredentialsMissing
from voice_access.clients.deadline import POOL_CLASSES, Deadline
from voice_access.domain.errors import DependencyUnavailable, ServiceMisconfigured
from voice_access.observability import count, logger

_TIMEOUT = urllib3.Timeout(connect=0.5, read=1.0)
# One connect, a retry, one answer: how long a caller lets a group of requests (side by side, or one after another)
# take, by bounding the deadline it gives them.
BUDGET_SECONDS = 2.0
# Less than this left, a request would time out and be blamed on the store: a caller asks nothing then.
MIN_SECONDS = 0.05
# How long to wait before trying again when the store is out of reach.
RETRY_AFTER_SECONDS = 2
_UPDATE = "UpdateItem"
_READ = "BatchGetItem"
_GET = "GetItem"
_TRANSACT = "TransactWriteItems"
# The requests on one item of the store's table, which name the table beside the item.
_ONE_ITEM = {_UPDATE, _GET}
# How many times a transaction is made in all when each try is cancelled only by another transaction on the same
# items (DynamoDB cancels one of two at once rather than queueing it, and the SDKs leave the retry to the caller).
_TRANSACT_TRIES = 3
# Seconds to wait before the next try, times the tries so far: a little random, so two writers part.
_CONFLICT_PAUSE = (0.01, 0.04)
# The reasons a transaction's write is cancelled for that may pass (the rest need an operator: "ValidationError").
_PASSING_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
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
    maxsize=2,  # a mint's two items, side by side
    retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0, backoff_factor=0.05),
)
_pools.pool_classes_by_scheme = POOL_CLASSES
# Placeholders for the numbers a request names are named for their number; these three as they have always been.
_NUMBER_NAMES = {1: ":one", 0: ":zero", -1: ":minus"}

type Counts = dict[str, int]  # by counter


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class Store:
    """Where the counters are: the table, DynamoDB's endpoint and the region to sign for."""

    __slots__ = ("endpoint", "region", "table")

    def __init__(self, table: str, endpoint: str, region: str) -> None:
        self.table = table
        self.endpoint = endpoint
        self.region = region


class Addition:
    """What to add to one item: ``amounts`` by counter, each only if the counter then holds at most its entry in
    ``limits`` (a counter without one takes any amount); the item expires at ``expires_at`` (epoch seconds), and
    the counters in ``remove`` go."""

    __slots__ = ("amounts", "expires_at", "key", "limits", "remove")

    def __init__(
        self, key: str, amounts: dict[str, int], limits: dict[str, int], expires_at: int, remove: tuple[str, ...] = ()
    ) -> None:
        self.key = key
        self.amounts = amounts
        self.limits = limits
        self.expires_at = expires_at
        self.remove = remove


class Full(Exception):
    """An addition refused: a counter would have passed its limit, and nothing was added. ``counts``: the
    addition's counters as they stood (0: none yet); ``full``: those that could not take their amount (none when
    one was freed between the refusal and its answer)."""

    def __init__(self, counts: Counts, full: tuple[str, ...]) -> None:
        super().__init__("full")
        self.counts, self.full = counts, full


class GiveBackRefused(Exception):
    """A give-back refused: a counter held less than its amount (its window gone, or given back already)."""


class Refused(Exception):
    """An ``update`` whose condition failed: nothing was written. ``item``: the item's attributes as they stood when
    the request asked for them (ReturnValuesOnConditionCheckFailure ALL_OLD), else empty."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.item = item


class Cancelled(Exception):
    """A transaction a condition refused: nothing was written. ``reasons``: one per write, in order, as DynamoDB gives
    them ("None", "ConditionalCheckFailed", ...); ``items``: for each write, its item's attributes as they stood when
    the write asked for them (ReturnValuesOnConditionCheckFailure ALL_OLD) and the item was there, else None."""

    def __init__(self, reasons: list[str], items: list[dict[str, Any] | None]) -> None:
        super().__init__(f"transaction cancelled: {', '.join(reasons)}")
        self.reasons, self.items = reasons, items


class StoreUnavailable(DependencyUnavailable):
    """The store could not be reached, or answered with an error that may pass (logged and counted when raised).
    ``unanswered``: the request may have reached the store, and been applied, with no answer back (a timeout while
    waiting for it, a server error); else it surely was not."""

    def __init__(self, aws_code: str, *, unanswered: bool) -> None:
        super().__init__(
            "The quota store could not be reached. Retry in a moment.",
            code="quota_store_unavailable",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
        self.aws_code, self.unanswered = aws_code, unanswered


class StoreMisconfigured(ServiceMisconfigured):
    """The store cannot be used until an operator acts: ``problem`` says why (it holds no credential)."""

    def __init__(self, problem: str) -> None:
        super().__init__("The quota store cannot be used until an operator fixes it.", code="quota_store_misconfigured")
        self.problem = problem


def add_all(store: Store, additions: Sequence[Addition], deadline: Deadline) -> list[Counts | Exception]:
    """Each addition made at once, side by side; for each, the counts after it (its counters') or what it raised:
    Full, StoreUnavailable, StoreMisconfigured (or a bug's exception)."""
    return _side_by_side([functools.partial(add, store, addition, deadline) for addition in additions])


def add(store: Store, addition: Addition, deadline: Deadline) -> Counts:
    """One addition: the counts after it, Full, StoreUnavailable or StoreMisconfigured."""
    names = {f"#c{i}": name for i, name in enumerate(addition.amounts)}
    values: dict[str, Any] = {_number_name(amount): {"N": str(amount)} for amount in addition.amounts.values()}
    values[":expires"] = {"N": str(addition.expires_at)}
    conditions = []
    for i, (name, amount) in enumerate(addition.amounts.items()):
        if name not in addition.limits:
            continue
        values[f":l{i}"] = {"N": str(addition.limits[name] - amount + 1)}
        # An absent counter holds nothing: it takes any amount up to its limit.
        absent = f"attribute_not_exists(#c{i}) OR " if amount <= addition.limits[name] else ""
        conditions.append(f"({absent}#c{i} < :l{i})")
    removed = {f"#p{i}": name for i, name in enumerate(addition.remove)}
    added = zip(names, addition.amounts.values(), strict=True)
    expression = "ADD " + ", ".join(f"{alias} {_number_name(amount)}" for alias, amount in added) + " SET #e = :expires"
    if removed:
        expression += " REMOVE " + ", ".join(removed)
    request: dict[str, Any] = {"Key": {"pk": {"S": addition.key}}, "UpdateExpression": expression}
    if conditions:
        request["ConditionExpression"] = " AND ".join(conditions)
    request |= {
        "ExpressionAttributeNames": {**names, **removed, "#e": "expires_at"},
        "ExpressionAttributeValues": values,
        "ReturnValues": "UPDATED_NEW",
    }
    if conditions:
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    try:
        answer = _request(store, _UPDATE, request, deadline)
    except _ConditionFailed as failed:
        counts = {name: _number(failed.item.get(name)) for name in addition.amounts}
        full = tuple(
            name
            for name, amount in addition.amounts.items()
            if name in addition.limits and counts[name] + amount > addition.limits[name]
        )
        raise Full(counts, full) from None
    updated = answer.get("Attributes", {})
    return {name: _number(updated.get(name)) for name in addition.amounts}


def give_back(store: Store, key: str, amounts: Mapping[str, int], deadline: Deadline) -> None:
    """Take ``amounts`` off the item's counters, if each holds at least its amount; GiveBackRefused if one does not,
    StoreUnavailable, StoreMisconfigured."""
    names = {f"#c{i}": name for i, name in enumerate(amounts)}
    values = {_number_name(-amount): {"N": str(-amount)} for amount in amounts.values()}
    values |= {_number_name(amount - 1): {"N": str(amount - 1)} for amount in amounts.values()}
    pairs = list(zip(names, amounts.values(), strict=True))
    try:
        _request(
            store,
            _UPDATE,
            {
                "Key": {"pk": {"S": key}},
                "UpdateExpression": "ADD " + ", ".join(f"{alias} {_number_name(-amount)}" for alias, amount in pairs),
                # Never below zero, nor a counter made anew: a window that has ended stays ended.
                "ConditionExpression": " AND ".join(f"{alias} > {_number_name(amount - 1)}" for alias, amount in pairs),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            },
            deadline,
        )
    except _ConditionFailed:
        raise GiveBackRefused(key) from None


class Read:
    """What ``read`` found: by key, each counter asked for (0: none counted yet), when ``failures`` is empty; else
    what each BatchGetItem that failed raised, in order (StoreUnavailable, StoreMisconfigured, or a bug's)."""

    __slots__ = ("counts", "failures")

    def __init__(self, counts: dict[str, Counts], failures: list[Exception]) -> None:
        self.counts = counts
        self.failures = failures


def read(store: Store, wanted: Mapping[str, Sequence[str]], deadline: Deadline) -> Read:
    """The counts of the counters ``wanted`` names by key, read and never written.

    Strongly consistent: a count read right after an addition includes it, where an eventually consistent read may
    not, for twice the read units of items this small. One BatchGetItem per 100 keys, side by side.
    """
    keys = list(wanted)
    batches = [keys[start : start + _BATCH_KEYS] for start in range(0, len(keys), _BATCH_KEYS)]
    outcomes = _side_by_side([functools.partial(_read, store, batch, wanted, deadline) for batch in batches])
    found: dict[str, dict[str, Any]] = {}
    failures = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            failures.append(outcome)
        else:
            found.update(outcome)
    counts = {key: {name: _number(found.get(key, {}).get(name)) for name in wanted[key]} for key in keys}
    return Read(counts, failures)


def _read(
    store: Store, keys: list[str], wanted: Mapping[str, Sequence[str]], deadline: Deadline
) -> dict[str, dict[str, Any]]:
    """The items of ``keys`` (at most 100) with one BatchGetItem, by key; StoreUnavailable if DynamoDB leaves any
    unread (throttled), as it may."""
    names = {f"#a{i}": name for i, name in enumerate(sorted({n for key in keys for n in wanted[key]}))}
    request = {
        "RequestItems": {
            store.table: {
                "Keys": [{"pk": {"S": key}} for key in keys],
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
    items = responses.get(store.table) if isinstance(responses, dict) else None
    found = {}
    for item in items if isinstance(items, list) else []:
        key = item.get("pk", {}).get("S") if isinstance(item, dict) else None
        if isinstance(key, str):
            found[key] = item
    return found


def transact(store: Store, writes: Sequence[dict[str, Any]], deadline: Deadline) -> None:
    """All of ``writes`` or none, with one TransactWriteItems (each write a dict of one DynamoDB Put, Update,
    ConditionCheck or Delete, without its TableName, at most 100 and each on another item). Cancelled when a
    condition refused it; StoreUnavailable when it was cancelled for what may pass (another transaction on the same
    items, each of its tries; throttling) or not answered; StoreMisconfigured."""
    items = [{kind: {"TableName": store.table, **body}} for write in writes for kind, body in write.items()]
    for tries in range(1, _TRANSACT_TRIES + 1):
        try:
            _request(store, _TRANSACT, {"TransactItems": items}, deadline)
            return
        except _TransactionCancelled as cancelled:
            reasons = cancelled.reasons
            if "ConditionalCheckFailed" in reasons:
                raise Cancelled(reasons, cancelled.items) from None
            failed = [reason for reason in reasons if reason != "None"]
            if not set(failed) <= _PASSING_REASONS:
                raise StoreMisconfigured(f"DynamoDB cancelled the {_TRANSACT}: {', '.join(reasons)}"[:300]) from None
            pause = random.uniform(*_CONFLICT_PAUSE) * tries  # noqa: S311 - a pause's spread, no secret
            if set(failed) != {"TransactionConflict"} or tries == _TRANSACT_TRIES:
                raise _fault(failed[0] if failed else "TransactionCanceledException", unanswered=False) from None
            if deadline.remaining() < pause + MIN_SECONDS:
                raise _fault("TransactionConflict", unanswered=False) from None
            time.sleep(pause)


def update(store: Store, request: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    """One UpdateItem on the store's table (``request`` without its TableName), as DynamoDB takes it; the attributes it
    returned (ReturnValues), or empty. Refused when its condition failed; StoreUnavailable, StoreMisconfigured."""
    try:
        answer = _request(store, _UPDATE, request, deadline)
    except _ConditionFailed as failed:
        raise Refused(failed.item) from None
    attributes = answer.get("Attributes")
    return attributes if isinstance(attributes, dict) else {}


def get(store: Store, key: str, names: Sequence[str], deadline: Deadline) -> dict[str, Any] | None:
    """The attributes ``names`` of the item ``key`` (strongly consistent GetItem), as DynamoDB gives them; None when
    there is no such item. StoreUnavailable, StoreMisconfigured."""
    aliases = {f"#a{i}": name for i, name in enumerate(names)}
    request = {
        "Key": {"pk": {"S": key}},
        "ConsistentRead": True,
        "ProjectionExpression": ", ".join(["pk", *aliases]),
        "ExpressionAttributeNames": aliases,
    }
    item = _request(store, _GET, request, deadline).get("Item")
    return item if isinstance(item, dict) else None


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.item = item


def _request(store: Store, operation: str, request: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
    """One DynamoDB request (``operation``: UpdateItem or GetItem on the store's table, BatchGetItem or
    TransactWriteItems), signed; its answer, _ConditionFailed, _TransactionCancelled, StoreUnavailable or
    StoreMisconfigured."""
    request = {"TableName": store.table, **request} if operation in _ONE_ITEM else request
    try:
        answer = aws_api.post(
            _pools,
            store.endpoint,
            f"DynamoDB_20120810.{operation}",
            request,
            json_version="1.0",
            service="dynamodb",
            region=store.region,
            timeout=_TIMEOUT,
            deadline=deadline,
        )
    except CredentialsMissing as missing:
        raise StoreMisconfigured(str(missing)) from None
    except aws_api.Unanswered as failed:
        raise _fault(failed.kind, unanswered=failed.maybe_applied) from None
    if answer.status == HTTPStatus.OK:
        return answer.body
    aws_code = answer.code or f"HTTP {answer.status}"
    if aws_code == "ConditionalCheckFailedException":
        item = answer.body.get("Item")
        raise _ConditionFailed(item if isinstance(item, dict) else {})
    if aws_code == "TransactionCanceledException" and (cancelled := _cancellation(answer.body)):
        raise cancelled
    if aws_code in _PASSING or answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        # A server error leaves it open whether the write was applied; a throttle or an expired token says not.
        raise _fault(aws_code, unanswered=answer.status >= HTTPStatus.INTERNAL_SERVER_ERROR)
    # DynamoDB's message names what is wrong with the table or the request; it holds no credential.
    message = str(answer.body.get("message") or answer.body.get("Message") or "")[:300]
    raise StoreMisconfigured(f"DynamoDB refused the {operation}: {aws_code}: {message}")


class _TransactionCancelled(Exception):
    def __init__(self, reasons: list[str], items: list[dict[str, Any] | None]) -> None:
        super().__init__("transaction cancelled")
        self.reasons, self.items = reasons, items


def _cancellation(body: dict[str, Any]) -> _TransactionCancelled | None:
    """A TransactionCanceledException's reasons, one per write: its CancellationReasons, else as its message lists
    them ("... reasons [None, ConditionalCheckFailed]"); None when it gives neither."""
    given = body.get("CancellationReasons")
    if isinstance(given, list):
        reasons = [_reason(reason) for reason in given]
        items = [_old_item(reason) for reason in given]
        return _TransactionCancelled(reasons, items)
    message = str(body.get("message") or body.get("Message") or "")
    opened, _, listed = message.rpartition("[")
    if not opened or not listed.endswith("]"):
        return None
    reasons = [reason.strip() for reason in listed.removesuffix("]").split(",")]
    return _TransactionCancelled(reasons, [None] * len(reasons))


def _reason(reason: Any) -> str:
    code = reason.get("Code") if isinstance(reason, dict) else None
    return code if isinstance(code, str) and code else "None"


def _old_item(reason: Any) -> dict[str, Any] | None:
    item = reason.get("Item") if isinstance(reason, dict) else None
    return item if isinstance(item, dict) else None


def _side_by_side[T](calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
    """Run the calls at once (the first in this thread); what each returned or raised."""
    if not calls:
        return []
    outcomes: list[Any] = [None] * len(calls)

    def run(position: int) -> None:
        try:
            outcomes[position] = calls[position]()
        except Exception as exc:
            outcomes[position] = exc

    others = [threading.Thread(target=run, args=(position,), daemon=True) for position in range(1, len(calls))]
    for thread in others:
        thread.start()
    run(0)
    for thread in others:
        thread.join()  # each keeps to the same deadline
    return outcomes


def _fault(aws_code: str, *, unanswered: bool) -> StoreUnavailable:
    logger.warning("quota store unavailable", aws_code=aws_code)
    count("DependencyErrors", dependency="dynamodb")
    return StoreUnavailable(aws_code, unanswered=unanswered)


def _number_name(number: int) -> str:
    """The placeholder for ``number`` in a request: ":one", ":zero", ":minus" (-1), else e.g. ":n5", ":m5" (-5)."""
    return _NUMBER_NAMES.get(number) or (f":n{number}" if number > 0 else f":m{-number}")


def _number(value: Any) -> int:
    """A DynamoDB number attribute ({"N": "3"}) as an int; 0 when absent."""
    try:
        return int(value["N"]) if isinstance(value, dict) else 0
    except (KeyError, ValueError):
        return 0
