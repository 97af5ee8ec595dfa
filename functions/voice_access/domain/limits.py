"""Quota concepts: what a window counts (its unit) and how much of it a window allows, a budget of money or call time
per window, and a profile's limits per caller.

Read from the policy file, as the policy's other records are (domain/policy/records.py); mints are counted in the
quota store by domain/quota.py (which knows a window by its unit, limit and length alone), budgets and calls held
at once by domain/ledger.py.
"""

import itertools
import math
from typing import Literal

from voice_access.domain.policy.records import PYDANTIC_CONFIG, Factory, Record

DAY_SECONDS = 86400
# A caller's item stays under about 40 KB (DynamoDB's item limit is 400 KB; a write costs a unit per KB).
MAX_CALLER_COUNTERS = 2000
# The longest window a limit may count over: a month, the longest budget period operators think in.
MAX_WINDOW_SECONDS = 31 * DAY_SECONDS
# A budget's shortest window: a minute (a budget spent within seconds is a rate limit, which per_caller is for).
MIN_BUDGET_SECONDS = 60
MAX_BUDGET_USD = 1_000_000
MAX_BUDGET_CALL_SECONDS = 10**7
MICRO = 1_000_000  # micro-dollars in a dollar: money is counted in whole micro-dollars
# Each of a profile's budgets is a counter every metered event of a call adds to, in one transaction.
MAX_BUDGETS = 10
MAX_CONCURRENT_CALLS = 100


class Unit(Record):
    """What a window counts, in whole numbers."""

    name: str  # the key of a window's limit in a policy file and in the profiles listing; the spend brake's counter
    counter: str  # how the name of a caller's counter for one window begins: <counter><seconds>_<index>
    one: str  # how one of it reads in a refusal
    many: str


# Client secrets minted. Its counters' names are those deployed tables hold.
MINTS = Unit("mints", "w", "client secret", "client secrets")
# Money a caller's calls cost, counted in micro-dollars.
USD = Unit("usd", "u", "dollar", "dollars")
# Seconds of calls a caller held open.
CALL_SECONDS = Unit("call_seconds", "s", "second of calls", "seconds of calls")


def per(seconds: int) -> str:
    """How a window of ``seconds`` reads after "per": "day", "2 hours", "90 seconds"."""
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % length == 0:
            count = seconds // length
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


class Window(Record):
    """At most ``mints`` client secrets in each ``seconds``-long window, fixed and aligned to the Unix epoch (a
    minute's window starts on the minute, a day's at 00:00 UTC). The quota counts it by ``unit`` and ``limit``."""

    __pydantic_config__ = PYDANTIC_CONFIG

    mints: int
    seconds: int

    def __post_init__(self) -> None:
        # pydantic checks types when the file is validated; a file read through its record is checked here too
        if type(self.mints) is not int or type(self.seconds) is not int:
            raise ValueError("mints and seconds must be whole numbers")
        if not 1 <= self.mints <= 10**9:
            raise ValueError("mints must be a whole number from 1 to 1000000000")
        if not 1 <= self.seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"seconds must be a whole number from 1 to {MAX_WINDOW_SECONDS} (31 days)")

    @property
    def unit(self) -> Unit:
        return MINTS

    @property
    def limit(self) -> int:
        """How many of its unit the window allows."""
        return self.mints

    def describe(self, words: tuple[str, str] | None = None) -> str:
        """E.g. "10 client secrets per minute", "200 client secrets per 2 hours"; ``words``, one and many of what is
        counted when it is not the unit's own (a session the service opened counts as a mint does)."""
        one, many = words or (self.unit.one, self.unit.many)
        return f"{self.limit} {one if self.limit == 1 else many} per {per(self.seconds)}"


