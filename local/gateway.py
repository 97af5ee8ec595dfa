"""The local API Gateway: a SAM template's HTTP API (payload format 2.0) served on loopback, as deployed.

The API is the template's own (local/template.py): routes, the functions they invoke, authorizers and CORS, so
the local API cannot drift from the deployed one. HTTP itself is waitress's (threaded, strict HTTP/1.1 parsing);
this module answers what API Gateway answers itself: CORS preflights (local/cors.py), a refused token or
signature (local/authorizers.py), no route, a payload over 10 MB, a function past its timeout or one that
raised. The functions run in this process, as the Lambda runtime runs them (local/lambda_runtime.py).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote

from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.server import create_server  # type: ignore[import-untyped]

from local.authorizers import AUTH_NONE_NOTE, Authorizers
from local.cloudformation import ACCOUNT_ID
from local.cors import without_cors
from local.exchanges import AccessRecord, HttpRequest, LocalResponse
from local.jwt_authorizer import Refused
from local.lambda_runtime import (
    EXECUTION_ENVIRONMENTS,
    FunctionFailed,
    FunctionTimedOut,
    LambdaRuntime,
    NoEnvironmentFree,
)
from local.running import Running
from local.template import HttpApi, Route, read_api

# HTTP API's own limits: the request payload, and how long it waits for an integration.
PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 30
# What API Gateway answers itself, instead of the function's answer.
NOT_FOUND = (HTTPStatus.NOT_FOUND, "Not Found")
TOO_LARGE = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
# A function past its own Timeout is a failed invocation ("Task timed out"), answered like any other
# failure; only a function still running at the integration timeout (30 s) gets Service Unavailable.
INTEGRATION_TIMED_OUT = (HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")
FUNCTION_FAILED = (HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
# An authorizer's refusals: a token that fails (401), a token without a required scope (403).
REFUSED = {HTTPStatus.UNAUTHORIZED: "Unauthorized", HTTPStatus.FORBIDDEN: "Forbidden"}
# HTTP API hands these media types to the function as text and base64-encodes every other body.
_TEXT_MEDIA_TYPES = ("application/json", "application/xml", "application/javascript")
# Hop-by-hop headers: the connection's business (WSGI forbids an application to set them).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "content-length"}
)


class RouteNotFound(LookupError):
    """No route of the template matches the request."""


def _gateway_response(answer: tuple[HTTPStatus, str]) -> LocalResponse:
    status, message = answer
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return LocalResponse(status, [("content-type", "application/json")], body)


def _refusal(refused: Refused) -> LocalResponse:
    response = _gateway_response((refused.status, refused.message or REFUSED[refused.status]))
    if refused.challenge is not None:
        response.headers.append(("www-authenticate", refused.challenge))
    return response


def _to_client(result: Any) -> LocalResponse:
    """Map a payload-2.0 function result to the HTTP answer, as API Gateway does."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: API Gateway infers 200, JSON, and the result itself as the body.
        inferred = result if isinstance(result, str) else json.dumps(result)
        return LocalResponse(HTTPStatus.OK, [("content-type", "application/json")], inferred.encode())
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    for name, value in headers:
        (name + value).encode("latin-1")  # raises on what HTTP/1.1 cannot carry: a malformed result
    text = str(result.get("body") or "")
    body = base64.b64decode(text, validate=True) if result.get("isBase64Encoded") else text.encode()
    return LocalResponse(int(result["statusCode"]), headers, body)


