"""The safety identifier: who a caller is, pseudonymously, for OpenAI and for our own logs.

OpenAI asks integrators to send a stable identifier per end user (``OpenAI-Safety-Identifier``) so that
abuse is pinned on that user rather than on the whole organisation. Ours is an HMAC-SHA256 of the
caller's issuer and subject, keyed with the secret's ``safety_identifier_key``: stable per user, not
reversible without the key, never the raw subject; rotating the key changes every identifier.
"""

import hashlib
import hmac

from voice_access.clients.deadline import Deadline
from voice_access.clients.secrets import Credentials, SecretSettings, api_keys
from voice_access.domain.caller import Caller
from voice_access.domain.errors import ServiceError
from voice_access.observability import logger


def identified(service: SecretSettings, caller: Caller, deadline: Deadline) -> tuple[Credentials | ServiceError, str]:
    """The service's keys (or why they cannot be had, for a request to raise once its own input has passed) and the
    caller's safety identifier ("" without the keys), which names the caller in every later log line of the request
    (the handler clears it with the rest of the invocation's state)."""
    keys = api_keys.held_or_refusal(service, deadline=deadline)
    if isinstance(keys, ServiceError):
        return keys, ""
    user = safety_identifier(keys.safety_identifier_key, caller)
    logger.append_keys(user=user)
    return keys, user


def safety_identifier(key: str, caller: Caller) -> str:
    """64 hex characters: HMAC-SHA256(key, issuer and subject, each length-prefixed)."""
    return hmac.new(key.encode(), _issuer_and_subject(caller), hashlib.sha256).hexdigest()


def _issuer_and_subject(caller: Caller) -> bytes:
    # Each part's length first, so ("ab", "c") and ("a", "bc") never hash alike. A claim may carry a lone
    # surrogate (JSON "\ud800"): kept as its own bytes rather than refused.
    parts = [part.encode("utf-8", "surrogatepass") for part in (caller.issuer, caller.subject)]
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)
