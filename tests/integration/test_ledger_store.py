"""The ledger (domain/ledger.py) on the template's quota table in moto: call records and their supervisors'
generations, metering counted once per event however many supervisors meter it at once, seconds counted only beyond
the stored count, slots of calls open at once, budgets and the money brake, the requests each operation makes, and
the store's faults (clients/quota_store.py's transactions)."""

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.dynamodb_faults import DynamoDBFaults, StoreFault, StoreFaultKind
from voice_access.clients import quota_store
from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Cancelled, Refused, Store, StoreMisconfigured, StoreUnavailable
from voice_access.domain import ledger
from voice_access.domain.ledger import BudgetSpent, CallStart, Metered, TooManyCalls
from voice_access.domain.limits import DAY_SECONDS, Budget, Limits
from voice_access.domain.policy.model import Price
from voice_access.domain.pricing import Usage

ALICE, BOB = "a1" * 32, "b2" * 32  # safety identifiers
A_DOLLAR = Budget(usd=1, seconds=DAY_SECONDS)
HALF_AN_HOUR = Budget(call_seconds=1800, seconds=DAY_SECONDS)
LIMITS = Limits(budgets=[A_DOLLAR, HALF_AN_HOUR], concurrent_calls=2)
BRAKE = Budget(usd=50, seconds=DAY_SECONDS)
USAGE = Usage(text_input=100, text_cached_input=20, audio_input=300, text_output=40, audio_output=200)
COST = 17_321  # micro-dollars: any whole amount, the ledger adds it as given
LIVE_PRICE = Price(per_minute=0.05)


@pytest.fixture
def through_faults(store: Store, store_faults: DynamoDBFaults) -> Store:
    """The store, reached through the fault injector (which passes requests on and lists them)."""
    return Store(store.table, store_faults.endpoint_url, store.region)


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    """Every test starts as a new supervisor's process would: nothing remembered of any call's seconds."""
    ledger._counted_seconds.clear()
    yield
    ledger._counted_seconds.clear()


def deadline() -> Deadline:
    return Deadline.after(5)


def call(call_id: str = "rtc_one", *, user: str = ALICE, kind: str = "call", **fields: Any) -> CallStart:
    now = time.time()
    return CallStart(
        **{
            "call_id": call_id,
            "kind": kind,
            "profile": "voice",
            "user": user,
            "model": "gpt-realtime-2" if kind == "call" else "gpt-live",
            "started_at": now,
            "deadline_at": now + 600,
            **fields,
        }
    )


def item(dynamodb: Any, store: Store, key: str) -> dict[str, Any]:
    """The item's attributes as Python values (numbers as int or float), as DynamoDB holds them."""
    found = dynamodb.get_item(TableName=store.table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item", {})
    values: dict[str, Any] = {}
    for name, value in found.items():
        if "N" in value:
            number = float(value["N"])
            values[name] = int(number) if number.is_integer() else number
        else:
            values[name] = value["S"]
    return values


def used(dynamodb: Any, store: Store, budget: Budget, now: float, user: str = ALICE) -> int:
    index, _ = ledger.window_at(budget.seconds, now)
    key = ledger.brake_key(budget, index) if budget is BRAKE else ledger.budget_key("voice", budget, index, user)
    return int(item(dynamodb, store, key).get("used", 0))


def at_once[T](callers: Sequence[Callable[[], T]]) -> list[T | Exception]:
    """Each caller run in a thread of its own, all released together; what each returned or raised."""
    start = threading.Barrier(len(callers))
    outcomes: list[T | Exception] = []
    lock = threading.Lock()

    def run(caller: Callable[[], T]) -> None:
        start.wait(timeout=30)
        try:
            outcome: T | Exception = caller()
        except Exception as exc:
            outcome = exc
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(caller,)) for caller in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == len(callers), "a caller did not finish"
    return outcomes


