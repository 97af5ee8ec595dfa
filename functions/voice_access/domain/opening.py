"""What opening a session for a caller shares, whichever way it is opened (a GPT-Live session, a Realtime call):
the caller counted in its profile's windows around OpenAI's call, and given back on the same failures as a mint."""

from collections.abc import Callable
from typing import Any

from voice_access.clients.deadline import Deadline
from voice_access.clients.quota_store import Store
from voice_access.clients.secrets import api_keys
from voice_access.domain import quota
from voice_access.domain.errors import UpstreamKeyRejected, UpstreamRejected
from voice_access.domain.limits import Window
from voice_access.domain.policy.model import Profile
from voice_access.domain.policy.rules import policys_refusal


def within_quota[T](
    store: Store | None,
    brake: Window | None,
    profile_name: str,
    profile: Profile,
    user: str,
    session: dict[str, Any],
    deadline: Deadline,
    words: tuple[str, str],
    open_upstream: Callable[[], T],
) -> tuple[T, quota.Reservation | None]:
    """``open_upstream()`` with a unit of the caller's windows (and the spend brake) taken first: what it opened and
    the reservation. A full window's refusal names what is counted (``words``: one, many). Its failure is raised, the
    unit given back where a mint's would be, a refusal of a field the policy set (``session``) made the operator's,
    and a key OpenAI refused forgotten."""
    reservation = quota.reserve(store, profile_name, profile.limits, brake, user, deadline=deadline, words=words)
    try:
        return open_upstream(), reservation
    except BaseException as raised:
        failure = raised
        if isinstance(raised, UpstreamKeyRejected):
            api_keys.forget()  # a rotated key is read again at once, not after the cache's TTL
        elif isinstance(raised, UpstreamRejected) and profile.set_by_policy(raised.param, session):
            failure = policys_refusal(raised)  # the operator's to fix: given back, as any failure of ours
        if reservation is not None and quota.gives_back(failure):
            quota.release(reservation)
        if failure is raised:
            raise
        raise failure from None
