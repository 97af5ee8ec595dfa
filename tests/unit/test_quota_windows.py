"""What a mint counts (domain/quota.py), without a network: item keys and counter names, windows at their
boundaries, the rate-limit headers and the refusal a full window gives (as the edge answers them: edge/answers.py)."""

import math
import re
from http import HTTPStatus

import pytest

from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Store
from voice_access.domain.caller import Caller
from voice_access.domain.errors import RateLimited
from voice_access.domain.limits import Budget, Limits, Window
from voice_access.domain.minting import Mint
from voice_access.domain.quota import Counted, Reservation, _brake_item, _caller_item, _refusal, reserve, standing
from voice_access.domain.safety import safety_identifier
from voice_access.edge import answers

SAFETY_KEY = "unit-test-safety-key-0123456789abcdef"
ISSUER = "https://issuer.example"
HEX64 = re.compile(r"[0-9a-f]{64}")
MINUTE, HOUR, DAY = 60, 3600, 86400
PER_MINUTE_AND_DAY = [Window(mints=10, seconds=MINUTE), Window(mints=100, seconds=DAY)]


def user(subject: str) -> str:
    return safety_identifier(SAFETY_KEY, Caller(issuer=ISSUER, subject=subject))


# --- item keys ---


ODD_SUBJECTS = [
    "x" * 100_000,
    "alice\"'#caller#assistant#60#0#",
    "line\nbreak\r\x00nul",
    "ünïcødé 日本語 \U0001f600",
    "\ud800lone-surrogate",
    "caller#assistant#86400#0#" + "ab" * 32,
]


@pytest.mark.parametrize("subject", ODD_SUBJECTS, ids=["long", "quotes-hash", "control", "unicode", "surrogate", "key"])
def test_a_callers_key_ends_in_its_safety_identifier_never_its_subject(subject: str) -> None:
    # Given a subject that is very long or holds what could break a key
    safety_id = user(subject)

    # When
    item = _caller_item("assistant", PER_MINUTE_AND_DAY, safety_id, now=1_764_000_000.0)

    # Then the key is the profile, the longest window and its index, and the 64-hex identifier: nothing else
    profile, seconds, index, identifier = item.key.removeprefix("caller#").split("#")
    assert (profile, seconds, index) == ("assistant", "86400", str(1_764_000_000 // DAY))
    assert identifier == safety_id
    assert HEX64.fullmatch(identifier)
    assert subject not in item.key
    assert item.key.isascii()
    assert item.key.isprintable()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("alice", "alice\n"),
        ('alice"', "alice'"),
        ("alice#", "alice"),
        ("é", "e\u0301"),  # the same letter, composed and decomposed
        ("a" * 99_999 + "b", "a" * 99_999 + "c"),
    ],
)
def test_subjects_differing_only_in_odd_characters_never_share_a_counter(first: str, second: str) -> None:
    # Given / When
    keys = {_caller_item("assistant", PER_MINUTE_AND_DAY, user(subject), now=0.0).key for subject in (first, second)}

    # Then
    assert len(keys) == 2


def test_the_same_subject_from_another_issuer_has_another_counter() -> None:
    # Given / When
    ids = {safety_identifier(SAFETY_KEY, Caller(issuer=issuer, subject="alice")) for issuer in (ISSUER, ISSUER + "/")}

    # Then
    assert len({_caller_item("assistant", PER_MINUTE_AND_DAY, i, now=0.0).key for i in ids}) == 2


def test_each_profile_counts_apart() -> None:
    # Given / When
    keys = {_caller_item(profile, PER_MINUTE_AND_DAY, user("alice"), now=0.0).key for profile in ("a", "b")}

    # Then
    assert len(keys) == 2


# --- windows at their boundaries ---


