"""No route of the deployed API is ever anonymous, and its CORS is what AllowedOrigins says, proved on the
template as CloudFormation receives it: after the SAM transform (tests/templates.py), evaluated under each way of
authenticating callers, with no origin, one and several.
"""

import fnmatch
import re
from typing import Any

import pytest

from local.cloudformation import ACCOUNT_ID
from tests.deployment import REGION
from tests.paths import ROOT
from tests.templates import (
    API_ID,
    PHYSICAL,
    POOL_CLIENT_ID,
    POOL_ID,
    deploy,
    raw_template,
    refused_by_rules,
    sam_transform,
)
from voice_access.edge.routes import ROUTES

NODE_SDK = ROOT / "node_modules" / "openai"
ISSUER = "https://issuer.example.com/"
MODES: dict[str, dict[str, str]] = {
    "cognito": {},
    "cognito+scopes": {"JwtRequiredScopes": "realtime/mint"},
    "issuer": {"JwtIssuer": ISSUER, "JwtAudiences": "app-client"},
    "issuer+scopes": {
        "JwtIssuer": ISSUER,
        "JwtAudiences": "app-client,api://token-vending",
        "JwtRequiredScopes": "realtime/mint,realtime/premium",
    },
    "iam": {"CallerAuth": "iam"},
    "iam+jwt-settings": {"CallerAuth": "iam", "JwtIssuer": ISSUER, "JwtRequiredScopes": "realtime/mint"},
}
ORIGINS: dict[str, dict[str, str]] = {
    "no-origins": {},
    "one-origin": {"AllowedOrigins": "https://app.example.com"},
    "two-origins": {"AllowedOrigins": "https://app.example.com,http://localhost:5173"},
}
CASES = {f"{mode},{origins}": {**MODES[mode], **ORIGINS[origins]} for mode in MODES for origins in ORIGINS}
# The Rules section, case by case: the parameters and whether CloudFormation refuses them.
RULE_CASES: dict[str, tuple[dict[str, str], bool]] = {
    "issuer-without-audiences": ({"JwtIssuer": ISSUER}, True),
    "issuer-with-audiences": ({"JwtIssuer": ISSUER, "JwtAudiences": "app-client"}, False),
    "stack-user-pool": ({}, False),
    "iam-ignores-issuer": ({"CallerAuth": "iam", "JwtIssuer": ISSUER}, False),
}


@pytest.fixture(scope="module")
def transformed() -> dict[str, dict[str, Any]]:
    """Each parameter set's template after the SAM transform, by case name (CASES, then RULE_CASES)."""
    return sam_transform({**CASES, **{name: parameters for name, (parameters, _) in RULE_CASES.items()}})


def listed(parameters: dict[str, str], name: str) -> list[str]:
    return [item for item in parameters.get(name, "").split(",") if item]


def uses_jwt(parameters: dict[str, str]) -> bool:
    return parameters.get("CallerAuth", "jwt") == "jwt"


def creates_user_pool(parameters: dict[str, str]) -> bool:
    return uses_jwt(parameters) and not parameters.get("JwtIssuer")


@pytest.mark.parametrize("case", CASES)
def test_the_only_way_in_is_the_templates_own_api(transformed: dict[str, dict[str, Any]], case: str) -> None:
    # Given the transformed template under the case's parameters
    stack = deploy(transformed[case], CASES[case])

    # When its APIs and other ways to reach the function are listed
    kinds = {r["Type"] for r in stack.resources.values()}

    # Then there is one HTTP API, the template's own (SAM added no implicit API), and no function URL
    assert list(stack.of_type("AWS::ApiGatewayV2::Api")) == ["TokenVendingApi"]
    assert not {kind for kind in kinds if kind.startswith("AWS::ApiGateway::")}
    assert "AWS::Lambda::Url" not in kinds
    assert list(stack.of_type("AWS::ApiGatewayV2::Integration")) == ["TokenVendingIntegration"]


@pytest.mark.parametrize("case", CASES)
def test_every_route_requires_a_caller(transformed: dict[str, dict[str, Any]], case: str) -> None:
    # Given the transformed template under the case's parameters
    parameters = CASES[case]
    stack = deploy(transformed[case], parameters)

    # When its routes are read
    routes = stack.of_type("AWS::ApiGatewayV2::Route")

    # Then they are the function's five, each on the API, and none is anonymous
    assert sorted(route["RouteKey"] for route in routes.values()) == sorted(ROUTES)
    authorizers = stack.of_type("AWS::ApiGatewayV2::Authorizer")
    for name, route in routes.items():
        assert route["ApiId"] == API_ID, name
        assert route["Target"] == f"integrations/{stack.ref('TokenVendingIntegration')}", name
        if uses_jwt(parameters):
            assert route["AuthorizationType"] == "JWT", name
            assert route["AuthorizerId"] in authorizers, f"{name}: its authorizer is not created"
        else:
            assert route["AuthorizationType"] == "AWS_IAM", name
            assert "AuthorizerId" not in route, name
    assert not {route.get("AuthorizationType") for route in routes.values()} & {"NONE", None}


