"""Supervising a Realtime call or a GPT-Live session the service opened, for as long as it lives: the use case of the
supervisor function (supervision/app.py), started by the open and by each predecessor, and of the call's backstop.

One thread reads the call's sideband with a timeout that wakes it for what comes next (the call's maximum length,
the next meter tick, the hand-over and, once the successor is started, a look at the ledger each second); nothing
waits in a busy loop. Per event:

- ``session.updated`` of a Realtime call: the session OpenAI reports is checked against the profile
  (rules.check_reported, a mint's rules); a change outside it is refused: undone (a ``session.update`` putting back
  what the policy governs, rules.restoring_update) or the call ended, as the profile's ``on_session_change`` says.
  Every session.updated is checked, so the one that follows the supervisor's own update needs no telling apart. A
  restore OpenAI refuses (an ``error`` naming its event_id), or changes that keep coming back faster than they are
  undone, end the call.
- a function call to a tool the opened session does not list ends the call.
- usage (``response.done``, input transcription, a Live session's cumulative seconds) is priced and metered into the
  caller's budgets, once per event (the ledger keys each); a spent budget ends the call, and so does a usage that
  cannot be metered where the profile counts money or seconds.
- a message that is not JSON, not an event, of an unknown type or over the sideband's size bound is skipped and
  counted, never fatal; the first few are logged with their type and size only.

The call is ended at its deadline, when its sideband cannot be re-attached in time, and when a rule says so; ending
hangs it up (again and again while OpenAI fails the hang-up, the call still watched and metered), meters what is
left, records the end and lets go of the backstop; a call it could not hang up by the time it must leave is left to
a fresh backstop (or, when Scheduler will not make one, to a successor that ends it at once), its end not recorded,
and the invocation fails. An invocation that would outlive its time starts its successor and leaves once the ledger
shows the successor attached, or ends the call if it never does. Each invocation holds the call under a holder token
of its own, and leaves once the ledger shows another holding it.

What it speaks to comes in as small parties (CallLedger, Upstream, Clock: supervisor_parties.py), so that it can be
run against fakes; the function wires the real ones (supervision/wiring.py). Its order is call_order.py's; what it
knows of OpenAI's server events, sideband_events.py's. Nothing here keeps anything per event beyond a few counters.
"""

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, NoReturn

from voice_access import observability
from voice_access.clients.sideband import CallGone, SidebandLost
from voice_access.domain import pricing
from voice_access.domain.call_order import MAX_CALL_LIFE_SECONDS, Order, new_holder
from voice_access.domain.errors import InvalidRequest, ServiceError
from voice_access.domain.policy import rules
from voice_access.domain.policy.model import Policy, Price, Profile
from voice_access.domain.sideband_events import LIVE_EVENTS, REALTIME_EVENTS, safe_token, transcription_model
from voice_access.domain.supervisor_parties import CallLedger, Clock, Holding, Metered, Sideband, Upstream
from voice_access.observability import count, logger

# Ahead of the invocation's end, the time kept to end a call it could not hand over: a hang-up, the last events and
# the ledger's writes, each bounded by its client's own budget.
ENDING_SECONDS = 8.0
# How long after a hang-up the last events (a response's usage, a Live session's final seconds) are read.
DRAIN_SECONDS = 2.0
# While handing over: how often the ledger is asked whether the successor has attached, and how long an invoked
# successor may take to attach (an invoke that failed: to be tried again) before another is started.
POLL_SECONDS = 1.0
REINVOKE_SECONDS = 20.0
RETRY_INVOKE_SECONDS = 5.0
# Without a hand-over time of its own, an invocation starts its successor this long before its end.
DEFAULT_HANDOVER_LEAD_SECONDS = 60.0
# Refused session changes in a row (no session.updated within the profile between them) before the call is ended:
# a restore that does not hold, or a client that changes the session back as fast as it is restored.
MAX_RESTORES_IN_A_ROW = 3
# The first skipped messages of an invocation are logged (type and size); all are counted.
MAX_SKIPS_LOGGED = 10
# The supervisor's own client events carry these event ids, so that an error OpenAI sends about them is known.
RESTORE_EVENT = "sup_restore_"
CLOSE_EVENT = "sup_close"
# A Live session longer than this many billed seconds in one report is not one OpenAI sends.
MAX_LIVE_SECONDS = 86_400
# A hang-up OpenAI fails is tried again after these pauses, doubling, while the call is still watched and metered.
HANG_UP_FIRST_PAUSE = 1.0
HANG_UP_MAX_PAUSE = 16.0
# A call that could not be hung up is left to a fresh backstop this long after: one per try, until one hangs it up.
BACKSTOP_AGAIN_SECONDS = 60.0
# A fresh backstop Scheduler fails is asked for again after these pauses, doubling, while the invocation has time
# for a try (SCHEDULE_TRY_SECONDS, Scheduler's budget) and keeps SUCCESSOR_START_SECONDS (the Invoke API's budget
# and a margin) to start a successor that ends the call if no backstop could be made.
BACKSTOP_FIRST_PAUSE = 0.25
BACKSTOP_MAX_PAUSE = 1.0
SCHEDULE_TRY_SECONDS = 2.5
SUCCESSOR_START_SECONDS = 3.0