def _is_whole(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


class Budget(Record):
    """At most ``usd`` dollars of metered cost, or ``call_seconds`` seconds of calls, in each ``seconds``-long window,
    fixed and aligned to the Unix epoch as a `Window`'s. Exactly one of ``usd`` and ``call_seconds`` is given."""

    __pydantic_config__ = PYDANTIC_CONFIG

    seconds: int
    usd: int | float | None = None  # an int stays one, as when the file is read without pydantic
    call_seconds: int | None = None

    def __post_init__(self) -> None:
        if (self.usd is None) == (self.call_seconds is None):
            raise ValueError(
                "a budget gives exactly one of usd (dollars of metered cost) and call_seconds (seconds of calls); "
                "for both, give two budgets"
            )
        if not _is_whole(self.seconds) or not MIN_BUDGET_SECONDS <= self.seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(
                f"a budget's seconds must be a whole number from {MIN_BUDGET_SECONDS} to {MAX_WINDOW_SECONDS} (a "
                "minute to 31 days), e.g. 86400 for a day"
            )
        if self.usd is not None:
            if not _is_number(self.usd) or not 0 < self.usd <= MAX_BUDGET_USD:
                raise ValueError(f"usd must be a number of dollars above 0 and at most {MAX_BUDGET_USD}")
            # A float's error in usd * MICRO is below 0.001 up to MAX_BUDGET_USD: what rounds is what the file wrote.
            if abs(self.usd * MICRO - round(self.usd * MICRO)) > 0.001:
                raise ValueError("usd must be a whole number of micro-dollars: at most 6 decimal places")
        if self.call_seconds is not None and (
            not _is_whole(self.call_seconds) or not 1 <= self.call_seconds <= MAX_BUDGET_CALL_SECONDS
        ):
            raise ValueError(f"call_seconds must be a whole number from 1 to {MAX_BUDGET_CALL_SECONDS}")

    @property
    def unit(self) -> Unit:
        return USD if self.usd is not None else CALL_SECONDS

    @property
    def limit(self) -> int:
        """How many of its unit the budget allows: micro-dollars, or seconds of calls."""
        if self.usd is not None:
            return round(self.usd * MICRO)
        return self.call_seconds  # type: ignore[return-value]  # one of the two is given (__post_init__)

    def describe(self) -> str:
        """E.g. "$2.50 per day", "3600 seconds of calls per day"."""
        if self.usd is None:
            return f"{self.limit} {CALL_SECONDS.one if self.limit == 1 else CALL_SECONDS.many} per {per(self.seconds)}"
        return f"{dollars(self.limit)} per {per(self.seconds)}"


def dollars(micro_usd: int) -> str:
    """Micro-dollars as a person reads an amount: "$2.50", "$0.000125", "$1000.00"."""
    whole, fraction = divmod(micro_usd, MICRO)
    return f"${whole}.{f'{fraction:06d}'.rstrip('0').ljust(2, '0')}"


class Limits(Record):
    """What one caller may do with a profile: how many client secrets (or sessions the service opens) it may take in
    each window (``per_caller``), how much its calls may cost or last per window (``budgets``), how many calls it may
    hold open at once (``concurrent_calls``); and what to do when the counters cannot be reached: "refuse" (fail
    closed, the default) or "allow" (go on unchecked; each such open is logged and counted)."""

    __pydantic_config__ = PYDANTIC_CONFIG

    per_caller: list[Window] = Factory(list)  # type: ignore[assignment]
    on_store_failure: Literal["refuse", "allow"] = "refuse"
    budgets: list[Budget] = Factory(list)  # type: ignore[assignment]
    concurrent_calls: int | None = None

    def __post_init__(self) -> None:
        if not self.per_caller and not self.budgets and self.concurrent_calls is None:
            raise ValueError(
                "per_caller must list at least one window; for no limit, leave limits out (a profile that opens "
                "calls may limit them by budgets or concurrent_calls instead)"
            )
        if self.on_store_failure not in ("refuse", "allow"):
            raise ValueError("on_store_failure must be 'refuse' or 'allow'")
        self._check_budgets()
        if self.concurrent_calls is not None and (
            not _is_whole(self.concurrent_calls) or not 1 <= self.concurrent_calls <= MAX_CONCURRENT_CALLS
        ):
            raise ValueError(
                f"concurrent_calls must be a whole number from 1 to {MAX_CONCURRENT_CALLS}; for no such limit, leave "
                "it out"
            )
        if self.per_caller:
            self._check_windows()

    def _check_budgets(self) -> None:
        if len(self.budgets) > MAX_BUDGETS:
            raise ValueError(f"budgets may list at most {MAX_BUDGETS} budgets")
        kinds = [(budget.unit.name, budget.seconds) for budget in self.budgets]
        if len(set(kinds)) < len(kinds):
            unit, seconds = next(kind for kind in kinds if kinds.count(kind) > 1)
            raise ValueError(
                f"budgets give two {unit} budgets per {per(seconds)}: give each unit and window length one budget"
            )

    def _check_windows(self) -> None:
        lengths = sorted(window.seconds for window in self.per_caller)
        if len(set(lengths)) != len(lengths):
            raise ValueError("per_caller names a window length twice: give each length one limit")
        # A caller's counters live in one item per turn of its longest window: a shorter window that straddled
        # that turn would count in two items, and allow its limit twice.
        longest = max(self.per_caller, key=lambda window: window.seconds)
        # A window's counter is an attribute of that item, and one stays for each shorter window a caller minted
        # in and skipped the next: at most the longest window's mints, or its count of shorter windows.
        counters = sum(
            min(longest.mints, longest.seconds // window.seconds) for window in self.per_caller if window is not longest
        )
        if counters > MAX_CALLER_COUNTERS:
            raise ValueError(
                f"per_caller windows could keep up to {counters} counters in one caller's item (per shorter window, "
                f"the longest window's mints or its count of shorter windows, whichever is fewer): at most "
                f"{MAX_CALLER_COUNTERS}; give the longest window fewer mints, or the shorter ones more seconds"
            )
        if any(longer % shorter for shorter, longer in itertools.pairwise(lengths)):
            raise ValueError(
                "per_caller windows must nest: each shorter length must divide every longer one (e.g. 60, 3600, "
                "86400 seconds)"
            )