def operations(faults: DynamoDBFaults, since: int = 0) -> list[str]:
    return [target.removeprefix("DynamoDB_20120810.") for target in faults.targets[since:]]


# --- the record and its supervisors ---


def test_a_calls_record_holds_its_start_and_counts_from_zero(store: Store, dynamodb: Any) -> None:
    # Given
    started = call()

    # When it is recorded, twice (a retry after a lost answer)
    ledger.record_start(store, started, deadline())
    ledger.record_start(store, started, deadline())

    # Then
    assert item(dynamodb, store, "call#rtc_one") == {
        "pk": "call#rtc_one",
        "user": ALICE,
        "profile": "voice",
        "kind": "call",
        "model": "gpt-realtime-2",
        "started_at": pytest.approx(started.started_at),
        "deadline_at": pytest.approx(started.deadline_at),
        "expires_at": int(started.started_at) + 1 + 35 * DAY_SECONDS,
        "tokens_in": 0,
        "tokens_out": 0,
        "cost_micro_usd": 0,
        "seconds": 0,
        "billed_seconds": 0,
    }


def test_a_meter_before_the_record_keeps_its_counts_and_the_record_its_start(store: Store, dynamodb: Any) -> None:
    # Given a supervisor that metered before the open's record was written
    started = call()
    ledger.meter(store, started, "r:resp_1", USAGE, COST, LIMITS, None, time.time(), deadline())

    # When
    ledger.record_start(store, started, deadline())

    # Then
    record = item(dynamodb, store, "call#rtc_one")
    assert (record["tokens_in"], record["tokens_out"], record["cost_micro_usd"]) == (420, 240, COST)
    assert (record["user"], record["model"], record["seconds"]) == (ALICE, "gpt-realtime-2", 0)


def test_the_latest_generation_holds_the_call_until_it_ends(store: Store) -> None:
    # Given a call recorded, no supervisor yet
    started = call()
    ledger.record_start(store, started, deadline())
    assert ledger.generation_of(store, "rtc_one", deadline()) == (-1, False)

    # When its first supervisor attaches (twice: an answer lost), then its successor, then the first again
    first = [ledger.attach(store, "rtc_one", 0, "h0", deadline()) for _ in range(2)]
    successor = ledger.attach(store, "rtc_one", 1, "h1", deadline())
    first_again = ledger.attach(store, "rtc_one", 0, "h0", deadline())

    # Then the successor holds it, and once it has ended no one attaches
    assert (first, successor, first_again) == ([True, True], True, False)
    assert ledger.generation_of(store, "rtc_one", deadline()) == (1, False)
    assert ledger.holding(store, "rtc_one", deadline()) == ledger.Holding(1, "h1", False)
    ledger.end(store, started, "max_length", time.time(), deadline())
    assert ledger.attach(store, "rtc_one", 2, "h2", deadline()) is False
    assert ledger.generation_of(store, "rtc_one", deadline()) == (1, True)
    assert ledger.holding(store, "rtc_one", deadline()) == ledger.Holding(1, "h1", True)


def test_one_supervisor_of_a_generation_holds_the_call(store: Store) -> None:
    # Given a call whose predecessor started two successors (the first slow to attach), or one event delivered twice
    ledger.record_start(store, call(), deadline())
    assert ledger.holding(store, "rtc_one", deadline()) == ledger.Holding(-1, None, False)

    # When both attach, and the first again (its answer lost)
    first = ledger.attach(store, "rtc_one", 1, "first", deadline())
    second = ledger.attach(store, "rtc_one", 1, "second", deadline())
    first_again = ledger.attach(store, "rtc_one", 1, "first", deadline())

    # Then the first holds it, the second does not take it over, and the record names the first
    assert (first, second, first_again) == (True, False, True)
    assert ledger.holding(store, "rtc_one", deadline()) == ledger.Holding(1, "first", False)


