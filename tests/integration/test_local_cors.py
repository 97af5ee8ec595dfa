"""CORS through the local gateway over HTTP, from the template's CorsConfiguration, as API Gateway applies it:
preflights answered by the gateway itself, and the origin's headers on every answer, errors included."""

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus

import pytest

from local import stand_ins
from local.cors import Cors
from local.exchanges import AccessRecord
from local.gateway import PAYLOAD_LIMIT_BYTES, LocalApi
from local.stand_ins import TEMPLATE
from openai_stub.server import OpenAIStub
from tests.issuers import LoopbackIssuer
from tests.local_api import serving_issuer as serving

MINT_PATH = "/v1/realtime/client_secrets"
MINT_BODY = json.dumps({"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}).encode()
APP = "https://app.example.test"
DEV_PAGE = "http://localhost:5173"
# What a page's fetch through the official openai npm SDK (6.x, client.mjs) asks a preflight for, with
# the profile header of this API.
SDK_HEADERS = [
    "authorization",
    "content-type",
    "x-profile",
    "openai-organization",
    "openai-project",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    data: bytes

    def cors(self) -> dict[str, str]:
        return {name: value for name, value in self.headers.items() if name.startswith("access-control-")}


def _send(api: LocalApi, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())
    finally:
        connection.close()


def _preflight(api: LocalApi, origin: str, path: str = MINT_PATH) -> Answer:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": ",".join(SDK_HEADERS),
    }
    return _send(api, "OPTIONS", path, headers)


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    with LoopbackIssuer() as started:
        yield started


@pytest.fixture
def records() -> list[AccessRecord]:
    return []


@pytest.fixture
def api(
    issuer: LoopbackIssuer,
    api_key_secret_arn: str,
    secrets_manager_url: str,
    openai_stub: OpenAIStub,
    records: list[AccessRecord],
) -> Iterator[LocalApi]:
    """The template deployed with AllowedOrigins: the app's origin and a development page's."""
    with serving(
        issuer,
        api_key_secret_arn,
        openai_stub.base_url,
        secrets_manager_url,
        records=records,
        AllowedOrigins=f"{APP},{DEV_PAGE}",
    ) as api:
        yield api


def test_a_preflight_from_an_allowed_origin_is_answered_by_the_gateway(
    api: LocalApi, openai_stub: OpenAIStub, records: list[AccessRecord]
):
    # Given a page on an allowed origin about to POST through the SDK
    # When the browser sends its preflight (no token: preflights never carry one)
    answer = _preflight(api, APP)

    # Then the gateway answers it itself, before routes and the authorizer: 204, the origin echoed, and
    # every method and header the page needs allowed
    assert answer.status == HTTPStatus.NO_CONTENT
    assert answer.data == b""
    cors = answer.cors()
    assert cors["access-control-allow-origin"] == APP
    assert cors["access-control-allow-methods"] == "GET,POST"
    assert set(SDK_HEADERS) <= set(cors["access-control-allow-headers"].split(","))
    assert cors["access-control-max-age"] == "600"
    assert openai_stub.requests == []
    assert records[-1].note == "CORS preflight"


def test_a_preflight_from_another_origin_gets_no_cors_headers(api: LocalApi, records: list[AccessRecord]):
    # Given a page on an origin the configuration does not list (nor a look-alike of one)
    for origin in ("https://evil.example.test", "https://app.example.test.evil.test", "http://app.example.test"):
        # When its browser sends the preflight
        answer = _preflight(api, origin)

        # Then the gateway answers 204 with no CORS headers, so the browser blocks the call
        assert answer.status == HTTPStatus.NO_CONTENT
        assert answer.cors() == {}
        assert answer.data == b""
        # And the access record says which origin is not allowed, and the ALLOWED_ORIGINS that would allow it
        assert records[-1].note == (
            f"CORS preflight from {origin}, which is not allowed: to let that page call, "
            f"restart with ALLOWED_ORIGINS={APP},{DEV_PAGE},{origin} make run"
        )


def test_a_refused_origin_is_shown_escaped_and_clipped(api: LocalApi, records: list[AccessRecord]):
    # Given an origin with characters a terminal would act on (HTTP lets obs-text through) and far too long
    origin = "https://evil.example.test\x85\x9b2K" + "x" * 300

    # When its preflight is sent
    answer = _preflight(api, origin)

    # Then it is refused as any other, and the note shows its first 100 characters, the control escaped
    assert (answer.status, answer.cors()) == (HTTPStatus.NO_CONTENT, {})
    shown = r"https://evil.example.test\x85\x9b2K" + "x" * 71 + "..."
    assert records[-1].note == f"CORS preflight from {shown}, which is not allowed"


@pytest.mark.parametrize("origin", ["http://evil.example:99999", "http://localhost:65536"])
def test_an_origin_with_a_port_past_65535_is_refused_without_a_suggestion(
    api: LocalApi, records: list[AccessRecord], origin: str
):
    # Given an origin no browser sends: its port is past 65535
    # When its preflight is sent
    answer = _preflight(api, origin)

    # Then it is refused as any other origin not allowed, and the note suggests no ALLOWED_ORIGINS for it
    assert (answer.status, answer.cors(), answer.data) == (HTTPStatus.NO_CONTENT, {}, b"")
    assert records[-1].note == f"CORS preflight from {origin}, which is not allowed"


@pytest.mark.parametrize(
    ("page", "allowed"),
    [("http://127.0.0.1:5173", "http://localhost:5173"), ("http://localhost:5173", "http://127.0.0.1:5173")],
    ids=["127.0.0.1-while-localhost-allowed", "localhost-while-127.0.0.1-allowed"],
)
def test_a_page_on_the_other_loopback_name_is_told_the_fix(
    issuer: LoopbackIssuer,
    api_key_secret_arn: str,
    secrets_manager_url: str,
    openai_stub: OpenAIStub,
    page: str,
    allowed: str,
) -> None:
    # Given ALLOWED_ORIGINS naming a development page by one loopback name, and the page opened by the other
    records: list[AccessRecord] = []
    with serving(
        issuer, api_key_secret_arn, openai_stub.base_url, secrets_manager_url, records=records, AllowedOrigins=allowed
    ) as api:
        # When its browser sends the preflight
        answer = _preflight(api, page)

    # Then it is refused as any other origin, and the line says why and the exact fix
    assert (answer.status, answer.cors()) == (HTTPStatus.NO_CONTENT, {})
    assert records[-1].note == (
        f"CORS preflight from {page}, which is not allowed: localhost and 127.0.0.1 are different origins to a "
        f"browser, and only {allowed} is allowed: open the page as {allowed}, "
        f"or restart with ALLOWED_ORIGINS={allowed},{page} make run"
    )


def test_an_origin_compares_case_insensitively_on_scheme_and_host(api: LocalApi):
    # Given an allowed origin written in capitals by its browser
    # When it sends a preflight
    answer = _preflight(api, "HTTPS://App.Example.Test")

    # Then it is allowed, its own spelling echoed
    assert answer.cors()["access-control-allow-origin"] == "HTTPS://App.Example.Test"


def test_without_cors_a_preflight_is_not_found(
    issuer: LoopbackIssuer, api_key_secret_arn: str, secrets_manager_url: str, openai_stub: OpenAIStub
):
    # Given the template's default: AllowedOrigins empty, so no CorsConfiguration
    records: list[AccessRecord] = []
    with serving(issuer, api_key_secret_arn, openai_stub.base_url, secrets_manager_url, records=records) as api:
        # When a browser sends a preflight
        answer = _preflight(api, APP)

    # Then, as no route is OPTIONS, it is API Gateway's 404, with no CORS headers
    assert api.cors is None
    assert answer.status == HTTPStatus.NOT_FOUND
    assert json.loads(answer.data) == {"message": "Not Found"}
    assert answer.headers["content-type"] == "application/json"
    assert answer.cors() == {}
    # And the access record says CORS is off, and how to allow the page's origin locally
    assert records[-1].note == f"no CORS: this API allows no origins (ALLOWED_ORIGINS={APP} make run)"


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("minted", HTTPStatus.OK),
        ("refused by the function", HTTPStatus.BAD_REQUEST),
        ("refused by the authorizer", HTTPStatus.UNAUTHORIZED),
        ("no route", HTTPStatus.NOT_FOUND),
    ],
)
def test_every_answer_to_an_allowed_origin_carries_its_cors_headers(
    api: LocalApi, issuer: LoopbackIssuer, case: str, status: HTTPStatus
):
    # Given a request from an allowed page: a good mint, a body the function refuses, no token, no route
    authorization = {"authorization": f"Bearer {issuer.token()}"}
    body, path, headers = MINT_BODY, MINT_PATH, {"content-type": "application/json", "origin": DEV_PAGE}
    if case == "refused by the function":
        body = json.dumps({"session": {"type": "realtime", "audio": {"output": {"voice": "nope"}}}}).encode()
    if case == "no route":
        path = "/v1/nowhere"
    if case != "refused by the authorizer":
        headers |= authorization

    # When it is sent
    answer = _send(api, "POST", path, headers, body)

    # Then whoever answered, the page may read the answer and the exposed headers
    assert answer.status == status, answer.data
    assert answer.cors() == {
        "access-control-allow-origin": DEV_PAGE,
        "access-control-expose-headers": "x-request-id,retry-after,www-authenticate,x-ratelimit-limit-requests,"
        "x-ratelimit-remaining-requests,x-ratelimit-reset-requests,x-should-retry,location",
    }