# Why a call ended (its record's end_reason, the CallsEnded metric's reason).
MAX_LENGTH = "max_length"
BUDGET_SPENT = "budget_spent"
STORE_UNAVAILABLE = "store_unavailable"
SESSION_CHANGE = "session_change"
RESTORE_FAILED = "restore_failed"
RESTORE_REFUSED = "restore_refused"
TOOL_NOT_ALLOWED = "tool_not_allowed"
UNPRICED = "unpriced"
SIDEBAND_LOST = "sideband_lost"
HANDOVER_FAILED = "handover_failed"
ENDED = "ended"  # OpenAI ended it (the caller hung up, or its own limit): seen as a Live session's close, or a 404
BACKSTOP = "backstop"
SUPERVISOR_FAILED = "supervisor_failed"
USAGE_REFUSED = "usage_refused"  # OpenAI reported a usage that cannot be metered, where money or seconds count
# How an invocation left a call it did not end.
HANDED_OVER = "handed_over"
NOT_NEEDED = "not_needed"  # a later supervisor holds it, or it has ended


class CallNotHungUp(Exception):
    """OpenAI kept failing the hang-up of a call that must end: its end is not recorded (its slot stays held), a fresh
    backstop will try again (or, when none could be made, a successor that ends the call at once), and the invocation
    fails, for Lambda's failure destination and its alarm."""


class Timing(NamedTuple):
    """When, on the monotonic clock, the invocation starts its successor (None: the call ends before it must) and by
    when it must have left; how long a dropped sideband may take to come back; how often seconds are metered."""

    handover_at: float | None
    leave_by: float
    reattach_seconds: float
    tick_seconds: float


def timing(
    now: float,
    remaining_seconds: float,
    call_ends_in: float,
    handover_after_seconds: float | None,
    reattach_seconds: float,
    tick_seconds: float,
) -> Timing:
    """The timing of an invocation with ``remaining_seconds`` left (its context says) at ``now``, of a call that
    ends in ``call_ends_in`` seconds: a successor is started ``handover_after_seconds`` in (None: a minute before
    the invocation's end), unless the call ends, and is ended, before this invocation must leave."""
    leave_by = now + remaining_seconds - ENDING_SECONDS
    if call_ends_in <= leave_by - now:
        return Timing(None, leave_by, reattach_seconds, tick_seconds)
    after = (
        remaining_seconds - DEFAULT_HANDOVER_LEAD_SECONDS if handover_after_seconds is None else handover_after_seconds
    )
    # a successor takes a few seconds to start and attach: leave it some, whatever the settings say
    handover_at = max(now, min(now + after, leave_by - RETRY_INVOKE_SECONDS))
    return Timing(handover_at, leave_by, reattach_seconds, tick_seconds)


class _Malformed(Exception):
    """An event of a known type without the fields it must have."""


def supervise(
    order: Order,
    policy: Policy,
    profile: Profile,
    ledger: CallLedger,
    upstream: Upstream,
    clock: Clock,
    times: Timing,
) -> str:
    """Supervise the call until it ends (the reason it ended) or this invocation leaves it (HANDED_OVER,
    NOT_NEEDED). An unexpected failure ends the call (fail closed) and is raised."""
    supervisor = Supervisor(order, policy, profile, ledger, upstream, clock, times)
    try:
        return supervisor.run()
    except CallNotHungUp:
        raise
    except Exception:
        logger.exception("supervisor failed: ending the call")
        count("UnexpectedErrors")
        supervisor.end_after_failure()
        raise


def end_now(
    order: Order, policy: Policy | None, ledger: CallLedger, upstream: Upstream, clock: Clock, reason: str
) -> bool:
    """End a call without its sideband (the backstop, or a supervisor that cannot supervise it): hang it up, meter its
    seconds so far (all the backstop knows of them: up to the deadline and a minute, or for a backstop made again, a
    call OpenAI would not hang up, up to now), record the end. True when this ended it first. A hang-up OpenAI fails
    records nothing: CallNotHungUp, once a fresh backstop is made."""
    hung_up = _hang_up(upstream)
    now = clock.time()
    seconds = max(0, math.ceil((now if order.again else min(now, order.deadline_at + 60)) - order.started_at))
    price = policy.prices.get(order.model) if policy is not None and order.kind == "live_session" else None
    try:
        ledger.meter_seconds(seconds, price)
    except (ServiceError, pricing.UsageRefused, pricing.Unpriced) as failure:
        logger.warning("call seconds not metered at its end", error_type=type(failure).__name__)
    if not hung_up:
        _leave_to_a_backstop(order, upstream, clock, reason)
    first = _record_end(ledger, reason, now)
    _forget_backstop(upstream)
    if first:
        observability.call_ended(reason, now - order.started_at, tokens_in=0, tokens_out=0, cost_micro_usd=0)
    return bool(first)