class LocalApi(Running):
    """The HTTP API of a SAM template, served on loopback with the functions imported in-process.

    ``authenticate=False`` (AUTH=none) lets every request in as one anonymous caller; ``environment`` is what the
    runtime adds to the functions' (credentials); ``environments``: how many invocations of one function run at
    once; ``on_request`` hears of every request served.
    """

    def __init__(
        self,
        api: HttpApi,
        *,
        authenticate: bool = True,
        port: int = 0,
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        on_request: Callable[[AccessRecord], None] | None = None,
        environments: int = EXECUTION_ENVIRONMENTS,
    ) -> None:
        self.routes = api.routes
        self.cors = api.cors
        self.region = region
        self.authorization = Authorizers(api.authorizers, region, authenticate)
        self.runtime = LambdaRuntime(api.functions, region, environment, environments)
        self.functions = self.runtime.functions
        self.on_request = on_request
        self._port = port
        self._server: _Server | None = None

    @classmethod
    def from_template(
        cls,
        template_path: Path | str,
        parameter_overrides: Mapping[str, str] | None = None,
        *,
        physical: Mapping[str, Mapping[str, str]] | None = None,
        discovery: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        **options: Any,
    ) -> LocalApi:
        """The API of the template's AWS::ApiGatewayV2 resources present with these parameters
        (local/template.py's read_api, with ``physical`` and ``discovery``), served with LocalApi's ``options``."""
        return cls(
            read_api(template_path, parameter_overrides or {}, region, physical, discovery), region=region, **options
        )

    @property
    def authorizer(self) -> str:
        """Who may call, in a line for a person."""
        return self.authorization.describe(self.routes)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, once started."""
        if self._server is None:
            raise RuntimeError("LocalApi is not started")
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> Self:
        """Check the routes can be authorized here (TemplateError), take the port (OSError if it is in use),
        import every handler, then serve in the background."""
        self.authorization.check()
        server = _Server(self._wsgi, self._port)
        try:
            self.runtime.load()
        except BaseException:
            server.close()
            raise
        self._server = server.serve()
        return self

    def stop(self) -> None:
        """Stop serving; the imported handlers stay imported, as in a warm container."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for METHOD path and its path parameters; RouteNotFound if none."""
        for route in self.routes:
            if route.method in (method, "ANY") and (found := route.pattern.fullmatch(path)):
                return route, found.groupdict()
        raise RouteNotFound(f"{method} {path}")

    def build_event(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> dict[str, Any]:
        """The payload-2.0 event API Gateway sends for `METHOD target` (target = path?query)."""
        return self._route_and_event(HttpRequest(method, target, headers, body))[1]

    def _route_and_event(self, request: HttpRequest) -> tuple[Route, dict[str, Any]]:
        method, body, source_ip, protocol = request.method, request.body, request.source_ip, request.protocol
        raw_path, _, raw_query = request.target.partition("?")
        route, path_parameters = self.match(method, unquote(raw_path))
        joined: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            if name.lower() == "cookie":  # cookies get a field of their own, not a header
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            else:
                key = name.lower()
                joined[key] = f"{joined[key]},{value}" if key in joined else value
        joined.setdefault("x-forwarded-for", source_ip)
        joined.setdefault("x-forwarded-proto", "http")
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        now = datetime.now(UTC)
        domain = joined.get("host", "localhost").rsplit(":", 1)[0]
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": joined,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": "local",
                "domainName": domain,
                "domainPrefix": domain.split(".")[0],
                "http": {
                    "method": method,
                    "path": unquote(raw_path),
                    "protocol": protocol,
                    "sourceIp": source_ip,
                    "userAgent": joined.get("user-agent", ""),
                },
                "requestId": _request_id(),
                "routeKey": route.route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body:
            media_type = joined.get("content-type", "").split(";")[0].strip().lower()
            is_text = media_type.startswith("text/") or media_type in _TEXT_MEDIA_TYPES
            try:
                event["body"] = body.decode() if is_text else base64.b64encode(body).decode()
                event["isBase64Encoded"] = not is_text
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        return route, event

    def _serve_request(self, request: HttpRequest) -> tuple[LocalResponse, str, str]:
        """Answer a preflight, or route the request, authorize it, invoke the function and map its result
        back, as API Gateway does: the answer, its request id, and what the gateway answered itself, and
        why (empty: the function's answer)."""
        origin = _header_value(request.headers, "origin")
        preflight = request.method == "OPTIONS" and origin is not None
        preflight = preflight and bool(_header_value(request.headers, "access-control-request-method"))
        if self.cors is not None and preflight:
            request_id = _request_id()
            response = LocalResponse(
                HTTPStatus.NO_CONTENT, [*self.cors.preflight(origin), ("apigw-requestid", request_id)], b""
            )
            note = "CORS preflight" if self.cors.allowed_origin(origin) is not None else self.cors.refusal(origin or "")
            return response, request_id, note
        try:
            route, event = self._route_and_event(request)
        except RouteNotFound:
            request_id = _request_id()
            response, note = _gateway_response(NOT_FOUND), "no such route"
            if preflight:  # and no CORS: no route is OPTIONS
                note = without_cors(origin)
        else:
            request_id = event["requestContext"]["requestId"]
            try:
                authorizer = self.authorization.authorize(route, request, event["headers"].get("authorization"))
            except Refused as refused:
                response, note = _refusal(refused), f"refused by the authorizer: {refused}"
            except Exception as error:  # a fault of the gateway's own: the caller still gets API Gateway's 401
                # Where, and the type only: the message may quote the token's own text.
                where = "".join(traceback.format_tb(error.__traceback__))
                print(
                    f"{request_id} gateway fault: the authorizer raised {type(error).__name__}\n{where}",
                    file=sys.stderr,
                )
                response = _gateway_response((HTTPStatus.UNAUTHORIZED, REFUSED[HTTPStatus.UNAUTHORIZED]))
                note = f"refused by the authorizer: a gateway fault ({type(error).__name__}, see stderr)"
            else:
                if authorizer is not None:
                    event["requestContext"]["authorizer"] = authorizer
                response, note = self._invoke_route(route, event)
        return self._sent(response, origin, request_id), request_id, note

    def _sent(self, response: LocalResponse, origin: str | None, request_id: str) -> LocalResponse:
        """``response`` as API Gateway sends it: the CORS configuration applied, and its request id."""
        headers = self.cors.applied(response.headers, origin) if self.cors is not None else response.headers
        return LocalResponse(response.status, [*headers, ("apigw-requestid", request_id)], response.body)

    def _invoke_route(self, route: Route, event: dict[str, Any]) -> tuple[LocalResponse, str]:
        function = self.functions[route.function]
        # API Gateway stops waiting at its integration timeout, counted from now, even if the function's is
        # longer; the function's own counts from the start of its invocation, once an environment is free.
        integration_deadline = time.monotonic() + INTEGRATION_TIMEOUT_SECONDS
        try:
            with self.runtime.execution_environment(route.function, integration_deadline):
                left = integration_deadline - time.monotonic()
                context = self.runtime.context(route.function, min(function.timeout, left))
                cut_by_integration = left <= function.timeout
                result = self.runtime.invoke(route.function, event, context)
        except NoEnvironmentFree:
            note = f"no execution environment free in {INTEGRATION_TIMEOUT_SECONDS} s"
            return _gateway_response(INTEGRATION_TIMED_OUT), note
        except FunctionTimedOut:
            if cut_by_integration:
                return _gateway_response(INTEGRATION_TIMED_OUT), f"no answer in {INTEGRATION_TIMEOUT_SECONDS} s"
            print(f"{context.aws_request_id} Task timed out after {function.timeout:.2f} seconds", file=sys.stderr)
            return _gateway_response(FUNCTION_FAILED), f"the function timed out ({function.timeout} s)"
        except FunctionFailed as failed:
            traceback.print_exception(failed.__cause__ or failed)  # what the function's log would show
            return _gateway_response(FUNCTION_FAILED), f"the function raised {type(failed.__cause__).__name__}"
        try:
            return _to_client(result), ""
        except (ValueError, TypeError, UnicodeError) as error:
            print(f"{context.aws_request_id} malformed function result: {error}", file=sys.stderr)
            return _gateway_response(FUNCTION_FAILED), "the function's result is malformed"

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        """The WSGI application waitress serves: one HTTP request, answered as API Gateway would."""
        started, clock = datetime.now(), time.perf_counter()
        method = str(environ["REQUEST_METHOD"])
        target = _raw_target(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)  # waitress has checked it (and de-chunked the body)
        request_headers = [(_header_name(key), str(value)) for key, value in environ.items() if _is_header(key)]
        if length > PAYLOAD_LIMIT_BYTES:
            request_id, note = _request_id(), f"payload over {PAYLOAD_LIMIT_BYTES // 2**20} MB"
            response = self._sent(_gateway_response(TOO_LARGE), _header_value(request_headers, "origin"), request_id)
        else:
            request = HttpRequest(
                method,
                target,
                headers=request_headers,
                body=environ["wsgi.input"].read(length) if length else b"",
                source_ip=str(environ.get("REMOTE_ADDR", "127.0.0.1")),
                protocol=str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
            )
            response, request_id, note = self._serve_request(request)
        headers = [(name, value) for name, value in response.headers if name.lower() not in _HOP_BY_HOP]
        start_response(
            f"{response.status} {http.client.responses.get(response.status, 'Unknown')}",
            [*headers, ("Content-Length", str(len(response.body)))],
        )
        if self.on_request is not None:
            if not self.authorization.authenticate:
                note = f"{note}; {AUTH_NONE_NOTE}" if note else AUTH_NONE_NOTE
            duration_ms = (time.perf_counter() - clock) * 1000
            path = target.partition("?")[0]
            self.on_request(AccessRecord(started, method, path, response.status, duration_ms, request_id, note))
        return iter([b""] if method == "HEAD" else [response.body])


def _request_id() -> str:
    return base64.b64encode(uuid.uuid4().bytes[:12]).decode()


def _header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of the header ``name`` (lower case), or None."""
    return next((value for key, value in headers if key.lower() == name), None)


def _is_header(key: str) -> bool:
    return key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")


def _header_name(key: str) -> str:
    return key.removeprefix("HTTP_").replace("_", "-").lower()


def _raw_target(environ: Mapping[str, Any]) -> str:
    """The request target as the client sent it (path?query), percent-encoding intact."""
    uri = str(environ.get("REQUEST_URI") or "")
    if uri.startswith("/"):
        return uri
    path = quote(str(environ.get("PATH_INFO") or "/").encode("latin-1"), safe="/;=,:@!$&'()*+~")
    query = str(environ.get("QUERY_STRING") or "")
    return f"{path}?{query}" if query else path


class _Server:
    """waitress on 127.0.0.1, its event loop on a daemon thread until close()."""

    def __init__(self, app: Callable[..., Any], port: int) -> None:
        # A full task queue only means callers wait, as they would for Lambda: not worth a warning.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self._server = create_server(
            app,
            host="127.0.0.1",
            port=port,
            threads=32,  # invocations waiting on slow functions must not hold up the others
            backlog=2048,
            connection_limit=1000,
            asyncore_use_poll=True,  # select() stops at file descriptor 1024
            ident="",  # no Server header: API Gateway sends none
            clear_untrusted_proxy_headers=False,  # the function sees the headers the client sent
        )
        self.port = int(self._server.effective_port)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def serve(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name="local-api", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1.0, map=self._server._map, use_poll=True, count=1)

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.pull_trigger()  # wakes the loop, which then ends
            self._thread.join()
        for channel in list(self._server._map.values()):  # the listener, the trigger and every connection
            channel.close()
        self._server.task_dispatcher.shutdown(timeout=1)
