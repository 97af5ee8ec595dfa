"""Reading the JSON object out of an API Gateway request body."""

import base64
import json
from http import HTTPStatus

import pytest

from voice_access.config.policy_file import load_policy
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.caller import Caller
from voice_access.domain.errors import InvalidRequest
from voice_access.domain.policy.rules import check_request, ga_param
from voice_access.edge import answers
from voice_access.edge.request_body import MAX_BODY_BYTES, json_object

JSON = "application/json"


def refusal(body: str | None, *, is_base64_encoded: bool = False, content_type: str | None = JSON) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        json_object(body, is_base64_encoded, content_type)
    return caught.value


@pytest.mark.parametrize("body", [None, "", "   \n"])
def test_an_empty_body_is_an_empty_request(body: str | None) -> None:
    # Given a request without a body (and so without a content type)
    # When
    request = json_object(body, False, None)

    # Then
    assert request == {}


def test_a_json_object_is_read() -> None:
    # Given
    body = json.dumps({"voice": "alloy", "turn_detection": {"type": "server_vad"}})

    # When
    request = json_object(body, False, JSON)

    # Then
    assert request == {"voice": "alloy", "turn_detection": {"type": "server_vad"}}


def test_a_base64_encoded_body_is_decoded() -> None:
    # Given API Gateway's base64 form of a JSON body
    body = base64.b64encode(b'{"voice": "verse"}').decode()

    # When
    request = json_object(body, True, JSON)

    # Then
    assert request == {"voice": "verse"}


def test_a_body_marked_base64_that_is_not_is_refused() -> None:
    # Given / When
    error = refusal('{"voice": "verse"}', is_base64_encoded=True)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_body"


@pytest.mark.parametrize("body", ["{", "voice=alloy", '{"voice": "alloy",}', "{'voice': 'alloy'}"])
def test_a_body_that_is_not_json_is_refused(body: str) -> None:
    # Given / When
    error = refusal(body)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_json"
    assert answers.envelope(error)["error"]["type"] == "invalid_request_error"


def test_invalid_utf8_is_refused_as_invalid_json() -> None:
    # Given
    body = base64.b64encode(b'{"voice": "\xff"}').decode()

    # When
    error = refusal(body, is_base64_encoded=True)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_json"


@pytest.mark.parametrize("body", ['{"speed": NaN}', '{"speed": Infinity}', '{"speed": -Infinity}'])
def test_non_finite_numbers_are_not_json(body: str) -> None:
    # Given / When
    error = refusal(body)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_json"


@pytest.mark.parametrize("body", ["[]", '[{"voice": "alloy"}]', '"alloy"', "1", "null", "true"])
def test_json_that_is_not_an_object_is_refused(body: str) -> None:
    # Given / When
    error = refusal(body)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_type"


def test_nesting_deeper_than_the_parser_can_follow_is_refused_not_a_crash() -> None:
    # Given a body under the size limit that nests deeper than the JSON parser's recursion limit
    body = '{"tools": ' + "[" * (MAX_BODY_BYTES - 16)
    assert len(body) <= MAX_BODY_BYTES

    # When
    error = refusal(body)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_json"


def test_a_deeply_nested_body_within_the_size_limit_ends_in_a_400_not_a_crash() -> None:
    # Given a GA request whose session nests 2700 objects deep, yet fits the size limit
    depth = 2700
    body = '{"session":' + '{"a":' * depth + "1" + "}" * depth + "}"
    assert len(body) <= MAX_BODY_BYTES
    policy = load_policy(BUNDLED_POLICY)
    profile_name, profile = policy.select(
        None, "realtime", Caller("https://issuer.example", "user-1"), param="session.type"
    )

    # When the body is read and checked against the policy
    with pytest.raises(InvalidRequest) as caught:
        check_request(json_object(body, False, JSON), profile_name, profile, ga_param)

    # Then the caller hears what is wrong
    assert answers.status_of(caught.value) == HTTPStatus.BAD_REQUEST


def test_a_body_of_the_largest_size_is_read() -> None:
    # Given a JSON object of exactly MAX_BODY_BYTES bytes
    skeleton = '{"instructions": ""}'
    body = skeleton[:-2] + "x" * (MAX_BODY_BYTES - len(skeleton)) + '"}'
    assert len(body.encode()) == MAX_BODY_BYTES

    # When
    request = json_object(body, False, JSON)

    # Then
    assert len(request["instructions"]) == MAX_BODY_BYTES - len(skeleton)