def backstop(order: Order, policy: Policy | None, ledger: CallLedger, upstream: Upstream, clock: Clock) -> bool:
    """The call's backstop fired (its deadline has passed): end it if nothing has. Idempotent."""
    try:
        held = ledger.holding()
        ended = held is not None and held.ended
    except ServiceError as failure:
        logger.warning("could not read the call's record", code=failure.code)
        ended = False
    if ended:
        # its end is recorded: make sure of it at OpenAI too, and count nothing again
        if not _hang_up(upstream):
            _leave_to_a_backstop(order, upstream, clock, BACKSTOP)
        first = False
    else:
        first = end_now(order, policy, ledger, upstream, clock, BACKSTOP)
    logger.info("backstop fired", ended_here=first)
    count("Backstops", outcome="ended" if first else "already_ended")
    return first


class Supervisor:
    """One invocation's watch over one call (see the module's docstring)."""

    def __init__(
        self,
        order: Order,
        policy: Policy,
        profile: Profile,
        ledger: CallLedger,
        upstream: Upstream,
        clock: Clock,
        times: Timing,
    ) -> None:
        self.order, self.policy, self.profile = order, policy, profile
        self.ledger, self.upstream, self.clock, self.times = ledger, upstream, clock, times
        self.opened: dict[str, Any] = order.session or {}
        self.realtime = order.kind == "call"
        self.restore: dict[str, Any] = rules.restoring_update(self.opened, profile) if self.realtime else {}
        self.tools = rules.allowed_tools(self.opened) if self.realtime else frozenset()
        self.known = REALTIME_EVENTS if self.realtime else LIVE_EVENTS
        limits = profile.limits
        budgets = limits.budgets if limits is not None else []
        self.money_counted = policy.money_brake is not None or any(budget.usd is not None for budget in budgets)
        self.seconds_counted = any(budget.call_seconds is not None for budget in budgets)
        # a usage that cannot be metered ends the call where it would count (fail closed), else it is only counted
        self.usage_counted = self.money_counted or self.seconds_counted
        self.fail_open = limits is not None and limits.on_store_failure == "allow"
        self.price = policy.prices.get(order.model)
        self.transcription_price = self._price_of(transcription_model(self.opened))
        # once the model has spoken, OpenAI keeps the voice: a restore leaves it out (a successor comes mid-call)
        self.voice_kept = order.generation > 0
        self.handlers: dict[str, Callable[[dict[str, Any]], str | None]] = {
            "error": self._on_error,
            "response.done": self._on_response_done,
            "response.output_item.added": self._on_output_item,
            "response.output_item.done": self._on_output_item,
            "conversation.item.input_audio_transcription.completed": self._on_transcription,
            "output_audio_buffer.started": self._on_audio,
            "response.output_audio.done": self._on_audio,
            "response.output_audio_transcript.done": self._on_audio,
            "session.created": self._on_session_updated,
            "session.updated": self._on_session_updated,
        }
        if not self.realtime:
            self.handlers = {
                "error": self._on_error,
                "session.usage.updated": self._on_live_usage,
                "session.closed": self._on_live_closed,
            }
        self.sideband: Sideband | None = None
        self.ending = False
        self.restores = 0
        self.refused_in_a_row = 0
        self.tokens_in = self.tokens_out = self.cost_micro_usd = 0
        self.skipped: dict[str, int] = {}
        # A Live session's billed seconds as OpenAI last reported them (cumulative), and as last metered: reports come
        # each second, and are metered at each tick (and at the end), so a call costs the store a write per tick.
        self.billed_seen = self.billed_metered = 0
        self.skips_logged = 0
        now = clock.monotonic()
        self.call_ends_at = now + (order.deadline_at - clock.time())
        self.next_tick = now + times.tick_seconds
        self.next_poll = self.next_invoke = times.handover_at if times.handover_at is not None else math.inf
        self.invoked = False

    # The watch

    def run(self) -> str:
        attached = self._attach()
        if attached == SIDEBAND_LOST and self.order.generation > 0 and self.order.ending is None:
            # its predecessor still watches the call: it starts another successor, or ends the call in time
            logger.warning("successor could not attach: its predecessor keeps the call")
            return NOT_NEEDED
        if isinstance(attached, str):
            if attached == SIDEBAND_LOST and self.order.ending is not None:
                # its predecessor has left: the end it could not make is this one's, with a sideband or without
                return self._end(self.order.ending)
            return self._end(attached)
        self.sideband = attached
        try:
            holds = self.ledger.attach(self.order.generation, self.order.holder)
        except ServiceError as failure:
            if (refused := self._store_failed(failure)) is not None:
                return self._end(refused)
            holds = True
        if not holds:
            logger.info("supervisor not needed: the call has ended, or another supervisor holds it")
            self._leave()
            return NOT_NEEDED
        if self.order.ending is not None:
            return self._end(self.order.ending)
        logger.info(
            "supervising call",
            generation=self.order.generation,
            kind=self.order.kind,
            seconds_left=round(self.call_ends_at - self.clock.monotonic(), 1),
            hands_over=self.times.handover_at is not None,
        )
        reason = self._watch()
        if reason in (HANDED_OVER, NOT_NEEDED):
            self._leave()
            return reason
        return self._end(reason)

    def _watch(self) -> str:
        """Read events until the call must end (the reason) or this invocation leaves it."""
        # What was sent before attaching is not replayed (nor what comes while a sideband is down): the policy's
        # session is put back each time one is attached.
        restore_due = self.realtime
        while True:
            now = self.clock.monotonic()
            if (reason := self._due(now)) is not None:
                return reason
            assert self.sideband is not None
            try:
                if restore_due:
                    restore_due = False
                    self._send_restore()
                message = self.sideband.receive(self._next_wake(now) - now)
                reason = None if message is None else self._on_message(message)
            except SidebandLost as lost:
                if lost.reason == "oversized":
                    self._skip("oversized", None, None)
                logger.warning("sideband lost", why=lost.reason)
                self.sideband.close()
                if self.invoked and (left := self._handed_over()) is not None:
                    self.sideband = None
                    return left
                attached = self._attach()
                if isinstance(attached, str):
                    self.sideband = None
                    return attached
                self.sideband = attached
                logger.info("sideband re-attached")
                restore_due = self.realtime
                continue
            if reason is not None:
                return reason

    def _due(self, now: float) -> str | None:
        """What the time calls for: the call's end, a meter tick, the hand-over and its progress."""
        if now >= self.call_ends_at:
            return MAX_LENGTH
        if now >= self.times.leave_by:
            return HANDOVER_FAILED
        if now >= self.next_tick:
            if (reason := self._tick(now)) is not None:
                return reason
            if not self.invoked and (left := self._superseded()) is not None:
                return left
        if now >= self.next_invoke:
            self._start_successor(now)
        if self.invoked and now >= self.next_poll:
            self.next_poll = now + POLL_SECONDS
            return self._handed_over()
        return None

    def _tick(self, now: float) -> str | None:
        """The meter's tick: a Realtime call's elapsed seconds (where seconds count), a Live session's billed ones."""
        self.next_tick = now + self.times.tick_seconds
        self._flush_skipped()
        if self.realtime and self.seconds_counted:
            return self._meter_elapsed()
        if not self.realtime:
            return self._meter_billed()
        return None

    def _handed_over(self) -> str | None:
        """HANDED_OVER once the ledger shows the successor attached, NOT_NEEDED once the call has ended elsewhere or
        another supervisor of this generation holds it."""
        held = self._holding()
        if held is None:  # no record says who holds the call: the successor started is taken as attached
            logger.info("call handed over", successor=self.order.generation + 1)
            count("SupervisorHandovers")
            return HANDED_OVER
        if held is False:
            return None
        if held.generation > self.order.generation:
            logger.info("call handed over", successor=held.generation)
            count("SupervisorHandovers")
            return HANDED_OVER
        return self._not_held(held)

    def _superseded(self) -> str | None:
        """NOT_NEEDED when the ledger shows the call held by a later supervisor or another of this generation, or
        ended elsewhere (looked at each tick)."""
        held = self._holding()
        if held is None or held is False:
            return None
        if held.generation > self.order.generation:
            logger.info("supervisor not needed: a later supervisor holds the call", holder_generation=held.generation)
            return NOT_NEEDED
        return self._not_held(held)

    def _not_held(self, held: Holding) -> str | None:
        if held.ended:
            logger.info("the call has ended elsewhere")
            return NOT_NEEDED
        if held.generation == self.order.generation and held.holder not in (None, self.order.holder):
            logger.info("supervisor not needed: another supervisor of its generation holds the call")
            return NOT_NEEDED
        return None

    def _holding(self) -> Holding | Literal[False] | None:
        """Who holds the call, as the ledger says (None: nothing records it); False when the store cannot say."""
        try:
            return self.ledger.holding()
        except ServiceError as failure:
            logger.warning("could not read the call's supervisor from the store", error_type=type(failure).__name__)
            return False

    def _next_wake(self, now: float) -> float:
        wake = min(self.call_ends_at, self.times.leave_by, self.next_tick, self.next_invoke)
        if self.invoked:
            wake = min(wake, self.next_poll)
        return max(wake, now)

    def _start_successor(self, now: float) -> None:
        try:
            self.upstream.start_successor(self.order.successor(new_holder()))
        except ServiceError as failure:
            logger.warning("could not start the successor", error_type=type(failure).__name__, code=failure.code)
            self.next_invoke = now + RETRY_INVOKE_SECONDS
            return
        logger.info("successor started", successor=self.order.generation + 1)
        self.invoked = True
        self.next_invoke = now + REINVOKE_SECONDS
        self.next_poll = min(self.next_poll, now + POLL_SECONDS)

    def _attach(self) -> Sideband | str:
        """The sideband, attached within the re-attach time (and before the call's end); else why the call ends:
        ENDED (OpenAI knows no such call) or SIDEBAND_LOST."""
        until = min(self.clock.monotonic() + self.times.reattach_seconds, self.call_ends_at, self.times.leave_by)
        pause = 0.25
        while True:
            try:
                return self.upstream.attach()
            except CallGone:
                return ENDED
            except SidebandLost as lost:
                logger.warning("sideband not attached", why=lost.reason, upstream_status=lost.status)
            if self.clock.monotonic() + pause >= until:
                return SIDEBAND_LOST
            self.clock.sleep(pause)
            pause = min(pause * 2, 2.0)

    # Events

    def _on_message(self, message: str | bytes) -> str | None:
        """Act on one message: why the call must end, if it must."""
        if isinstance(message, bytes):
            self._skip("binary", None, len(message))
            return None
        try:
            event = json.loads(message)
        except (ValueError, RecursionError):
            self._skip("not_json", None, len(message))
            return None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str):
            self._skip("malformed", None, len(message))
            return None
        handler = self.handlers.get(kind)
        if handler is None:
            if kind not in self.known:
                self._skip("unknown", kind, len(message))
            return None
        try:
            return handler(event)
        except _Malformed:
            self._skip("malformed", kind, len(message))
            return None

    def _skip(self, why: str, kind: str | None, size: int | None) -> None:
        """Count a message skipped (``size``: its length; None when it was over the bound, and not read)."""
        self.skipped[why] = self.skipped.get(why, 0) + 1
        if self.skips_logged < MAX_SKIPS_LOGGED:
            self.skips_logged += 1
            logger.warning("sideband message skipped", why=why, type=safe_token(kind), size=size)

    def _flush_skipped(self) -> None:
        for why, skipped in self.skipped.items():
            observability.amount("SidebandMessagesSkipped", skipped, reason=why)
        self.skipped.clear()

    def _on_session_updated(self, event: dict[str, Any]) -> str | None:
        reported = event.get("session")
        if not isinstance(reported, dict):
            raise _Malformed
        try:
            problem = rules.check_reported(reported, self.opened, self.order.profile, self.profile)
        except Exception as failure:  # a session the check cannot read is not one it passed
            logger.error("session check failed", error_type=type(failure).__name__)
            problem = InvalidRequest("The session could not be checked.", code="unreadable_session")
        if problem is None:
            self.refused_in_a_row = 0
            self.transcription_price = self._price_of(transcription_model(reported))
            return None
        if self.ending:
            return None
        ends = self.profile.on_session_change == "end" or self.refused_in_a_row >= MAX_RESTORES_IN_A_ROW
        action = "ended" if ends else "restored"
        logger.warning(
            "session change refused", param=safe_token(problem.param), code=safe_token(problem.code), action=action
        )
        count("PolicyViolations", kind="session_change", action=action)
        if ends:
            return SESSION_CHANGE if self.profile.on_session_change == "end" else RESTORE_FAILED
        self.refused_in_a_row += 1
        self._send_restore()
        return None

    def _send_restore(self) -> None:
        assert self.sideband is not None
        self.restores += 1
        session = self.restore
        if self.voice_kept and isinstance((session.get("audio") or {}).get("output"), Mapping):
            session = {**session, "audio": {**session["audio"], "output": dict(session["audio"]["output"])}}
            session["audio"]["output"].pop("voice", None)
        event_id = f"{RESTORE_EVENT}{self.restores}"
        self.sideband.send({"type": "session.update", "event_id": event_id, "session": session})

    def _on_audio(self, event: dict[str, Any]) -> str | None:
        self.voice_kept = True
        return None

    def _on_error(self, event: dict[str, Any]) -> str | None:
        error = event.get("error")
        if not isinstance(error, dict):
            raise _Malformed
        about = error.get("event_id") or error.get("client_event_id") or event.get("client_event_id")
        if not (isinstance(about, str) and about.startswith(RESTORE_EVENT)) or self.ending:
            return None
        logger.error(
            "openai refused the session update that restores the policy",
            upstream_code=safe_token(error.get("code")),
            param=safe_token(error.get("param")),
        )
        return RESTORE_REFUSED

    def _on_output_item(self, event: dict[str, Any]) -> str | None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise _Malformed
        return self._tool_refused(item)

    def _tool_refused(self, item: Mapping[str, Any]) -> str | None:
        name = item.get("name")
        if item.get("type") != "function_call" or self.ending or (isinstance(name, str) and name in self.tools):
            return None
        logger.warning("tool call refused", tool=safe_token(item.get("name")))
        count("PolicyViolations", kind="tool_call", action="ended")
        return TOOL_NOT_ALLOWED

    def _on_response_done(self, event: dict[str, Any]) -> str | None:
        response = event.get("response")
        if not isinstance(response, dict):
            raise _Malformed
        output = response.get("output") or []
        if not isinstance(output, list):
            raise _Malformed
        refused = next((r for item in output if isinstance(item, dict) and (r := self._tool_refused(item))), None)
        usage = response.get("usage")
        if usage is None:
            return refused
        response_id = response.get("id")
        if not isinstance(response_id, str) or not response_id:
            raise _Malformed
        spent = self._meter(f"r:{response_id}", pricing.usage_of_response, usage, self.price)
        return refused or spent

    def _on_transcription(self, event: dict[str, Any]) -> str | None:
        usage = event.get("usage")
        if usage is None:
            return None
        item_id, index = event.get("item_id"), event.get("content_index", 0)
        if not isinstance(item_id, str) or not item_id or type(index) is not int:
            raise _Malformed
        return self._meter(f"t:{item_id}:{index}", pricing.usage_of_transcription, usage, self.transcription_price)

    def _on_live_usage(self, event: dict[str, Any]) -> str | None:
        usage = event.get("usage")
        if not isinstance(usage, dict):
            raise _Malformed
        seconds = usage.get("seconds")
        if not (
            isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and math.isfinite(seconds)
            and 0 <= seconds <= MAX_LIVE_SECONDS
        ):
            return self._usage_refused("seconds is missing, negative or absurd")
        self.billed_seen = max(self.billed_seen, math.ceil(seconds))
        return None

    def _meter_billed(self) -> str | None:
        if self.billed_seen <= self.billed_metered:
            return None
        self.billed_metered = self.billed_seen
        return self._meter_seconds(self.billed_seen, self.price, billed=True)

    def _on_live_closed(self, event: dict[str, Any]) -> str | None:
        if isinstance(event.get("usage"), dict):
            self._on_live_usage(event)
        logger.info("openai closed the session", upstream_reason=safe_token(event.get("reason")))
        return ENDED

    # Metering

    def _meter(
        self, key: str, read: Callable[[object], pricing.Usage], reported: object, price: Price | None
    ) -> str | None:
        try:
            usage = read(reported)
        except pricing.UsageRefused as refused:
            return self._usage_refused(str(refused))
        cost = self._cost(usage, price)
        if cost is None:
            return None if self.ending else UNPRICED
        try:
            metered = self.ledger.meter(key, usage, cost)
        except ServiceError as failure:
            return self._store_failed(failure)
        if metered.counted:
            self.tokens_in += usage.input_tokens
            self.tokens_out += usage.output_tokens
            self.cost_micro_usd += cost
            observability.metered(usage.input_tokens, usage.output_tokens, cost)
        return self._spent(metered)

    def _usage_refused(self, why: str) -> str | None:
        """A usage that cannot be metered (its reason names the field, never the values): counted, and where the
        profile counts money or seconds the call is ended, as a budget could no longer hold it."""
        logger.warning("usage refused", why=why)
        count("UsageRefused")
        return None if self.ending or not self.usage_counted else USAGE_REFUSED

    def _meter_seconds(self, seconds: int, price: Price | None, *, billed: bool = False) -> str | None:
        """Meter the call's seconds up to ``seconds``: OpenAI's ``billed`` seconds, priced, or its elapsed ones."""
        try:
            if billed and price is None and self.money_counted:
                raise pricing.Unpriced("the model has no price")
            metered = self.ledger.meter_seconds(seconds, price)
        except (pricing.Unpriced, pricing.UsageRefused) as refused:
            logger.error("call seconds not priced", why=str(refused))
            count("ConfigurationErrors", reason="unpriced")
            return None if self.ending or not self.money_counted else UNPRICED
        except ServiceError as failure:
            return self._store_failed(failure)
        if metered.counted and metered.cost_micro_usd:
            self.cost_micro_usd += metered.cost_micro_usd
            observability.cost_metered(metered.cost_micro_usd)
        return self._spent(metered)

    def _meter_elapsed(self, at: float | None = None) -> str | None:
        elapsed = (self.clock.time() if at is None else at) - self.order.started_at
        return self._meter_seconds(max(0, math.floor(elapsed) if at is None else math.ceil(elapsed)), None)

    def _cost(self, usage: pricing.Usage, price: Price | None) -> int | None:
        """What ``usage`` costs in micro-dollars; 0 when nothing counts money; None when money is counted and the
        price does not give it (the policy lacks a price the build should have asked for)."""
        try:
            if price is None:
                raise pricing.Unpriced("the model has no price")
            return pricing.cost_micro_usd(usage, price)
        except pricing.Unpriced as unpriced:
            if not self.money_counted:
                return 0
            logger.error("usage not priced: the policy lacks a price", why=str(unpriced))
            count("ConfigurationErrors", reason="unpriced")
            return None

    def _spent(self, metered: Metered) -> str | None:
        if metered.spent is None or self.ending:
            return None
        logger.info("budget spent", budget=metered.spent)
        return BUDGET_SPENT

    def _store_failed(self, failure: ServiceError) -> str | None:
        """The store failing: the call goes on where the profile allows it (logged and counted), else ends."""
        if self.fail_open:
            logger.warning("quota store unavailable: the call goes on unmetered", code=failure.code)
            count("QuotaFailOpen", profile=self.order.profile)
            return None
        logger.warning("quota store unavailable: ending the call", code=failure.code)
        return None if self.ending else STORE_UNAVAILABLE

    def _price_of(self, model: str | None) -> Price | None:
        return None if model is None else self.policy.prices.get(model)

    # Ending and leaving

    def _end(self, reason: str) -> str:
        """End the call: hang it up (a Live session is asked to close first), read the last events for their usage,
        meter its seconds, record the end, let go of its backstop. A call that could not be hung up by the time this
        invocation must leave is left to a fresh backstop (CallNotHungUp), its end not recorded."""
        self.ending = True
        logger.info("ending call", reason=reason)
        if self.sideband is not None and not self.realtime and reason != ENDED:
            with contextlib.suppress(SidebandLost):
                self.sideband.send({"type": "session.close", "event_id": CLOSE_EVENT})
        ended_at = self._hung_up_at()
        if ended_at is None:
            self._leave_not_hung_up(reason)
        self._drain()
        if self.realtime:
            self._meter_elapsed(at=ended_at)
        else:
            self._meter_billed()
        first = _record_end(self.ledger, reason, ended_at)
        _forget_backstop(self.upstream)
        self._flush_skipped()
        if first is False:
            logger.info("call already ended", reason=reason)
        else:
            observability.call_ended(
                reason,
                ended_at - self.order.started_at,
                tokens_in=self.tokens_in,
                tokens_out=self.tokens_out,
                cost_micro_usd=self.cost_micro_usd,
            )
        return reason

    def _hung_up_at(self) -> float | None:
        """Hang the call up: when it was (or was seen gone). While OpenAI fails the hang-up, the call is still watched
        and metered, and the hang-up tried again after 1, 2, 4 ... s; None when this invocation must leave first."""
        pause, tries = HANG_UP_FIRST_PAUSE, 0
        while True:
            at, tries = self.clock.time(), tries + 1
            try:
                self.upstream.hang_up()
            except ServiceError as failure:
                logger.warning("could not hang the call up", code=failure.code, tries=tries)
            else:
                if tries > 1:
                    logger.info("call hung up", tries=tries)
                return at
            now = self.clock.monotonic()
            if now >= self.times.leave_by:
                return None
            if (gone_at := self._watch_until(min(now + pause, self.times.leave_by))) is not None:
                logger.info("the call has gone at openai", tries=tries)
                return gone_at
            pause = min(pause * 2, HANG_UP_MAX_PAUSE)

    def _watch_until(self, until: float) -> float | None:
        """The call's events until ``until``, metered as ever (its ticks too): when it was seen gone (OpenAI closed it,
        or knows it no more on a re-attach), else None."""
        while (now := self.clock.monotonic()) < until:
            if now >= self.next_tick:
                self._tick(now)
            if self.sideband is None:
                try:
                    self.sideband = self.upstream.attach()
                except CallGone:
                    return self.clock.time()
                except SidebandLost:
                    self.clock.sleep(max(0.0, until - self.clock.monotonic()))
                    continue
            try:
                message = self.sideband.receive(max(0.0, min(until, self.next_tick) - self.clock.monotonic()))
            except SidebandLost as lost:
                if lost.reason == "oversized":
                    self._skip("oversized", None, None)
                self.sideband.close()
                self.sideband = None
                continue
            if message is not None and self._on_message(message) == ENDED:
                return self.clock.time()
        return None

    def _leave_not_hung_up(self, reason: str) -> NoReturn:
        """Leave a call OpenAI would not hang up: its seconds so far metered, its end not recorded (its slot held),
        a fresh backstop to end it; CallNotHungUp."""
        if self.realtime:
            self._meter_elapsed(at=self.clock.time())
        else:
            self._meter_billed()
        self._leave()
        until = self.times.leave_by + ENDING_SECONDS - SUCCESSOR_START_SECONDS
        _leave_to_a_backstop(self.order, self.upstream, self.clock, reason, until)

    def _drain(self) -> None:
        """The events that come after the hang-up (a response's usage, a Live session's last seconds), until the
        sideband closes or DRAIN_SECONDS pass."""
        sideband = self.sideband
        if sideband is None:
            return
        until = min(self.clock.monotonic() + DRAIN_SECONDS, self.times.leave_by + ENDING_SECONDS / 2)
        try:
            while (left := until - self.clock.monotonic()) > 0:
                message = sideband.receive(left)
                if message is not None:
                    self._on_message(message)
        except SidebandLost:
            pass
        sideband.close()
        self.sideband = None

    def _leave(self) -> None:
        self._flush_skipped()
        if self.sideband is not None:
            self.sideband.close()
            self.sideband = None

    def end_after_failure(self) -> None:
        """The call ended after the supervisor failed unexpectedly: whatever of the ending can still be done (its end
        recorded only once it is hung up; else a fresh backstop ends it)."""
        try:
            self.ending = True
            if _hang_up(self.upstream):
                _record_end(self.ledger, SUPERVISOR_FAILED, self.clock.time())
            else:
                backstop_again(self.order, self.upstream, self.clock)
            if self.sideband is not None:
                self.sideband.close()
        except Exception:
            logger.exception("could not end the call after the supervisor failed")


