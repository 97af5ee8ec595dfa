"""The JSON object in an API Gateway request body, or a browser's SDP offer (raw, or in the SDKs' multipart form);
or a clear 4xx."""

import base64
import binascii
import json
import re
from typing import Any

from voice_access.domain.errors import InvalidRequest

# A session request is well under 1 KiB, and a browser's SDP offer a few; the largest legitimate field of a
# session (a transcription prompt) is bounded by the policy. API Gateway itself would take 10 MB.
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
        parsed = _json(raw)
    except ValueError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The API expects a JSON object.",
            code="invalid_json",
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_type")
    return parsed


def _json(raw: bytes) -> Any:
    """JSON as this service takes it: UTF-8 strictly (InvalidRequest), no NaN or Infinity, and no lone surrogate;
    ValueError when it is not JSON."""
    try:
        parsed = json.loads(_utf8(raw), parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    # A "\ud800" escape parses to a lone surrogate, which no log line or upstream body can carry. Only
    # such an escape can make one (UTF-8 cannot), so the whole body is checked only when one is there.
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(parsed, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRequest("The request body holds an invalid unicode escape.", code="invalid_json") from None
    return parsed


def call_offer(body: str | None, is_base64_encoded: bool, content_type: str | None) -> tuple[str, Any]:
    """The browser's SDP offer, and the session the request asks for (None: it asks for none). As OpenAI takes them
    on ``POST /v1/realtime/calls``: the offer alone as ``application/sdp`` (what WebRTC clients such as the Agents
    SDK's send), or a ``multipart/form-data`` form of ``sdp`` and ``session`` (the SDKs' ``calls.create``). API
    Gateway delivers both base64-encoded."""
    raw = _raw(body, is_base64_encoded)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestTooLarge(
            f"The request body is {len(raw)} bytes; this service accepts at most {MAX_BODY_BYTES} (a browser's SDP "
            "offer is a few kilobytes).",
            code="request_too_large",
        )
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/sdp":
        return _sdp(raw), None
    if media_type == "multipart/form-data":
        parts = _form(raw, content_type or "")
        if "sdp" not in parts:
            raise InvalidRequest(
                "Missing required parameter: 'sdp' (the browser's SDP offer, a part of the form).",
                code="missing_required_parameter",
                param="sdp",
            )
        session = parts.get("session")
        return _sdp(parts["sdp"]), None if session is None else _session(session)
    raise UnsupportedMediaType(
        "Send the browser's SDP offer as 'Content-Type: application/sdp', or as multipart/form-data with the parts "
        "'sdp' and 'session' (as the OpenAI SDKs' realtime.calls.create sends it).",
        code="unsupported_content_type",
        param="Content-Type",
    )


def _sdp(raw: bytes) -> str:
    from voice_access.domain.sdp import is_offer  # here: a mint's cold start does not load it

    try:
        sdp = raw.decode("utf-8")
    except UnicodeError:
        sdp = ""
    if not is_offer(sdp):
        raise InvalidRequest(
            "Invalid value for 'sdp': expected the browser's SDP offer (text starting 'v=0'), as "
            "RTCPeerConnection.createOffer() makes it.",
            code="invalid_value",
            param="sdp",
        )
    return sdp


def _form(raw: bytes, content_type: str) -> dict[str, bytes]:
    """A multipart form's parts by name: only ``sdp`` and ``session``, each at most once."""
    from email.message import Message  # already loaded by http.client: no import at a mint's cold start
    from email.parser import BytesParser

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("utf-8", "replace")
    form = BytesParser().parsebytes(head + raw)
    payload = form.get_payload()
    if not form.is_multipart() or form.defects or not isinstance(payload, list):
        raise InvalidRequest(
            "The multipart body could not be read: send the form with its boundary in the Content-Type header, as "
            "the OpenAI SDKs' realtime.calls.create does.",
            code="invalid_multipart",
        )
    parts: dict[str, bytes] = {}
    for part in payload:
        name = part.get_param("name", header="content-disposition") if isinstance(part, Message) else None
        if (
            not isinstance(part, Message)
            or part.defects
            or part.get_content_disposition() != "form-data"
            or not isinstance(name, str)
        ):
            raise InvalidRequest("A part of the multipart body is not a named form field.", code="invalid_multipart")
        if name not in ("sdp", "session"):
            raise InvalidRequest(f"Unknown parameter: '{name[:64]}'.", code="unknown_parameter", param=name[:64])
        if name in parts:
            raise InvalidRequest(f"'{name}' is sent twice in the form.", code="invalid_value", param=name)
        content = part.get_payload(decode=True)
        parts[name] = content if isinstance(content, bytes) else b""
    return parts


def _session(raw: bytes) -> Any:
    try:
        return _json(raw)
    except ValueError:
        raise InvalidRequest(
            "Invalid value for 'session': the form's session part must be a JSON object.",
            code="invalid_json",
            param="session",
        ) from None


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
