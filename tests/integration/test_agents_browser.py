"""The Agents SDK for JavaScript (@openai/agents 0.20.0) in a real headless Chromium: a page written as the SDK's
voice-agent quickstart (RealtimeAgent, RealtimeSession over WebRTC) connects to `make run`'s local Realtime peer
with a client secret minted through the token vending API for a development user, and hears the agent's reply;
so does the same page over the SDK's WebSocket transport, whose secret a browser sends as a subprotocol; and so
does the page whose WebRTC transport posts its offer to the service's own calls route with the user's token, where
no client secret ever reaches the browser.

The page loads the SDK's browser bundle from node_modules (no CDN: no network); it runs on its own loopback
origin, so the peer's CORS, and the service's, must let the SDK's offer in, X-OpenAI-Agents-SDK header and all
(and the service's must show the page Location, where the SDK reads the call's id). tests/browser/agents.mjs drives
the page; what it prints is read by the secret guard.
"""

import mimetypes
import re
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from openai_stub.realtime_peer import REPLY_TRANSCRIPT
from tests.browsers import chromium_path, run_driver
from tests.docs import code_block
from tests.local_run import QUICKSTART_SESSION, LocalService, local_run
from tests.paths import ROOT

BROWSER = ROOT / "tests" / "browser"
DRIVER = BROWSER / "agents.mjs"
# The package's self-contained browser build (@openai/agents depends on @openai/agents-realtime at its version).
BUNDLE = ROOT / "node_modules" / "@openai" / "agents-realtime" / "dist" / "bundle"
PAGE_FILES = {"/": BROWSER / "agents.html", "/agents-page.mjs": BROWSER / "agents-page.mjs"}
CLIENT_SECRET = re.compile(r"\bek_[A-Za-z0-9]")
CALLS_PATH = "/v1/realtime/calls"
LOCATION = re.compile(re.escape(CALLS_PATH) + r"/rtc_[A-Za-z0-9_-]+")


class _PageHandler(BaseHTTPRequestHandler):
    # /docs-example.mjs: the documentation's example as a module (documented_module), set by the test that runs it.
    documented: str = ""

    def do_GET(self) -> None:
        if self.path == "/docs-example.mjs" and self.documented:
            self._send(self.documented.encode(), "text/javascript")
            return
        path = self._file()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self._send(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self) -> Path | None:
        route = self.path.split("?", 1)[0]
        if route in PAGE_FILES:
            return PAGE_FILES[route]
        if route.startswith("/agents-realtime/"):
            path = (BUNDLE / route.removeprefix("/agents-realtime/")).resolve()
            if path.is_relative_to(BUNDLE.resolve()) and path.is_file():
                return path
        return None

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path(("@openai/agents", "@openai/agents-realtime", "playwright-core"))
    assert (BUNDLE / "openai-realtime-agents.mjs").is_file(), "the Agents SDK's browser bundle is missing: run `npm ci`"
    return path


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The voice agent's page, on an origin of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, name="agents-page", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def make_run(page_origin: str) -> Iterator[LocalService]:
    """`make run`, whose API lets the voice agent's page call it (the peer lets any origin in)."""
    with local_run(ALLOWED_ORIGINS=page_origin) as service:
        yield service


# The start text's line naming the peer's URL for each transport.
PEER_LINES = {"webrtc": "Realtime calls (WebRTC", "websocket": "Realtime sessions (WebSocket"}


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_the_agents_sdks_realtime_session_talks_to_the_local_peer(
    chromium: str, page_origin: str, make_run: LocalService, transport: str
) -> None:
    # Given a client secret minted for a development user, and the quickstart's page on its own origin
    secret, url = make_run.client_secret(QUICKSTART_SESSION), make_run.printed_url(PEER_LINES[transport])
    args = {"apiKey": secret, "url": url, "transport": transport}

    # When the page's RealtimeSession connects with it and the user says hello
    seen = drive(chromium, page_origin, args)
    result = seen["result"]

    # Then the session connected over the transport asked for, and the agent's reply came back, transcript and all
    assert result["ok"], result
    assert result["transport"] == transport
    assert result["transcript"] == REPLY_TRANSCRIPT
    if transport == "websocket":  # over WebRTC the audio is a track the page's <audio> element plays
        assert result["audioBytes"] == 2 * 24_000
    assert {"session.created", "session.updated", "response.created", "response.done"} <= set(result["events"])
    assert result["errors"] == []
    # And nothing on the page showed the client secret or failed
    assert not CLIENT_SECRET.search("\n".join(seen["console"]))
    assert [line for line in seen["console"] if line.startswith(("error", "pageerror"))] == []


