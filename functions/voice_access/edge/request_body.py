"""The JSON object in an API Gateway request body, or a clear 4xx."""

import base64
import binascii
import json
import re
from typing import Any

from voice_access.domain.errors import InvalidRequest

# A session request is well under 1 KiB; the largest legitimate field here (a transcription prompt)
# is bounded by the policy. API Gateway itself would take 10 MB.
MAX_BODY_BYTES = 16 * 1024
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_BOM = b"\xef\xbb\xbf"


class RequestTooLarge(InvalidRequest):
    """The body is larger than any request this service takes."""


class UnsupportedMediaType(InvalidRequest):
    """The body is not sent as JSON."""


def json_object(body: str | None, is_base64_encoded: bool, content_type: str | None) -> dict[str, Any]:
    raw = _raw(body, is_base64_encoded)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"The request body is {len(raw)} bytes; this service accepts at most {MAX_BODY_BYTES}.",
            code="request_too_large",
        )
    if not raw.strip():
        return {}
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(
            "Send the request body as JSON, with the header 'Content-Type: application/json'.",
            code="unsupported_content_type",
            param="Content-Type",
        )
    try:
        parsed = json.loads(_utf8(raw), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The API expects a JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    # A "\ud800" escape parses to a lone surrogate, which no log line or upstream body can carry. Only
    # such an escape can make one (UTF-8 cannot), so the whole body is checked only when one is there.
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(parsed, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRequest("The request body holds an invalid unicode escape.", code="invalid_json") from None
    return parsed


def _utf8(raw: bytes) -> str:
    """The body as text: UTF-8, strictly. ``json.loads`` on bytes would guess UTF-16 or UTF-32 and let
    encoded surrogates (``ED A0 80``) through, which no log line or upstream body can carry."""
    try:
        if raw.startswith(_BOM) or b"\x00" in raw:  # a UTF-8 BOM, or UTF-16/32 (NULs between ASCII)
            raise UnicodeError
        return raw.decode("utf-8")  # strict: no invalid sequences, no encoded surrogates
    except UnicodeError:
        raise InvalidRequest(
            "The request body is not UTF-8 text. Send the JSON encoded as UTF-8, without a byte order mark.",
            code="invalid_json",
        ) from None


def _raw(body: str | None, is_base64_encoded: bool) -> bytes:
    if not body:
        return b""
    if not is_base64_encoded:
        try:
            return body.encode()
        except UnicodeEncodeError:  # a lone surrogate: not text any JSON parser would take
            raise InvalidRequest("The request body is not valid UTF-8 text.", code="invalid_json") from None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("The request body is marked base64 but is not.", code="invalid_body") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