@pytest.mark.parametrize("case", CASES)
def test_the_jwt_authorizer_trusts_only_the_configured_issuer(
    transformed: dict[str, dict[str, Any]], case: str
) -> None:
    # Given the transformed template under the case's parameters
    parameters = CASES[case]
    stack = deploy(transformed[case], parameters)

    # When its authorizers are read
    authorizers = stack.of_type("AWS::ApiGatewayV2::Authorizer")

    # Then with JWT there is one, on the API, taking the token from Authorization, for the stack's user pool
    # and its app client, or for the given issuer and audiences; with IAM there is none
    if not uses_jwt(parameters):
        assert authorizers == {}
        return
    assert list(authorizers) == ["CallerJwtAuthorizer"]
    authorizer = authorizers["CallerJwtAuthorizer"]
    assert authorizer["ApiId"] == API_ID
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    if creates_user_pool(parameters):
        expected = {"Issuer": PHYSICAL["UserPool"]["ProviderURL"], "Audience": [POOL_CLIENT_ID]}
    else:
        expected = {"Issuer": parameters["JwtIssuer"], "Audience": listed(parameters, "JwtAudiences")}
    assert authorizer["JwtConfiguration"] == expected
    assert expected["Issuer"]
    assert expected["Audience"]
    assert all(expected["Audience"])


@pytest.mark.parametrize("case", CASES)
def test_routes_require_the_scopes_given_and_no_other(transformed: dict[str, dict[str, Any]], case: str) -> None:
    # Given the transformed template under the case's parameters
    parameters = CASES[case]
    stack = deploy(transformed[case], parameters)

    # When the routes' required scopes are read
    scopes = {
        name: route.get("AuthorizationScopes") for name, route in stack.of_type("AWS::ApiGatewayV2::Route").items()
    }

    # Then with JWT and JwtRequiredScopes each route requires exactly those; otherwise the property is absent
    # (an IAM route takes no scopes, and an empty list parameter is [""], never a scope)
    expected = listed(parameters, "JwtRequiredScopes") if uses_jwt(parameters) else []
    assert scopes == dict.fromkeys(scopes, expected or None)


@pytest.mark.parametrize("case", CASES)
def test_cors_is_configured_exactly_when_origins_are_given(transformed: dict[str, dict[str, Any]], case: str) -> None:
    # Given the transformed template under the case's parameters
    parameters = CASES[case]
    stack = deploy(transformed[case], parameters)

    # When the API's CORS configuration is read
    api = stack.of_type("AWS::ApiGatewayV2::Api")["TokenVendingApi"]

    # Then without origins there is none at all (not an empty string, not [""]); with origins it lists them
    # exactly, for GET and POST, with the token and profile headers among those a page may send
    origins = listed(parameters, "AllowedOrigins")
    if not origins:
        assert "CorsConfiguration" not in api
        return
    cors = api["CorsConfiguration"]
    assert cors["AllowOrigins"] == origins
    assert cors["AllowMethods"] == ["GET", "POST"]
    assert {"authorization", "content-type", "x-profile"} <= set(cors["AllowHeaders"])


def node_sdk_request_headers() -> set[str]:
    """The x-stainless-* and openai-* headers the installed openai npm package can send on our routes: its
    client, its platform detection, and its realtime resources (beta included)."""
    assert (NODE_SDK / "package.json").is_file(), "the openai npm package is not installed: run `npm ci`"
    sources = [
        *NODE_SDK.glob("*.mjs"),
        *NODE_SDK.glob("internal/**/*.mjs"),
        *NODE_SDK.glob("resources/realtime/**/*.mjs"),
        *NODE_SDK.glob("resources/beta/realtime/**/*.mjs"),
    ]
    header = re.compile(r"""['"`]((?:x-stainless|openai)-[a-z0-9-]+)['"`]""", re.IGNORECASE)
    return {name.lower() for source in sources for name in header.findall(source.read_text())}


def test_cors_allows_every_header_the_node_sdk_sends(transformed: dict[str, dict[str, Any]]) -> None:
    # Given the API as deployed for a page's origin, and the headers the installed Node SDK sends
    stack = deploy(transformed["cognito,one-origin"], CASES["cognito,one-origin"])
    sent = node_sdk_request_headers()

    # When the API's allowed headers are read
    allowed = {
        header.lower()
        for header in stack.of_type("AWS::ApiGatewayV2::Api")["TokenVendingApi"]["CorsConfiguration"]["AllowHeaders"]
    }

    # Then every one of them is allowed, so the SDK's preflight passes
    assert len(sent) >= 10, f"found only {sorted(sent)} in {NODE_SDK}: has the SDK's layout changed?"
    assert sent - allowed == set(), "add these to the template's CorsConfiguration AllowHeaders"