@pytest.mark.parametrize(
    ("now", "minute", "resets_at"),
    [(0.0, 0, 60), (59.999, 0, 60), (60.0, 1, 120), (60.001, 1, 120), (119.999, 1, 120), (120.0, 2, 180)],
)
def test_a_minute_window_turns_on_the_minute(now: float, minute: int, resets_at: int) -> None:
    # Given / When
    item = _caller_item("assistant", PER_MINUTE_AND_DAY, user("alice"), now)

    # Then the minute's counter is that minute's, reset at its end; the day's is the day's
    assert set(item.counters) == {f"w60_{minute}", "w86400_0"}
    assert item.counters[f"w60_{minute}"] == Counted(PER_MINUTE_AND_DAY[0], 0, resets_at)
    assert item.counters["w86400_0"] == Counted(PER_MINUTE_AND_DAY[1], 0, DAY)
    assert item.expires_at == DAY


def test_a_day_window_turns_at_midnight_utc_with_a_new_item() -> None:
    # Given the last instant of a UTC day and the first of the next (2026-11-28 00:00:00 UTC)
    midnight = 1_764_288_000.0
    assert midnight % DAY == 0

    # When
    before = _caller_item("assistant", PER_MINUTE_AND_DAY, user("alice"), midnight - 0.001)
    after = _caller_item("assistant", PER_MINUTE_AND_DAY, user("alice"), midnight)

    # Then the day's counter lives in a new item, which expires when its day ends
    day = int(midnight // DAY)
    assert before.key.split("#")[3] == str(day - 1)
    assert after.key.split("#")[3] == str(day)
    assert (before.expires_at, after.expires_at) == (int(midnight), int(midnight) + DAY)
    assert after.counters[f"w86400_{day}"].resets_at == int(midnight) + DAY


@pytest.mark.parametrize("now", [0.0, 59.999, 60.0, 3599.999, 3600.0, 86_399.999, 1_764_288_000.0])
def test_only_the_just_ended_shorter_windows_are_removed_never_the_current_ones(now: float) -> None:
    # Given windows of a minute, an hour and a day
    windows = [Window(5, MINUTE), Window(50, HOUR), Window(500, DAY)]

    # When
    item = _caller_item("assistant", windows, user("alice"), now)

    # Then the minute and the hour just ended are removed, and nothing current or of the day (its own item)
    minute, hour = int(now // MINUTE), int(now // HOUR)
    assert list(item.ended) == [f"w60_{minute - 1}", f"w3600_{hour - 1}"]
    assert not set(item.ended) & set(item.counters)
    assert not any(name.startswith("w86400_") for name in item.ended)


def test_a_single_window_removes_nothing() -> None:
    # Given / When
    item = _caller_item("assistant", [Window(3, MINUTE)], user("alice"), 61.0)

    # Then: its item is the window's own
    assert list(item.ended) == []
    assert item.key.split("#")[2:4] == ["60", "1"]


@pytest.mark.parametrize(
    "windows",
    [
        [Window(10, MINUTE), Window(15, 90)],  # 90 s windows turn at 90 and 180, minutes at 60, 120 and 180
        [Window(20, 7 * DAY), Window(50, 31 * DAY)],  # a week across a 31-day window's turn
    ],
    ids=["60s-90s", "week-31days"],
)
def test_a_shorter_windows_count_is_never_split_between_items(windows: list[Window]) -> None:
    # Given limits with windows of two lengths, as the policy accepts them (or refuses them: then no split)
    try:
        limits = Limits(per_caller=windows)
    except ValueError:
        return
    shorter = min(limits.per_caller, key=lambda window: window.seconds)

    # When the shorter window's counter is found at every second of each of its windows over the longer one
    split = []
    longest = max(window.seconds for window in limits.per_caller)
    step = max(1, shorter.seconds // 120)
    for start in range(0, 2 * longest, shorter.seconds):
        keys = {
            _caller_item("p", limits.per_caller, user("alice"), float(t)).key
            for t in range(start, start + shorter.seconds, step)
        }
        if len(keys) > 1:
            split.append(start)

    # Then each shorter window counts in one item
    assert split == []


def test_nested_windows_never_split_a_count() -> None:
    # Given the shipped shape: a minute inside a day
    for start in range(DAY - 3 * MINUTE, DAY + 3 * MINUTE, MINUTE):
        # When / Then every second of each minute is counted in one item
        keys = {_caller_item("p", PER_MINUTE_AND_DAY, user("alice"), float(t)).key for t in range(start, start + 60)}
        assert len(keys) == 1


@pytest.mark.parametrize(("now", "index"), [(86_399.999, 0), (86_400.0, 1), (1_764_288_000.0, 20_420)])
def test_the_brakes_item_is_its_windows(now: float, index: int) -> None:
    # Given a brake of 5000 a day
    brake = Window(5000, DAY)

    # When
    item = _brake_item(brake, now)

    # Then
    assert item.key == f"brake#86400#{index}"
    assert item.counters == {"mints": Counted(brake, 0, (index + 1) * DAY)}
    assert item.expires_at == (index + 1) * DAY
    assert item.brake
    assert list(item.ended) == []


# --- the rate-limit headers ---


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0s"),
        (0, "0s"),
        (0.001, "1s"),
        (1, "1s"),
        (58.2, "59s"),
        (59, "59s"),
        (59.5, "1m0s"),
        (60, "1m0s"),
        (61, "1m1s"),
        (360, "6m0s"),
        (3599.1, "1h0m0s"),
        (3600, "1h0m0s"),
        (7200, "2h0m0s"),
        (86_399.5, "24h0m0s"),
        (31 * DAY, "744h0m0s"),
    ],
)
def test_a_duration_reads_as_openais_reset_header(seconds: float, shown: str) -> None:
    assert answers.duration(seconds) == shown


def test_the_headers_name_the_limit_what_is_left_and_the_reset() -> None:
    # Given 7 of 10 used in a minute that resets in 12.5 s
    counted = Counted(Window(10, MINUTE), used=7, resets_at=120)

    # When
    headers = answers.rate_limit_headers(counted.window.mints, counted.remaining, counted.resets_at - 107.5)

    # Then
    assert headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "13s",
    }


