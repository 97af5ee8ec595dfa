"""Quota concepts: what a window counts (its unit) and how much of it a window allows, and a profile's limits per
caller.

Read from the policy file, as the policy's other records are (domain/policy/records.py); counted in the quota store
(domain/quota.py, which knows a window by its unit, limit and length alone).
"""

import itertools
from typing import Literal

from voice_access.domain.policy.records import PYDANTIC_CONFIG, Record

DAY_SECONDS = 86400
# A caller's item stays under about 40 KB (DynamoDB's item limit is 400 KB; a write costs a unit per KB).
MAX_CALLER_COUNTERS = 2000
# The longest window a limit may count over: a month, the longest budget period operators think in.
MAX_WINDOW_SECONDS = 31 * DAY_SECONDS


class Unit(Record):
    """What a window counts, in whole numbers."""

    name: str  # the key of a window's limit in a policy file and in the profiles listing; the spend brake's counter
    counter: str  # how the name of a caller's counter for one window begins: <counter><seconds>_<index>
    one: str  # how one of it reads in a refusal
    many: str


# Client secrets minted. Its counters' names are those deployed tables hold.
MINTS = Unit("mints", "w", "client secret", "client secrets")


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
        for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if self.seconds % length == 0:
                count = self.seconds // length
                per = unit if count == 1 else f"{count} {unit}s"
                break
        one, many = words or (self.unit.one, self.unit.many)
        return f"{self.limit} {one if self.limit == 1 else many} per {per}"


class Limits(Record):
    """How many client secrets one caller may mint with a profile, and what to do when the counters cannot be
    reached: "refuse" (fail closed, the default) or "allow" (mint unchecked; each such mint is logged and counted)."""

    __pydantic_config__ = PYDANTIC_CONFIG

    per_caller: list[Window]
    on_store_failure: Literal["refuse", "allow"] = "refuse"

    def __post_init__(self) -> None:
        if not self.per_caller:
            raise ValueError("per_caller must list at least one window; for no limit, leave limits out")
        if self.on_store_failure not in ("refuse", "allow"):
            raise ValueError("on_store_failure must be 'refuse' or 'allow'")
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
