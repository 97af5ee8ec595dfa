"""The ledger's pure parts (domain/ledger.py), without a network: its items' keys, the windows a budget counts in, and
how a spent budget, the money brake and too many calls at once read (as the edge answers them: edge/answers.py)."""

import re
from http import HTTPStatus

import pytest

from tests.output import Output
from voice_access.domain import ledger
from voice_access.domain.caller import Caller
from voice_access.domain.ledger import BudgetSpent, TooManyCalls, _counters, _spent_refusal, _too_many, window_at
from voice_access.domain.limits import Budget, Limits, Window
from voice_access.domain.quota import _brake_item, _caller_item
from voice_access.domain.safety import safety_identifier
from voice_access.edge import answers

SAFETY_KEY = "unit-test-safety-key-0123456789abcdef"
HEX64 = re.compile(r"[0-9a-f]{64}")
MINUTE, HOUR, DAY = 60, 3600, 86400
# 2025-11-28 00:00:00 UTC, a Friday
MIDNIGHT = 1_764_288_000
A_DOLLAR_A_DAY = Budget(usd=1, seconds=DAY)
HALF_AN_HOUR_A_DAY = Budget(call_seconds=1800, seconds=DAY)
A_WEEK = 7 * DAY
BRAKE = Budget(usd=50, seconds=DAY)


def user(subject: str) -> str:
    return safety_identifier(SAFETY_KEY, Caller(issuer="https://issuer.example", subject=subject))


# --- keys ---


def test_each_item_is_keyed_by_what_it_counts_and_the_callers_safety_identifier() -> None:
    # Given
    safety_id = user("alice")

    # When / Then
    assert ledger.call_key("rtc_abc") == "call#rtc_abc"
    assert ledger.marker_key("rtc_abc", "r:resp_1") == "meter#rtc_abc#r:resp_1"
    assert ledger.budget_key("voice", A_DOLLAR_A_DAY, 20420, safety_id) == f"budget#voice#usd#86400#20420#{safety_id}"
    assert ledger.budget_key("voice", HALF_AN_HOUR_A_DAY, 20420, safety_id).startswith("budget#voice#call_seconds#")
    assert ledger.brake_key(BRAKE, 20420) == "brake$#86400#20420"
    assert ledger.slots_key("voice", safety_id) == f"open#voice#{safety_id}"


def test_the_money_brake_never_shares_an_item_with_the_mints_spend_brake() -> None:
    # Given / When both brakes per day, now
    mints = _brake_item(Window(mints=5000, seconds=DAY), MIDNIGHT + 5.0)
    money = ledger.brake_key(BRAKE, window_at(DAY, MIDNIGHT + 5.0)[0])

    # Then
    assert mints.key != money


@pytest.mark.parametrize(
    "event_key",
    ["x" * 201, "r:resp\n1", "t:ünïcødé:0", "\ud800", ""],
    ids=["long", "control", "unicode", "surrogate", "empty"],
)
def test_an_event_key_that_could_break_a_key_is_keyed_by_its_hash(event_key: str) -> None:
    # Given / When
    key = ledger.marker_key("rtc_abc", event_key)

    # Then the key is short printable ASCII, and another such key has another hash
    call, _, part = key.removeprefix("meter#").partition("#")
    assert call == "rtc_abc"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", part)
    assert key != ledger.marker_key("rtc_abc", event_key + "x")


def test_an_event_key_at_the_longest_kept_stays_as_it_is() -> None:
    assert ledger.marker_key("rtc_abc", "r:" + "a" * 198) == "meter#rtc_abc#r:" + "a" * 198


# --- windows ---


@pytest.mark.parametrize(
    "now", [0.0, 59.999, 60.0, 86_399.999, 86_400.0, MIDNIGHT - 0.001, float(MIDNIGHT), MIDNIGHT + A_WEEK - 0.5]
)
@pytest.mark.parametrize("seconds", [MINUTE, HOUR, DAY, A_WEEK])
def test_a_budgets_window_is_the_quotas_window_of_its_length(now: float, seconds: int) -> None:
    # Given / When the window of a budget and of a quota's window of the same length
    index, resets_at = window_at(seconds, now)
    counted = _caller_item("voice", [Window(mints=1, seconds=seconds)], user("alice"), now)

    # Then they turn together: the same index, ending at the same instant
    assert counted.key.split("#")[3] == str(index)
    assert counted.expires_at == resets_at
    assert index * seconds <= now < resets_at == (index + 1) * seconds


def test_a_day_budget_turns_at_midnight_utc_with_a_new_counter() -> None:
    # Given / When the last instant of a UTC day and the first of the next
    [before] = _counters("voice", Limits(budgets=[A_DOLLAR_A_DAY]), None, user("alice"), MIDNIGHT - 0.001)
    [after] = _counters("voice", Limits(budgets=[A_DOLLAR_A_DAY]), None, user("alice"), float(MIDNIGHT))

    # Then
    assert before.key != after.key
    assert (before.resets_at, after.resets_at) == (MIDNIGHT, MIDNIGHT + DAY)


def test_the_counters_are_the_profiles_budgets_in_order_then_the_brake() -> None:
    # Given
    limits = Limits(budgets=[HALF_AN_HOUR_A_DAY, A_DOLLAR_A_DAY, Budget(usd=5, seconds=A_WEEK)])

    # When
    counters = _counters("voice", limits, BRAKE, user("alice"), MIDNIGHT + 10.0)

    # Then each budget counts apart, by its unit and length; the brake for every caller
    assert [counter.budget for counter in counters] == [*limits.budgets, BRAKE]
    assert [counter.brake for counter in counters] == [False, False, False, True]
    assert len({counter.key for counter in counters}) == 4
    assert counters[2].resets_at == window_at(A_WEEK, MIDNIGHT + 10.0)[1]


