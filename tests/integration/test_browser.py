"""The API from a web page, in a real headless Chromium (Debian's package, driven by playwright-core).

Two loopback sites serve the same page (tests/browser/page.html), which loads the official openai npm SDK as
a browser loads ES modules. The local API allows the first site's origin only: from there the SDK mints with
the user's token as its apiKey; from the second the browser itself blocks the call after API Gateway's
preflight answer, and the function never runs. tests/browser/drive.mjs runs the pages.
"""

import mimetypes
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest

from local.exchanges import AccessRecord
from local.gateway import LocalApi
from local.user_pool import UserPool
from openai_stub.server import OpenAIStub
from tests.browsers import PINNED, chromium_path, run_driver
from tests.docs import code_block
from tests.local_api import serving_default
from tests.paths import ROOT

BROWSER = ROOT / "tests" / "browser"
DRIVER = BROWSER / "drive.mjs"
SDK = ROOT / "node_modules" / "openai"
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core" / "package.json"
# The README's browser example names a deployed stack's OpenAIBaseUrl; the test puts the local API's in its place.
README_BASE_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"


class Site:
    """A web app's origin on loopback: the page, its script, and the SDK's ES modules under /openai/."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="browser-site", daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self._file()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body = path.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self) -> Path | None:
        route = self.path.split("?", 1)[0]
        if route == "/":
            return BROWSER / "page.html"
        if route == "/calls.mjs":
            return BROWSER / "calls.mjs"
        if route.startswith("/openai/"):
            path = (SDK / route.removeprefix("/openai/")).resolve()
            if path.is_relative_to(SDK.resolve()) and path.is_file():
                return path
        return None

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a page load is dozens of module requests."""


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path(("openai", "playwright-core"))


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[Site, Site]]:
    """Two origins serving the same page: the API allows the first only."""
    with Site() as allowed, Site() as other:
        yield allowed, other