def test_the_agents_sdk_connects_through_the_services_calls_route_with_the_users_token(
    chromium: str, page_origin: str, make_run: LocalService
) -> None:
    # Given a development user's token (no client secret minted), and the service's calls route as the page's
    # WebRTC transport's baseUrl
    token, calls_url = make_run.token(), f"{make_run.url}{CALLS_PATH}"

    # When the page's RealtimeSession connects with the token as its key (useInsecureApiKey, which the SDK asks
    # for any key that is not an ek_) and the user says hello
    seen = drive(chromium, page_origin, {"apiKey": token, "baseUrl": calls_url})
    result = seen["result"]

    # Then the service opened the call: the session connected over WebRTC, knows its call's id from Location, and
    # the agent's reply came back from the local peer
    assert result["ok"], result
    assert result["transport"] == "webrtc"
    assert re.fullmatch(r"rtc_[A-Za-z0-9_-]+", result["callId"])
    assert result["transcript"] == REPLY_TRANSCRIPT
    assert {"session.created", "session.updated", "response.created", "response.done"} <= set(result["events"])
    assert result["errors"] == []
    # and the page's one request was the SDK's offer to the service, with the user's token as its bearer
    [call] = result["network"]
    assert (call["method"], call["url"], call["bearer"]) == ("POST", calls_url, "the page's key")
    assert call["headers"]["content-type"] == "application/sdp"
    assert call["headers"]["x-openai-agents-sdk"].startswith("openai-agents-sdk.")
    assert (call["status"], call["contentType"]) == (201, "application/sdp")
    assert LOCATION.fullmatch(call["location"])
    assert calls_url in result["resources"]
    # And no client secret was ever in the browser: not sent, not received, not in the network log, the DOM, the
    # page's storage, the session's events or history, nor the console; and nothing on the page failed
    assert not call["clientSecretSent"]
    assert not call["clientSecretReceived"]
    assert not [url for url in result["resources"] if CLIENT_SECRET.search(url)]
    assert result["clientSecretSeen"] == []
    assert not CLIENT_SECRET.search("\n".join(seen["console"]))
    assert [line for line in seen["console"] if line.startswith(("error", "pageerror"))] == []


def test_the_documentations_agents_sdk_example_talks_to_the_local_peer(
    chromium: str, page_origin: str, make_run: LocalService
) -> None:
    # Given the documentation's Agents SDK example, as written but for make run's actual peer URL, as the page's module
    example = code_block("js", "new RealtimeSession(")
    lines = example.strip().splitlines()
    imports = [line for line in lines if line.startswith("import ")]
    body = [line for line in lines if not line.startswith("import ")]
    documented = "\n".join(
        [*imports, "export async function connect(clientSecret) {", *body, "  return session;", "}"]
    ).replace("http://127.0.0.1:3002/v1/realtime/calls", make_run.printed_url(PEER_LINES["webrtc"]))
    _PageHandler.documented = documented

    # When the page runs it with a freshly minted client secret, and the user says hello on its session
    seen = drive(chromium, page_origin, {"apiKey": make_run.client_secret(QUICKSTART_SESSION), "documented": True})

    # Then the example's session connected over WebRTC and the agent's reply came back
    result = seen["result"]
    assert result["ok"], result
    assert result["transport"] == "webrtc"
    assert result["transcript"] == REPLY_TRANSCRIPT
    assert [line for line in seen["console"] if line.startswith(("error", "pageerror"))] == []


def drive(chromium: str, page_origin: str, args: dict[str, Any]) -> dict[str, Any]:
    """What tests/browser/agents.mjs saw running window.talk(args) on the page: its result and console lines."""
    return run_driver(DRIVER, {"executablePath": chromium, "url": f"{page_origin}/", "args": args})
