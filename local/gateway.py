"""A local API Gateway HTTP API (payload format 2.0) serving the functions that template.yaml declares.

Routes, handlers and environment come from the template itself, so the local API cannot drift from the
deployed one. Only the intrinsics an Environment block needs are resolved; anything else fails loudly.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, unquote

import yaml

from local.running import LoopbackHttpServer, Running

ACCOUNT_ID = "123456789012"
_NO_VALUE = object()  # AWS::NoValue: the key it stands for is left out
# HTTP API hands these media types to the function as text and base64-encodes every other body.
_TEXT_MEDIA_TYPES = ("application/json", "application/xml", "application/javascript")
# The Lambda runtime has no profile; a developer's AWS_PROFILE would override the fake credentials.
_NOT_IN_LAMBDA = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
Handler = Callable[[dict[str, Any], Any], Any]


class TemplateError(Exception):
    """The template asks for something the local gateway cannot do."""


class CloudFormationLoader(yaml.SafeLoader):
    """A SafeLoader that reads every CloudFormation short tag (!Ref, !If, !Sub, ...) as its long form."""


def _long_form(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag in ("Ref", "Condition"):
        return {tag: value}
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag}": value}


CloudFormationLoader.add_multi_constructor("!", _long_form)


class _Resolver:
    """Resolves Ref, Fn::If, Fn::Sub, Fn::Join and conditions against parameters, as CloudFormation would."""

    def __init__(self, template: Mapping[str, Any], overrides: Mapping[str, str], region: str) -> None:
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        if unknown := sorted(set(overrides) - set(declared)):
            raise TemplateError(f"parameter overrides {unknown} are not parameters of the template")
        self._parameters: dict[str, str] = {}
        for name, spec in declared.items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                continue  # only an error if something refers to it
            allowed, pattern = spec.get("AllowedValues"), spec.get("AllowedPattern")
            if allowed is not None and str(value) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            if pattern is not None and not re.fullmatch(pattern, str(value)):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
            self._parameters[name] = str(value)
        self._pseudo: dict[str, object] = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": "local",
            "AWS::NoValue": _NO_VALUE,
        }
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self._resources = set(template.get("Resources") or {})

    def value(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item, where) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._ref(arg, where)
            if key == "Fn::If":
                condition, if_true, if_false = arg
                return self.value(if_true if self.condition(condition, where) else if_false, where)
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(item) for item in self.value(items, where))
            if key.startswith("Fn::"):
                raise TemplateError(f"{where}: {key} is not supported by the local gateway")
        resolved = {key: self.value(item, f"{where}.{key}") for key, item in node.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def condition(self, node: Any, where: str) -> bool:
        if isinstance(node, bool):
            return node
        if isinstance(node, str):
            if node not in self._conditions:
                raise TemplateError(f"{where}: unknown condition {node}")
            return self.condition(self._conditions[node], f"condition {node}")
        ((key, arg),) = node.items()
        if key == "Condition":
            return self.condition(str(arg), where)
        if key == "Fn::Equals":
            left, right = (self.value(side, where) for side in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.condition(arg[0], where)
        if key == "Fn::And":
            return all(self.condition(item, where) for item in arg)
        if key == "Fn::Or":
            return any(self.condition(item, where) for item in arg)
        raise TemplateError(f"{where}: {key} is not supported in a condition by the local gateway")

    def _ref(self, name: str, where: str) -> object:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._resources:
            raise TemplateError(
                f"{where}: Ref {name} names a resource, which exists only once deployed; "
                "choose parameter overrides that avoid it"
            )
        raise TemplateError(f"{where}: Ref {name} has no value (no such parameter, or no Default/override)")

    def _sub(self, arg: Any, where: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.value(variables[name], where))
            return str(self._ref(name, where))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)


def _environment_value(value: Any, where: str) -> str:
    if isinstance(value, bool):  # CloudFormation turns YAML booleans into "true"/"false"
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: an environment variable must be a string, got {value!r}")


@dataclass(frozen=True)
class LocalFunction:
    """One AWS::Serverless::Function as the Lambda runtime would see it."""

    logical_id: str
    handler: str  # module.attribute, e.g. token_vending.app.lambda_handler
    code_uri: Path
    environment: dict[str, str]
    memory_size: int
    timeout: int


@dataclass(frozen=True)
class Route:
    """An HttpApi event: METHOD /path -> function."""

    method: str
    path: str
    function: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class LocalResponse:
    """What the gateway answers the client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class RouteNotFound(LookupError):
    """No route of the template matches the request."""


