"""API Gateway (HTTP API, payload 2.0) entry point: routes and Powertools wiring only."""

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from token_vending import vending
from token_vending.errors import ApiError
from token_vending.observability import count, logger, traced_handler
from token_vending.policy import PROFILE_HEADER
from token_vending.request_body import json_object

app = APIGatewayHttpResolver()


@app.post("/v1/realtime/client_secrets")
def create_client_secret() -> Response[Any]:
    return _mint("client_secrets")


@app.post("/v1/realtime/sessions")
def create_session() -> Response[Any]:
    return _mint("sessions")


@app.post("/v1/realtime/transcription_sessions")
def create_transcription_session() -> Response[Any]:
    return _mint("transcription_sessions")


def _mint(endpoint: vending.Endpoint) -> Response[Any]:
    event = app.current_event
    app.context["endpoint"] = endpoint  # for the error handlers; the resolver clears it per request
    body = json_object(event.body, bool(event.is_base64_encoded), event.headers.get("content-type"))
    answer = vending.mint(endpoint, body, event.headers.get(PROFILE_HEADER.lower()))
    return _json(HTTPStatus.OK, answer)


@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
def api_error(error: ApiError) -> Response[Any]:
    endpoint = str(app.context.get("endpoint", "unknown"))
    if error.status < HTTPStatus.INTERNAL_SERVER_ERROR and error.status != HTTPStatus.TOO_MANY_REQUESTS:
        logger.info("request rejected", endpoint=endpoint, reason=error.code, param=error.param)
        count("RequestsRejected", endpoint=endpoint, reason=error.code)
    else:
        logger.warning("request failed", endpoint=endpoint, reason=error.code, status=int(error.status))
    return _json(error.status, error.envelope(), error.headers)


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def unexpected_error(error: Exception) -> Response[Any]:
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
    return _json(HTTPStatus.INTERNAL_SERVER_ERROR, envelope)


@app.not_found
def not_found(_: Exception) -> Response[Any]:
    envelope = {
        "error": {
            "type": "invalid_request_error",
            "message": "Unknown route.",
            "param": None,
            "code": "unknown_url",
        }
    }
    return _json(HTTPStatus.NOT_FOUND, envelope)


def _json(status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        # A client secret is a credential: no cache may keep the answer.
        headers={
            "Cache-Control": "no-store",
            "x-request-id": logger.get_correlation_id() or "",
            **(headers or {}),
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@traced_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
