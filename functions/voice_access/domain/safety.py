"""The safety identifier: who a caller is, pseudonymously, for OpenAI and for our own logs.

OpenAI asks integrators to send a stable identifier per end user (``OpenAI-Safety-Identifier``) so that
abuse is pinned on that user rather than on the whole organisation. Ours is an HMAC-SHA256 of the
caller's issuer and subject, keyed with the secret's ``safety_identifier_key``: stable per user, not
reversible without the key, never the raw subject; rotating the key changes every identifier.
"""

import hashlib
import hmac

from voice_access.domain.caller import Caller


def safety_identifier(key: str, caller: Caller) -> str:
    """64 hex characters: HMAC-SHA256(key, issuer and subject, each length-prefixed)."""
    return hmac.new(key.encode(), _issuer_and_subject(caller), hashlib.sha256).hexdigest()


def _issuer_and_subject(caller: Caller) -> bytes:
    # Each part's length first, so ("ab", "c") and ("a", "bc") never hash alike. A claim may carry a lone
    # surrogate (JSON "\ud800"): kept as its own bytes rather than refused.
    parts = [part.encode("utf-8", "surrogatepass") for part in (caller.issuer, caller.subject)]
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)
