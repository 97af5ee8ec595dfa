"""The parties the supervisor's use case (domain/supervising.py) receives, as small protocols, so that it runs
against fakes: the call's ledger, OpenAI and AWS for the call (its sideband, hang-up, successor and backstop), and
the clock. supervision/wiring.py makes them real for one invocation."""

from collections.abc import Mapping
from typing import Any, Protocol

from voice_access.domain import pricing
from voice_access.domain.policy.model import Price


class Metered(Protocol):
    @property
    def counted(self) -> bool: ...

    @property
    def spent(self) -> str | None: ...

    @property
    def cost_micro_usd(self) -> int: ...


class Holding(Protocol):
    """Who holds the call, as its record says: the supervisor's generation (-1: none yet) and holder token (None:
    none recorded), and whether the call has ended."""

    @property
    def generation(self) -> int: ...

    @property
    def holder(self) -> str | None: ...

    @property
    def ended(self) -> bool: ...


class CallLedger(Protocol):
    """The call's record and its caller's budgets in the store (domain/ledger.py), for this one call. Each raises a
    ServiceError (the store unavailable or misconfigured) when it cannot be done."""

    def attach(self, generation: int, holder: str) -> bool: ...

    def holding(self) -> Holding | None: ...  # None: no record says who holds it (a deployment without a store)

    def meter(self, event_key: str, usage: pricing.Usage, cost_micro_usd: int) -> Metered: ...

    def meter_seconds(self, cumulative_seconds: int, price: Price | None) -> Metered: ...

    def end(self, reason: str, ended_at: float) -> bool: ...


class Sideband(Protocol):
    """An attached sideband (clients/sideband.py): SidebandLost from either once it has dropped."""

    def receive(self, timeout: float) -> str | bytes | None: ...

    def send(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class Upstream(Protocol):
    """OpenAI and AWS for this call: its sideband (CallGone: it has ended; SidebandLost), its hang-up (False: it had
    ended), the successor's start, its backstop's removal, and a fresh backstop (invoked with ``event`` at
    ``at_epoch``). A ServiceError when one cannot be done."""

    def attach(self) -> Sideband: ...

    def hang_up(self) -> bool: ...

    def start_successor(self, event: dict[str, Any]) -> None: ...

    def forget_backstop(self) -> None: ...

    def make_backstop(self, at_epoch: float, event: dict[str, Any]) -> None: ...


class Clock(Protocol):
    def time(self) -> float: ...  # epoch seconds

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...
