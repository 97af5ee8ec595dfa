"""The JWT authorizer of an API Gateway HTTP API, locally: the same checks, answers and claims.

As API Gateway documents it (http-api-jwt-authorizer.html): the token comes only from the Authorization
header, alone or after "Bearer "; it must be signed with an RSA algorithm by a key of the issuer's JWKS
(found through OIDC discovery) named by its kid; iss must be the issuer; aud one of the audiences, or
client_id when there is no aud; exp after now, nbf and iat not after now (no leeway, as none is
documented); a route with authorization scopes needs a token with at least one of them. A refusal is
401 (403 for a missing scope) and the function is not invoked. Signatures, keys and time claims are
checked by joserfc.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import urllib3
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import RSAKey

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})
# Header parameters whose value is a string (RFC 7515 4.1, RFC 7516 4.1); crit is a list of strings.
_STRING_HEADERS = ("alg", "kid", "typ", "cty", "zip", "jku", "x5u", "x5t", "x5t#S256")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]{1,16}")
_FETCH_TIMEOUT = urllib3.Timeout(connect=2.0, read=5.0)
# Tokens naming kids the issuer never published cost one fetch of its keys per this many seconds, at most.
REFETCH_INTERVAL_SECONDS = 10.0
WRONG_ISSUER = "the token does not have a valid issuer"
# What a time claim that fails tells the caller, in API Gateway's words where they are known.
_TIME_CLAIMS = {
    "exp": "the token has expired",
    "nbf": "the token is not valid yet",
    "iat": "the token was issued in the future",
}


class Refused(Exception):
    """The authorizer refuses the request: API Gateway answers ``status`` itself, with ``challenge`` as
    www-authenticate when there is one. The message says why, for the gateway's access record; it never
    holds the token or a claim."""

    def __init__(self, status: HTTPStatus, why: str, challenge: str | None, *, message: str | None = None) -> None:
        super().__init__(why)
        self.status = status
        self.challenge = challenge
        self.message = message  # the body's message, where it is not the status's own (Unauthorized, Forbidden)


def _invalid(reason: str, detail: str = "") -> Refused:
    """A 401 whose www-authenticate tells the caller ``reason``; ``detail`` is for the access record only."""
    challenge = f'Bearer scope="" error="invalid_token" error_description="{reason}"'
    return Refused(HTTPStatus.UNAUTHORIZED, f"{reason} ({detail})" if detail else reason, challenge)


class IssuerUnreachable(Exception):
    """The issuer's discovery document or JWKS could not be fetched or read."""