def test_a_call_ends_once_with_its_first_reason(store: Store, dynamodb: Any) -> None:
    # Given
    started = call()
    ledger.record_start(store, started, deadline())

    # When the supervisor and then the backstop end it
    ended_at = time.time()
    first = ledger.end(store, started, "max_length", ended_at, deadline())
    second = ledger.end(store, started, "backstop", ended_at + 30, deadline())

    # Then
    assert (first, second) == (True, False)
    record = item(dynamodb, store, "call#rtc_one")
    assert (record["end_reason"], record["ended_at"]) == ("max_length", pytest.approx(ended_at))


def test_the_end_of_a_call_never_recorded_makes_its_record_whole(store: Store, dynamodb: Any) -> None:
    # Given / When a call whose record was never written (the open failed after OpenAI opened it) is ended
    ledger.end(store, call(), "not_supervised", time.time(), deadline())

    # Then
    record = item(dynamodb, store, "call#rtc_one")
    assert (record["user"], record["profile"], record["end_reason"]) == (ALICE, "voice", "not_supervised")
    assert record["expires_at"] > time.time() + 34 * DAY_SECONDS


# --- metering, once per event ---


def test_an_event_metered_twice_counts_once(store: Store, dynamodb: Any) -> None:
    # Given
    started, now = call(), time.time()

    # When the same response is metered twice
    first = ledger.meter(store, started, "r:resp_1", USAGE, COST, LIMITS, BRAKE, now, deadline())
    again = ledger.meter(store, started, "r:resp_1", USAGE, COST, LIMITS, BRAKE, now, deadline())

    # Then its tokens and cost are on the record, the dollar budget and the brake once; seconds are not its to count
    assert (first, again) == (Metered(True, None, COST), Metered(False, None, 0))
    record = item(dynamodb, store, "call#rtc_one")
    assert (record["tokens_in"], record["tokens_out"], record["cost_micro_usd"]) == (420, 240, COST)
    assert (used(dynamodb, store, A_DOLLAR, now), used(dynamodb, store, BRAKE, now)) == (COST, COST)
    assert used(dynamodb, store, HALF_AN_HOUR, now) == 0
    marker = item(dynamodb, store, "meter#rtc_one#r:resp_1")
    assert marker["expires_at"] == int(started.deadline_at) + 1 + DAY_SECONDS


def test_supervisors_metering_one_event_at_once_count_it_once(store: Store, dynamodb: Any) -> None:
    # Given a call and 8 supervisors (say, one and its successor, and retries) with the same response at once
    started, now = call(), time.time()
    meters = [
        lambda: ledger.meter(store, started, "r:resp_1", USAGE, COST, LIMITS, BRAKE, now, deadline()) for _ in range(8)
    ]

    # When
    outcomes = at_once(meters)

    # Then exactly one counted it, and the others were told it was counted already
    assert sorted(str(outcome) for outcome in outcomes) == sorted(
        [str(Metered(True, None, COST))] + [str(Metered(False, None, 0))] * 7
    )
    assert item(dynamodb, store, "call#rtc_one")["cost_micro_usd"] == COST
    assert (used(dynamodb, store, A_DOLLAR, now), used(dynamodb, store, BRAKE, now)) == (COST, COST)


def test_events_metered_at_once_all_count(store: Store, dynamodb: Any) -> None:
    # Given 8 responses of one call and one of another caller's, metered at once
    started, bobs, now = call(), call("rtc_two", user=BOB), time.time()
    meters = [
        functools.partial(ledger.meter, store, started, f"r:resp_{n}", USAGE, COST + n, LIMITS, BRAKE, now, deadline())
        for n in range(8)
    ]
    meters.append(functools.partial(ledger.meter, store, bobs, "r:resp_0", USAGE, COST, LIMITS, BRAKE, now, deadline()))

    # When
    outcomes = at_once(meters)

    # Then each counted once, on its own caller's budget, and all on the brake
    assert all(isinstance(outcome, Metered) and outcome.counted for outcome in outcomes)
    alices = 8 * COST + sum(range(8))
    assert item(dynamodb, store, "call#rtc_one")["tokens_in"] == 8 * 420
    assert used(dynamodb, store, A_DOLLAR, now) == alices
    assert used(dynamodb, store, A_DOLLAR, now, user=BOB) == COST
    assert used(dynamodb, store, BRAKE, now) == alices + COST


