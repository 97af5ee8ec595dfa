"""API Gateway (HTTP API, payload 2.0) entry point: routes and the answer's shape only.

Five routes, each declared in template.yaml, so API Gateway has already matched the request to one
of them and says which in ``routeKey``: a dictionary look-up finds the function that answers it.
(Powertools' event handler did this before, at about 40 ms of import on every cold start, for routing we
do not need.) The caller comes from the route's authorizer (``requestContext.authorizer``), turned into a
Caller here, at the edge.
"""

# Imports build a few hundred thousand objects and no garbage: collecting while they run is wasted
# work, about 7 ms of every cold start. Collection resumes once they are done, and what they built is
# frozen out of later collections, so a warm invocation's collections walk only its own objects.
import gc

gc.disable()

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple

from voice_access.clients.deadline import Deadline
from voice_access.domain import minting, profiles
from voice_access.domain.caller import Caller, caller_from_request_context
from voice_access.domain.errors import ApiError
from voice_access.domain.policy.model import PROFILE_HEADER
from voice_access.edge.request_body import json_object
from voice_access.observability import count, logger, traced_handler

if TYPE_CHECKING:  # 15 ms of import for a type hint
    from aws_lambda_powertools.utilities.typing import LambdaContext

gc.freeze()
gc.enable()


class Route(NamedTuple):
    """What answers one route, given the event, the caller and the invocation's context."""

    name: str  # in logs and metrics
    answer: Callable[[dict[str, Any], Caller, "LambdaContext"], minting.Answer]


def _minting(endpoint: minting.Endpoint) -> Route:
    def answer(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> minting.Answer:
        # API Gateway sends header names in lower case; a local or hand-made event may not.
        headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
        body = json_object(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-type"))
        # One deadline for the whole request, ending before Lambda's timeout, so a slow OpenAI or Secrets
        # Manager still gets our envelope rather than API Gateway's bare 5xx.
        deadline = Deadline.of_invocation(context)
        return minting.mint(endpoint, body, headers.get(PROFILE_HEADER.lower()), caller, deadline=deadline)

    return Route(endpoint.name, answer)


ROUTES: dict[str, Route] = {
    "POST /v1/realtime/client_secrets": _minting(minting.CLIENT_SECRETS),
    "POST /v1/realtime/sessions": _minting(minting.SESSIONS),
    "POST /v1/realtime/transcription_sessions": _minting(minting.TRANSCRIPTION_SESSIONS),
    "POST /v1/realtime/translations/client_secrets": _minting(minting.TRANSLATION_CLIENT_SECRETS),
    "GET /v1/realtime/profiles": Route(
        # Its quota read ends within the invocation's own deadline, as a mint's calls do.
        "profiles",
        lambda event, caller, context: profiles.answer(caller, deadline=Deadline.of_invocation(context)),
    ),
}


@logger.inject_lambda_context(clear_state=True)
@traced_handler
def lambda_handler(event: dict[str, Any], context: "LambdaContext") -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    request_id = str(request_context.get("requestId") or "")
    logger.set_correlation_id(request_id or None)
    route = ROUTES.get(_route_key(event))
    if route is None:
        return _not_found(request_id)
    try:
        caller = caller_from_request_context(request_context, minting.checked_settings().groups_claim)
        answer = route.answer(event, caller, context)
    except ApiError as error:
        return _api_error(error, route.name, request_id)
    except Exception:
        return _unexpected_error(request_id)
    return _response(HTTPStatus.OK, answer.text, request_id, answer.headers)


def _route_key(event: dict[str, Any]) -> str:
    route_key = str(event.get("routeKey") or "$default")
    if route_key != "$default":
        return route_key
    http = event.get("requestContext", {}).get("http", {})  # a catch-all route: match on the request itself
    return f"{http.get('method', '')} {event.get('rawPath', '')}"


def _api_error(error: ApiError, endpoint: str, request_id: str) -> dict[str, Any]:
    if error.status < HTTPStatus.INTERNAL_SERVER_ERROR and error.status != HTTPStatus.TOO_MANY_REQUESTS:
        logger.info("request rejected", endpoint=endpoint, reason=error.code, param=error.param)
        count("RequestsRejected", endpoint=endpoint, reason=error.metric_reason)
    else:
        logger.warning("request failed", endpoint=endpoint, reason=error.code, status=int(error.status))
    return _json(error.status, error.envelope(), request_id, error.headers)


def _unexpected_error(request_id: str) -> dict[str, Any]:
    logger.exception("unexpected error")
    count("UnexpectedErrors")
    envelope = {
        "error": {
            "type": "server_error",
            "message": "The service failed unexpectedly. Retry in a moment; the operator can find it in the logs.",
            "param": None,
            "code": "internal_error",
        }
    }
    return _json(HTTPStatus.INTERNAL_SERVER_ERROR, envelope, request_id)


def _not_found(request_id: str) -> dict[str, Any]:
    envelope = {
        "error": {"type": "invalid_request_error", "message": "Unknown route.", "param": None, "code": "unknown_url"}
    }
    return _json(HTTPStatus.NOT_FOUND, envelope, request_id)


def _json(
    status: HTTPStatus, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return _response(status, json.dumps(body, separators=(",", ":")), request_id, headers)


def _response(status: HTTPStatus, body: str, request_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP API (payload 2.0) response with a JSON body."""
    return {
        "statusCode": int(status),
        "headers": {
            "Content-Type": "application/json",
            # A client secret is a credential, and a caller's profiles are its own: no cache may keep the answer.
            "Cache-Control": "no-store",
            "x-request-id": request_id,
            **(headers or {}),
        },
        "body": body,
        "isBase64Encoded": False,
    }
