"""API Gateway (HTTP API, payload 2.0) entry point: routes and wiring only.

Five routes, each declared in template.yaml, so API Gateway has already matched the request to one
of them and says which in ``routeKey``: a dictionary look-up finds what answers it. Each minting route is
the endpoint that knows its shape (minting.py: GA, or beta translated onto GA). (Powertools' event handler
routed before, at about 40 ms of import on every cold start, for routing we do not need.) The caller comes
from the route's authorizer (caller.py); answers.py turns what the domain returns or raises into HTTP.
"""

# Imports build a few hundred thousand objects and no garbage: collecting while they run is wasted
# work, about 7 ms of every cold start. Collection resumes once they are done, and what they built is
# frozen out of later collections, so a warm invocation's collections walk only its own objects.
import gc

gc.disable()

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from voice_access.clients.deadline import Deadline
from voice_access.config.minting import checked_settings
from voice_access.domain import minting, profiles
from voice_access.domain.caller import Caller
from voice_access.domain.errors import ServiceError
from voice_access.domain.policy.model import PROFILE_HEADER
from voice_access.edge import answers
from voice_access.edge.caller import caller_from_request_context
from voice_access.edge.request_body import json_object
from voice_access.observability import logger, traced_handler

if TYPE_CHECKING:  # 15 ms of import for a type hint
    from aws_lambda_powertools.utilities.typing import LambdaContext

gc.freeze()
gc.enable()


class Route(NamedTuple):
    """What answers one route, given the event, the caller and the invocation's context."""

    name: str  # in logs and metrics
    answer: Callable[[dict[str, Any], Caller, "LambdaContext"], answers.Answer]


def _minting(endpoint: minting.Endpoint) -> Route:
    def answer(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
        # API Gateway sends header names in lower case; a local or hand-made event may not.
        headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
        body = json_object(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-type"))
        # One deadline for the whole request, ending before Lambda's timeout, so a slow OpenAI or Secrets
        # Manager still gets our envelope rather than API Gateway's bare 5xx.
        deadline = Deadline.of_invocation(context)
        profile = headers.get(PROFILE_HEADER.lower())
        return answers.minted(minting.mint(endpoint, body, profile, caller, deadline=deadline))

    return Route(endpoint.name, answer)


def _profiles(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
    # Its quota read ends within the invocation's own deadline, as a mint's calls do.
    return answers.listed(profiles.list_profiles(caller, deadline=Deadline.of_invocation(context)))


ROUTES: dict[str, Route] = {
    "POST /v1/realtime/client_secrets": _minting(minting.CLIENT_SECRETS),
    "POST /v1/realtime/sessions": _minting(minting.SESSIONS),
    "POST /v1/realtime/transcription_sessions": _minting(minting.TRANSCRIPTION_SESSIONS),
    "POST /v1/realtime/translations/client_secrets": _minting(minting.TRANSLATION_CLIENT_SECRETS),
    "GET /v1/realtime/profiles": Route("profiles", _profiles),
}


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