def test_the_gateways_413_carries_the_cors_headers_too(api: LocalApi):
    # Given a body over HTTP API's 10 MB limit, from an allowed page
    # When it is sent
    headers = {"origin": APP, "content-type": "text/plain"}
    answer = _send(api, "POST", MINT_PATH, headers, b"x" * (PAYLOAD_LIMIT_BYTES + 1))

    # Then API Gateway's own 413 still lets the page read it
    assert answer.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert answer.cors()["access-control-allow-origin"] == APP


def test_an_answer_to_another_origin_has_no_cors_headers(api: LocalApi, issuer: LoopbackIssuer):
    # Given a mint from a page on an origin not allowed (a server-side caller sends no Origin at all)
    headers = {"content-type": "application/json", "authorization": f"Bearer {issuer.token()}"}

    # When each is sent
    other = _send(api, "POST", MINT_PATH, {**headers, "origin": "https://evil.example.test"}, MINT_BODY)
    server = _send(api, "POST", MINT_PATH, headers, MINT_BODY)

    # Then the gateway answers both, with no CORS headers: the browser keeps the answer from the page
    assert [other.status, server.status] == [HTTPStatus.OK, HTTPStatus.OK]
    assert other.cors() == server.cors() == {}


def test_the_integrations_own_cors_headers_are_dropped():
    # Given a CORS configuration and a function answer that sets CORS headers of its own
    cors = Cors(origins=(APP,), expose_headers=("x-request-id",))
    answer = [("Access-Control-Allow-Origin", "*"), ("content-type", "application/json")]

    # When the gateway applies its configuration, for an allowed and for another origin
    allowed = cors.applied(answer, APP)
    other = cors.applied(answer, "https://evil.example.test")

    # Then only the configuration's headers are sent, as API Gateway ignores the integration's
    assert allowed == [
        ("content-type", "application/json"),
        ("access-control-allow-origin", APP),
        ("access-control-expose-headers", "x-request-id"),
    ]
    assert other == [("content-type", "application/json")]


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        ([DEV_PAGE], DEV_PAGE, DEV_PAGE),
        ([DEV_PAGE], APP, None),
        (["https://*"], APP, APP),
        (["https://*"], DEV_PAGE, None),
        (["*"], DEV_PAGE, "*"),
    ],
)
def test_allowed_origins_override_the_templates(
    issuer: LoopbackIssuer,
    api_key_secret_arn: str,
    secrets_manager_url: str,
    openai_stub: OpenAIStub,
    allowed: list[str],
    origin: str,
    expected: str | None,
):
    # Given the template's default (no CORS), and AllowedOrigins given (as make run gives ALLOWED_ORIGINS)
    with serving(
        issuer, api_key_secret_arn, openai_stub.base_url, secrets_manager_url, AllowedOrigins=",".join(allowed)
    ) as api:
        # When a page on an origin sends a preflight
        answer = _preflight(api, origin)

    # Then the template's CORS configuration applies with those origins in place of its own
    assert answer.status == HTTPStatus.NO_CONTENT
    assert answer.cors().get("access-control-allow-origin") == expected
    if expected is not None:
        assert answer.cors()["access-control-allow-methods"] == "GET,POST"


def test_allowed_origins_is_the_templates_allowed_origins_parameter_locally() -> None:
    # Given make run's parameter overrides for ALLOWED_ORIGINS naming a development page
    overrides = stand_ins.cors_overrides({"ALLOWED_ORIGINS": DEV_PAGE})

    # When the template is read with them
    api = LocalApi.from_template(TEMPLATE, overrides)

    # Then ALLOWED_ORIGINS is the AllowedOrigins parameter, so the API's CORS allows that page's origin only
    assert overrides == {"AllowedOrigins": DEV_PAGE}
    assert api.cors is not None
    assert api.cors.origins == (DEV_PAGE,)