@pytest.mark.parametrize("is_base64_encoded", [False, True])
def test_a_body_over_the_limit_is_refused_as_too_large(is_base64_encoded: bool) -> None:
    # Given a body one byte over the limit (counted after base64 decoding)
    raw = b" " * MAX_BODY_BYTES + b"{}"
    body = base64.b64encode(raw).decode() if is_base64_encoded else raw.decode()

    # When
    error = refusal(body, is_base64_encoded=is_base64_encoded)

    # Then
    assert answers.status_of(error) == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error.code == "request_too_large"


def test_the_size_limit_counts_bytes_not_characters() -> None:
    # Given fewer characters than the limit but more bytes (each "é" is two bytes in UTF-8)
    body = '{"instructions": "' + "é" * (MAX_BODY_BYTES // 2) + '"}'
    assert len(body) < MAX_BODY_BYTES < len(body.encode())

    # When
    error = refusal(body)

    # Then
    assert answers.status_of(error) == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "", None])
def test_a_body_that_is_not_declared_json_is_refused(content_type: str | None) -> None:
    # Given / When
    error = refusal('{"voice": "alloy"}', content_type=content_type)

    # Then
    assert answers.status_of(error) == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert error.code == "unsupported_content_type"
    assert error.param == "Content-Type"


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", " application/json ;charset=UTF-8"]
)
def test_json_content_types_with_parameters_or_other_case_are_accepted(content_type: str) -> None:
    # Given / When
    request = json_object('{"voice": "alloy"}', False, content_type)

    # Then
    assert request == {"voice": "alloy"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"session": {"\\ud800": 1}}', id="high-in-a-key"),
        pytest.param('{"session": {"instructions": "\\uDC00"}}', id="low-upper-case-in-a-value"),
        pytest.param('{"session": {"instructions": "\\ude00\\ud83d"}}', id="pair-in-the-wrong-order"),
    ],
)
def test_a_lone_surrogate_escape_is_refused_as_invalid_json(body: str) -> None:
    # Given JSON whose escape decodes to half a UTF-16 pair (no log line or upstream body could carry it)

    # When
    error = refusal(body)

    # Then
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_json"


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    # Given an emoji written as the JSON escape of its UTF-16 pair
    body = '{"session": {"instructions": "hi \\ud83d\\ude00"}}'

    # When
    request = json_object(body, False, "application/json")

    # Then
    assert request == {"session": {"instructions": "hi \U0001f600"}}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"session": {"instructions": "\xed\xa0\x80"}}', id="encoded-surrogate-in-a-value"),
        pytest.param(b'{"session": {"\xed\xa0\x80": 1}}', id="encoded-surrogate-in-a-name"),
        pytest.param('{"session": {}}'.encode("utf-16"), id="utf-16-with-bom"),
        pytest.param('{"session": {}}'.encode("utf-16-le"), id="utf-16-le"),
        pytest.param('{"session": {}}'.encode("utf-16-be"), id="utf-16-be"),
        pytest.param('{"session": {}}'.encode("utf-32"), id="utf-32-with-bom"),
        pytest.param('{"session": {}}'.encode("utf-32-le"), id="utf-32-le"),
        pytest.param(b'\xef\xbb\xbf{"session": {}}', id="utf-8-bom"),
        pytest.param(b'{"session": {"instructions": "\xc0\xaf"}}', id="overlong"),
    ],
)
def test_a_body_that_is_not_strict_utf8_is_refused(raw: bytes) -> None:
    # Given bytes that json.loads would have decoded (it guesses UTF-16/32 and passes surrogates)
    body = base64.b64encode(raw).decode()

    # When
    error = refusal(body, is_base64_encoded=True)

    # Then a 400 that says what to send
    assert answers.status_of(error) == HTTPStatus.BAD_REQUEST
    assert error.code == "invalid_json"
    assert "UTF-8" in error.message


def test_utf8_beyond_ascii_is_read() -> None:
    # Given a body with characters of several UTF-8 lengths
    raw = '{"session": {"instructions": "é € 😀"}}'.encode()

    # When
    request = json_object(base64.b64encode(raw).decode(), True, JSON)

    # Then
    assert request == {"session": {"instructions": "é € 😀"}}