def _hang_up(upstream: Upstream) -> bool:
    """Hang the call up: True when it is surely over (hung up now, or OpenAI knew it no more)."""
    try:
        upstream.hang_up()
    except ServiceError as failure:
        logger.error("could not hang the call up: its backstop will", code=failure.code)
        return False
    return True


def _leave_to_a_backstop(
    order: Order, upstream: Upstream, clock: Clock, reason: str, until: float | None = None
) -> NoReturn:
    """A call that must end and could not be hung up: a fresh backstop, asked for again until ``until`` (on the
    monotonic clock; None: as if the invocation left now, keeping ENDING_SECONDS); when none could be made, a
    supervisor's successor that ends the call at once; then CallNotHungUp (its end not recorded)."""
    logger.error("could not hang the call up: leaving it to a backstop", reason=reason)
    if until is None:
        until = clock.monotonic() + ENDING_SECONDS - SUCCESSOR_START_SECONDS
    if not backstop_again(order, upstream, clock, until) and order.action == "supervise":
        _start_ending_successor(order, upstream, reason)
    raise CallNotHungUp("the call could not be hung up: a backstop ends it")


def _start_ending_successor(order: Order, upstream: Upstream, reason: str) -> None:
    """No backstop could be made: a successor (the same event, the next generation, a holder of its own) that ends
    the call at once, so that the call stays watched and its end is tried again."""
    try:
        upstream.start_successor(order.successor(new_holder(), ending=reason))
    except ServiceError as failure:
        logger.error("could not start a successor to end the call", code=failure.code)
        return
    logger.warning("successor started to end the call", successor=order.generation + 1, reason=reason)


