"""The HTTP API a SAM template declares, as the local gateway serves it, and the functions it declares.

Read from the template's own AWS::ApiGatewayV2 resources, resolved under the parameter overrides
(local/cloudformation.py): each Route present, the function its Integration invokes (a Lambda proxy with payload
format 2.0) with its handler, code, environment, memory and timeout (Globals.Function under its own Properties),
the JWT Authorizers the routes name, and the Api's CorsConfiguration. What the local gateway cannot serve as API
Gateway would is refused (TemplateError). ``read_functions`` reads every AWS::Serverless::Function present, routed
or not, with how Lambda invokes it asynchronously (EventInvokeConfig, ReservedConcurrentExecutions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local import cloudformation
from local.cloudformation import Resolver, TemplateError
from local.cors import Cors
from local.jwt_authorizer import JwtAuthorizer

_ROUTE, _INTEGRATION = "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration"
_AUTHORIZER, _API = "AWS::ApiGatewayV2::Authorizer", "AWS::ApiGatewayV2::Api"
# A function's properties that say how Lambda invokes it, besides its code and environment.
_INVOKED = ("Layers", "EventInvokeConfig", "ReservedConcurrentExecutions")


# What Lambda does with a failed asynchronous invocation when the function has no EventInvokeConfig.
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_EVENT_AGE_SECONDS = 6 * 60 * 60


@dataclass(frozen=True)
class EventInvokeConfig:
    """How Lambda handles the function's asynchronous invocations: retries of a failed one, how long an event may
    wait, and the SQS queue (its ARN) a failed or expired event is sent to (None: none)."""

    maximum_retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    maximum_event_age_seconds: int = DEFAULT_EVENT_AGE_SECONDS
    on_failure: str | None = None


@dataclass(frozen=True)
class LocalFunction:
    """One AWS::Serverless::Function as the Lambda runtime would see it."""

    logical_id: str
    handler: str  # module.attribute, e.g. voice_access.edge.app.lambda_handler
    code_uri: Path
    environment: dict[str, str]
    memory_size: int
    timeout: int
    name: str = ""  # its FunctionName, as Ref gives it
    arn: str = ""
    layers: tuple[str, ...] = ()  # the ARNs of its layers
    event_invoke: EventInvokeConfig = EventInvokeConfig()
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions; None: unreserved


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
class HttpApi:
    """The routes of one AWS::ApiGatewayV2::Api, the functions they invoke, their JWT authorizers (by logical id)
    and the Api's CORS (None: it has none)."""

    functions: dict[str, LocalFunction]
    routes: tuple[Route, ...]
    authorizers: dict[str, JwtAuthorizer]
    cors: Cors | None


def read_api(
    template_path: Path | str,
    overrides: Mapping[str, str],
    region: str,
    physical: Mapping[str, Mapping[str, str]] | None = None,
    discovery: Mapping[str, str] | None = None,
) -> HttpApi:
    """The API of the template's AWS::ApiGatewayV2 resources present under ``overrides``.

    ``physical``: Resolver's (e.g. the user pool that exists locally); ``discovery``: an issuer's URL -> the URL
    of its OIDC discovery document, where it is not the issuer's own.
    """
    template_path = Path(template_path)
    template = cloudformation.load(template_path)
    resolver = Resolver(template, overrides, region, physical)
    resources = resolver.present()
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
        route.function: _local_function(route.function, resources[route.function], defaults, resolver, template_path)
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
    return HttpApi(functions, tuple(routes), authorizers, cors)


def read_functions(
    template_path: Path | str,
    overrides: Mapping[str, str],
    region: str,
    physical: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, LocalFunction]:
    """Every AWS::Serverless::Function of the template present under ``overrides``, by logical id, whether a route
    invokes it or not; ``physical``: Resolver's."""
    template_path = Path(template_path)
    template = cloudformation.load(template_path)
    resolver = Resolver(template, overrides, region, physical)
    defaults: Mapping[str, Any] = (template.get("Globals") or {}).get("Function") or {}
    return {
        logical_id: _local_function(logical_id, resource, defaults, resolver, template_path)
        for logical_id, resource in resolver.present("AWS::Serverless::Function").items()
    }


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
    # Resolved as one mapping, so that a property that resolves to AWS::NoValue is left out.
    invoked = resolver.value({key: merged[key] for key in _INVOKED if key in merged}, logical_id)
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
        name=str(resolver.value({"Ref": logical_id}, logical_id)),
        arn=str(resolver.value({"Fn::GetAtt": [logical_id, "Arn"]}, logical_id)),
        layers=tuple(str(layer) for layer in invoked.get("Layers") or []),
        event_invoke=_event_invoke_config(logical_id, invoked.get("EventInvokeConfig")),
        reserved_concurrency=None
        if (reserved := invoked.get("ReservedConcurrentExecutions")) is None
        else int(reserved),
    )


def _event_invoke_config(logical_id: str, configuration: Any) -> EventInvokeConfig:
    """A function's EventInvokeConfig (SAM's property), resolved; Lambda's defaults without one."""
    where = f"{logical_id} EventInvokeConfig"
    if configuration is None:
        return EventInvokeConfig()
    destinations = configuration.get("DestinationConfig") or {}
    if unknown := sorted(set(destinations) - {"OnFailure"}):
        raise TemplateError(f"{where}: DestinationConfig {', '.join(unknown)} is not served locally (OnFailure is)")
    on_failure = destinations.get("OnFailure")
    queue: str | None = None
    if on_failure is not None:
        if on_failure.get("Type") != "SQS" or not on_failure.get("Destination"):
            raise TemplateError(
                f"{where}: only an OnFailure of Type SQS with its Destination (an ARN) is served locally"
            )
        queue = str(on_failure["Destination"])
    return EventInvokeConfig(
        maximum_retry_attempts=int(configuration.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)),
        maximum_event_age_seconds=int(configuration.get("MaximumEventAgeInSeconds", DEFAULT_EVENT_AGE_SECONDS)),
        on_failure=queue,
    )


def _environment_value(value: Any, where: str) -> str:
    if isinstance(value, bool):  # CloudFormation turns YAML booleans into "true"/"false"
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: an environment variable must be a string, got {value!r}")


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
