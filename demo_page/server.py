"""The demo page (web/) as `make run` serves it, on a port of its own next to the API's.

Besides web/'s files it answers `/config.json` (the local API, the local Realtime peer, and how to sign in)
and `POST /local/sign-in`, which hands the page a development user's access token from the run's user
pool, as `make token` does. That route exists only here: a deployed page signs in against the stack's
issuer (authorization code with PKCE). It answers its own origin only (no CORS), so no other page in the
browser can read a token from it, and only requests addressed to 127.0.0.1 or localhost on its port (no DNS
rebinding) and, when they name one, from its own origin. A sign-in's body is at most 4 KiB (413 above), and an
idle or short request gives its thread back after SOCKET_TIMEOUT seconds.
"""

from __future__ import annotations

import errno
import json
import mimetypes
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from local.running import LoopbackHttpServer
from local.user_pool import TokenRefused, UserPool

WEB = Path(__file__).resolve().parent.parent / "web"
SIGN_IN_PATH = "/local/sign-in"
_SIGN_IN_BODY_LIMIT = 4096
SOCKET_TIMEOUT = 10.0
# The page's own files only: nothing else of the repository is reachable.
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}


class DemoPage:
    """web/ on 127.0.0.1:``port`` (taken: a free port), with the local config and sign-in once ``configure``d."""

    def __init__(self, port: int, socket_timeout: float = SOCKET_TIMEOUT) -> None:
        try:
            self._server = LoopbackHttpServer(_Handler, "demo-page", port, socket_timeout)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            self._server = LoopbackHttpServer(_Handler, "demo-page", 0, socket_timeout)
        setattr(self._server._server, "demo", self)  # noqa: B010 - the handler finds its page through its server
        self.config: dict[str, Any] | None = None
        self.user_pool: UserPool | None = None

    @property
    def url(self) -> str:
        host, port = self._server.address
        return f"http://{host}:{port}"

    @property
    def origins(self) -> list[str]:
        """The page's origins: a person may open it as 127.0.0.1 or as localhost."""
        port = self._server.address[1]
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]

    def configure(self, api_url: str, realtime_url: str, user_pool: UserPool | None, authenticate: bool) -> None:
        """What the page calls: ``api_url``'s /v1 with a token of ``user_pool`` (none without authentication)."""
        self.user_pool = user_pool if authenticate else None
        if self.user_pool is not None:
            sign_in: dict[str, Any] = {"mode": "local", "url": SIGN_IN_PATH, "groups": sorted(self.user_pool.groups())}
        else:
            sign_in = {"mode": "none"}
        self.config = {"apiBaseUrl": f"{api_url}/v1", "realtimeUrl": realtime_url, "signIn": sign_in}

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> DemoPage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "make-run-demo"

    @property
    def _page(self) -> DemoPage:
        page: DemoPage = getattr(self.server, "demo")  # noqa: B009
        return page

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the API's requests, not the page's files."""

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0]
        if route == "/config.json":
            if self._page.config is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, _error("make run is still starting: reload the page"))
            else:
                self._json(HTTPStatus.OK, self._page.config)
            return
        path = _web_file(route)
        if path is None:
            self._json(HTTPStatus.NOT_FOUND, _error(f"no such file in web/: {route[:100]}"))
            return
        body = path.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path != SIGN_IN_PATH:
            self._json(HTTPStatus.NOT_FOUND, _error(f"only {SIGN_IN_PATH} takes a POST here"))
            return
        refusal = self._foreign_request()
        if refusal:
            self._json(HTTPStatus.FORBIDDEN, _error(refusal))
            return
        pool = self._page.user_pool
        if pool is None:
            self._json(HTTPStatus.NOT_FOUND, _error("this make run checks no tokens (AUTH=none): no sign-in needed"))
            return
        body = self._sign_in_body()
        if body is None:
            return
        try:
            asked = json.loads(body)
        except ValueError:
            asked = None
        user, groups = _sign_in_request(asked)
        if user is None:
            self._json(HTTPStatus.BAD_REQUEST, _error('send JSON: {"user": "alice", "groups": ["premium"]}', "user"))
            return
        try:
            token = pool.token(user or "developer", groups)
        except TokenRefused as refused:
            self._json(HTTPStatus.BAD_REQUEST, _error(str(refused), "user"))
            return
        self._json(HTTPStatus.OK, {"access_token": token, "token_type": "Bearer"})

    def _sign_in_body(self) -> bytes | None:
        """The sign-in's JSON body; None when it was refused (answered here)."""
        declared = self.headers.get("Content-Length", "")
        if not declared.isascii() or not declared.isdigit():
            message = "send the body with a Content-Length (a number of bytes): a browser's fetch() does"
            self._json(HTTPStatus.BAD_REQUEST, _error(message))
            return None
        length = int(declared)
        if length > _SIGN_IN_BODY_LIMIT:
            message = f'a sign-in is at most {_SIGN_IN_BODY_LIMIT} bytes: send {{"user": "alice", "groups": []}}'
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error(message))
            return None
        if self.headers.get_content_type() != "application/json" or length == 0:
            self._json(HTTPStatus.BAD_REQUEST, _error('send JSON: {"user": "alice", "groups": ["premium"]}'))
            return None
        try:
            return self.rfile.read(length)
        except TimeoutError:
            message = "the body did not arrive in full (shorter than its Content-Length?): send it again"
            self._json(HTTPStatus.REQUEST_TIMEOUT, _error(message))
            return None

    def _foreign_request(self) -> str | None:
        """Why a sign-in did not come from this page (None when it did).

        A page of another site may rebind its own name to 127.0.0.1 (DNS rebinding) and so post here as a
        same-origin page: its requests name that site in Host, and in Origin.
        """
        port = self._page.origins[0].rsplit(":", 1)[1]
        advice = f"sign in from the demo page itself: open http://127.0.0.1:{port}/"
        if self.headers.get("Host", "") not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return f"{advice} (this request named another host)"
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self._page.origins:
            return f"{advice} (this request came from another page)"
        return None

    def _json(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(encoded)


def _web_file(route: str) -> Path | None:
    name = "index.html" if route == "/" else route.lstrip("/")
    path = (WEB / name).resolve()
    if not path.is_relative_to(WEB) or not path.is_file() or path.suffix not in (*_TYPES, ".png", ".ico"):
        return None
    return path


def _sign_in_request(asked: object) -> tuple[str | None, list[str]]:
    """The user and groups of a sign-in request; (None, []) when it is not one."""
    if not isinstance(asked, dict):
        return None, []
    user, groups = asked.get("user", ""), asked.get("groups", [])
    if not isinstance(user, str) or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        return None, []
    return user.strip(), groups


def _error(message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "message": message, "param": param, "code": None}}
