"""What a caller has used of its budgets, and its calls open now: ``GET /v1/realtime/usage``, so that an app can show
"minutes left".

For each profile the caller may use that has budgets or limits its calls open at once, each budget's limit, what
the caller's calls have used of it in the window it is in now, what is left and when the window ends (dollars as
decimal dollars, seconds of calls as whole seconds), and how many of the caller's calls hold a slot now. One strongly
consistent read of the quota store, which writes nothing; the caller is named there by its safety identifier, so the
secret's key is read (cached, as for a mint). Unlike the profiles listing, a read that fails is the answer's failure:
the figures are all it has to say. Nothing reaches OpenAI.
"""

import time
from typing import TYPE_CHECKING, Any, Protocol

from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import StoreMisconfigured
from voice_access.clients.secrets import SecretSettings
from voice_access.domain import ledger, quota
from voice_access.domain.caller import Caller
from voice_access.domain.errors import ServiceError, ServiceMisconfigured
from voice_access.domain.limits import MICRO, USD, Budget, Limits
from voice_access.domain.policy.model import Policy
from voice_access.domain.safety import identified
from voice_access.observability import count, logger

OBJECT = "realtime.usage"

if TYPE_CHECKING:  # a Protocol class costs about 80 us to define, for type checking only

    class Deployment(SecretSettings, quota.Deployment, Protocol):
        """Where a deployment's settings (config/settings.py) say the secret and the quota store are."""


def read_usage(caller: Caller, *, service: "Deployment", policy: Policy, deadline: Deadline) -> dict[str, Any]:
    """The usage ``GET /v1/realtime/usage`` answers ``caller`` under the deployment's settings (``service``) and
    ``policy``, read by ``deadline``."""
    metered: dict[str, Limits] = {
        name: profile.limits
        for name, profile in policy.profiles.items()
        if profile.allows(caller)
        and profile.limits is not None
        and (profile.limits.budgets or profile.limits.concurrent_calls is not None)
    }
    if not metered:
        logger.info("usage read", profiles=[])
        return {"object": OBJECT, "data": []}
    keys, user = identified(service, caller, deadline)
    if isinstance(keys, ServiceError):
        raise keys
    store = quota.store_of(service)
    if store is None:
        raise _misconfigured("quota_store_missing", "the policy sets budgets but the function has no QUOTA_TABLE_NAME")
    try:
        standings = ledger.standings(store, metered, user, time.time(), deadline)
    except StoreMisconfigured as failure:
        raise _misconfigured("quota_store_misconfigured", failure.problem) from None
    logger.info("usage read", profiles=list(metered))
    return {"object": OBJECT, "data": [_entry(name, standings[name]) for name in metered]}


def _entry(profile: str, standing: list[ledger.Standing]) -> dict[str, Any]:
    budgets = [_budget(held, held.budget) for held in standing if held.budget is not None]
    calls = next(({"limit": held.limit, "open": held.used} for held in standing if held.budget is None), None)
    return {"profile": profile, "budgets": budgets, "calls": calls}


def _budget(held: ledger.Standing, budget: Budget) -> dict[str, Any]:
    usd = budget.unit is USD
    return {
        "unit": budget.unit.name,
        "limit": _dollars(held.limit) if usd else held.limit,
        "used": _dollars(held.used) if usd else held.used,
        "remaining": _dollars(held.remaining) if usd else held.remaining,
        "window_seconds": budget.seconds,
        "resets_at": held.resets_at,
    }


def _dollars(micro_usd: int) -> float:
    """Micro-dollars as a JSON number of dollars: exact to the micro-dollar as it is printed (1.25, 0.000125)."""
    return round(micro_usd / MICRO, 6)


def _misconfigured(reason: str, problem: str) -> ServiceMisconfigured:
    logger.error("refusing to read usage: the quota store cannot be used", reason=reason, problem=problem)
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service cannot use its quota store, so it cannot read usage until an operator fixes it (see the "
        "service's logs).",
        code=reason,
    )
