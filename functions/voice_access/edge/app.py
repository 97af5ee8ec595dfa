"""API Gateway (HTTP API, payload 2.0) entry point: wiring only.

The route is found in routes.py by API Gateway's own ``routeKey`` (Powertools' event handler routed before, at
about 40 ms of import on every cold start, for routing we do not need). The caller comes from the route's
authorizer (claims.py); answers.py turns what the domain returns or raises into HTTP.
"""

# Imports build a few hundred thousand objects and no garbage: collecting while they run is wasted
# work, about 7 ms of every cold start. Collection resumes once they are done, and what they built is
# frozen out of later collections, so a warm invocation's collections walk only its own objects.
import gc

gc.disable()

import os
from typing import TYPE_CHECKING, Any

# First the keys' reader (urllib3 and Powertools, most of the import), so that in an on-demand container (one Lambda
# starts for a request, as a rule) the keys' round trip to Secrets Manager runs beside the rest of the import (about
# 3 ms sooner to the first answer by `make bench`, a TLS handshake and more where Secrets Manager is a network away).
from voice_access.clients.secrets import api_keys
from voice_access.config.mint_settings import checked_settings, get_settings
from voice_access.config.settings import SettingsError


def _prefetch_keys() -> None:
    """Not where a container is initialised ahead of its requests (provisioned concurrency, a SnapStart snapshot):
    keys read then would wait, or be kept in the snapshot. A broken environment is named by the first request."""
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "on-demand":
        return
    try:
        service = get_settings().service
    except SettingsError:
        return
    api_keys.prefetch(service.api_key_secret_id, service.secret_cache_ttl_seconds, service)


_prefetch_keys()

from voice_access.domain.errors import ServiceError
from voice_access.edge import answers
from voice_access.edge.claims import caller_from_request_context
from voice_access.edge.routes import ROUTES
from voice_access.observability import logger, traced_handler

if TYPE_CHECKING:  # 15 ms of import for a type hint
    from aws_lambda_powertools.utilities.typing import LambdaContext

gc.freeze()
gc.enable()


@logger.inject_lambda_context(clear_state=True)
@traced_handler
def lambda_handler(event: dict[str, Any], context: "LambdaContext") -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    request_id = str(request_context.get("requestId") or "")
    logger.set_correlation_id(request_id or None)
    route = ROUTES.get(_route_key(event))
    if route is None:
        return answers.not_found(request_id)
    try:
        caller = caller_from_request_context(request_context, checked_settings().groups_claim)
        answer = route.answer(event, caller, context)
    except ServiceError as error:
        return answers.refused(error, route.name, request_id)
    except Exception:
        return answers.unexpected(request_id)
    return answers.ok(answer, request_id)


def _route_key(event: dict[str, Any]) -> str:
    route_key = str(event.get("routeKey") or "$default")
    if route_key != "$default":
        return route_key
    http = event.get("requestContext", {}).get("http", {})  # a catch-all route: match on the request itself
    return f"{http.get('method', '')} {event.get('rawPath', '')}"
