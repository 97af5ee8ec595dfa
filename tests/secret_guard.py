"""What the secret guard (conftest.py's `output` fixture and its report hook) looks for in a test's output: the
API key, a minted client secret, a user's token (or a piece of one) or an e-mail address, plain or encoded."""

import logging
import re
import urllib.parse
from collections.abc import Iterable

from local.aws import FAKE_CREDENTIALS
from tests.issuers import MINTED_TOKENS
from tests.keys import TEST_API_KEY, TEST_SAFETY_KEY

# Every client secret the stub fixtures minted; every token the user pool fixtures signed, and the addresses of
# their users (tests/issuers.py keeps its own).
MINTED_SECRETS: set[str] = set()
USER_TOKENS: set[str] = set()
USER_EMAILS: set[str] = set()
# A JWT's header and payload: base64url JSON objects, so each starts eyJ ('{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}")
# An address: a dot-atom local part, then a domain ending in a letters-only TLD (not "openai@6.49.0",
# not a decorator, which has no local part).
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# What every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _token_pieces(tokens: Iterable[str]) -> set[str]:
    """What shows a token: the whole; its payload (the claims: subject, username, groups) alone; and its first
    24 characters, the first piece of a token printed in two (a second piece that lacks them holds the payload)."""
    pieces: set[str] = set()
    for token in tokens:
        pieces |= {token, token[:24]}
        segments = token.split(".")
        if len(segments) == 3 and segments[1]:
            pieces.add(segments[1])
    return pieces


def record_text(record: logging.LogRecord) -> str:
    """A record as a handler could show it: its message, exception and stack, and its extra fields."""
    extras = (repr(value) for key, value in vars(record).items() if key not in _RECORD_FIELDS)
    return "\n".join([logging.Formatter().format(record), *extras])


def _decoded(text: str) -> str:
    """The text with JSON \\u escapes and (repeated) percent-encoding undone, so "alice%40example.test" reads as
    an address."""
    text = _JSON_ESCAPE.sub(lambda escape: chr(int(escape[1], 16)), text)
    for _ in range(3):
        text, previous = urllib.parse.unquote(text), text
        if text == previous:
            break
    return text


def secret_shown(shown: str) -> str | None:
    """What the guard says about a text that shows the API key, a minted client secret, a user's token (or a
    piece of one) or an e-mail address, plain or encoded; None when it shows none. It names how many values
    leaked and at most their first 6 characters."""
    decoded = _decoded(shown)
    text = shown if decoded == shown else f"{shown}\n{decoded}"
    secrets = {TEST_API_KEY, TEST_SAFETY_KEY, FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], *MINTED_SECRETS}
    leaked = sorted(s for s in secrets if s in text)
    if leaked:
        return f"a secret appeared in the output: {len(leaked)} value(s), e.g. {leaked[0][:6]}..."
    if any(piece in text for piece in _token_pieces(USER_TOKENS | MINTED_TOKENS)) or _JWT.search(text):
        return "a user's token (or something shaped like a JWT) appeared in the output"
    if any(email in text for email in USER_EMAILS) or _EMAIL.search(text):
        return "an e-mail address appeared in the output"
    return None


# The lines of an SDP that tell where its peer is, or how to reach it.
_SDP_LINES = re.compile(r"a=(?:candidate|ice-ufrag|ice-pwd|fingerprint):")


def sdp_shown(shown: str) -> bool:
    """Whether a text shows an SDP offer or answer (plain, or JSON-escaped as a log line holds it)."""
    return bool(_SDP_LINES.search(shown) or _SDP_LINES.search(_decoded(shown)))
