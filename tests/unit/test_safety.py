"""The safety identifier: HMAC-SHA256 of issuer and subject, stable, distinct per user, never the subject."""

import hashlib
import hmac
import re

import pytest

from voice_access.domain.caller import Caller
from voice_access.domain.safety import safety_identifier

KEY = "9f3c1a7e5d2b4c6a8e0f1d3b5a7c9e2f4d6b8a0c2e4f6a8b"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ex4mpLe12"
SUBJECT = "94e8d4a8-40b1-70d6-2c3f-5a6b7c8d9e0f"
CALLER = Caller(issuer=ISSUER, subject=SUBJECT)


def reference(key: str, issuer: str, subject: str) -> str:
    """The documented construction, written out again: each part's UTF-8 bytes after its length in 8 bytes."""
    message = b""
    for part in (issuer.encode(), subject.encode()):
        message += len(part).to_bytes(8, "big") + part
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def test_it_is_the_hmac_of_issuer_and_subject() -> None:
    # Given a caller and a key

    # When
    identifier = safety_identifier(KEY, CALLER)

    # Then it is what the reference implementation computes, 64 lower-case hex characters
    assert identifier == reference(KEY, ISSUER, SUBJECT)
    assert re.fullmatch(r"[0-9a-f]{64}", identifier)


def test_the_same_user_gets_the_same_identifier_whatever_else_changes() -> None:
    # Given the same user signed in twice, once in a group and with other scopes
    later = Caller(issuer=ISSUER, subject=SUBJECT, groups=frozenset({"premium"}), scopes=frozenset({"openid"}))

    # When / Then
    assert safety_identifier(KEY, CALLER) == safety_identifier(KEY, later)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(Caller(issuer=ISSUER, subject=SUBJECT + "0"), id="another-subject"),
        pytest.param(Caller(issuer="https://example.auth0.com/", subject=SUBJECT), id="another-issuer"),
        pytest.param(Caller(issuer=ISSUER + SUBJECT[:4], subject=SUBJECT[4:]), id="the-boundary-moved"),
        pytest.param(Caller(issuer=SUBJECT, subject=ISSUER), id="swapped"),
    ],
)
def test_another_user_gets_another_identifier(other: Caller) -> None:
    # When / Then
    assert safety_identifier(KEY, other) != safety_identifier(KEY, CALLER)


def test_another_key_gives_every_user_another_identifier() -> None:
    # Given a rotated key

    # When / Then
    assert safety_identifier(KEY[::-1], CALLER) != safety_identifier(KEY, CALLER)


def test_it_never_contains_the_subject() -> None:
    # Given a subject that is itself hex, so that it could show inside a hex digest
    caller = Caller(issuer=ISSUER, subject="abc123")

    # When
    identifier = safety_identifier(KEY, caller)

    # Then
    assert "abc123" not in identifier
    assert SUBJECT not in safety_identifier(KEY, CALLER)


def test_any_claim_text_can_be_hashed() -> None:
    # Given a subject with control characters and a lone surrogate, as JSON can carry
    caller = Caller(issuer="iss\n\x00", subject="sub\u2028\ud800")

    # When
    identifier = safety_identifier(KEY, caller)

    # Then
    assert re.fullmatch(r"[0-9a-f]{64}", identifier)