def test_nothing_remaining_is_zero_never_negative() -> None:
    # Given a count over its limit (the limit lowered while units were out)
    counted = Counted(Window(10, MINUTE), used=12, resets_at=60)

    # When / Then
    headers = answers.rate_limit_headers(counted.window.mints, counted.remaining, counted.resets_at - 0.0)
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_a_success_reports_the_window_with_the_fewest_mints_left() -> None:
    # Given a mint that left 9 of the minute's 10 and 1 of the day's 100
    minute, day = Counted(Window(10, MINUTE), 1, 60), Counted(Window(100, DAY), 99, DAY)
    reservation = Reservation(Store("t", "http://127.0.0.1:1", "us-east-1"), [], [minute, day], waited_ms=1.0)

    # When
    headers = answers.minted(Mint("{}", reservation.tightest)).headers

    # Then the day's is the tighter
    assert headers["x-ratelimit-limit-requests"] == "100"
    assert headers["x-ratelimit-remaining-requests"] == "1"


def test_among_windows_equally_left_the_sooner_reset_is_reported() -> None:
    # Given the minute and the day with 5 left each
    minute, day = Counted(Window(10, MINUTE), 5, 60), Counted(Window(100, DAY), 95, DAY)
    reservation = Reservation(Store("t", "http://127.0.0.1:1", "us-east-1"), [], [day, minute], waited_ms=1.0)

    # When / Then
    assert answers.minted(Mint("{}", reservation.tightest)).headers["x-ratelimit-limit-requests"] == "10"


# --- describing a window ---


@pytest.mark.parametrize(
    ("window", "described"),
    [
        (Window(10, MINUTE), "10 client secrets per minute"),
        (Window(1, DAY), "1 client secret per day"),
        (Window(200, 2 * HOUR), "200 client secrets per 2 hours"),
        (Window(7, 90), "7 client secrets per 90 seconds"),
        (Window(1, 1), "1 client secret per second"),
        (Window(3, 120), "3 client secrets per 2 minutes"),
        (Window(5000, 7 * DAY), "5000 client secrets per 7 days"),
        (Window(2, 5400), "2 client secrets per 90 minutes"),
    ],
)
def test_a_window_describes_itself(window: Window, described: str) -> None:
    assert window.describe() == described


# --- the refusal ---