def test_a_meter_says_when_it_spent_the_budget_and_the_next_open_is_refused(store: Store) -> None:
    # Given alice's dollar a day, 600,000 micro-dollars used
    started, now = call(), time.time()
    first = ledger.meter(store, started, "r:resp_1", USAGE, 600_000, LIMITS, BRAKE, now, deadline())
    ledger.check_budgets(store, "voice", LIMITS, BRAKE, ALICE, now, deadline())

    # When a response costs the 400,000 left
    second = ledger.meter(store, started, "r:resp_2", USAGE, 400_000, LIMITS, BRAKE, now, deadline())

    # Then the meter says the budget is spent, and an open is refused until the day ends
    assert (first.spent, second.spent) == (None, "the profile's budget of $1.00 per day")
    with pytest.raises(BudgetSpent) as refused:
        ledger.check_budgets(store, "voice", LIMITS, BRAKE, ALICE, now, deadline())
    assert refused.value.code == "budget_spent"
    assert refused.value.retry_after_seconds == max(1, -int(-(ledger.window_at(DAY_SECONDS, now)[1] - now) // 1))
    assert refused.value.remaining == 0
    # and bob's budget is his own
    ledger.check_budgets(store, "voice", LIMITS, BRAKE, BOB, now, deadline())


def test_the_money_brake_counts_every_callers_cost(store: Store) -> None:
    # Given a brake of a dollar a day
    brake, now = Budget(usd=1, seconds=DAY_SECONDS), time.time()
    ledger.meter(store, call(), "r:resp_1", USAGE, 500_000, None, brake, now, deadline())

    # When bob's call costs the other half
    metered = ledger.meter(store, call("rtc_two", user=BOB), "r:resp_1", USAGE, 500_000, None, brake, now, deadline())

    # Then the brake is reached for everyone
    assert metered.spent == "the service's money brake of $1.00 per day"
    with pytest.raises(BudgetSpent) as refused:
        ledger.check_budgets(store, "voice", LIMITS, brake, "c3" * 32, now, deadline())
    assert refused.value.code == "spend_brake"


# --- seconds ---


def test_seconds_count_only_beyond_those_counted(store: Store, dynamodb: Any) -> None:
    # Given
    started, now = call(), time.time()

    def meter(cumulative: int) -> Metered:
        return ledger.meter_seconds(store, started, cumulative, None, LIMITS, BRAKE, now, deadline())

    # When the elapsed seconds are metered at 10, again at 10, at 25, then an older 20
    outcomes = [meter(10), meter(10), meter(25), meter(20)]

    # Then 25 seconds were counted, once each, on the record and the call-seconds budget (and no cost)
    assert [(outcome.counted, outcome.seconds) for outcome in outcomes] == [
        (True, 10),
        (False, 0),
        (True, 15),
        (False, 0),
    ]
    assert item(dynamodb, store, "call#rtc_one")["seconds"] == 25
    assert used(dynamodb, store, HALF_AN_HOUR, now) == 25
    assert (used(dynamodb, store, A_DOLLAR, now), used(dynamodb, store, BRAKE, now)) == (0, 0)


def test_supervisors_metering_seconds_at_once_count_each_second_once(store: Store, dynamodb: Any) -> None:
    # Given a Live session and 5 supervisors (each a process of its own: nothing remembered) metering its usage at once
    started, now = call("live_one", kind="live_session"), time.time()

    def meter(cumulative: int) -> Callable[[], Metered]:
        def metering() -> Metered:
            return ledger.meter_seconds(store, started, cumulative, LIVE_PRICE, LIMITS, BRAKE, now, deadline())

        return metering

    # When
    outcomes = at_once([meter(seconds) for seconds in (30, 30, 45, 60, 60)])

    # Then 60 seconds were counted in all, and their cost once: what a minute costs, exactly
    assert all(isinstance(outcome, Metered) for outcome in outcomes), outcomes
    metered = [outcome for outcome in outcomes if isinstance(outcome, Metered)]
    assert sum(outcome.seconds for outcome in metered) == 60
    assert sum(outcome.cost_micro_usd for outcome in metered) == 50_000
    record = item(dynamodb, store, "call#live_one")
    assert (record["billed_seconds"], record["cost_micro_usd"], "seconds" in record) == (60, 50_000, False)
    assert used(dynamodb, store, HALF_AN_HOUR, now) == 60
    assert (used(dynamodb, store, A_DOLLAR, now), used(dynamodb, store, BRAKE, now)) == (50_000, 50_000)


def test_seconds_priced_per_minute_cost_their_total_rounded_once(store: Store, dynamodb: Any) -> None:
    # Given $0.05 a minute: 7 seconds cost 5,833.3 micro-dollars, a minute 50,000
    started, now = call("live_one", kind="live_session"), time.time()

    # When 7, then 60 seconds are metered
    costs = [
        ledger.meter_seconds(store, started, seconds, LIVE_PRICE, LIMITS, None, now, deadline()).cost_micro_usd
        for seconds in (7, 60)
    ]

    # Then the first was rounded up, and the second is what makes the total exact
    assert costs == [5_834, 44_166]
    assert item(dynamodb, store, "call#live_one")["cost_micro_usd"] == 50_000


def test_a_successor_counts_from_the_stored_count(
    store: Store, through_faults: Store, store_faults: DynamoDBFaults, dynamodb: Any
) -> None:
    # Given 40 seconds counted by a supervisor whose successor starts in a new process
    started, now = call(), time.time()
    ledger.meter_seconds(store, started, 40, None, LIMITS, None, now, deadline())
    ledger._counted_seconds.clear()

    # When the successor meters 50
    metered = ledger.meter_seconds(through_faults, started, 50, None, LIMITS, None, now, deadline())

    # Then it counted 10, after one refused try that told it the stored count, and the read of the budgets
    assert (metered.counted, metered.seconds) == (True, 10)
    assert used(dynamodb, store, HALF_AN_HOUR, now) == 50
    assert operations(store_faults) == ["TransactWriteItems", "TransactWriteItems", "BatchGetItem"]


# --- calls at once ---


def test_a_caller_holds_at_most_its_calls_at_once(store: Store) -> None:
    # Given alice's two slots taken
    expires_at = time.time() + 720
    slots = [ledger.take_slot(store, "voice", LIMITS, ALICE, lease, expires_at, deadline()) for lease in ("l1", "l2")]

    # When a third call opens, then one ends and it opens again
    with pytest.raises(TooManyCalls) as refused:
        ledger.take_slot(store, "voice", LIMITS, ALICE, "l3", expires_at, deadline())
    ledger.release_slot(store, "voice", ALICE, 0, "l1", deadline())
    again = ledger.take_slot(store, "voice", LIMITS, ALICE, "l3", expires_at, deadline())

    # Then
    assert slots == [0, 1]
    assert (refused.value.code, refused.value.limit) == ("too_many_calls", 2)
    assert 700 <= refused.value.retry_after_seconds <= 721
    assert again == 0
    # and bob's, and another profile's, are apart
    assert ledger.take_slot(store, "voice", LIMITS, BOB, "l4", expires_at, deadline()) == 0
    assert ledger.take_slot(store, "voice-premium", LIMITS, ALICE, "l5", expires_at, deadline()) == 0


def test_callers_racing_for_slots_take_exactly_as_many_as_allowed(store: Store, dynamodb: Any) -> None:
    # Given 6 opens of alice's at once, where 2 calls at once are allowed
    expires_at = time.time() + 720
    takes = [
        functools.partial(ledger.take_slot, store, "voice", LIMITS, ALICE, f"lease{n}", expires_at, deadline())
        for n in range(6)
    ]

    # When
    outcomes = at_once(takes)

    # Then exactly two took a slot, one each, and the rest were refused
    assert sorted(outcome for outcome in outcomes if isinstance(outcome, int)) == [0, 1]
    assert sum(isinstance(outcome, TooManyCalls) for outcome in outcomes) == 4
    held = item(dynamodb, store, ledger.slots_key("voice", ALICE))
    assert held["l0"] != held["l1"]


def test_a_slot_past_its_expiry_is_free_though_its_item_stays(store: Store, dynamodb: Any) -> None:
    # Given both of alice's slots held by calls whose ends were lost, expired a second ago (TTL deletes them late)
    past = int(time.time()) - 1
    key = ledger.slots_key("voice", ALICE)
    dynamodb.put_item(
        TableName=store.table,
        Item={
            "pk": {"S": key},
            "s0": {"N": str(past)},
            "l0": {"S": "lost0"},
            "s1": {"N": str(past)},
            "l1": {"S": "lost1"},
            "expires_at": {"N": str(past + DAY_SECONDS)},
        },
    )

    # When
    slot = ledger.take_slot(store, "voice", LIMITS, ALICE, "new", time.time() + 720, deadline())

    # Then
    assert slot == 0
    assert item(dynamodb, store, key)["l0"] == "new"


def test_a_slot_is_freed_only_by_its_own_lease(store: Store) -> None:
    # Given alice's slots held
    expires_at = time.time() + 720
    for lease in ("l1", "l2"):
        ledger.take_slot(store, "voice", LIMITS, ALICE, lease, expires_at, deadline())

    # When another lease releases slot 0 (say, a call whose slot expired and was taken over)
    ledger.release_slot(store, "voice", ALICE, 0, "someone-else", deadline())

    # Then it is still held
    with pytest.raises(TooManyCalls):
        ledger.take_slot(store, "voice", LIMITS, ALICE, "l3", expires_at, deadline())


def test_ending_a_call_frees_its_slot(store: Store) -> None:
    # Given alice's two calls open
    expires_at = time.time() + 720
    slots = [ledger.take_slot(store, "voice", LIMITS, ALICE, lease, expires_at, deadline()) for lease in ("l1", "l2")]
    ended = call(lease="l2", slot=slots[1])

    # When one ends
    ledger.end(store, ended, "hung_up", time.time(), deadline())

    # Then a call opens in its slot
    assert ledger.take_slot(store, "voice", LIMITS, ALICE, "l3", expires_at, deadline()) == 1


def test_a_profile_without_concurrent_calls_takes_no_slot(through_faults: Store, store_faults: DynamoDBFaults) -> None:
    assert (
        ledger.take_slot(through_faults, "voice", Limits(budgets=[A_DOLLAR]), ALICE, "l", time.time() + 9, deadline())
        is None
    )
    assert operations(store_faults) == []


# --- what a caller has left ---


def test_standing_gives_each_budget_then_the_calls_open(store: Store) -> None:
    # Given alice's call open and metered
    now = time.time()
    ledger.take_slot(store, "voice", LIMITS, ALICE, "l1", now + 720, deadline())
    ledger.meter(store, call(), "r:resp_1", USAGE, COST, LIMITS, None, now, deadline())
    ledger.meter_seconds(store, call(), 90, None, LIMITS, None, now, deadline())

    # When
    standing = ledger.standing(store, "voice", LIMITS, ALICE, now, deadline())

    # Then
    day_ends = ledger.window_at(DAY_SECONDS, now)[1]
    assert standing == [
        ledger.Standing(A_DOLLAR, 1_000_000, COST, day_ends),
        ledger.Standing(HALF_AN_HOUR, 1800, 90, day_ends),
        ledger.Standing(None, 2, 1, None),
    ]
    assert [entry.remaining for entry in standing] == [1_000_000 - COST, 1710, 1]


# --- how many requests ---


def test_each_operation_makes_one_or_two_requests(through_faults: Store, store_faults: DynamoDBFaults) -> None:
    # Given a call through the fault injector, which lists every request
    store, now, expires_at = through_faults, time.time(), time.time() + 720
    started = call(lease="l1", slot=0)

    def requests(operation: Callable[[], object]) -> list[str]:
        before = len(store_faults.targets)
        operation()
        return operations(store_faults, before)

    # When / Then
    assert requests(lambda: ledger.check_budgets(store, "voice", LIMITS, BRAKE, ALICE, now, deadline())) == [
        "BatchGetItem"
    ]
    assert requests(lambda: ledger.check_budgets(store, "voice", None, None, ALICE, now, deadline())) == []
    assert requests(lambda: ledger.take_slot(store, "voice", LIMITS, ALICE, "l1", expires_at, deadline())) == [
        "UpdateItem"
    ]
    # slot 0 held: its refusal says which is free
    assert requests(lambda: ledger.take_slot(store, "voice", LIMITS, ALICE, "l2", expires_at, deadline())) == [
        "UpdateItem",
        "UpdateItem",
    ]
    assert requests(lambda: ledger.record_start(store, started, deadline())) == ["UpdateItem"]
    assert requests(lambda: ledger.attach(store, "rtc_one", 0, "h0", deadline())) == ["UpdateItem"]
    assert requests(lambda: ledger.generation_of(store, "rtc_one", deadline())) == ["GetItem"]
    assert requests(lambda: ledger.holding(store, "rtc_one", deadline())) == ["GetItem"]
    assert requests(lambda: ledger.meter(store, started, "r:resp_1", USAGE, COST, LIMITS, BRAKE, now, deadline())) == [
        "TransactWriteItems",
        "BatchGetItem",
    ]
    assert requests(lambda: ledger.meter_seconds(store, started, 15, None, LIMITS, BRAKE, now, deadline())) == [
        "TransactWriteItems",
        "BatchGetItem",
    ]
    assert requests(lambda: ledger.standing(store, "voice", LIMITS, ALICE, now, deadline())) == ["BatchGetItem"]
    assert requests(lambda: ledger.end(store, started, "hung_up", time.time(), deadline())) == [
        "UpdateItem",
        "UpdateItem",
    ]


# --- the store's transactions and faults ---

CONFLICT = StoreFault(
    StoreFaultKind.ERROR,
    aws_code="TransactionCanceledException",
    message="Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
)


def test_a_transaction_cancelled_by_another_on_the_same_item_is_made_again(
    store: Store, through_faults: Store, store_faults: DynamoDBFaults, dynamodb: Any
) -> None:
    # Given another transaction on the brake's item cancelling this one, twice
    store_faults.inject(CONFLICT, CONFLICT)
    now = time.time()

    # When
    metered = ledger.meter(through_faults, call(), "r:resp_1", USAGE, COST, LIMITS, BRAKE, now, deadline())

    # Then the third try counted it
    assert metered.counted
    assert operations(store_faults) == ["TransactWriteItems"] * 3 + ["BatchGetItem"]
    assert used(dynamodb, store, BRAKE, now) == COST


def test_a_transaction_in_conflict_at_every_try_is_unavailable_and_not_applied(
    store: Store, through_faults: Store, store_faults: DynamoDBFaults, dynamodb: Any
) -> None:
    # Given
    store_faults.fail_every(CONFLICT)
    now = time.time()

    # When / Then
    with pytest.raises(StoreUnavailable) as failed:
        ledger.meter(through_faults, call(), "r:resp_1", USAGE, COST, LIMITS, BRAKE, now, deadline())
    assert (failed.value.aws_code, failed.value.unanswered) == ("TransactionConflict", False)
    assert operations(store_faults) == ["TransactWriteItems"] * 3
    assert used(dynamodb, store, BRAKE, now) == 0


def test_a_throttled_transaction_is_unavailable(through_faults: Store, store_faults: DynamoDBFaults) -> None:
    # Given / When
    store_faults.inject(StoreFault.throttling())
    with pytest.raises(StoreUnavailable) as failed:
        ledger.meter(through_faults, call(), "r:resp_1", USAGE, COST, LIMITS, BRAKE, time.time(), deadline())

    # Then
    assert (failed.value.aws_code, failed.value.unanswered) == ("ThrottlingException", False)


def test_a_meter_whose_counters_cannot_be_read_after_it_counted_says_it_may_have(
    through_faults: Store, store_faults: DynamoDBFaults
) -> None:
    # Given the read after the write throttled
    store_faults.inject(StoreFault.passed(), StoreFault.throttling())

    # When / Then
    with pytest.raises(StoreUnavailable) as failed:
        ledger.meter(through_faults, call(), "r:resp_1", USAGE, COST, LIMITS, BRAKE, time.time(), deadline())
    assert failed.value.unanswered


def test_a_table_that_does_not_exist_is_misconfigured_naming_the_transaction(store: Store) -> None:
    # Given / When
    with pytest.raises(StoreMisconfigured) as failed:
        ledger.meter(
            Store("no-such-table", store.endpoint, store.region),
            call(),
            "r:resp_1",
            USAGE,
            COST,
            LIMITS,
            BRAKE,
            time.time(),
            deadline(),
        )

    # Then
    assert failed.value.problem.startswith("DynamoDB refused the TransactWriteItems: ResourceNotFoundException")


def test_a_cancelled_transaction_gives_each_writes_reason_and_the_item_it_asked_for(store: Store) -> None:
    # Given an item with a count of 3
    quota_store.transact(store, [{"Put": {"Item": {"pk": {"S": "x#1"}, "n": {"N": "3"}}}}], deadline())

    # When a transaction's second write finds the count is not 2
    with pytest.raises(Cancelled) as cancelled:
        quota_store.transact(
            store,
            [
                {"Put": {"Item": {"pk": {"S": "x#2"}}}},
                {
                    "Update": {
                        "Key": {"pk": {"S": "x#1"}},
                        "UpdateExpression": "SET n = :three",
                        "ConditionExpression": "n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":three": {"N": "3"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ],
            deadline(),
        )

    # Then nothing was written, and the refusal says which write and how the item stood
    assert cancelled.value.reasons == ["None", "ConditionalCheckFailed"]
    assert cancelled.value.items == [None, {"pk": {"S": "x#1"}, "n": {"N": "3"}}]
    assert quota_store.get(store, "x#2", ["pk"], deadline()) is None


def test_an_update_refused_gives_the_item_as_it_stood(store: Store) -> None:
    # Given / When
    quota_store.update(
        store,
        {
            "Key": {"pk": {"S": "x#1"}},
            "UpdateExpression": "SET n = :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        },
        deadline(),
    )
    with pytest.raises(Refused) as refused:
        quota_store.update(
            store,
            {
                "Key": {"pk": {"S": "x#1"}},
                "UpdateExpression": "SET n = :two",
                "ConditionExpression": "attribute_not_exists(n)",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
            deadline(),
        )

    # Then
    assert refused.value.item == {"pk": {"S": "x#1"}, "n": {"N": "1"}}
    assert quota_store.get(store, "x#1", ["n"], deadline()) == {"pk": {"S": "x#1"}, "n": {"N": "1"}}
