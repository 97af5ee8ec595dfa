"""The demo page's server (demo_page/server.py) over raw sockets: a sign-in whose framing is wrong is answered in
OpenAI's envelope, an idle or short request gives its thread back (the socket times out: a short timeout in the
tests that see it strike), and no other origin gets CORS."""

import contextlib
import json
import socket
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from demo_page.server import SIGN_IN_PATH, DemoPage
from local.user_pool import UserPool

# The server's: long where a test expects an answer, so that a busy machine never trips it; short (10 s in make
# run) only where a test waits for it to strike, so that a held request ends soon.
SOCKET_TIMEOUT = 30.0
SHORT_SOCKET_TIMEOUT = 2.0
CLIENT_TIMEOUT = 60.0  # this side only waits for the server, however busy the machine


def serving(user_pool: UserPool, socket_timeout: float) -> DemoPage:
    page = DemoPage(0, socket_timeout=socket_timeout)
    page.configure("http://127.0.0.1:9", "http://127.0.0.1:9/v1/realtime/calls", user_pool, authenticate=True)
    return page


@pytest.fixture
def page(user_pool: UserPool) -> Iterator[DemoPage]:
    with serving(user_pool, SOCKET_TIMEOUT) as page:
        yield page


@pytest.fixture
def short_timeout_page(user_pool: UserPool) -> Iterator[DemoPage]:
    with serving(user_pool, SHORT_SOCKET_TIMEOUT) as page:
        yield page


def connect(page: DemoPage) -> socket.socket:
    host, port = page.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT)


def host(page: DemoPage) -> str:
    return page.url.removeprefix("http://")


def sign_in_head(page: DemoPage, content_length: str) -> bytes:
    return (
        f"POST {SIGN_IN_PATH} HTTP/1.1\r\nHost: {host(page)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


def until_closed(connection: socket.socket) -> bytes:
    """All the server sends until it closes the connection (a socket timeout here fails the test)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def sent_before_the_timeout(page: DemoPage, request: bytes) -> bytes:
    """All the server sends for ``request`` until it closes the connection; again if it closed it with nothing
    (or reset it): its timeout struck before the request arrived, this process descheduled between connect and
    send, which says nothing of the test."""
    for _ in range(5):
        with connect(page) as connection, contextlib.suppress(ConnectionResetError):
            connection.sendall(request)
            if answer := until_closed(connection):
                return answer
    return b""


def closed_with_nothing(connection: socket.socket) -> bool:
    """Whether the server closes the connection having sent nothing (reset: it closed before this side sent)."""
    try:
        return until_closed(connection) == b""
    except ConnectionResetError:
        return True


def status_and_body(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def still_serves(page: DemoPage) -> None:
    with connect(page) as connection:
        connection.sendall(f"GET /config.json HTTP/1.1\r\nHost: {host(page)}\r\nConnection: close\r\n\r\n".encode())
        status, config = status_and_body(until_closed(connection))
    assert status == HTTPStatus.OK
    assert config["signIn"] == {"mode": "local", "url": SIGN_IN_PATH, "groups": config["signIn"]["groups"]}


@pytest.mark.parametrize("content_length", ["abc", "-1", "1e3", "٣"])
def test_a_content_length_that_is_not_a_number_is_a_400_in_the_envelope(page: DemoPage, content_length: str) -> None:
    # Given a sign-in whose Content-Length is not a number of bytes
    with connect(page) as connection:
        # When it is sent
        connection.sendall(sign_in_head(page, content_length) + b'{"user": "alice"}')

        # Then the answer is a 400 in OpenAI's envelope, and the server closes the connection
        status, body = status_and_body(until_closed(connection))
    assert status == HTTPStatus.BAD_REQUEST
    assert set(body["error"]) == {"type", "message", "param", "code"}
    assert "Content-Length" in body["error"]["message"]
    still_serves(page)


def test_a_body_over_the_limit_is_a_413_unread(page: DemoPage) -> None:
    # Given a sign-in that says it is 1 MB long (and sends none of it)
    with connect(page) as connection:
        # When its head is sent
        connection.sendall(sign_in_head(page, str(1024 * 1024)))

        # Then the answer is a 413 in the envelope, without waiting for the body
        status, body = status_and_body(until_closed(connection))
    assert status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert "at most 4096 bytes" in body["error"]["message"]


def test_a_body_shorter_than_its_content_length_times_out_and_frees_the_thread(short_timeout_page: DemoPage) -> None:
    page = short_timeout_page
    # Given a sign-in that says 100 bytes and sends 17, then nothing
    # When the server waits for the rest
    answer = sent_before_the_timeout(page, sign_in_head(page, "100") + b'{"user": "alice"}')

    # Then it gives up: a 408 in the envelope, the connection closed by the server, and later requests served
    status, body = status_and_body(answer)
    assert status == HTTPStatus.REQUEST_TIMEOUT
    assert "Content-Length" in body["error"]["message"]
    still_serves(page)


@pytest.mark.parametrize("sent", [b"", b"POST /local/sign-in HTTP/1.1\r\nHost: "], ids=["nothing", "half-a-head"])
def test_an_idle_connection_is_closed_by_the_server(short_timeout_page: DemoPage, sent: bytes) -> None:
    page = short_timeout_page
    # Given a connection that sends nothing, or half a request head
    with connect(page) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server may have closed it already
            connection.sendall(sent)

        # When the server waits, Then it closes the connection, having answered nothing
        assert closed_with_nothing(connection)
    still_serves(page)


@pytest.mark.parametrize(
    "request_head",
    [
        "OPTIONS /local/sign-in HTTP/1.1\r\nAccess-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: content-type\r\n",
        "GET /config.json HTTP/1.1\r\n",
        "POST /local/sign-in HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
    ],
    ids=["preflight", "config", "sign-in"],
)
def test_another_origin_gets_no_cors(page: DemoPage, request_head: str) -> None:
    # Given a request from a page on another origin
    head = f"{request_head}Host: {host(page)}\r\nOrigin: https://elsewhere.example\r\nConnection: close\r\n\r\n"
    with connect(page) as connection:
        # When it is sent
        connection.sendall(head.encode() + (b"{}" if "Content-Length" in request_head else b""))
        answer = until_closed(connection)

    # Then no answer carries a CORS header, and no token is handed out
    headers = answer.partition(b"\r\n\r\n")[0].lower()
    assert b"access-control-" not in headers
    assert b"access_token" not in answer