def refused(window: Window, resets_at: int, now: float, *, brake: bool = False) -> RateLimited:
    return _refusal(Counted(window, window.mints, resets_at), brake, "assistant", now)


@pytest.mark.parametrize(
    ("resets_in", "retry_after", "should_retry"),
    [
        (0.0, "1", None),
        (0.001, "1", None),
        (1.0, "1", None),
        (42.3, "43", None),
        (59.5, "60", None),
        (60.0, "60", None),
        (60.001, "61", "false"),
        (3600.0, "3600", "false"),
    ],
)
def test_a_refusal_says_when_to_retry_and_whether_the_sdks_should(
    resets_in: float, retry_after: str, should_retry: str | None
) -> None:
    # Given a full window that frees in `resets_in` seconds
    resets_at = 1_000_000
    now = resets_at - resets_in

    # When
    error = refused(Window(10, HOUR), resets_at, now)

    # Then Retry-After is whole seconds, at least 1; past a minute the SDKs are told not to retry
    headers = answers.headers_of(error)
    assert headers["Retry-After"] == retry_after
    assert int(headers["Retry-After"]) >= 1
    assert int(headers["Retry-After"]) >= math.ceil(resets_in)
    assert headers.get("x-should-retry") == should_retry
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_a_callers_refusal_is_openais_rate_limit_envelope_naming_the_window() -> None:
    # Given alice's minute full, 42 s before it frees
    error = refused(Window(10, MINUTE), resets_at=120, now=78.0)

    # When
    envelope = answers.envelope(error)["error"]

    # Then
    assert answers.status_of(error) == HTTPStatus.TOO_MANY_REQUESTS
    assert (envelope["type"], envelope["code"], envelope["param"]) == ("requests", "rate_limit_exceeded", None)
    assert envelope["message"] == (
        "Rate limit reached for profile 'assistant': 10 client secrets per minute for each user. Try again in 42 s."
    )
    assert answers.headers_of(error)["x-ratelimit-reset-requests"] == "42s"


def test_the_spend_brakes_refusal_says_it_holds_for_every_user() -> None:
    # Given the brake full, 3 h 12 min before midnight UTC
    error = refused(Window(5000, DAY), resets_at=DAY, now=DAY - (3 * HOUR + 12 * MINUTE), brake=True)

    # When
    envelope = answers.envelope(error)["error"]

    # Then
    assert (envelope["type"], envelope["code"], envelope["param"]) == ("requests", "rate_limit_exceeded", None)
    assert envelope["message"] == (
        "This service has reached its spend brake (5000 client secrets per day across all users). "
        "Try again in 3 h 12 min; the operator can raise the brake."
    )
    assert answers.headers_of(error)["x-should-retry"] == "false"
    assert answers.headers_of(error)["Retry-After"] == str(3 * HOUR + 12 * MINUTE)


def test_a_refusal_never_names_the_user() -> None:
    # Given the item of a user whose minute is full
    safety_id = user("alice")
    item = _caller_item("assistant", PER_MINUTE_AND_DAY, safety_id, now=78.0)
    counted = item.counters["w60_1"]

    # When
    error = _refusal(Counted(counted.window, 10, counted.resets_at), False, "assistant", 78.0)

    # Then neither the subject nor its safety identifier is in the answer
    shown = repr(answers.envelope(error)) + repr(answers.headers_of(error)) + str(error)
    assert safety_id not in shown
    assert "alice" not in shown


def test_a_profile_with_budgets_only_takes_nothing_from_the_mint_windows() -> None:
    # Given a profile whose limits are a budget and calls at once, with no per-caller windows and no spend brake
    limits = Limits(per_caller=[], budgets=[Budget(seconds=DAY, usd=1)], concurrent_calls=2)

    # When an open reserves its windows, and the profiles listing reads them (with no store to reach)
    reserved = reserve(None, "voice", limits, None, user("alice"), deadline=Deadline.after(5))
    stood = standing(None, {"voice": limits}, None, user("alice"), deadline=Deadline.after(5))

    # Then nothing is taken or read: the ledger counts budgets and calls, not the windows
    assert reserved is None
    assert stood.per_caller == {}
