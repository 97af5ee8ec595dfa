"""Steps that must fall within one of the quota's epoch-aligned windows (the shipped profiles' shortest is a minute)."""

import time
from collections.abc import Callable

import pytest


def within_one_minute[T](attempt: Callable[[int], T], tries: int = 3) -> T:
    """What ``attempt(n)`` returned on the first try whose steps all fell within one minute, by the clock the function
    reads: a try that straddled two is made again (``n`` counts the tries, for a caller of its own each time)."""
    for n in range(tries):
        minute = int(time.time() // 60)
        outcome = attempt(n)
        if int(time.time() // 60) == minute:
            return outcome
    pytest.fail(f"{tries} tries each straddled two minutes: the machine is far too busy")
