"""The supervisor's event read into an order (domain/supervising.py carries it out): the call to supervise, with the
session it was opened with, this supervisor's generation and holder token, or the call's backstop; and the events
an order makes for its successor and its backstop. An event that is not one is refused, naming what is wrong with
it, never its values."""

import os
import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from voice_access.domain.policy.model import PROFILE_NAME

Kind = Literal["call", "live_session"]

# No call lives longer than this after its open (OpenAI ends its own at 60 minutes): no backstop is made past it.
MAX_CALL_LIFE_SECONDS = 2 * 3600

_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_USER = re.compile(r"[0-9a-f]{64}")
_LEASE = re.compile(r"[0-9A-Za-z_-]{1,128}")
_HOLDER = re.compile(r"[0-9A-Za-z_-]{1,64}")
_REASON = re.compile(r"[a-z_]{1,32}")
_MODEL = re.compile(r"[!-~]{0,128}")  # empty: the session named none, and OpenAI chose


class OrderRefused(ValueError):
    """An event the supervisor cannot act on: the message says what is wrong with it, never its values."""


class Order(NamedTuple):
    """What an invocation is asked to do: supervise a call (with the session it was opened with, as the service sent
    it upstream, this supervisor's generation and its holder token, which tells it from another supervisor of that
    generation), or be its backstop. ``ending``: the reason its predecessor, which could not hang the call up nor
    make it a backstop, was ending it (this supervisor ends it at once). ``again``: a backstop made again for a call
    that could not be hung up (it meters the call's seconds up to its own time, past the deadline)."""

    action: Literal["supervise", "backstop"]
    call_id: str
    kind: Kind
    profile: str
    user: str  # the caller's safety identifier
    model: str
    started_at: float
    deadline_at: float
    lease: str | None
    slot: int | None
    session: dict[str, Any] | None
    generation: int
    holder: str
    ending: str | None = None
    again: bool = False

    def call(self) -> dict[str, Any]:
        """The call as the event carries it (and the ledger's CallStart takes it)."""
        return {
            "id": self.call_id,
            "kind": self.kind,
            "profile": self.profile,
            "user": self.user,
            "model": self.model,
            "started_at": self.started_at,
            "deadline_at": self.deadline_at,
            "lease": self.lease,
            "slot": self.slot,
        }

    def successor(self, holder: str, ending: str | None = None) -> dict[str, Any]:
        """The event that starts this supervisor's successor: the same call and session, the next generation, and
        ``holder`` (one made for each successor started, so that two started for one hand-over never both hold it);
        with ``ending``, the reason the successor is to end the call for, at once."""
        event = {
            "action": "supervise",
            "call": self.call(),
            "session": self.session,
            "generation": self.generation + 1,
            "holder": holder,
        }
        return event if ending is None else event | {"ending": ending}

    def backstop(self, *, again: bool = False) -> dict[str, Any]:
        """The event of the call's backstop (``again``: one made again, for a call that could not be hung up)."""
        event = {"action": "backstop", "call": self.call()}
        return (event | {"again": True}) if again else event


def new_holder() -> str:
    """A supervisor's holder token: random, so that no two invocations share one unless one event reached both."""
    return os.urandom(16).hex()


def order_of(event: object) -> Order:
    """The order in a supervisor's event; OrderRefused naming what is wrong with it."""
    if not isinstance(event, Mapping):
        raise OrderRefused("the event is not an object")
    action = event.get("action")
    if action not in ("supervise", "backstop"):
        raise OrderRefused("action is neither 'supervise' nor 'backstop'")
    call = event.get("call")
    if not isinstance(call, Mapping):
        raise OrderRefused("call is not an object")
    kind = call.get("kind")
    if kind not in ("call", "live_session"):
        raise OrderRefused("call.kind is neither 'call' nor 'live_session'")
    started_at, deadline_at = (
        _epoch(call.get("started_at"), "started_at"),
        _epoch(call.get("deadline_at"), "deadline_at"),
    )
    if not started_at < deadline_at <= started_at + MAX_CALL_LIFE_SECONDS:
        raise OrderRefused("call.deadline_at is not within two hours after call.started_at")
    lease, slot = call.get("lease"), call.get("slot")
    if not (lease is None or (isinstance(lease, str) and _LEASE.fullmatch(lease))):
        raise OrderRefused("call.lease is not a lease")
    if not (slot is None or (type(slot) is int and 0 <= slot < 1000)):
        raise OrderRefused("call.slot is not a slot's number")
    session, generation = event.get("session"), event.get("generation", 0)
    holder = event.get("holder")  # an event without one (the open's) gets its own
    if not (holder is None or (isinstance(holder, str) and _HOLDER.fullmatch(holder))):
        raise OrderRefused("holder is not a holder token")
    ending, again = event.get("ending"), event.get("again", False)
    if not (ending is None or (isinstance(ending, str) and _REASON.fullmatch(ending))):
        raise OrderRefused("ending is not a reason")
    if type(again) is not bool:
        raise OrderRefused("again is neither true nor false")
    if action == "supervise":
        if not isinstance(session, dict):
            raise OrderRefused("session is not an object")
        if type(generation) is not int or not 0 <= generation <= 10**6:
            raise OrderRefused("generation is not a whole number from 0")
    return Order(
        action,
        _matching(call.get("id"), _CALL_ID, "call.id"),
        kind,
        _matching(call.get("profile"), PROFILE_NAME, "call.profile"),
        _matching(call.get("user"), _USER, "call.user"),
        _matching(call.get("model"), _MODEL, "call.model"),
        started_at,
        deadline_at,
        lease,
        slot,
        session if action == "supervise" else None,
        generation if action == "supervise" else 0,
        holder or new_holder(),
        ending if action == "supervise" else None,
        again if action == "backstop" else False,
    )


def _matching(value: object, pattern: re.Pattern[str], name: str) -> str:
    if not (isinstance(value, str) and pattern.fullmatch(value)):
        raise OrderRefused(f"{name} is missing or malformed")
    return value


def _epoch(value: object, name: str) -> float:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and 1e9 < value < 1e11):
        raise OrderRefused(f"call.{name} is not a time in epoch seconds")
    return float(value)
