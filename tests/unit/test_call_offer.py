"""A call's body as API Gateway delivers it (edge/request_body.py ``call_offer``): the browser's SDP offer alone, or
the SDKs' multipart form of ``sdp`` and ``session``, base64-encoded; anything else a clear 4xx naming what to fix."""

import base64
from typing import Any

import pytest

from voice_access.domain.errors import InvalidRequest
from voice_access.edge.request_body import MAX_BODY_BYTES, RequestTooLarge, UnsupportedMediaType, call_offer

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
FORM = "multipart/form-data; boundary=b"


def part(name: str, content: str, headers: str = "") -> str:
    return f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n{headers}\r\n{content}\r\n'


def delivered(body: str | bytes, content_type: str) -> tuple[str, Any]:
    """``call_offer`` on ``body`` as API Gateway delivers a binary one: base64-encoded."""
    raw = body.encode() if isinstance(body, str) else body
    return call_offer(base64.b64encode(raw).decode(), True, content_type)


def test_an_offer_alone_has_no_session() -> None:
    assert delivered(OFFER, "application/sdp") == (OFFER, None)


def test_the_sdks_form_gives_the_offer_and_its_session() -> None:
    # Given the form as the SDKs send it (each part's content type, no filename)
    body = part("sdp", OFFER, "Content-Type: application/sdp\r\n")
    body += part("session", '{"type":"realtime"}', "Content-Type: application/json\r\n") + "--b--\r\n"

    # When / Then the offer is as sent, byte for byte, and the session parsed
    assert delivered(body, FORM) == (OFFER, {"type": "realtime"})


@pytest.mark.parametrize(
    ("body", "content_type", "code", "param"),
    [
        pytest.param(part("session", "{}") + "--b--\r\n", FORM, "missing_required_parameter", "sdp", id="no-sdp"),
        pytest.param(
            part("sdp", OFFER) + part("sdp", OFFER) + "--b--\r\n", FORM, "invalid_value", "sdp", id="sdp-twice"
        ),
        pytest.param(part("sdp", OFFER) + part("x", "1") + "--b--\r\n", FORM, "unknown_parameter", "x", id="extra"),
        pytest.param(
            '--b\r\nContent-Disposition: attachment; name="sdp"\r\n\r\n' + OFFER + "\r\n--b--\r\n",
            FORM,
            "invalid_multipart",
            None,
            id="not-form-data",
        ),
        pytest.param("--b\r\n" + OFFER + "\r\n--b--\r\n", FORM, "invalid_multipart", None, id="no-disposition"),
        pytest.param(part("sdp", OFFER), FORM, "invalid_multipart", None, id="no-closing-boundary"),
        pytest.param(
            part("sdp", OFFER) + "--b--\r\n", "multipart/form-data", "invalid_multipart", None, id="no-boundary"
        ),
        pytest.param("", FORM, "invalid_multipart", None, id="empty"),
        pytest.param(
            part("sdp", OFFER) + part("session", "{") + "--b--\r\n", FORM, "invalid_json", "session", id="not-json"
        ),
        pytest.param(
            part("sdp", OFFER) + part("session", '{"instructions": "\\ud800"}') + "--b--\r\n",
            FORM,
            "invalid_json",
            None,
            id="a-lone-surrogate",
        ),
        pytest.param(part("sdp", "v=0x\r\n") + "--b--\r\n", FORM, "invalid_value", "sdp", id="not-sdp"),
        pytest.param("v=0\r\n\x00", "application/sdp", "invalid_value", "sdp", id="a-nul"),
        pytest.param(b"v=0\r\n\xff\xfe", "application/sdp", "invalid_value", "sdp", id="not-utf-8"),
    ],
)
def test_a_body_that_is_not_an_offer_or_the_sdks_form_is_refused_naming_what_to_fix(
    body: str | bytes, content_type: str, code: str, param: str | None
) -> None:
    # Given / When / Then
    with pytest.raises(InvalidRequest) as caught:
        delivered(body, content_type)
    assert (caught.value.code, caught.value.param) == (code, param)


def test_another_content_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        delivered(OFFER, "text/plain")
    assert caught.value.param == "Content-Type"


def test_a_body_past_the_bound_is_too_large() -> None:
    with pytest.raises(RequestTooLarge):
        delivered(OFFER + "a=x\r\n" * (MAX_BODY_BYTES // 5), "application/sdp")
