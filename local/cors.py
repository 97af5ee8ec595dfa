"""An HTTP API's CorsConfiguration as API Gateway applies it itself (http-api-cors.html): its answer to a
preflight, the headers it adds to every other answer (the integration's own dropped), and, for make run's
terminal, why a preflight was refused and what lets that page call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from local.console import printable

type Headers = list[tuple[str, str]]
# A preflight's origin, in a note: shown up to this many characters; suggested as ALLOWED_ORIGINS if it is one.
_ORIGIN_SHOWN = 100
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


@dataclass(frozen=True)
class Cors:
    """An HTTP API's CorsConfiguration."""

    origins: tuple[str, ...]
    methods: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    credentials: bool = False

    def allowed_origin(self, origin: str | None) -> str | None:
        """access-control-allow-origin for a request from ``origin``; None if that origin is not allowed."""
        if not origin:
            return None
        given = origin.lower()
        for allowed in self.origins:
            if allowed == "*":
                return "*"
            if allowed.lower() in ("https://*", "http://*"):
                if given.startswith(allowed.lower()[:-1]):
                    return origin
            elif allowed.lower().rstrip("/") == given:
                return origin
        return None

    def refusal(self, origin: str) -> str:
        """What a preflight from ``origin``, which is not allowed, notes: which origin, and the ALLOWED_ORIGINS
        that lets it call (a page on 127.0.0.1 is not one on localhost: the browser says which it is on)."""
        note = f"CORS preflight from {printable(origin, _ORIGIN_SHOWN)}, which is not allowed"
        if not _suggestable(origin):
            return note
        parts = urlsplit(origin)
        allowed = ",".join(dict.fromkeys([*(o for o in self.origins if "*" not in o), origin]))
        restart = f"ALLOWED_ORIGINS={allowed} make run"
        other_host = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}.get(parts.hostname or "")
        if other_host is not None:
            twin = f"{parts.scheme}://{other_host}{f':{parts.port}' if parts.port else ''}"
            if self.allowed_origin(twin) is not None:
                return (
                    f"{note}: localhost and 127.0.0.1 are different origins to a browser, and only {twin} is allowed: "
                    f"open the page as {twin}, or restart with {restart}"
                )
        return f"{note}: to let that page call, restart with {restart}"

    def preflight(self, origin: str | None) -> Headers:
        """The headers of API Gateway's own answer to a preflight (a 204): the CORS headers if the origin is
        allowed, else none."""
        allow = self.allowed_origin(origin)
        if allow is None:
            return []
        headers = [("access-control-allow-origin", allow)]
        if self.methods:
            headers.append(("access-control-allow-methods", ",".join(self.methods)))
        if self.headers:
            headers.append(("access-control-allow-headers", ",".join(self.headers)))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        if self.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return headers

    def applied(self, headers: Headers, origin: str | None) -> Headers:
        """The headers of any other answer (the function's or the gateway's own): the integration's CORS headers
        dropped, as API Gateway ignores them, and the configuration's added for an allowed origin."""
        kept = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
        allow = self.allowed_origin(origin)
        if allow is not None:
            kept.append(("access-control-allow-origin", allow))
            if self.expose_headers:
                kept.append(("access-control-expose-headers", ",".join(self.expose_headers)))
            if self.credentials:
                kept.append(("access-control-allow-credentials", "true"))
        return kept


def without_cors(origin: str | None) -> str:
    """What a preflight to an API without CORS notes (no route is OPTIONS: API Gateway answers 404)."""
    example = origin if origin and _suggestable(origin) else "..."
    return f"no CORS: this API allows no origins (ALLOWED_ORIGINS={example} make run)"


def _suggestable(origin: str) -> bool:
    """Whether a preflight's ``origin`` may be suggested as ALLOWED_ORIGINS: an http(s) origin a browser could
    send, short enough to show."""
    if len(origin) > _ORIGIN_SHOWN or not _ORIGIN.fullmatch(origin):
        return False
    try:
        urlsplit(origin).port  # noqa: B018 - raises past 65535
    except ValueError:
        return False
    return True