def drive(chromium: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs the steps in one headless Chromium; what the pages saw (no token, no minted value)."""
    return run_driver(DRIVER, {"executablePath": chromium, "steps": steps}, timeout=120)


def test_the_official_sdk_loads_in_headless_chromium(chromium: str, sites: tuple[Site, Site]) -> None:
    # Given the page on a web app's origin
    allowed, _ = sites

    # When Chromium opens it
    seen = drive(chromium, [{"url": f"{allowed.origin}/", "call": "sdk", "args": {}}])

    # Then the pinned SDK loaded as ES modules, with nothing failing on the page
    [step] = seen["steps"]
    assert step["result"] == {"ok": True, "version": PINNED["openai"]}
    assert step["consoleErrors"] == []
    assert step["failedRequests"] == []


@dataclass
class Served:
    """The local API, allowing the first site's origin, and what it served."""

    api: LocalApi
    token: str
    records: list[AccessRecord]


@pytest.fixture
def served(
    sites: tuple[Site, Site],
    user_pool: UserPool,
    user_token: Callable[..., str],
    api_key_secret_arn: str,
    openai_stub: OpenAIStub,
) -> Iterator[Served]:
    """The template's default deployment: JWT callers of the embedded user pool, CORS for the first site."""
    allowed, _ = sites
    records: list[AccessRecord] = []
    with serving_default(
        api_key_secret_arn,
        openai_stub.base_url,
        user_pool,
        {"AllowedOrigins": allowed.origin},
        on_request=records.append,
    ) as api:
        yield Served(api, user_token(), records)


def test_the_sdk_mints_from_a_page_on_an_allowed_origin(
    chromium: str, sites: tuple[Site, Site], served: Served, openai_stub: OpenAIStub
) -> None:
    # Given a page on an origin the API allows, holding the signed-in user's token
    allowed, _ = sites
    call = {"api": served.api.url, "token": served.token}

    # When the SDK asks for a client secret, as the README's browser example does
    seen = drive(chromium, [{"url": f"{allowed.origin}/", "call": "mintWithSdk", "args": call}])

    # Then the SDK gets a client secret, after API Gateway's preflight, with nothing blocked
    [step] = seen["steps"]
    assert step["result"] == {"ok": True, "isClientSecret": True, "type": "realtime"}
    assert step["consoleErrors"] == []
    assert step["failedRequests"] == []
    assert [(r.method, r.status) for r in served.records] == [
        ("OPTIONS", HTTPStatus.NO_CONTENT),
        ("POST", HTTPStatus.OK),
    ]
    assert len(openai_stub.requests) == 1


def test_the_readmes_browser_example_works_as_written(
    chromium: str, sites: tuple[Site, Site], served: Served, openai_stub: OpenAIStub
) -> None:
    # Given the README's browser example, its baseURL the local API's, and a page on an allowed origin whose
    # userAccessToken is the signed-in user's token
    allowed, _ = sites
    example = code_block("js", "dangerouslyAllowBrowser: true")
    assert example.count(README_BASE_URL) == 1, "the README's example no longer names the example stack's URL"
    call = {"source": example.replace(README_BASE_URL, f"{served.api.url}/v1"), "token": served.token}

    # When the page runs it as a module, its bare "openai" the SDK the page serves
    seen = drive(chromium, [{"url": f"{allowed.origin}/", "call": "runReadmeExample", "args": call}])

    # Then its `secret` is a client secret (an "ek_" value), minted once upstream with the caller's safety
    # identifier, after API Gateway's preflight, with nothing failing on the page
    [step] = seen["steps"]
    assert step["result"] == {"ok": True, "isClientSecret": True, "type": "realtime"}
    assert step["consoleErrors"] == []
    assert step["failedRequests"] == []
    assert [(r.method, r.status) for r in served.records] == [
        ("OPTIONS", HTTPStatus.NO_CONTENT),
        ("POST", HTTPStatus.OK),
    ]
    [minted] = openai_stub.requests
    assert minted.safety_identifier is not None
    assert re.fullmatch(r"[0-9a-f]{64}", minted.safety_identifier)
    assert len(openai_stub.minted) == 1


def test_the_browser_blocks_a_page_on_another_origin_and_the_function_never_runs(
    chromium: str, sites: tuple[Site, Site], served: Served, openai_stub: OpenAIStub
) -> None:
    # Given the same page and token on an origin the API does not allow
    _, other = sites
    call = {"api": served.api.url, "token": served.token}

    # When the SDK, then a plain fetch, ask for a client secret
    seen = drive(
        chromium,
        [
            {"url": f"{other.origin}/", "call": "mintWithSdk", "args": call},
            {"url": f"{other.origin}/", "call": "mintWithFetch", "args": call},
        ],
    )

    # Then the browser stops each at the preflight (API Gateway's 204 without CORS headers): the SDK sees a
    # connection error, fetch a TypeError, and the console says CORS did it
    sdk, fetched = seen["steps"]
    assert sdk["result"] == {
        "ok": False,
        "error": "APIConnectionError",
        "status": None,
        "cause": "TypeError: Failed to fetch",
    }
    assert fetched["result"] == {"ok": False, "error": "TypeError", "message": "Failed to fetch"}
    for step in (sdk, fetched):
        assert any("blocked by CORS policy" in line for line in step["consoleErrors"]), step["consoleErrors"]
    # ... and only the preflights reached the gateway: the function never ran, nothing went upstream
    assert [(r.method, r.status) for r in served.records] == [("OPTIONS", HTTPStatus.NO_CONTENT)] * 2
    assert openai_stub.requests == []


def test_a_plain_fetch_mints_with_the_token_and_reads_the_401_without_one(
    chromium: str, sites: tuple[Site, Site], served: Served, openai_stub: OpenAIStub
) -> None:
    # Given a page on the allowed origin
    allowed, _ = sites
    page = f"{allowed.origin}/"

    # When it posts with fetch, with the user's token and then without one
    seen = drive(
        chromium,
        [
            {"url": page, "call": "mintWithFetch", "args": {"api": served.api.url, "token": served.token}},
            {"url": page, "call": "mintWithFetch", "args": {"api": served.api.url}},
        ],
    )

    # Then the first gets a client secret; the second reads API Gateway's own 401 (it carries the CORS
    # headers, so the page may see it), and only the first reached OpenAI
    signed_in, anonymous = (step["result"] for step in seen["steps"])
    assert signed_in["status"] == HTTPStatus.OK
    assert signed_in["body"] == {"isClientSecret": True, "type": "realtime"}
    assert signed_in["requestId"], "x-request-id is not exposed to the page"
    assert anonymous["status"] == HTTPStatus.UNAUTHORIZED
    assert anonymous["body"] == {"message": "Unauthorized"}
    assert len(openai_stub.requests) == 1