@pytest.mark.parametrize("case", CASES)
def test_the_stack_creates_a_user_pool_only_when_no_issuer_is_given(
    transformed: dict[str, dict[str, Any]], case: str
) -> None:
    # Given the transformed template under the case's parameters
    parameters = CASES[case]
    stack = deploy(transformed[case], parameters)

    # When its Cognito resources are listed
    cognito = {name for name, r in stack.resources.items() if r["Type"].startswith("AWS::Cognito::")}

    # Then there are the pool, its app client, its sign-in domain and the premium group, only for JWT
    # without an issuer
    expected = {"UserPool", "UserPoolClient", "UserPoolDomain", "PremiumUsersGroup"}
    assert cognito == (expected if creates_user_pool(parameters) else set())


def test_the_user_pools_app_client_is_public(transformed: dict[str, dict[str, Any]]) -> None:
    # Given the default deployment
    stack = deploy(transformed["cognito,no-origins"], CASES["cognito,no-origins"])

    # When its app client is read
    client = stack.of_type("AWS::Cognito::UserPoolClient")["UserPoolClient"]

    # Then it is in the stack's pool, holds no secret, and signs users in with the authorization code flow
    assert client["UserPoolId"] == POOL_ID
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["AllowedOAuthFlows"] == ["code"]
    assert stack.of_type("AWS::Cognito::UserPoolGroup")["PremiumUsersGroup"]["UserPoolId"] == POOL_ID


@pytest.mark.parametrize("case", CASES)
def test_the_api_may_invoke_the_function_on_every_route(transformed: dict[str, dict[str, Any]], case: str) -> None:
    # Given the transformed template under the case's parameters
    stack = deploy(transformed[case], CASES[case])

    # When the function's permissions and the API's integration are read
    permissions = stack.of_type("AWS::Lambda::Permission")
    integration = stack.of_type("AWS::ApiGatewayV2::Integration")["TokenVendingIntegration"]

    # Then the integration invokes the function, and one permission lets API Gateway do so from this API's
    # routes only
    function = {"Ref": "TokenVendingFunction"}
    assert stack.resources["TokenVendingFunction"]["Type"] == "AWS::Lambda::Function"
    assert integration["IntegrationUri"] == stack.resolver.value(
        {"Fn::GetAtt": ["TokenVendingFunction", "Arn"]}, "test"
    )
    assert integration["IntegrationType"] == "AWS_PROXY"
    function_name = stack.resolver.value(function, "test")
    granted = [name for name, permission in permissions.items() if permission["FunctionName"] == function_name]
    assert granted == ["TokenVendingApiPermission"]
    permission = permissions["TokenVendingApiPermission"]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["FunctionName"] == function_name
    assert permission["Principal"] == "apigateway.amazonaws.com"
    for route in ROUTES:
        method, path = route.split(" ", 1)
        arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/$default/{method}{path}"
        assert fnmatch.fnmatchcase(arn, permission["SourceArn"]), f"{permission['SourceArn']} does not cover {route}"
    assert not fnmatch.fnmatchcase(
        f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:other0api/$default/POST/x", permission["SourceArn"]
    )


@pytest.mark.parametrize("case", RULE_CASES)
def test_an_issuer_without_audiences_is_refused_before_deploying(
    transformed: dict[str, dict[str, Any]], case: str
) -> None:
    # Given the transformed template (its Rules kept) and the case's parameters
    parameters, refused = RULE_CASES[case]

    # When CloudFormation's rules are evaluated
    failing = refused_by_rules(transformed[case], parameters)

    # Then a JWT issuer with no audience is refused, and nothing else is
    assert failing == (["IssuerNeedsAudiences"] if refused else [])


# What CloudFormation lets a rule use (the Rules section's own functions); Fn::Join and the others fail there at
# deploy time, though cfn-lint does not say so and the resolver above would evaluate them.
RULE_FUNCTIONS = {
    "Fn::And",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::Equals",
    "Fn::Not",
    "Fn::Or",
    "Fn::RefAll",
    "Fn::ValueOf",
    "Fn::ValueOfAll",
}


def test_the_rules_use_only_the_functions_cloudformation_allows_in_rules() -> None:
    # Given the template's Rules
    rules = raw_template()["Rules"]

    # When every function they call is listed
    def functions(node: Any) -> set[str]:
        if isinstance(node, list):
            return set().union(*map(functions, node)) if node else set()
        if isinstance(node, dict):
            own = {key for key in node if key.startswith("Fn::")}
            return own | (set().union(*map(functions, node.values())) if node else set())
        return set()

    # Then each is a rule function
    assert functions(rules) <= RULE_FUNCTIONS
