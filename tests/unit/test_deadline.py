"""The request's deadline: taken from the Lambda context less a margin to answer in, and the socket
timeouts it gives (never longer than a phase's own timeout, never past the deadline)."""

import time
from dataclasses import dataclass

import pytest

from voice_access.clients.deadline import ANSWER_MARGIN_SECONDS, DEFAULT_INVOCATION_SECONDS, Deadline


@dataclass
class Context:
    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_deadline_is_the_invocations_remaining_time_less_the_margin() -> None:
    # Given an invocation with 3 s left
    context = Context(remaining_ms=3_000)

    # When its deadline is taken
    deadline = Deadline.of_invocation(context)

    # Then it ends the margin before Lambda would stop the function
    assert 3.0 - ANSWER_MARGIN_SECONDS - 0.1 < deadline.remaining() <= 3.0 - ANSWER_MARGIN_SECONDS


def test_a_context_that_does_not_say_gets_the_templates_timeout() -> None:
    # Given a hand-made context without get_remaining_time_in_millis
    context = object()

    # When its deadline is taken
    deadline = Deadline.of_invocation(context)

    # Then it is the template's timeout less the margin
    expected = DEFAULT_INVOCATION_SECONDS - ANSWER_MARGIN_SECONDS
    assert expected - 0.1 < deadline.remaining() <= expected


@pytest.mark.parametrize(("limit", "expected"), [(2.0, 2.0), (None, 10.0), (60.0, 10.0)])
def test_a_timeout_is_the_phases_own_or_the_time_left_whichever_is_shorter(
    limit: float | None, expected: float
) -> None:
    # Given a deadline 10 s away
    deadline = Deadline.after(10)

    # When a phase with this timeout (None: none) asks for a socket timeout
    timeout = deadline.timeout(limit)

    # Then it gets the shorter of the two
    assert expected - 0.1 < timeout <= expected


def test_once_the_deadline_has_passed_no_timeout_is_given() -> None:
    # Given a deadline that has passed
    deadline = Deadline(time.monotonic() - 0.001)

    # When a phase asks for a socket timeout
    # Then it is told the time is up, as a socket would tell it
    assert deadline.passed
    with pytest.raises(TimeoutError):
        deadline.timeout(5.0)


def test_a_budget_within_the_deadline_ends_at_the_sooner_of_the_two() -> None:
    # Given a deadline 10 s away
    deadline = Deadline.after(10)

    # When budgets of 4 s and of 30 s are taken within it
    short, long = deadline.within(4), deadline.within(30)

    # Then the first ends in 4 s, the second at the deadline
    assert 3.9 < short.remaining() <= 4
    assert long == deadline
