"""The quota store's own API (clients/quota_store.py) on the template's quota table in moto, in a unit other than
mints (seconds of audio, say): conditional additions of any amount, give-backs, reads, removals, and its faults."""

import threading
from typing import Any

import pytest

from tests.dynamodb_faults import DynamoDBFaults, StoreFault, closed_port_url
from tests.output import Output
from voice_access.clients import quota_store
from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import (
    Addition,
    Full,
    GiveBackRefused,
    Store,
    StoreMisconfigured,
    StoreUnavailable,
)

KEY = "meter#caller-a"
MINUTE, HOUR = "seconds_w60_7", "seconds_w3600_0"  # counters of seconds, in a minute's and an hour's window
EXPIRES = 1_900_000_000


def deadline() -> Deadline:
    return Deadline.after(5)


def item(dynamodb: Any, store: Store, key: str = KEY) -> dict[str, int]:
    """The item's number attributes, as DynamoDB holds them."""
    found = dynamodb.get_item(TableName=store.table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item", {})
    return {name: int(value["N"]) for name, value in found.items() if "N" in value}


def seconds(amount: int, *, minute: int = 60, hour: int = 600, remove: tuple[str, ...] = ()) -> Addition:
    """``amount`` seconds in the minute and the hour, within ``minute`` and ``hour`` seconds."""
    return Addition(KEY, {MINUTE: amount, HOUR: amount}, {MINUTE: minute, HOUR: hour}, EXPIRES, remove)


def test_an_addition_within_every_limit_adds_its_amounts_and_returns_the_counts(store: Store, dynamodb: Any) -> None:
    # Given / When 37 seconds, then 23 (the minute's limit exactly)
    first = quota_store.add(store, seconds(37), deadline())
    second = quota_store.add(store, seconds(23), deadline())

    # Then
    assert (first, second) == ({MINUTE: 37, HOUR: 37}, {MINUTE: 60, HOUR: 60})
    assert item(dynamodb, store) == {MINUTE: 60, HOUR: 60, "expires_at": EXPIRES}


def test_an_addition_one_counter_cannot_take_adds_nothing_and_names_that_counter(store: Store, dynamodb: Any) -> None:
    # Given 50 of the minute's 60 seconds used
    quota_store.add(store, seconds(50), deadline())

    # When 11 more are added
    with pytest.raises(Full) as refused:
        quota_store.add(store, seconds(11), deadline())

    # Then the minute is named full, both counts are as they stood, and nothing was added to either
    assert refused.value.full == (MINUTE,)
    assert refused.value.counts == {MINUTE: 50, HOUR: 50}
    assert item(dynamodb, store)[HOUR] == 50


def test_an_amount_larger_than_its_limit_is_refused_even_on_a_new_counter(store: Store, dynamodb: Any) -> None:
    # Given / When 61 seconds into an empty minute of 60
    with pytest.raises(Full) as refused:
        quota_store.add(store, seconds(61), deadline())

    # Then
    assert (refused.value.full, refused.value.counts) == ((MINUTE,), {MINUTE: 0, HOUR: 0})
    assert item(dynamodb, store) == {}


def test_a_counter_without_a_limit_takes_any_amount(store: Store) -> None:
    # Given / When
    counts = quota_store.add(store, Addition(KEY, {"dollars_micro": 2_500_000_000}, {}, EXPIRES), deadline())

    # Then
    assert counts == {"dollars_micro": 2_500_000_000}


def test_concurrent_additions_never_pass_a_limit(store: Store, dynamodb: Any) -> None:
    # Given 20 additions of 7 seconds at once, where the hour holds 50
    start = threading.Barrier(20)
    outcomes: list[object] = []

    def add() -> None:
        start.wait()
        try:
            outcomes.append(quota_store.add(store, seconds(7, minute=3600, hour=50), deadline()))
        except Full as full:
            outcomes.append(full)

    threads = [threading.Thread(target=add) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly 7 of them were added: 49 seconds
    assert sum(not isinstance(outcome, Full) for outcome in outcomes) == 7
    assert item(dynamodb, store)[HOUR] == 49


def test_add_all_answers_each_addition_in_order(store: Store) -> None:
    # Given / When one addition that fits and one that does not, side by side
    outcomes = quota_store.add_all(
        store, [seconds(10), Addition("meter#caller-b", {MINUTE: 90}, {MINUTE: 60}, EXPIRES)], deadline()
    )

    # Then
    counts, refused = outcomes
    assert counts == {MINUTE: 10, HOUR: 10}
    assert isinstance(refused, Full)
    assert refused.full == (MINUTE,)


def test_an_addition_removes_the_counters_it_names(store: Store, dynamodb: Any) -> None:
    # Given the minute before's counter
    quota_store.add(store, Addition(KEY, {"seconds_w60_6": 5}, {}, EXPIRES), deadline())

    # When the next minute's addition removes it
    quota_store.add(store, seconds(3, remove=("seconds_w60_6",)), deadline())

    # Then
    assert item(dynamodb, store) == {MINUTE: 3, HOUR: 3, "expires_at": EXPIRES}


def test_a_give_back_takes_its_amounts_off_but_never_below_zero(store: Store, dynamodb: Any) -> None:
    # Given 40 seconds counted
    quota_store.add(store, seconds(40), deadline())

    # When 15 are given back, then 30
    quota_store.give_back(store, KEY, {MINUTE: 15, HOUR: 15}, deadline())
    with pytest.raises(GiveBackRefused):
        quota_store.give_back(store, KEY, {MINUTE: 30, HOUR: 30}, deadline())

    # Then the first was taken off and the second, more than was left, not at all
    assert item(dynamodb, store) == {MINUTE: 25, HOUR: 25, "expires_at": EXPIRES}


def test_a_give_back_never_makes_a_counter_anew(store: Store, dynamodb: Any) -> None:
    # Given / When a give-back to an item that holds nothing
    with pytest.raises(GiveBackRefused):
        quota_store.give_back(store, "meter#nobody", {MINUTE: 1}, deadline())

    # Then
    assert item(dynamodb, store, "meter#nobody") == {}


def test_a_read_gives_every_counter_asked_for_and_writes_nothing(store: Store, dynamodb: Any) -> None:
    # Given one item of 150 with counts, the rest never written (two BatchGetItem requests)
    quota_store.add(store, seconds(12), deadline())
    keys = [KEY, *(f"meter#absent-{n}" for n in range(149))]

    # When
    read = quota_store.read(store, {key: [MINUTE, HOUR, "seconds_w86400_0"] for key in keys}, deadline())

    # Then counters not counted yet read 0, and nothing was written
    assert read.failures == []
    assert read.counts[KEY] == {MINUTE: 12, HOUR: 12, "seconds_w86400_0": 0}
    assert all(read.counts[key] == {MINUTE: 0, HOUR: 0, "seconds_w86400_0": 0} for key in keys[1:])
    assert dynamodb.scan(TableName=store.table)["Count"] == 1


@pytest.mark.parametrize(
    ("fault", "unanswered"), [(StoreFault.throttling(), False), (StoreFault.internal_server_error(), True)]
)
def test_a_fault_that_may_pass_is_unavailable_says_whether_it_may_have_been_applied_and_is_counted(
    store: Store, store_faults: DynamoDBFaults, output: Output, fault: StoreFault, unanswered: bool
) -> None:
    # Given the store failing once
    store_faults.inject(fault)
    faulty = Store(store.table, store_faults.endpoint_url, store.region)

    # When / Then
    with pytest.raises(StoreUnavailable) as failed:
        quota_store.add(faulty, seconds(1), deadline())
    assert (failed.value.aws_code, failed.value.unanswered) == (fault.aws_code, unanswered)
    assert output.metric_count("DependencyErrors", dependency="dynamodb") == 1


def test_a_store_out_of_reach_is_unavailable_and_surely_not_applied(store: Store) -> None:
    # Given / When nothing listens where DynamoDB should be
    with pytest.raises(StoreUnavailable) as failed:
        quota_store.add(Store(store.table, closed_port_url(), store.region), seconds(1), deadline())

    # Then
    assert not failed.value.unanswered


def test_a_read_fault_is_a_failure_of_the_read(store: Store, store_faults: DynamoDBFaults) -> None:
    # Given / When
    store_faults.inject(StoreFault.throttling())
    read = quota_store.read(Store(store.table, store_faults.endpoint_url, store.region), {KEY: [MINUTE]}, deadline())

    # Then
    [failure] = read.failures
    assert isinstance(failure, StoreUnavailable)


def test_a_table_that_does_not_exist_is_misconfigured_naming_dynamodbs_error(store: Store) -> None:
    # Given / When
    with pytest.raises(StoreMisconfigured) as failed:
        quota_store.add(Store("no-such-table", store.endpoint, store.region), seconds(1), deadline())

    # Then
    assert failed.value.problem.startswith("DynamoDB refused the UpdateItem: ResourceNotFoundException")