def backstop_again(order: Order, upstream: Upstream, clock: Clock, until: float | None = None) -> bool:
    """A one-time backstop BACKSTOP_AGAIN_SECONDS from now, for a call that could not be hung up (none once the call
    is older than any call lives: OpenAI has ended it); one Scheduler fails is asked for again while a try fits
    before ``until`` (on the monotonic clock; None: one try). False when none could be made."""
    if clock.time() >= order.started_at + MAX_CALL_LIFE_SECONDS:
        logger.error("no backstop made again: the call is older than any call lives")
        return True
    pause, tries = BACKSTOP_FIRST_PAUSE, 0
    while True:
        tries += 1
        try:
            upstream.make_backstop(clock.time() + BACKSTOP_AGAIN_SECONDS, order.backstop(again=True))
        except ServiceError as failure:
            logger.error("could not make the call's backstop again", code=failure.code, tries=tries)
            if until is None or clock.monotonic() + pause + SCHEDULE_TRY_SECONDS > until:
                return False
            clock.sleep(pause)
            pause = min(pause * 2, BACKSTOP_MAX_PAUSE)
            continue
        logger.warning("backstop made again", in_seconds=BACKSTOP_AGAIN_SECONDS)
        return True


def _record_end(ledger: CallLedger, reason: str, ended_at: float) -> bool | None:
    """The end in the call's record: whether it was the first (None: the store could not say)."""
    try:
        return ledger.end(reason, ended_at)
    except ServiceError as failure:
        logger.error("could not record the call's end", code=failure.code)
        return None


def _forget_backstop(upstream: Upstream) -> None:
    try:
        upstream.forget_backstop()
    except ServiceError as failure:
        logger.warning("could not remove the call's backstop: it will find the call ended", code=failure.code)
