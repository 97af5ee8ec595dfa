"""A local API Gateway HTTP API (payload format 2.0) serving the functions that template.yaml declares.

The API comes from the template itself (its AWS::ApiGatewayV2 Route, Integration and Authorizer
resources, and the Api's CorsConfiguration), and so do handlers and environment, so the local API cannot
drift from the deployed one. Refs to the template's own resources resolve to local stand-ins (a name or
an ARN, as CloudFormation's Ref returns for the type) or to what really exists locally; other intrinsics
are resolved, and anything else fails loudly. HTTP itself is waitress's (threaded, strict HTTP/1.1
parsing); this module answers what API Gateway answers itself: CORS preflights, a refused token or
signature (local/jwt_authorizer.py, local/iam_authorizer.py), no route, a payload over 10 MB, a function
past its timeout or one that raised.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import yaml
from waitress import wasyncore  # type: ignore[import-untyped]
from waitress.server import create_server  # type: ignore[import-untyped]

from local.iam_authorizer import IamAuthorizer
from local.jwt_authorizer import JwtAuthorizer, Refused
from local.running import Running

ACCOUNT_ID = "123456789012"
# HTTP API's own limits: the request payload, and how long it waits for an integration.
PAYLOAD_LIMIT_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 30
# Execution environments per function. Lambda gives each of a burst's invocations an environment of its own,
# with its own CPU; here they all share one interpreter (one core's worth of Python at a time), so more
# environments than this add no throughput: only time-sliced invocations, each slower than in Lambda by the
# number of others, and the stand-ins behind them (moto answers DynamoDB one request at a time) queued
# longer than any function's own timeouts allow. Invocations past this many wait for a free environment, within
# API Gateway's integration timeout, not the function's. A timed-out invocation gives its environment back while
# its thread runs on (a thread cannot be killed, unlike Lambda's environment), so after timeouts more than this
# many invocations may really run at once.
EXECUTION_ENVIRONMENTS = 4
# What API Gateway answers itself, instead of the function's answer.
NOT_FOUND = (HTTPStatus.NOT_FOUND, "Not Found")
TOO_LARGE = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
# A function past its own Timeout is a failed invocation ("Task timed out"), answered like any other
# failure; only a function still running at the integration timeout (30 s) gets Service Unavailable.
INTEGRATION_TIMED_OUT = (HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")
FUNCTION_FAILED = (HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
# An authorizer's refusals: a token that fails (401), a token without a required scope (403).
REFUSED = {HTTPStatus.UNAUTHORIZED: "Unauthorized", HTTPStatus.FORBIDDEN: "Forbidden"}
# With authentication off (AUTH=none), every request is this one caller, as a JWT authorizer would pass it.
AUTH_NONE_CLAIMS = {"iss": "local:auth-none", "sub": "anonymous"}
AUTH_NONE_NOTE = "authentication is off (AUTH=none)"
_ROUTE, _INTEGRATION = "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration"
_AUTHORIZER, _API = "AWS::ApiGatewayV2::Authorizer", "AWS::ApiGatewayV2::Api"
# A preflight's origin, in a note: shown up to this many characters; suggested as ALLOWED_ORIGINS if it is one.
_ORIGIN_SHOWN = 100
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_LOCAL_STACK_UUID = "00000000-0000-4000-8000-000000000000"
_NO_VALUE = object()  # AWS::NoValue: the key it stands for is left out
# HTTP API hands these media types to the function as text and base64-encodes every other body.
_TEXT_MEDIA_TYPES = ("application/json", "application/xml", "application/javascript")
# The Lambda runtime has no profile; a developer's AWS_PROFILE would override the fake credentials.
_NOT_IN_LAMBDA = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
# Hop-by-hop headers: the connection's business (WSGI forbids an application to set them).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "content-length"}
)
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
    return {f"Fn::{tag}": value}


CloudFormationLoader.add_multi_constructor("!", _long_form)


@dataclass(frozen=True)
class _Kind:
    """How CloudFormation names a resource type: the property that names it, its ARN, what Ref returns."""

    name_property: str
    arn: str  # formatted with partition, region, account and name
    ref: str = "name"  # "name", "arn" or "url"


def _regional(service: str, resource: str) -> str:
    return f"arn:{{partition}}:{service}:{{region}}:{{account}}:{resource}"


_FUNCTION = _Kind("FunctionName", _regional("lambda", "function:{name}"))
_LAYER = _Kind("LayerName", _regional("lambda", "layer:{name}:1"), "arn")
_KINDS: dict[str, _Kind] = {
    # Secrets Manager appends six random characters to the name.
    "AWS::SecretsManager::Secret": _Kind("Name", _regional("secretsmanager", "secret:{name}-AbCdEf"), "arn"),
    "AWS::DynamoDB::Table": _Kind("TableName", _regional("dynamodb", "table/{name}")),
    "AWS::Logs::LogGroup": _Kind("LogGroupName", _regional("logs", "log-group:{name}:*")),
    "AWS::Serverless::Function": _FUNCTION,
    "AWS::Lambda::Function": _FUNCTION,
    "AWS::Serverless::LayerVersion": _LAYER,
    "AWS::Lambda::LayerVersion": _LAYER,
    "AWS::SQS::Queue": _Kind("QueueName", _regional("sqs", "{name}"), "url"),
    "AWS::SNS::Topic": _Kind("TopicName", _regional("sns", "{name}"), "arn"),
    "AWS::S3::Bucket": _Kind("BucketName", "arn:{partition}:s3:::{name}"),
    "AWS::IAM::Role": _Kind("RoleName", "arn:{partition}:iam::{account}:role/{name}"),
    "AWS::SSM::Parameter": _Kind("Name", _regional("ssm", "parameter/{name}")),
    "AWS::Serverless::StateMachine": _Kind("Name", _regional("states", "stateMachine:{name}"), "arn"),
    "AWS::StepFunctions::StateMachine": _Kind("StateMachineName", _regional("states", "stateMachine:{name}"), "arn"),
    "AWS::Events::EventBus": _Kind("Name", _regional("events", "event-bus/{name}")),
}


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::If, Fn::Sub, Fn::Join, Fn::Select, Fn::Split and conditions (with the
    rule functions Fn::Contains, Fn::EachMemberEquals and Fn::EachMemberIn), as CloudFormation would.

    Parameters take their overrides or defaults (an ``AWS::SSM::Parameter::Value<...>`` parameter its
    Default, as no Parameter Store is asked); the template's resources resolve to local stand-ins, or to
    ``physical``: for a resource that really exists locally (moto's), its Ref ("Ref") and attributes. The stack is
    ``stack_name`` (AWS::StackName): "local", or another to see what a deployed stack of that name resolves to.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        overrides: Mapping[str, str],
        region: str,
        physical: Mapping[str, Mapping[str, str]] | None = None,
        stack_name: str = "local",
    ) -> None:
        self._physical: dict[str, Mapping[str, str]] = dict(physical or {})
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        if unknown := sorted(set(overrides) - set(declared)):
            raise TemplateError(f"parameter overrides {unknown} are not parameters of the template")
        self._parameters: dict[str, str | list[str]] = {}
        for name, spec in declared.items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                continue  # only an error if something refers to it
            # A CommaDelimitedList is a list wherever it is used: "" is [""], as CloudFormation has it.
            # CloudFormation trims the spaces around each member, and checks each member against
            # AllowedValues and AllowedPattern.
            listed = spec.get("Type") == "CommaDelimitedList"
            members = [item.strip() for item in str(value).split(",")] if listed else [str(value)]
            allowed, pattern = spec.get("AllowedValues"), spec.get("AllowedPattern")
            for member in members:
                shown = f"{name}={value!r}" + (f" (its member {member!r})" if listed else "")
                if allowed is not None and member not in [str(a) for a in allowed]:
                    raise TemplateError(f"parameter {shown} is not one of {allowed}")
                if pattern is not None and not re.fullmatch(pattern, member):
                    raise TemplateError(f"parameter {shown} does not match {pattern}")
            self._parameters[name] = members if listed else str(value)
        self._pseudo: dict[str, object] = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/{_LOCAL_STACK_UUID}",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self._resources: Mapping[str, Any] = template.get("Resources") or {}

    def value(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item, where) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._ref(arg, where)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(logical_id, str(self.value(attribute, where)), where)
            if key == "Fn::If":
                condition, if_true, if_false = arg
                return self.value(if_true if self.condition(condition, where) else if_false, where)
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(item) for item in self.value(items, where))
            if key == "Fn::Select":
                index, items = arg
                return self.value(items, where)[int(self.value(index, where))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(self.value(text, where)).split(delimiter)
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
        # The rule functions (a template's Rules use them): a list against a value, or another list.
        if key == "Fn::Contains":
            members, wanted = (self.value(side, where) for side in arg)
            return str(wanted) in self._members(members, key, where)
        if key == "Fn::EachMemberEquals":
            members, wanted = (self.value(side, where) for side in arg)
            return all(member == str(wanted) for member in self._members(members, key, where))
        if key == "Fn::EachMemberIn":
            members, allowed = (self.value(side, where) for side in arg)
            return set(self._members(members, key, where)) <= set(self._members(allowed, key, where))
        raise TemplateError(f"{where}: {key} is not supported in a condition by the local gateway")

    @staticmethod
    def _members(value: Any, function: str, where: str) -> list[str]:
        if not isinstance(value, list):
            raise TemplateError(f"{where}: {function} needs a list, got {value!r}")
        return [str(member) for member in value]

    def _ref(self, name: str, where: str) -> object:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._physical and "Ref" in self._physical[name]:
            return self._physical[name]["Ref"]
        if name in self._resources:
            kind = self._kind(name, where)
            if kind is None:
                return name  # a type without a known Ref: its logical id stands in
            return {"name": self._name, "arn": self._arn, "url": self._queue_url}[kind.ref](name, where)
        raise TemplateError(f"{where}: Ref {name} has no value (no such parameter, or no Default/override)")

    def _get_att(self, logical_id: str, attribute: str, where: str) -> str:
        if logical_id not in self._resources:
            raise TemplateError(f"{where}: Fn::GetAtt {logical_id}.{attribute} names no resource of the template")
        self._kind(logical_id, where)  # refuses a resource its condition leaves out
        if attribute in self._physical.get(logical_id, {}):
            return self._physical[logical_id][attribute]
        if attribute == "Arn" or (attribute.endswith("Arn") and attribute[:-3] in self._type(logical_id)):
            return self._arn(logical_id, where)
        if attribute.endswith("Name"):
            return self._name(logical_id, where)
        if attribute == "QueueUrl":
            return self._queue_url(logical_id, where)
        return f"{self._name(logical_id, where)}-{attribute}"  # a placeholder of the right kind: a string

    def _type(self, logical_id: str) -> str:
        return str(self._resources[logical_id].get("Type", ""))

    def _kind(self, logical_id: str, where: str) -> _Kind | None:
        condition = self._resources[logical_id].get("Condition")
        if condition is not None and not self.condition(condition, logical_id):
            raise TemplateError(
                f"{where}: {logical_id} is a resource its condition {condition} leaves out with these parameters"
            )
        return _KINDS.get(self._type(logical_id))

    def _name(self, logical_id: str, where: str) -> str:
        kind = _KINDS.get(self._type(logical_id))
        properties = self._resources[logical_id].get("Properties") or {}
        if kind is not None and kind.name_property in properties:
            return str(self.value(properties[kind.name_property], f"{logical_id}.{kind.name_property}"))
        return f"local-{logical_id}"  # CloudFormation generates <stack>-<logical id>-<random>

    def _arn(self, logical_id: str, where: str) -> str:
        kind = _KINDS.get(self._type(logical_id))
        pseudo = {"partition": "aws", "region": self._pseudo["AWS::Region"], "account": ACCOUNT_ID}
        if kind is None:  # arn:aws:<service>:...:<logical id>, the service read off the type
            service = self._type(logical_id).split("::")[1].lower() if "::" in self._type(logical_id) else "local"
            return _regional(service, logical_id).format(**pseudo)
        return kind.arn.format(name=self._name(logical_id, where).lstrip("/"), **pseudo)

    def _queue_url(self, logical_id: str, where: str) -> str:
        region = self._pseudo["AWS::Region"]
        return f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{self._name(logical_id, where)}"

    def _sub(self, arg: Any, where: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.value(variables[name], where))
            logical_id, _, attribute = name.partition(".")
            if attribute and logical_id in self._resources:
                return self._get_att(logical_id, attribute, where)
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
    handler: str  # module.attribute, e.g. voice_access.edge.app.lambda_handler
    code_uri: Path
    environment: dict[str, str]
    memory_size: int
    timeout: int


@dataclass(frozen=True)
class Route:
    """An AWS::ApiGatewayV2::Route: METHOD /path -> the function its integration invokes, and who may call."""

    method: str
    path: str
    function: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    authorization: str = "NONE"  # AuthorizationType: NONE, JWT or AWS_IAM
    authorizer: str | None = None  # the JWT authorizer's logical id
    scopes: tuple[str, ...] | None = None  # AuthorizationScopes; None: the route has none

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the client sent it; ``target`` is path?query, percent-encoding intact."""

    method: str
    target: str
    headers: Iterable[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class LocalResponse:
    """What the gateway answers the client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class AccessRecord:
    """One request as the gateway served it; ``note`` says what API Gateway answered itself, and why."""

    started: datetime
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    note: str = ""


class RouteNotFound(LookupError):
    """No route of the template matches the request."""


class FunctionTimedOut(Exception):
    """The function did not return within its timeout (it keeps running, as a thread cannot be stopped)."""


class NoEnvironmentFree(FunctionTimedOut):
    """Every execution environment of the function stayed busy until the deadline: the invocation never began."""


class FunctionFailed(Exception):
    """The function raised; ``__cause__`` is what it raised."""


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


def _gateway_response(answer: tuple[HTTPStatus, str]) -> LocalResponse:
    status, message = answer
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return LocalResponse(status, [("content-type", "application/json")], body)


def _refusal(refused: Refused) -> LocalResponse:
    response = _gateway_response((refused.status, refused.message or REFUSED[refused.status]))
    if refused.challenge is not None:
        response.headers.append(("www-authenticate", refused.challenge))
    return response


@dataclass(frozen=True)
class Cors:
    """An HTTP API's CorsConfiguration, which API Gateway applies itself (http-api-cors.html)."""

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

    def preflight(self, origin: str | None) -> LocalResponse:
        """API Gateway's own answer to a preflight: 204, with the CORS headers if the origin is allowed."""
        allow = self.allowed_origin(origin)
        if allow is None:
            return LocalResponse(HTTPStatus.NO_CONTENT, [], b"")
        headers = [("access-control-allow-origin", allow)]
        if self.methods:
            headers.append(("access-control-allow-methods", ",".join(self.methods)))
        if self.headers:
            headers.append(("access-control-allow-headers", ",".join(self.headers)))
        if self.max_age is not None:
            headers.append(("access-control-max-age", str(self.max_age)))
        if self.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return LocalResponse(HTTPStatus.NO_CONTENT, headers, b"")

    def applied(self, response: LocalResponse, origin: str | None) -> LocalResponse:
        """Any other answer (the function's or the gateway's own): the integration's CORS headers dropped,
        as API Gateway ignores them, and the configuration's added for an allowed origin."""
        headers = [(name, value) for name, value in response.headers if not name.lower().startswith("access-control-")]
        allow = self.allowed_origin(origin)
        if allow is not None:
            headers.append(("access-control-allow-origin", allow))
            if self.expose_headers:
                headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
            if self.credentials:
                headers.append(("access-control-allow-credentials", "true"))
        return LocalResponse(response.status, headers, response.body)


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


class _Environments:
    """os.environ holds one function's environment at a time, as its container would.

    Invocations of that function run side by side; another function's wait until they are done. With
    one function (or one at a time) os.environ is set once and never touched per request.
    """

    def __init__(self, apply: Callable[[LocalFunction], None]) -> None:
        self._apply = apply
        self._changed = threading.Condition()
        self._current: str | None = None
        self._running = 0

    def applied(self, function: LocalFunction) -> None:
        """``function``'s environment is in place (the init phase set it)."""
        with self._changed:
            self._current = function.logical_id

    def enter(self, function: LocalFunction, deadline: float) -> bool:
        """Take os.environ for ``function``; False if the deadline passed while another function held it."""
        with self._changed:
            free = self._changed.wait_for(
                lambda: self._running == 0 or self._current == function.logical_id,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            if not free:
                return False
            if self._current != function.logical_id:
                self._apply(function)
                self._current = function.logical_id
            self._running += 1
            return True

    def leave(self) -> None:
        with self._changed:
            self._running -= 1
            if self._running == 0:
                self._changed.notify_all()


class LocalApi(Running):
    """The HTTP API of a SAM template, served on loopback with the functions imported in-process."""

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        routes: Iterable[Route],
        *,
        authorizers: Mapping[str, JwtAuthorizer] | None = None,
        cors: Cors | None = None,
        authenticate: bool = True,
        port: int = 0,
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        on_request: Callable[[AccessRecord], None] | None = None,
        environments: int = EXECUTION_ENVIRONMENTS,
    ) -> None:
        self.functions = dict(functions)
        self.routes = tuple(routes)
        self.authorizers = dict(authorizers or {})  # JWT authorizers by logical id
        self.iam = IamAuthorizer(region, ACCOUNT_ID)
        self.cors = cors
        self.authenticate = authenticate
        self.region = region
        self.on_request = on_request
        self._port = port
        self._environment = dict(environment or {})
        self._handlers: dict[str, Handler] = {}
        self._applied: set[str] = set()  # variables the last function set: the next one does not see them
        self._environments = _Environments(self._apply_environment)
        # One invocation at a time per execution environment, as in Lambda: a slot per environment.
        self._free = {logical_id: threading.BoundedSemaphore(environments) for logical_id in self.functions}
        self._waiting = dict.fromkeys(self.functions, 0)  # invocations waiting for an environment, by function
        self._waiting_changed = threading.Condition()
        self._server: _Server | None = None

    @classmethod
    def from_template(
        cls,
        template_path: Path | str,
        parameter_overrides: Mapping[str, str] | None = None,
        *,
        physical: Mapping[str, Mapping[str, str]] | None = None,
        discovery: Mapping[str, str] | None = None,
        authenticate: bool = True,
        port: int = 0,
        environment: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        on_request: Callable[[AccessRecord], None] | None = None,
        environments: int = EXECUTION_ENVIRONMENTS,
    ) -> LocalApi:
        """The API of the template's AWS::ApiGatewayV2 resources present with these parameters: its routes,
        the functions their integrations invoke, its JWT authorizers and its CORS configuration.

        ``physical``: Resolver's (e.g. the user pool that exists locally); ``discovery``: an issuer's URL ->
        the URL of its OIDC discovery document, where it is not the issuer's own; ``authenticate=False``
        (AUTH=none) lets every request in as one anonymous caller; ``environment`` is what the runtime adds
        (credentials); ``environments``: how many invocations of one function run at once.
        """
        template_path = Path(template_path)
        template = yaml.load(template_path.read_text(), Loader=CloudFormationLoader)  # noqa: S506
        resolver = Resolver(template, parameter_overrides or {}, region, physical)
        declared: Mapping[str, Any] = template.get("Resources") or {}
        resources = {
            logical_id: resource
            for logical_id, resource in declared.items()
            if "Condition" not in resource or resolver.condition(resource["Condition"], logical_id)
        }
        routes: list[Route] = []
        apis: set[str] = set()
        for logical_id, resource in resources.items():
            if resource.get("Type") == _ROUTE:
                properties = resolver.value(resource.get("Properties") or {}, logical_id)
                apis.add(str(properties.get("ApiId")))
                function = _integrated_function(logical_id, properties, resources, resolver)
                routes.append(_route(logical_id, properties, function))
        defaults: Mapping[str, Any] = (template.get("Globals") or {}).get("Function") or {}
        functions = {
            route.function: _local_function(
                route.function, resources[route.function], defaults, resolver, template_path
            )
            for route in routes
        }
        authorizers = {
            route.authorizer: _jwt_authorizer(route.authorizer, resources, resolver, discovery or {})
            for route in routes
            if route.authorizer is not None
        }
        if len(apis) > 1:
            raise TemplateError(f"routes of several APIs ({', '.join(sorted(apis))}): the local gateway serves one")
        cors = _cors(next(iter(apis)), resources, resolver) if apis else None
        return cls(
            functions,
            routes,
            authorizers=authorizers,
            cors=cors,
            authenticate=authenticate,
            port=port,
            environment=environment,
            region=region,
            on_request=on_request,
            environments=environments,
        )

    @property
    def authorizer(self) -> str:
        """Who may call, in a line for a person."""
        kinds = {route.authorization for route in self.routes} - {"NONE"}
        if not kinds:
            return "none: no route requires authorization"
        if not self.authenticate:
            return f"none: {AUTH_NONE_NOTE}, every request is {AUTH_NONE_CLAIMS['sub']} of {AUTH_NONE_CLAIMS['iss']}"
        described = [authorizer.describe() for authorizer in self.authorizers.values()]
        if "AWS_IAM" in kinds:
            described.append(self.iam.describe())
        return "; ".join(described)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, once started."""
        if self._server is None:
            raise RuntimeError("LocalApi is not started")
        return f"http://127.0.0.1:{self._server.port}"

    def load(self) -> Self:
        """The init phase: import every handler with its function's environment, failing loudly."""
        for function in self.functions.values():
            if function.logical_id in self._handlers:
                continue
            self._apply_environment(function)
            self._environments.applied(function)
            code_root = str(function.code_uri)
            if code_root not in sys.path:
                sys.path.insert(0, code_root)  # what the runtime does with /var/task
            module_name, _, attribute = function.handler.rpartition(".")
            self._handlers[function.logical_id] = getattr(importlib.import_module(module_name), attribute)
        return self

    def start(self) -> Self:
        """Check the routes can be authorized here (TemplateError), take the port (OSError if it is in use),
        import every handler, then serve in the background."""
        self._check_authorization()
        server = _Server(self._wsgi, self._port)
        try:
            self.load()
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

    def _check_authorization(self) -> None:
        if not self.authenticate:
            return
        for logical_id, authorizer in self.authorizers.items():
            if not authorizer.discovery_url.startswith(("https://", "http://")):
                raise TemplateError(
                    f"{logical_id}: the JWT issuer is {authorizer.issuer!r}, not a URL (a stand-in for a resource "
                    "that does not exist locally: give its Ref and attributes as `physical`, or its discovery "
                    "document's URL in `discovery`), or turn authentication off locally (AUTH=none)"
                )

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

    def context(self, logical_id: str, timeout: float | None = None) -> LambdaContext:
        """A fresh Lambda context for one invocation of the function, its deadline ``timeout`` from now."""
        function = self.functions[logical_id]
        return LambdaContext(
            function_name=function.logical_id,
            memory_limit_in_mb=function.memory_size,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{function.logical_id}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + (function.timeout if timeout is None else timeout),
            log_group_name=f"/aws/lambda/{function.logical_id}",
        )

    def call(self, logical_id: str, event: dict[str, Any], context: LambdaContext | None = None) -> Any:
        """Invoke the function with ``event`` in a free execution environment and return its result, by its
        context's deadline.

        FunctionTimedOut past the deadline (the call goes on in its thread, its result unused), or
        NoEnvironmentFree if none freed by then; FunctionFailed if the function raised. Invocations of one
        function run concurrently, one per environment. Call it once the handlers are imported (``load`` or
        ``start``).
        """
        context = context or self.context(logical_id)
        with self._execution_environment(logical_id, context.deadline):
            return self._invoke(logical_id, event, context)

    @contextlib.contextmanager
    def _execution_environment(self, logical_id: str, deadline: float) -> Iterator[None]:
        """An execution environment of the function, held for one invocation; NoEnvironmentFree if every one
        stays busy past ``deadline`` (on time.monotonic())."""
        free = self._free[logical_id]
        if not free.acquire(blocking=False) and not self._wait_for_environment(logical_id, deadline):
            raise NoEnvironmentFree(f"{logical_id}: no execution environment freed before the deadline")
        try:
            yield
        finally:
            free.release()

    def _wait_for_environment(self, logical_id: str, deadline: float) -> bool:
        """Whether an execution environment of the function freed before ``deadline``, counted as waiting meanwhile."""
        with self._waiting_changed:
            self._waiting[logical_id] += 1
            self._waiting_changed.notify_all()
        try:
            return self._free[logical_id].acquire(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            with self._waiting_changed:
                self._waiting[logical_id] -= 1
                self._waiting_changed.notify_all()

    def wait_for_waiting(self, logical_id: str, count: int, timeout: float) -> bool:
        """Whether ``count`` invocations of the function wait for an execution environment, now or within
        ``timeout`` seconds (a test's way to know an invocation is queued)."""
        with self._waiting_changed:
            return self._waiting_changed.wait_for(lambda: self._waiting[logical_id] == count, timeout)

    def _invoke(self, logical_id: str, event: dict[str, Any], context: LambdaContext) -> Any:
        function = self.functions[logical_id]
        if not self._environments.enter(function, context.deadline):
            raise FunctionTimedOut(f"{logical_id} waited past its deadline for another function's environment")
        outcome: list[tuple[bool, Any]] = []
        done = threading.Event()

        def invoke() -> None:
            try:
                outcome.append((True, self._handlers[logical_id](event, context)))
            except BaseException as error:  # reported to the caller, as Lambda reports an unhandled error
                outcome.append((False, error))
            finally:
                done.set()

        try:
            threading.Thread(target=invoke, name=f"invoke-{context.aws_request_id}", daemon=True).start()
            finished = done.wait(max(0.0, context.deadline - time.monotonic()))
        finally:
            self._environments.leave()
        if not finished:
            raise FunctionTimedOut(f"{logical_id} did not return within {function.timeout} s")
        succeeded, value = outcome[0]
        if not succeeded:
            raise FunctionFailed(f"{logical_id} raised {type(value).__name__}") from value
        return value

    def _serve_request(self, request: HttpRequest) -> tuple[LocalResponse, str, str]:
        """Answer a preflight, or route the request, authorize it, invoke the function and map its result
        back, as API Gateway does: the answer, its request id, and what the gateway answered itself, and
        why (empty: the function's answer)."""
        origin = _header_value(request.headers, "origin")
        preflight = request.method == "OPTIONS" and origin is not None
        preflight = preflight and bool(_header_value(request.headers, "access-control-request-method"))
        if self.cors is not None and preflight:
            request_id = _request_id()
            response = self.cors.preflight(origin)
            response.headers.append(("apigw-requestid", request_id))
            note = "CORS preflight"
            if self.cors.allowed_origin(origin) is None:
                note = self.cors.refusal(origin or "")
            return response, request_id, note
        try:
            route, event = self._route_and_event(request)
        except RouteNotFound:
            request_id = _request_id()
            response, note = _gateway_response(NOT_FOUND), "no such route"
            if preflight:  # and no CORS: no route is OPTIONS
                example = origin if origin and _suggestable(origin) else "..."
                note = f"no CORS: this API allows no origins (ALLOWED_ORIGINS={example} make run)"
        else:
            request_id = event["requestContext"]["requestId"]
            try:
                self._authorize(route, event, request)
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
                response, note = self._invoke_route(route, event)
        if self.cors is not None:
            response = self.cors.applied(response, origin)
        response.headers.append(("apigw-requestid", request_id))
        return response, request_id, note

    def _authorize(self, route: Route, event: dict[str, Any], request: HttpRequest) -> None:
        """The route's authorizer, as API Gateway runs it before the function: its context into the event,
        or Refused."""
        if route.authorization == "NONE":
            return
        context = event["requestContext"]
        if not self.authenticate:
            context["authorizer"] = {"jwt": {"claims": dict(AUTH_NONE_CLAIMS), "scopes": None}}
        elif route.authorization == "AWS_IAM":
            context["authorizer"] = self.iam.authorize(request.method, request.target, request.headers, request.body)
        elif route.authorizer is not None:
            authorization = event["headers"].get("authorization")
            context["authorizer"] = self.authorizers[route.authorizer].authorize(authorization, route.scopes)

    def _invoke_route(self, route: Route, event: dict[str, Any]) -> tuple[LocalResponse, str]:
        function = self.functions[route.function]
        # API Gateway stops waiting at its integration timeout, counted from now, even if the function's is
        # longer; the function's own counts from the start of its invocation, once an environment is free.
        integration_deadline = time.monotonic() + INTEGRATION_TIMEOUT_SECONDS
        try:
            with self._execution_environment(route.function, integration_deadline):
                left = integration_deadline - time.monotonic()
                context = self.context(route.function, min(function.timeout, left))
                cut_by_integration = left <= function.timeout
                result = self._invoke(route.function, event, context)
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
            request_id = _request_id()
            response, note = _gateway_response(TOO_LARGE), f"payload over {PAYLOAD_LIMIT_BYTES // 2**20} MB"
            if self.cors is not None:
                response = self.cors.applied(response, _header_value(request_headers, "origin"))
            response.headers.append(("apigw-requestid", request_id))
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
            f"{response.status} {_reason(response.status)}",
            [*headers, ("Content-Length", str(len(response.body)))],
        )
        if self.on_request is not None:
            if not self.authenticate:
                note = f"{note}; {AUTH_NONE_NOTE}" if note else AUTH_NONE_NOTE
            duration_ms = (time.perf_counter() - clock) * 1000
            path = target.partition("?")[0]
            self.on_request(AccessRecord(started, method, path, response.status, duration_ms, request_id, note))
        return iter([b""] if method == "HEAD" else [response.body])

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


def printable(text: str, limit: int | None = None) -> str:
    """``text`` from a request or a function, fit for a terminal line: clipped to ``limit`` characters, and
    every character that is not printable escaped (ESC, CR, LF, U+2028, ...), so that it cannot move the
    cursor, recolour the terminal or start a line of its own."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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


def _request_id() -> str:
    return base64.b64encode(uuid.uuid4().bytes[:12]).decode()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


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


def _route(logical_id: str, properties: Mapping[str, Any], function: str) -> Route:
    """A Route resource's resolved properties as the gateway serves them."""
    method, _, path = str(properties.get("RouteKey", "")).partition(" ")
    if not path.startswith("/"):
        raise TemplateError(f"{logical_id}: RouteKey {properties.get('RouteKey')!r} is not served locally ($default)")
    if "+}" in path:
        raise TemplateError(f"{logical_id}: greedy path parameters ({path}) are not served locally")
    authorization = str(properties.get("AuthorizationType", "NONE"))
    if authorization not in ("NONE", "JWT", "AWS_IAM"):
        raise TemplateError(f"{logical_id}: AuthorizationType {authorization} is not served locally")
    authorizer = str(properties["AuthorizerId"]) if authorization == "JWT" and "AuthorizerId" in properties else None
    if authorization == "JWT" and authorizer is None:
        raise TemplateError(f"{logical_id}: AuthorizationType JWT needs an AuthorizerId")
    scopes = [str(scope) for scope in properties.get("AuthorizationScopes") or [] if scope]
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return Route(
        method.upper(),
        path,
        function,
        re.compile(pattern),
        authorization=authorization,
        authorizer=authorizer,
        scopes=tuple(scopes) if scopes else None,
    )


def _integrated_function(
    logical_id: str, properties: Mapping[str, Any], resources: Mapping[str, Any], resolver: Resolver
) -> str:
    """The logical id of the function a route's integration invokes (Lambda proxy, payload format 2.0)."""
    target = str(properties.get("Target", ""))
    integration_id = target.removeprefix("integrations/")
    integration = resources.get(integration_id)
    if not target.startswith("integrations/") or integration is None or integration.get("Type") != _INTEGRATION:
        raise TemplateError(f"{logical_id}: Target {target!r} names no AWS::ApiGatewayV2::Integration of the template")
    integrated = resolver.value(integration.get("Properties") or {}, integration_id)
    if integrated.get("IntegrationType") != "AWS_PROXY" or str(integrated.get("PayloadFormatVersion")) != "2.0":
        raise TemplateError(f"{integration_id}: only Lambda proxy integrations with payload format 2.0 are served")
    uri = str(integrated.get("IntegrationUri", ""))
    for function_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        arn = str(resolver.value({"Fn::GetAtt": [function_id, "Arn"]}, integration_id))
        name = str(resolver.value({"Ref": function_id}, integration_id))
        if uri in (arn, name) or f"{arn}/invocations" in uri:
            return function_id
    raise TemplateError(f"{integration_id}: IntegrationUri {uri} invokes none of the template's functions")


def _local_function(
    logical_id: str, resource: Mapping[str, Any], defaults: Mapping[str, Any], resolver: Resolver, template_path: Path
) -> LocalFunction:
    properties = resource.get("Properties") or {}
    merged = {**defaults, **properties}
    if "Handler" not in merged or "CodeUri" not in merged:
        raise TemplateError(f"{logical_id}: only zip functions (Handler and CodeUri) run locally")
    variables = {
        **((defaults.get("Environment") or {}).get("Variables") or {}),
        **((properties.get("Environment") or {}).get("Variables") or {}),
    }
    environment_values = resolver.value(variables, f"{logical_id} Environment.Variables")
    return LocalFunction(
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


def _jwt_authorizer(
    logical_id: str, resources: Mapping[str, Any], resolver: Resolver, discovery: Mapping[str, str]
) -> JwtAuthorizer:
    resource = resources.get(logical_id)
    if resource is None or resource.get("Type") != _AUTHORIZER:
        raise TemplateError(f"AuthorizerId {logical_id} names no AWS::ApiGatewayV2::Authorizer of the template")
    properties = resolver.value(resource.get("Properties") or {}, logical_id)
    if properties.get("AuthorizerType") != "JWT":
        raise TemplateError(f"{logical_id}: only JWT authorizers are served locally")
    if properties.get("IdentitySource") != ["$request.header.Authorization"]:
        raise TemplateError(f"{logical_id}: only the identity source $request.header.Authorization is served locally")
    configuration = properties.get("JwtConfiguration") or {}
    issuer = str(configuration.get("Issuer", ""))
    audiences = [str(audience) for audience in configuration.get("Audience") or []]
    return JwtAuthorizer(issuer, audiences, discovery.get(issuer))


def _cors(api_id: str, resources: Mapping[str, Any], resolver: Resolver) -> Cors | None:
    """The API's CorsConfiguration resolved under the parameters; None when it has none."""
    api = resources.get(api_id)
    if api is None or api.get("Type") != _API:
        raise TemplateError(f"ApiId {api_id} names no AWS::ApiGatewayV2::Api of the template")
    node = (api.get("Properties") or {}).get("CorsConfiguration")
    configuration = resolver.value(node, f"{api_id}.CorsConfiguration")
    if not isinstance(configuration, dict):  # none, or AWS::NoValue
        return None

    def strings(key: str) -> tuple[str, ...]:
        return tuple(str(item).strip() for item in configuration.get(key) or [] if str(item).strip())

    max_age = configuration.get("MaxAge")
    return Cors(
        origins=strings("AllowOrigins"),
        methods=strings("AllowMethods"),
        headers=strings("AllowHeaders"),
        expose_headers=strings("ExposeHeaders"),
        max_age=int(max_age) if max_age is not None else None,
        credentials=str(configuration.get("AllowCredentials", "false")).lower() == "true",
    )


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
