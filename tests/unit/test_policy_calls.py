"""What a policy file may say of the calls the service opens: a maximum call length, what a session change leads
to, budgets in money or call seconds, calls at once, the prices of the models and the money brake. Each mistake is
refused naming it, alike where the build validates the file with pydantic and where the function reads it through
its record; the shipped policy among the valid."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.policies import REMOVED, bundled_policy, changed, validated, write_policy
from voice_access.config.policy_check import main
from voice_access.config.policy_file import (
    PolicyChange,
    PolicyError,
    load_policy,
    record_path,
    validate,
    validation_record,
)
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.limits import CALL_SECONDS, USD, Budget, Limits, Window
from voice_access.domain.policy.model import DEFAULT_MAX_CALL_SECONDS, Policy, Price

REALTIME_PRICE = {
    "text_input": 4,
    "text_cached_input": 0.4,
    "text_output": 16,
    "audio_input": 32,
    "audio_cached_input": 0.4,
    "audio_output": 64,
    "image_input": 5,
    "image_cached_input": 0.5,
}
DAY_USD = {"usd": 1, "seconds": 86400}
DAY_CALL_SECONDS = {"call_seconds": 1800, "seconds": 86400}

# A small policy of the three kinds of profile: one opened as a Realtime call, one as a GPT-Live session, one that
# mints client secrets; and the prices of the models its calls may use.
CALLS_POLICY: dict[str, Any] = {
    "version": 1,
    "default_profiles": {"realtime": ["call", "mint"], "live": "live"},
    "prices": {"gpt-realtime": REALTIME_PRICE, "gpt-live-1": {"per_minute": 0.05}},
    "profiles": {
        "call": {
            "session_type": "realtime",
            "ways": ["call"],
            "requires": {"groups": ["callers"]},
            "fixed": {"model": "gpt-realtime", "instructions": "Be brief."},
            "settable": {"audio.output.voice": {"type": "string", "enum": ["marin", "cedar"]}},
        },
        "live": {"session_type": "live", "fixed": {"model": "gpt-live-1"}},
        "mint": {
            "session_type": "realtime",
            "expires_after": {"default_seconds": 60, "max_seconds": 600},
            "fixed": {"model": "gpt-realtime"},
        },
    },
}

CALL = ("profiles", "call")
LIVE = ("profiles", "live")
MINT = ("profiles", "mint")
PRICES = ("prices",)
MONEY_BRAKE = ("money_brake",)


def with_changes(*changes: tuple[tuple[str, ...], Any]) -> dict[str, Any]:
    document = copy.deepcopy(CALLS_POLICY)
    for where, value in changes:
        document = changed(document, where, value)
    return document


VALID = [
    pytest.param([], id="nothing-new"),
    pytest.param([((*CALL, "max_call_seconds"), 5)], id="shortest-call"),
    pytest.param([((*LIVE, "max_call_seconds"), 3600)], id="longest-live-session"),
    pytest.param([((*CALL, "on_session_change"), "end")], id="end-on-change"),
    pytest.param([((*CALL, "limits"), {"budgets": [DAY_USD, DAY_CALL_SECONDS]})], id="budgets-without-windows"),
    pytest.param([((*CALL, "limits"), {"concurrent_calls": 1})], id="one-call-at-once"),
    pytest.param(
        [
            (
                (*CALL, "limits"),
                {
                    "per_caller": [{"mints": 10, "seconds": 60}],
                    "budgets": [
                        {"usd": 2.5, "seconds": 86400},
                        {"usd": 0.000001, "seconds": 60},
                        {"usd": 1_000_000, "seconds": 31 * 86400},
                        {"call_seconds": 1, "seconds": 3600},
                        {"call_seconds": 10**7, "seconds": 86400},
                    ],
                    "concurrent_calls": 100,
                    "on_store_failure": "allow",
                },
            )
        ],
        id="every-bound",
    ),
    pytest.param([(MONEY_BRAKE, {"usd": 50, "seconds": 86400})], id="money-brake"),
    pytest.param(
        [
            (MONEY_BRAKE, {"usd": 50, "seconds": 86400}),
            ((*LIVE, "settable"), {"model": {"type": "string", "enum": ["gpt-live-1"], "default": "gpt-live-1"}}),
            ((*LIVE, "fixed"), {}),
        ],
        id="brake-with-a-settable-model",
    ),
    pytest.param(
        [((*CALL, "limits"), {"budgets": [DAY_CALL_SECONDS]}), (PRICES, REMOVED)], id="call-seconds-need-no-price"
    ),
    pytest.param(
        [
            (MONEY_BRAKE, {"usd": 50, "seconds": 86400}),
            (
                (*CALL, "settable", "audio.input.transcription.model"),
                {"type": "string", "enum": ["gpt-realtime-whisper", "gpt-4o-transcribe"]},
            ),
            ((*PRICES, "gpt-realtime-whisper"), {"per_minute": 0.017}),
            ((*PRICES, "gpt-4o-transcribe"), {"text_input": 2.5, "audio_input": 6, "text_output": 10}),
        ],
        id="priced-transcription",
    ),
    pytest.param(
        [
            ((*MINT, "ways"), ["client_secret", "call"]),
            ((*MINT, "max_call_seconds"), 60),
            ((*MINT, "limits"), {"budgets": [DAY_USD], "concurrent_calls": 1}),
        ],
        id="a-minting-profile-that-also-opens-calls",
    ),
    pytest.param([((*PRICES, "gpt-extra"), {"text_input": 0})], id="a-price-of-zero-for-a-model-not-opened"),
]


@pytest.mark.parametrize("changes", VALID)
def test_call_limits_within_their_bounds_load_alike_with_and_without_pydantic(
    tmp_path: Path, changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    # Given a policy with call limits, prices or a money brake, validated and recorded as the build does
    path = write_policy(tmp_path, with_changes(*changes))
    assert main([str(path)]) == 0

    # When it is read through its record (no pydantic) and validated anew
    recorded, checked = load_policy(path), validate(path, path.read_bytes())

    # Then both are the same policy, down to each value's type
    assert repr(recorded) == repr(checked)
    assert repr(Policy.from_document(json.loads(path.read_text()))) == repr(checked)


# Mistakes, what the build says of each (on the pydantic path), refused too by the checks made without pydantic.
BAD = [
    pytest.param((*CALL, "max_call_seconds"), 4, "max_call_seconds must be a whole number from 5 to 3600", id="short"),
    pytest.param((*CALL, "max_call_seconds"), 3601, "(OpenAI ends a session at 60 minutes)", id="long"),
    pytest.param((*CALL, "max_call_seconds"), "600", "max_call_seconds", id="text"),
    pytest.param(
        (*MINT, "max_call_seconds"),
        600,
        "max_call_seconds bounds a call or GPT-Live session the service opens, and this profile only mints client "
        "secrets",
        id="on-a-minting-profile",
    ),
    pytest.param((*CALL, "on_session_change"), "undo", "'restore' or 'end'", id="unknown-change"),
    pytest.param((*CALL, "limits"), {}, "per_caller must list at least one window", id="no-limit"),
    pytest.param(
        (*CALL, "limits"), {"budgets": []}, "may limit them by budgets or concurrent_calls instead", id="no-budgets"
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"seconds": 86400}]},
        "a budget gives exactly one of usd (dollars of metered cost) and call_seconds",
        id="budget-of-nothing",
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"usd": 1, "call_seconds": 60, "seconds": 86400}]},
        "for both, give two budgets",
        id="budget-of-both",
    ),
    pytest.param((*CALL, "limits"), {"budgets": [{"usd": 1}]}, "budgets.0.seconds", id="budget-without-window"),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"usd": 1, "seconds": 59}]},
        "a budget's seconds must be a whole number from 60 to 2678400",
        id="budget-window-short",
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"usd": 1, "seconds": 31 * 86400 + 1}]},
        "(a minute to 31 days)",
        id="budget-window-long",
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"usd": 0, "seconds": 86400}]},
        "usd must be a number of dollars above 0 and at most 1000000",
        id="no-dollars",
    ),
    pytest.param(
        (*CALL, "limits"), {"budgets": [{"usd": -1, "seconds": 86400}]}, "usd must be a number", id="negative"
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"usd": 1_000_000.01, "seconds": 86400}]},
        "at most 1000000",
        id="too-many-dollars",
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"usd": 0.0000015, "seconds": 86400}]},
        "usd must be a whole number of micro-dollars: at most 6 decimal places",
        id="fraction-of-a-micro-dollar",
    ),
    pytest.param((*CALL, "limits"), {"budgets": [{"usd": "1", "seconds": 86400}]}, "budgets.0.usd", id="usd-text"),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"call_seconds": 0, "seconds": 86400}]},
        "call_seconds must be a whole number from 1 to 10000000",
        id="no-seconds",
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"call_seconds": 10**7 + 1, "seconds": 86400}]},
        "call_seconds must be a whole number from 1",
        id="too-many-seconds",
    ),
    pytest.param(
        (*CALL, "limits"), {"budgets": [DAY_USD, {"usd": 2, "seconds": 86400}]}, "two usd budgets per day", id="twice"
    ),
    pytest.param(
        (*CALL, "limits"),
        {"budgets": [{"call_seconds": 60 * (n + 1), "seconds": 86400 * (n + 1)} for n in range(11)]},
        "budgets may list at most 10 budgets",
        id="eleven-budgets",
    ),
    pytest.param((*CALL, "limits"), {"budgets": [{**DAY_USD, "per": "day"}]}, "budgets.0.per", id="unknown-budget-key"),
    pytest.param(
        (*CALL, "limits"),
        {"concurrent_calls": 0},
        "concurrent_calls must be a whole number from 1 to 100",
        id="no-calls-at-once",
    ),
    pytest.param((*CALL, "limits"), {"concurrent_calls": 101}, "from 1 to 100", id="too-many-at-once"),
    pytest.param(
        (*MINT, "limits"),
        {"budgets": [DAY_CALL_SECONDS]},
        "budgets and concurrent_calls count the calls and GPT-Live sessions the service opens, and this profile "
        "only mints client secrets",
        id="budget-on-a-minting-profile",
    ),
    pytest.param(
        (*MINT, "limits"), {"concurrent_calls": 2}, "this profile only mints client secrets", id="calls-on-minting"
    ),
    pytest.param(
        MONEY_BRAKE,
        {"call_seconds": 3600, "seconds": 86400},
        "money_brake counts dollars: give usd (and seconds), not call_seconds",
        id="brake-in-seconds",
    ),
    pytest.param(MONEY_BRAKE, {"usd": 50}, "money_brake.seconds", id="brake-without-window"),
    pytest.param(
        (*PRICES, "gpt-realtime"),
        {**REALTIME_PRICE, "text_input": -1},
        "text_input must be a number of dollars per 1M tokens from 0 to 10000",
        id="negative-price",
    ),
    pytest.param(
        (*PRICES, "gpt-live-1"),
        {"per_minute": 10_001},
        "per_minute must be a number of dollars per minute from 0 to 10000",
        id="absurd-price",
    ),
    pytest.param((*PRICES, "gpt-live-1"), {}, "a price must give at least one rate", id="empty-price"),
    pytest.param((*PRICES, "gpt-live-1"), {"per_second": 0.001}, "prices.gpt-live-1.per_second", id="unknown-rate"),
    pytest.param(
        (*PRICES, "gpt realtime"),
        {"text_input": 1},
        "prices names the model 'gpt realtime': a model's name is 1 to 128 printable ASCII characters",
        id="model-name",
    ),
]


@pytest.mark.parametrize(("where", "value", "problem"), BAD)
def test_bad_call_limits_or_prices_are_refused_at_build_time_naming_the_problem(
    tmp_path: Path, where: tuple[str, ...], value: Any, problem: str
) -> None:
    # Given a policy file with one mistake
    path = write_policy(tmp_path, with_changes((where, value)))

    # When the build validates it
    with pytest.raises(PolicyError) as caught:
        validate(path, path.read_bytes())

    # Then
    assert problem in str(caught.value)
    assert main([str(path)]) == 1
    assert not record_path(path).exists()


@pytest.mark.parametrize(("where", "value", "problem"), BAD)
def test_bad_call_limits_or_prices_are_refused_without_pydantic_too(
    tmp_path: Path, where: tuple[str, ...], value: Any, problem: str
) -> None:
    # Given a policy with one mistake, and a record that vouches for it (as if the build had been skipped)
    path = write_policy(tmp_path, with_changes((where, value)))
    record_path(path).write_text(f"{validation_record(path.read_bytes())}\n")

    # When it is read as the function reads it / Then it is refused, naming the problem
    with pytest.raises((ValueError, TypeError, KeyError, AttributeError)):
        Policy.from_document(json.loads(path.read_text()))
    with pytest.raises(PolicyError, match=re.escape(problem)):
        load_policy(path)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param(
            [((*CALL, "limits"), {"budgets": [DAY_USD]}), (PRICES, REMOVED)],
            "price model 'gpt-realtime' in prices: profile 'call' may open it at 'model', and its budget in dollars "
            "meters what each call costs",
            id="usd-budget",
        ),
        pytest.param(
            [(MONEY_BRAKE, {"usd": 50, "seconds": 86400}), ((*PRICES, "gpt-live-1"), REMOVED)],
            "price model 'gpt-live-1' in prices: profile 'live' may open it at 'model', and the money brake meters "
            "what each call costs; a GPT-Live model is billed per minute of session: give per_minute",
            id="brake-live",
        ),
        pytest.param(
            [(MONEY_BRAKE, {"usd": 50, "seconds": 86400}), ((*PRICES, "gpt-live-1"), {"text_input": 1})],
            "price model 'gpt-live-1' in prices (it lacks per_minute)",
            id="live-without-per-minute",
        ),
        pytest.param(
            [
                ((*CALL, "limits"), {"budgets": [DAY_USD]}),
                ((*PRICES, "gpt-realtime"), {**REALTIME_PRICE, "image_input": None, "image_cached_input": None}),
            ],
            "price model 'gpt-realtime' in prices (it lacks image_input, image_cached_input)",
            id="realtime-without-image-prices",
        ),
        pytest.param(
            [
                (MONEY_BRAKE, {"usd": 50, "seconds": 86400}),
                (
                    (*CALL, "settable", "audio.input.transcription.model"),
                    {"type": "string", "enum": ["gpt-4o-transcribe"]},
                ),
                ((*PRICES, "gpt-4o-transcribe"), {"text_input": 2.5, "text_output": 10}),
            ],
            "price model 'gpt-4o-transcribe' in prices (it lacks audio_input): profile 'call' may open it at "
            "'audio.input.transcription.model'",
            id="transcription",
        ),
        pytest.param(
            [
                ((*CALL, "limits"), {"budgets": [DAY_USD]}),
                ((*CALL, "fixed"), {"instructions": "Be brief."}),
                ((*CALL, "settable", "model"), {"type": "string", "default": "gpt-realtime"}),
            ],
            "profile 'call': 'model' is settable without an enum, so a caller could open a model that has no price",
            id="any-model",
        ),
        pytest.param(
            [(MONEY_BRAKE, {"usd": 50, "seconds": 86400}), ((*CALL, "fixed"), {"instructions": "Be brief."})],
            "profile 'call': 'model' is neither fixed nor settable, so OpenAI picks the model",
            id="openais-model",
        ),
        pytest.param(
            [
                ((*CALL, "limits"), {"budgets": [DAY_USD]}),
                ((*CALL, "fixed"), {"instructions": "Be brief."}),
                (
                    (*CALL, "settable", "model"),
                    {"type": "string", "enum": ["gpt-realtime", "gpt-realtime-mini"], "default": "gpt-realtime"},
                ),
            ],
            "price model 'gpt-realtime-mini' in prices",
            id="one-of-an-enum",
        ),
    ],
)
def test_a_model_without_a_price_is_refused_where_it_is_metered(
    tmp_path: Path, changes: list[tuple[tuple[str, ...], Any]], problem: str
) -> None:
    # Given a profile whose cost is metered (a budget in dollars, or any call profile under the money brake) and a
    # model it may open without the prices it may be billed in
    path = write_policy(tmp_path, with_changes(*changes))

    # When / Then the build refuses it, saying which model to price and why; so does a read without pydantic
    with pytest.raises(PolicyError) as caught:
        validate(path, path.read_bytes())
    assert problem in str(caught.value)
    with pytest.raises(ValueError, match=re.escape(problem)):
        Policy.from_document(json.loads(path.read_text()))


def test_a_minting_profile_needs_no_price_under_the_money_brake() -> None:
    # Given the money brake and a profile that only mints (its sessions are not metered), opening a model no price
    # names
    document = with_changes(
        (MONEY_BRAKE, {"usd": 50, "seconds": 86400}), ((*MINT, "fixed"), {"model": "gpt-realtime-unpriced"})
    )

    # When / Then it loads
    assert validated(document).profiles["mint"].fixed == {"model": "gpt-realtime-unpriced"}


def test_a_call_lasts_the_default_unless_its_profile_says() -> None:
    # Given / When
    policy = validated(with_changes(((*LIVE, "max_call_seconds"), 90)))

    # Then
    assert policy.profiles["call"].call_seconds == DEFAULT_MAX_CALL_SECONDS == 600
    assert policy.profiles["live"].call_seconds == 90
    assert policy.profiles["call"].on_session_change == "restore"


@pytest.mark.parametrize(
    ("budget", "unit", "limit", "described"),
    [
        (Budget(seconds=86400, usd=2.5), USD, 2_500_000, "$2.50 per day"),
        (Budget(seconds=86400, usd=1), USD, 1_000_000, "$1.00 per day"),
        (Budget(seconds=3600, usd=0.000125), USD, 125, "$0.000125 per hour"),
        (Budget(seconds=2 * 86400, usd=0.1), USD, 100_000, "$0.10 per 2 days"),
        (Budget(seconds=86400, usd=1_000_000), USD, 10**12, "$1000000.00 per day"),
        (Budget(seconds=86400, call_seconds=3600), CALL_SECONDS, 3600, "3600 seconds of calls per day"),
        (Budget(seconds=60, call_seconds=1), CALL_SECONDS, 1, "1 second of calls per minute"),
        (Budget(seconds=90, call_seconds=30), CALL_SECONDS, 30, "30 seconds of calls per 90 seconds"),
    ],
)
def test_a_budget_counts_whole_micro_dollars_or_seconds_and_reads_as_a_person_says_it(
    budget: Budget, unit: Any, limit: int, described: str
) -> None:
    # Given / When / Then
    assert (budget.unit, budget.limit, budget.describe()) == (unit, limit, described)
    assert type(budget.limit) is int


def test_every_decimal_a_budget_may_give_is_its_exact_micro_dollars() -> None:
    # Given every amount of up to 6 decimal places in a spread of magnitudes (written as a policy file writes it)
    amounts = [
        f"{whole}.{fraction:06d}" for whole in (0, 1, 7, 99, 12345, 999_999) for fraction in range(0, 10**6, 9973)
    ]

    # When each is a budget / Then its limit is the decimal's micro-dollars, exactly
    for text in amounts:
        if float(text) > 0:
            expected = int(text.replace(".", ""))
            assert Budget(seconds=86400, usd=json.loads(text)).limit == expected, text


def test_limits_with_only_budgets_or_calls_keep_no_windows() -> None:
    # Given / When
    limits = Limits(budgets=[Budget(seconds=86400, usd=1)], concurrent_calls=2)

    # Then
    assert limits.per_caller == []
    assert limits.on_store_failure == "refuse"
    assert Limits(per_caller=[Window(mints=1, seconds=60)]).budgets == []


def test_prices_say_what_they_leave_out() -> None:
    # Given / When / Then
    assert Price(per_minute=0.05).lacks(("per_minute", "text_input")) == ["text_input"]


def test_a_reload_names_a_change_of_prices_or_money_brake(tmp_path: Path) -> None:
    # Given two versions of a policy, the second with another price and a money brake
    old = validated(CALLS_POLICY)
    new = validated(
        with_changes(((*PRICES, "gpt-live-1"), {"per_minute": 0.06}), (MONEY_BRAKE, {"usd": 50, "seconds": 86400}))
    )

    # When / Then
    assert PolicyChange.between(tmp_path, old, new).settings_changed == ("prices", "money_brake")


def test_the_shipped_policy_limits_the_calls_it_opens_and_brakes_their_cost() -> None:
    # Given / When the shipped policy, through its record if it has a current one, and validated anew
    for policy in (
        load_policy(BUNDLED_POLICY),
        bundled_policy(),
        validate(BUNDLED_POLICY, BUNDLED_POLICY.read_bytes()),
    ):
        # Then the service brakes at $50 of metered cost a day
        assert policy.money_brake == Budget(seconds=86400, usd=50)
        # and each profile it opens calls or Live sessions with bounds their length, cost, time and number
        expected = {
            "voice": (600, ["$1.00 per day", "1200 seconds of calls per day"]),
            "voice-premium": (1800, ["$5.00 per day", "7200 seconds of calls per day"]),
            "live": (600, ["$1.00 per day", "1200 seconds of calls per day"]),
        }
        for name, profile in policy.profiles.items():
            limits = profile.limits
            assert limits is not None, name
            if not profile.supervised:
                # a profile that mints is as it was: windows only
                assert (limits.budgets, limits.concurrent_calls, profile.max_call_seconds) == ([], None, None), name
                continue
            seconds, budgets = expected.pop(name)
            assert profile.call_seconds == seconds, name
            assert [budget.describe() for budget in limits.budgets] == budgets, name
            assert limits.concurrent_calls == 2, name
            assert profile.on_session_change == "restore", name
            # every model the profile may open has a price (the policy's own check, shown)
            assert {model for _, model in profile.billed_models()} <= policy.prices.keys(), name
        assert expected == {}
