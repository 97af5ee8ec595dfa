"""Who may call a route, decided as API Gateway decides it before invoking the function: the route's JWT
authorizer (local/jwt_authorizer.py) or AWS_IAM (local/iam_authorizer.py); with authentication off (AUTH=none),
every request is one anonymous caller, as a JWT authorizer would pass it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from local.cloudformation import ACCOUNT_ID, TemplateError
from local.exchanges import HttpRequest
from local.iam_authorizer import IamAuthorizer
from local.jwt_authorizer import JwtAuthorizer
from local.template import Route

AUTH_NONE_CLAIMS = {"iss": "local:auth-none", "sub": "anonymous"}
AUTH_NONE_NOTE = "authentication is off (AUTH=none)"


class Authorizers:
    """The API's JWT authorizers (``jwt``, by logical id) and AWS_IAM in ``region``; ``authenticate=False``
    (AUTH=none) lets every request in."""

    def __init__(self, jwt: Mapping[str, JwtAuthorizer], region: str, authenticate: bool = True) -> None:
        self.jwt = dict(jwt)
        self.iam = IamAuthorizer(region, ACCOUNT_ID)
        self.authenticate = authenticate

    def check(self) -> None:
        """TemplateError when a JWT authorizer's issuer cannot be asked for its keys here."""
        if not self.authenticate:
            return
        for logical_id, authorizer in self.jwt.items():
            if not authorizer.discovery_url.startswith(("https://", "http://")):
                raise TemplateError(
                    f"{logical_id}: the JWT issuer is {authorizer.issuer!r}, not a URL (a stand-in for a resource "
                    "that does not exist locally: give its Ref and attributes as `physical`, or its discovery "
                    "document's URL in `discovery`), or turn authentication off locally (AUTH=none)"
                )

    def describe(self, routes: Iterable[Route]) -> str:
        """Who may call ``routes``, in a line for a person."""
        kinds = {route.authorization for route in routes} - {"NONE"}
        if not kinds:
            return "none: no route requires authorization"
        if not self.authenticate:
            return f"none: {AUTH_NONE_NOTE}, every request is {AUTH_NONE_CLAIMS['sub']} of {AUTH_NONE_CLAIMS['iss']}"
        described = [authorizer.describe() for authorizer in self.jwt.values()]
        if "AWS_IAM" in kinds:
            described.append(self.iam.describe())
        return "; ".join(described)

    def authorize(self, route: Route, request: HttpRequest, authorization: str | None) -> dict[str, Any] | None:
        """The event's requestContext.authorizer for ``request`` (``authorization``: its Authorization header) on
        ``route``: None when the route has no authorization; Refused (local/jwt_authorizer.py) when the request
        may not call it."""
        if route.authorization == "NONE":
            return None
        if not self.authenticate:
            return {"jwt": {"claims": dict(AUTH_NONE_CLAIMS), "scopes": None}}
        if route.authorization == "AWS_IAM":
            return self.iam.authorize(request.method, request.target, request.headers, request.body)
        if route.authorizer is not None:
            return self.jwt[route.authorizer].authorize(authorization, route.scopes)
        return None