@dataclass
class LambdaContext:
    """The subset of the Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float  # time.monotonic() at which the invocation times out
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _json_response(status: HTTPStatus, message: str) -> LocalResponse:
    body = json.dumps({"message": message}).encode()
    return LocalResponse(status, [("content-type", "application/json")], body)


def _to_client(result: Any) -> LocalResponse:
    """Map a payload-2.0 function result to the HTTP answer, as API Gateway does."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: API Gateway infers 200, JSON, and the result itself as the body.
        inferred = result if isinstance(result, str) else json.dumps(result)
        return LocalResponse(HTTPStatus.OK, [("content-type", "application/json")], inferred.encode())
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    text = str(result.get("body") or "")
    body = base64.b64decode(text, validate=True) if result.get("isBase64Encoded") else text.encode()
    return LocalResponse(int(result["statusCode"]), headers, body)


class LocalApi(Running):
    """The HTTP API of a SAM template, served on loopback with the functions imported in-process."""

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        routes: Iterable[Route],
        *,
        authorizers: Iterable[str] = (),
        port: int = 0,
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.functions = dict(functions)
        self.routes = tuple(routes)
        self.authorizers = frozenset(authorizers)
        self.region = region
        self._port = port
        self._environment = dict(environment or {})
        self._handlers: dict[str, Handler] = {}
        self._applied: set[str] = set()  # variables the last function set: the next one does not see them
        self._invoke_lock = threading.Lock()  # one request at a time, like one Lambda container
        self._server: LoopbackHttpServer | None = None

    @classmethod
    def from_template(
        cls,
        template_path: Path | str,
        parameter_overrides: Mapping[str, str] | None = None,
        *,
        port: int = 0,
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
    ) -> LocalApi:
        """Read the functions with HttpApi events; `environment` is what the runtime adds (credentials)."""
        template_path = Path(template_path)
        template = yaml.load(template_path.read_text(), Loader=CloudFormationLoader)  # noqa: S506
        resolver = _Resolver(template, parameter_overrides or {}, region)
        defaults: Mapping[str, Any] = (template.get("Globals") or {}).get("Function") or {}
        functions: dict[str, LocalFunction] = {}
        routes: list[Route] = []
        authorizers: set[str] = set()
        for logical_id, resource in (template.get("Resources") or {}).items():
            properties = resource.get("Properties") or {}
            if resource.get("Type") == "AWS::Serverless::HttpApi":
                authorizers.add(str((properties.get("Auth") or {}).get("DefaultAuthorizer", "NONE")))
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            if "Condition" in resource and not resolver.condition(resource["Condition"], logical_id):
                continue
            events = [e for e in (properties.get("Events") or {}).values() if e.get("Type") == "HttpApi"]
            if not events:
                continue
            merged = {**defaults, **properties}
            if "Handler" not in merged or "CodeUri" not in merged:
                raise TemplateError(f"{logical_id}: only zip functions (Handler and CodeUri) run locally")
            variables = {
                **((defaults.get("Environment") or {}).get("Variables") or {}),
                **((properties.get("Environment") or {}).get("Variables") or {}),
            }
            environment_values = resolver.value(variables, f"{logical_id} Environment.Variables")
            functions[logical_id] = LocalFunction(
                logical_id=logical_id,
                handler=str(resolver.value(merged["Handler"], f"{logical_id} Handler")),
                code_uri=(template_path.parent / str(resolver.value(merged["CodeUri"], logical_id))).resolve(),
                environment={
                    name: _environment_value(value, f"{logical_id} Environment.Variables.{name}")
                    for name, value in environment_values.items()
                },
                memory_size=int(resolver.value(merged.get("MemorySize", 128), f"{logical_id} MemorySize")),
                timeout=int(resolver.value(merged.get("Timeout", 3), f"{logical_id} Timeout")),
            )
            for event in events:
                routes.append(_route(logical_id, event.get("Properties") or {}))
                auth = (event.get("Properties") or {}).get("Auth") or {}
                if "Authorizer" in auth:
                    authorizers.add(str(auth["Authorizer"]))
        return cls(
            functions,
            routes,
            authorizers=authorizers - {"NONE"},
            port=port,
            environment=environment,
            region=region,
        )

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, once started."""
        if self._server is None:
            raise RuntimeError("LocalApi is not started")
        host, port = self._server.address
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Import every handler (the init phase, failing loudly) and serve in a background thread."""
        for function in self.functions.values():
            self._apply_environment(function)
            code_root = str(function.code_uri)
            if code_root not in sys.path:
                sys.path.insert(0, code_root)  # what the runtime does with /var/task
            module_name, _, attribute = function.handler.rpartition(".")
            self._handlers[function.logical_id] = getattr(importlib.import_module(module_name), attribute)
        self._server = LoopbackHttpServer(_request_handler(self), "local-api", self._port)
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
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        source_ip: str = "127.0.0.1",
    ) -> dict[str, Any]:
        """The payload-2.0 event API Gateway sends for `METHOD target` (target = path?query)."""
        return self._route_and_event(method, target, headers, body, source_ip)[1]

    def _route_and_event(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[Route, dict[str, Any]]:
        raw_path, _, raw_query = target.partition("?")
        route, path_parameters = self.match(method, unquote(raw_path))
        joined: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in headers:
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
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": joined.get("user-agent", ""),
                },
                "requestId": base64.b64encode(uuid.uuid4().bytes[:12]).decode(),
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

    def invoke(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        source_ip: str = "127.0.0.1",
    ) -> LocalResponse:
        """Route the request, invoke the function (one at a time) and map its result back."""
        try:
            route, event = self._route_and_event(method, target, headers, body, source_ip)
        except RouteNotFound:
            return _json_response(HTTPStatus.NOT_FOUND, "Not Found")
        function = self.functions[route.function]
        context = LambdaContext(
            function_name=function.logical_id,
            memory_limit_in_mb=function.memory_size,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{function.logical_id}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + function.timeout,
            log_group_name=f"/aws/lambda/{function.logical_id}",
        )
        with self._invoke_lock:
            self._apply_environment(function)
            try:
                result = self._handlers[function.logical_id](event, context)
                response = _to_client(result)
            except Exception:
                traceback.print_exc()  # what the function's log would show
                response = _json_response(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
        response.headers.append(("apigw-requestid", event["requestContext"]["requestId"]))
        return response

    def _apply_environment(self, function: LocalFunction) -> None:
        """The function's environment: what the runtime sets, the template's variables, then credentials."""
        environment = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.logical_id}",
            "AWS_SAM_LOCAL": "true",  # as `sam local` sets it: Powertools then skips X-Ray
            "_HANDLER": function.handler,
            **function.environment,
            **self._environment,
        }
        for name in (*_NOT_IN_LAMBDA, *(self._applied - set(environment))):
            os.environ.pop(name, None)
        os.environ.update(environment)
        self._applied = set(environment)


def _route(function: str, properties: Mapping[str, Any]) -> Route:
    if str(properties.get("PayloadFormatVersion", "2.0")) != "2.0":
        raise TemplateError(f"{function}: only HttpApi payload format 2.0 is served locally")
    if "Path" not in properties or "Method" not in properties:
        raise TemplateError(f"{function}: an HttpApi event without Path and Method ($default) is not served")
    path, method = str(properties["Path"]), str(properties["Method"]).upper()
    if "+}" in path:
        raise TemplateError(f"{function}: greedy path parameters ({path}) are not served locally")
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return Route(method, path, function, re.compile(pattern))


def _request_handler(api: LocalApi) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            response = api.invoke(self.command, self.path, self.headers.items(), body, self.client_address[0])
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    return RequestHandler
