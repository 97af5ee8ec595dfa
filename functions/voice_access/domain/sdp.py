"""What this service checks of a browser's SDP offer before it goes to OpenAI: that it is one. OpenAI parses it; the
offer is passed on as it came, and never logged (its ICE candidates carry the user's addresses)."""

import re

# An SDP description starts with its version line (RFC 8866).
_START = re.compile(r"v=0\r?\n")


def is_offer(text: str) -> bool:
    """Whether ``text`` is shaped as an SDP description: its version line first, and no NUL anywhere."""
    return bool(_START.match(text)) and "\x00" not in text