class JwtAuthorizer:
    """One AWS::ApiGatewayV2::Authorizer of type JWT: an issuer and the audiences its tokens may be for.

    ``discovery_url`` is where its OIDC discovery document is (default: the issuer's own
    /.well-known/openid-configuration). The JWKS is fetched on first use, kept, and fetched again when a
    token names a kid it does not hold (the issuer rotated its keys): at once the first time, then at most
    once per REFETCH_INTERVAL_SECONDS, so that tokens with made-up kids cannot keep it fetching.
    """

    def __init__(
        self,
        issuer: str,
        audiences: Collection[str],
        discovery_url: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.audiences = frozenset(a for a in audiences if a)
        self.discovery_url = discovery_url or f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        self._http = urllib3.PoolManager(timeout=_FETCH_TIMEOUT, retries=False)
        self._lock = threading.Lock()
        self._keys: dict[str, RSAKey] | None = None
        self._clock = clock
        self._refetched: float | None = None  # when a kid we did not hold last made us fetch the keys again

    def describe(self) -> str:
        audiences = ", ".join(sorted(self.audiences)) or "(none)"
        return f"JWT from {self.issuer} for audience {audiences}"

    def authorize(self, authorization: str | None, scopes: Sequence[str] | None) -> dict[str, Any]:
        """The event's requestContext.authorizer for a request with this Authorization header value, on a
        route with these authorization scopes (None: the route has none); Refused otherwise."""
        token = _bearer(authorization)
        header = _header(token)
        key = self._key(header)
        try:
            claims = jwt.decode(token, key, algorithms=[header["alg"]]).claims
        except BadSignatureError:
            raise _invalid("the token's signature is invalid") from None
        except JoseError:
            raise _invalid("the token is malformed") from None
        self._check_claims(claims)
        granted = _scopes(claims)
        if scopes and not set(scopes) & set(granted):
            required = " ".join(scopes)
            raise Refused(
                HTTPStatus.FORBIDDEN,
                "the token does not have a required scope",
                f'Bearer scope="{required}" error="insufficient_scope" '
                'error_description="the token does not have the required scopes"',
            )
        return {"jwt": {"claims": flatten_claims(claims), "scopes": list(granted) if scopes else None}}

    def _key(self, header: Mapping[str, Any]) -> RSAKey:
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in RSA_ALGORITHMS:
            # The token's own text goes into a header and a log line only if it is a plain name.
            named = algorithm if isinstance(algorithm, str) and _PLAIN_NAME.fullmatch(algorithm) else "of the token"
            raise _invalid(f"signing method {named} is invalid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("the token has no kid")
        keys = self._keys  # replaced whole, never changed: read without the lock
        if keys is not None and kid in keys:
            return keys[kid]
        with self._lock:
            try:
                if self._keys is None:
                    self._keys = self._fetch_keys()
                elif kid not in self._keys and self._may_refetch():
                    self._keys = self._fetch_keys()  # a kid we do not hold: the issuer may have rotated
            except IssuerUnreachable as error:
                raise _invalid("the issuer's keys could not be fetched", str(error)) from None
            key = self._keys.get(kid)
        if key is None:
            raise _invalid("the token's kid matches no key of the issuer")
        return key

    def _may_refetch(self) -> bool:
        """Whether a kid we do not hold may fetch the keys again now (holding the lock); if so, it is counted."""
        now = self._clock()
        if self._refetched is not None and now - self._refetched < REFETCH_INTERVAL_SECONDS:
            return False
        self._refetched = now
        return True

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise _invalid(WRONG_ISSUER)
        # aud is evaluated when present; client_id only when aud is absent.
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        offered = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a in self.audiences for a in offered):
            raise _invalid("the token does not have a valid audience")
        times = jwt.JWTClaimsRegistry(leeway=0, exp={"essential": True})
        try:
            times.validate({name: claims[name] for name in _TIME_CLAIMS if name in claims})
        except MissingClaimError:
            raise _invalid("the token has no expiry") from None
        except ExpiredTokenError:
            raise _invalid(_TIME_CLAIMS["exp"]) from None
        except ClaimError as error:
            raise _invalid(_TIME_CLAIMS.get(error.claim, "the token's claims are invalid")) from None

    def _fetch_keys(self) -> dict[str, RSAKey]:
        """The issuer's RSA signing keys by kid, found through its discovery document."""
        discovery = self._fetch_json(self.discovery_url)
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IssuerUnreachable(f"{self.discovery_url} has no jwks_uri")
        jwks = self._fetch_json(jwks_uri)
        by_kid: dict[str, RSAKey] = {}
        for data in jwks.get("keys") or []:
            if not isinstance(data, dict) or data.get("kty") != "RSA" or data.get("use", "sig") != "sig":
                continue
            try:
                by_kid[str(data["kid"])] = RSAKey.import_key(data)
            except (KeyError, ValueError, JoseError):
                continue  # a key we cannot use signs nothing we accept
        return by_kid

    def _fetch_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.request("GET", url)
        except urllib3.exceptions.HTTPError as error:
            raise IssuerUnreachable(f"{url}: {type(error).__name__}") from None
        if response.status != HTTPStatus.OK:
            raise IssuerUnreachable(f"{url} answered {response.status}")
        try:
            document = json.loads(response.data)
        except ValueError:
            raise IssuerUnreachable(f"{url} did not answer JSON") from None
        if not isinstance(document, dict):
            raise IssuerUnreachable(f"{url} did not answer a JSON object")
        return document


def _bearer(authorization: str | None) -> str:
    """The token of the identity source $request.header.Authorization: the value, "Bearer " stripped."""
    value = (authorization or "").strip()
    if not value:
        raise Refused(HTTPStatus.UNAUTHORIZED, "no token in the Authorization header", None)
    scheme, _, rest = value.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value


def _header(token: str) -> dict[str, Any]:
    try:
        header = dict(jws.extract_compact(token.encode()).headers())
    except (JoseError, ValueError, UnicodeError):
        raise _invalid("the token is malformed") from None
    # The header is the caller's JSON: a name that must be a string may be a list or an object, which
    # would fail a set lookup (ours or joserfc's) with a TypeError instead of a refusal.
    names = [header.get(name) for name in _STRING_HEADERS if name in header]
    crit = header.get("crit", [])
    if not all(isinstance(name, str) for name in names) or not (
        isinstance(crit, list) and all(isinstance(name, str) for name in crit)
    ):
        raise _invalid("the token is malformed")
    return header


def _scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The token's scopes: its scope claim (space-separated), else scp (a list, or space-separated)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(scope) for scope in value)
    return ()


def flatten_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as API Gateway passes them to the function: every value a string; numbers and booleans
    stringified, arrays as "[a b]" (Go's formatting), null claims left out; an object (rare) as JSON."""
    return {name: _claim_text(value) for name, value in claims.items() if value is not None}


def _claim_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