def test_a_profile_without_budgets_and_no_brake_has_no_counter() -> None:
    assert _counters("voice", Limits(concurrent_calls=2), None, user("alice"), 0.0) == []
    assert _counters("voice", None, None, user("alice"), 0.0) == []


def test_a_standing_has_nothing_remaining_below_zero() -> None:
    assert ledger.Standing(A_DOLLAR_A_DAY, 1_000_000, 1_250_000, MIDNIGHT).remaining == 0


# --- refusals ---


def spent(budget: Budget, *, resets_at: int, now: float, brake: bool = False) -> BudgetSpent:
    [counter] = _counters("voice", None if brake else Limits(budgets=[budget]), budget if brake else None, "u", now)
    assert counter.resets_at == resets_at
    return _spent_refusal(counter, budget.limit, "voice", now)


def test_a_spent_budget_is_a_rate_limit_naming_the_budget_and_when_it_frees(output: Output) -> None:
    # Given alice's dollar a day spent, 3 h 12 min before midnight UTC
    now = MIDNIGHT - (3 * HOUR + 12 * MINUTE)
    error = spent(A_DOLLAR_A_DAY, resets_at=MIDNIGHT, now=now)

    # When
    envelope = answers.envelope(error)["error"]

    # Then
    assert answers.status_of(error) == HTTPStatus.TOO_MANY_REQUESTS
    assert (envelope["type"], envelope["code"], envelope["param"]) == ("requests", "budget_spent", None)
    assert envelope["message"] == (
        "Budget spent for profile 'voice': $1.00 per day for each user. It frees at 00:00 UTC (in 3 h 12 min)."
    )
    assert answers.headers_of(error)["Retry-After"] == str(3 * HOUR + 12 * MINUTE)
    assert (error.limit, error.remaining, error.resets_at) == (1_000_000, 0, MIDNIGHT)
    assert output.metric_count("QuotaRefusals", limit="budget") == 1


def test_a_budget_of_call_seconds_names_its_seconds() -> None:
    # Given / When
    error = spent(HALF_AN_HOUR_A_DAY, resets_at=MIDNIGHT, now=MIDNIGHT - 42.0)

    # Then
    assert error.message == (
        "Budget spent for profile 'voice': 1800 seconds of calls per day for each user. "
        "It frees at 00:00 UTC (in 42 s)."
    )
    assert error.retry_after_seconds == 42


def test_a_budget_that_frees_after_more_than_a_day_names_the_date() -> None:
    # Given a week's budget (weeks are aligned to the epoch: they turn at Thursday's 00:00 UTC) spent 6 days before
    budget = Budget(usd=5, seconds=A_WEEK)
    now = float(MIDNIGHT)
    resets_at = window_at(A_WEEK, now)[1]

    # When
    error = spent(budget, resets_at=resets_at, now=now)

    # Then
    assert error.message == (
        "Budget spent for profile 'voice': $5.00 per 7 days for each user. "
        "It frees at 00:00 UTC on 2025-12-04 (in 144 h 0 min)."
    )


def test_the_money_brakes_refusal_says_it_holds_for_every_user(output: Output) -> None:
    # Given the brake reached, 3 h 12 min before midnight UTC
    error = spent(BRAKE, resets_at=MIDNIGHT, now=MIDNIGHT - (3 * HOUR + 12 * MINUTE), brake=True)

    # When
    envelope = answers.envelope(error)["error"]

    # Then
    assert (envelope["code"], answers.status_of(error)) == ("spend_brake", HTTPStatus.TOO_MANY_REQUESTS)
    assert envelope["message"] == (
        "This service has reached its money brake ($50.00 per day across all users). "
        "It frees at 00:00 UTC (in 3 h 12 min); the operator can raise the brake."
    )
    assert answers.headers_of(error)["x-should-retry"] == "false"
    assert output.metric_count("QuotaRefusals", limit="money_brake") == 1


def test_too_many_calls_says_how_many_at_once_and_to_end_one(output: Output) -> None:
    # Given both of alice's slots held, the sooner freeing in 600 s even if its end is lost
    held = {"s0": {"N": "1600"}, "l0": {"S": "a"}, "s1": {"N": "1000"}, "l1": {"S": "b"}}

    # When
    error = _too_many("voice", 2, held, now=400.0)

    # Then
    assert isinstance(error, TooManyCalls)
    assert answers.status_of(error) == HTTPStatus.TOO_MANY_REQUESTS
    assert (error.code, error.limit, error.remaining, error.retry_after_seconds) == ("too_many_calls", 2, 0, 600)
    assert error.message == "Too many calls for profile 'voice': 2 calls at once for each user. End one and try again."
    assert _too_many("voice", 1, held, now=400.0).message.startswith("Too many calls for profile 'voice': 1 call at")
    assert output.metric_count("QuotaRefusals", limit="concurrent_calls") == 2


def test_a_refusal_never_names_the_user() -> None:
    # Given a budget of alice's spent
    safety_id = user("alice")
    [counter] = _counters("voice", Limits(budgets=[A_DOLLAR_A_DAY]), None, safety_id, 78.0)

    # When
    error = _spent_refusal(counter, 2_000_000, "voice", 78.0)

    # Then neither the subject nor its safety identifier is in the answer
    shown = repr(answers.envelope(error)) + repr(answers.headers_of(error)) + str(error)
    assert safety_id not in shown
    assert HEX64.search(shown) is None
    assert "alice" not in shown
