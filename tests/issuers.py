"""A loopback OIDC issuer for the gateway's token tests: its own RSA key, its JWKS and discovery document.

The issuer's URL is https-looking (as a real issuer's, and as the template's JwtIssuer pattern wants);
the gateway is pointed at the loopback discovery document with ``discovery={issuer.url:
issuer.discovery_url}``. Every token it mints is added to MINTED_TOKENS, so the secret guard of
tests/conftest.py can fail a test whose output shows one.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from joserfc import jwt
from joserfc.jwk import RSAKey

from local.running import LoopbackHttpServer, Running

MINTED_TOKENS: set[str] = set()
_DISCOVERY_PATH = "/.well-known/openid-configuration"
_JWKS_PATH = "/.well-known/jwks.json"


class LoopbackIssuer(Running):
    """An OIDC issuer on 127.0.0.1: ``token(**claims)`` signs RS256 tokens the gateway can verify."""

    def __init__(self, audience: str = "test-app") -> None:
        self.url = f"https://issuer-{uuid.uuid4().hex[:8]}.test"
        self.audience = audience
        self.key = _new_key()
        self._published = [self.key]
        self._lock = threading.Lock()
        self.fetches: dict[str, int] = {_DISCOVERY_PATH: 0, _JWKS_PATH: 0}
        self._server: LoopbackHttpServer | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LoopbackIssuer is not started")
        host, port = self._server.address
        return f"http://{host}:{port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}{_DISCOVERY_PATH}"

    @property
    def jwks_fetches(self) -> int:
        with self._lock:
            return self.fetches[_JWKS_PATH]

    def start(self) -> Self:
        self._server = LoopbackHttpServer(_handler(self), "loopback-issuer")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def rotate(self) -> RSAKey:
        """A new signing key, published beside the old one (as issuers rotate); returns the new key."""
        with self._lock:
            self.key = _new_key()
            self._published.append(self.key)
            return self.key

    def claims(self, **changes: Any) -> dict[str, Any]:
        """A valid access token's claims (iss, sub, aud, iat, exp in 5 minutes); a change of None drops the claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": f"user-{uuid.uuid4().hex[:8]}",
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: RSAKey | None = None, algorithm: str = "RS256", kid: str | None = None, **claims: Any) -> str:
        """A token signed by the issuer's key (or ``key``) with ``algorithm``, its claims as ``claims()``."""
        key = key or self.key
        header = {"alg": algorithm, "kid": kid if kid is not None else key.kid}
        signed = jwt.encode(header, self.claims(**claims), key, algorithms=[algorithm])
        return remember(signed)

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [key.as_dict(private=False, use="sig") for key in self._published]}

    def served(self, path: str) -> None:
        with self._lock:
            self.fetches[path] += 1


def remember(token: str) -> str:
    """Record a token a test made, so the secret guard fails a test that prints it."""
    MINTED_TOKENS.add(token)
    return token


def other_key() -> RSAKey:
    """An RSA key no issuer publishes."""
    return _new_key()


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex[:12]})


def _handler(issuer: LoopbackIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == _DISCOVERY_PATH:
                document: dict[str, Any] = {
                    "issuer": issuer.url,
                    "jwks_uri": f"{issuer.base_url}{_JWKS_PATH}",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            elif self.path == _JWKS_PATH:
                document = issuer.jwks()
            else:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            issuer.served(self.path)
            body = json.dumps(document).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests read what they need from ``fetches``

    return Handler
