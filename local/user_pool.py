"""The embedded issuer: the template's own Cognito user pool, app client and groups, in moto's Cognito.

Made from the Properties of template.yaml's AWS::Cognito::UserPool, ::UserPoolClient and ::UserPoolGroup
(resolved as CloudFormation would, with the same parameter overrides), so what `make run` checks tokens
against cannot drift from what the stack creates. moto signs RS256 tokens with the issuer Cognito would
have (https://cognito-idp.<region>.amazonaws.com/<pool id>) and serves the pool's OIDC discovery
document and JWKS on the moto server.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from local import cloudformation
from local.aws import FAKE_CREDENTIALS, REGION, cognito_client
from local.cloudformation import ACCOUNT_ID, Resolver, TemplateError

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

_POOL, _CLIENT, _GROUP = "AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolGroup"
# CloudFormation's property names where the API's differ.
_API_NAMES = {_POOL: {"UserPoolName": "PoolName"}, _CLIENT: {}, _GROUP: {}}
_OPERATIONS = {_POOL: "CreateUserPool", _CLIENT: "CreateUserPoolClient", _GROUP: "CreateGroup"}
# A development user's name, made into an address of a domain reserved for tests (RFC 2606).
_NAME = re.compile(r"[A-Za-z0-9._+-]{1,64}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
DEV_DOMAIN = "example.test"


class TokenRefused(Exception):
    """What a developer asked a token for cannot be had; the message says what to change."""


def dev_username(user: str) -> str:
    """TOKEN_USER as the pool's username, an e-mail address (the template's UsernameAttributes)."""
    if _NAME.fullmatch(user):
        return f"{user}@{DEV_DOMAIN}"
    if _EMAIL.fullmatch(user):
        return user
    # The value itself stays out of the message: it may be someone's address.
    raise TokenRefused("TOKEN_USER must be a name (letters, digits and . _ + -, e.g. alice) or an e-mail address")


@dataclass(frozen=True)
class UserPool:
    """A user pool in moto, with the app client its tokens are for: enough to sign a development user in."""

    endpoint_url: str
    pool_id: str
    client_id: str
    region: str = REGION
    pool_logical_id: str = "UserPool"
    client_logical_id: str = "UserPoolClient"
    # The local AWS's credentials (make run's, which `make token` reads from its state file); out of the repr.
    aws_access_key_id: str = field(default=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], repr=False)
    aws_secret_access_key: str = field(default=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], repr=False)

    @property
    def issuer(self) -> str:
        """The tokens' "iss", as Cognito has it (the pool's ProviderURL)."""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @property
    def physical(self) -> dict[str, dict[str, str]]:
        """Refs and attributes of the pool and client, for local.cloudformation.Resolver's ``physical``."""
        arn = f"arn:aws:cognito-idp:{self.region}:{ACCOUNT_ID}:userpool/{self.pool_id}"
        return {
            self.pool_logical_id: {
                "Ref": self.pool_id,
                "Arn": arn,
                "ProviderURL": self.issuer,
                "ProviderName": self.issuer.removeprefix("https://"),
                "UserPoolId": self.pool_id,
            },
            self.client_logical_id: {"Ref": self.client_id, "ClientId": self.client_id},
        }

    @property
    def discovery(self) -> dict[str, str]:
        """Where the issuer's OIDC discovery document is: on the moto server, not at Cognito."""
        return {self.issuer: f"{self.endpoint_url}/{self.pool_id}/.well-known/openid-configuration"}

    def groups(self) -> frozenset[str]:
        """The pool's groups."""
        client = self._client()
        pages = client.get_paginator("list_groups").paginate(UserPoolId=self.pool_id)
        return frozenset(group["GroupName"] for page in pages for group in page["Groups"])

    def token(self, user: str, groups: Iterable[str] = ()) -> str:
        """A fresh access token for ``user`` (a name, or an e-mail address), a member of exactly ``groups``.

        The user is created on first use (as an operator invites one), with a new random password each
        time; a group the pool does not have is refused (TokenRefused): the deployed pool would not have
        it either, and a misspelt group would otherwise give a token that quietly lacks the access asked for.
        """
        username = dev_username(user)
        wanted = {group.strip() for group in groups if group.strip()}
        known = self.groups()
        if unknown := sorted(wanted - known):
            have = ", ".join(sorted(known)) or "none"
            raise TokenRefused(
                f"TOKEN_GROUPS names {', '.join(unknown)}, which the user pool has not (its groups: {have}). "
                "A group comes from template.yaml (an AWS::Cognito::UserPoolGroup, as PremiumUsersGroup): "
                "add it there, so that the deployed pool has it too, and restart make run"
            )
        client = self._client()
        try:
            client.admin_get_user(UserPoolId=self.pool_id, Username=username)
        except client.exceptions.UserNotFoundException:
            client.admin_create_user(
                UserPoolId=self.pool_id,
                Username=username,
                UserAttributes=[{"Name": "email", "Value": username}, {"Name": "email_verified", "Value": "true"}],
                MessageAction="SUPPRESS",
            )
        # Upper, lower, digit and symbol: whatever the pool's password policy asks for.
        password = secrets.token_urlsafe(24) + "Aa1!"
        client.admin_set_user_password(UserPoolId=self.pool_id, Username=username, Password=password, Permanent=True)
        listed = client.admin_list_groups_for_user(UserPoolId=self.pool_id, Username=username, Limit=60)
        current = {group["GroupName"] for group in listed["Groups"]}
        for group in sorted(wanted - current):
            client.admin_add_user_to_group(UserPoolId=self.pool_id, Username=username, GroupName=group)
        for group in sorted(current - wanted):
            client.admin_remove_user_from_group(UserPoolId=self.pool_id, Username=username, GroupName=group)
        # moto does not hold the client to its ExplicitAuthFlows, so the template's (SRP and refresh only,
        # as a public client should have) need not gain ALLOW_ADMIN_USER_PASSWORD_AUTH here.
        signed_in = client.admin_initiate_auth(
            UserPoolId=self.pool_id,
            ClientId=self.client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        return signed_in["AuthenticationResult"]["AccessToken"]

    def _client(self) -> CognitoIdentityProviderClient:
        credentials = {"AWS_ACCESS_KEY_ID": self.aws_access_key_id, "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key}
        return cognito_client(self.endpoint_url, self.region, credentials)

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Self:
        return cls(**{key: str(item) for key, item in value.items()})


def create_from_template(
    template_path: Path | str, overrides: Mapping[str, str], endpoint_url: str, region: str = REGION
) -> UserPool | None:
    """Create the template's user pool, its app client and its groups in moto at ``endpoint_url``, from
    their own Properties; None when the template, under these overrides, creates no user pool."""
    template = cloudformation.load(template_path)
    resources: Mapping[str, Any] = template.get("Resources") or {}
    resolver = Resolver(template, overrides, region)
    pools = list(resolver.present(_POOL))
    if not pools:
        return None
    if len(pools) > 1:
        raise TemplateError(f"the template creates user pools {', '.join(pools)}: a local run emulates one")
    client = cognito_client(endpoint_url, region)
    (pool_logical_id,) = pools
    pool_id = client.create_user_pool(**_api_arguments(client, _POOL, resolver, resources, pool_logical_id))[
        "UserPool"
    ]["Id"]
    # The rest refer to the pool: resolve them with its real id.
    resolver = Resolver(template, overrides, region, physical={pool_logical_id: {"Ref": pool_id}})
    clients = [
        logical_id for logical_id in resolver.present(_CLIENT) if _pool_of(resolver, resources, logical_id) == pool_id
    ]
    if len(clients) != 1:
        raise TemplateError(
            f"the user pool {pool_logical_id} has {len(clients)} app clients in the template: a local run emulates one"
        )
    (client_logical_id,) = clients
    arguments = _api_arguments(client, _CLIENT, resolver, resources, client_logical_id)
    client_id = client.create_user_pool_client(**arguments)["UserPoolClient"]["ClientId"]
    for logical_id in resolver.present(_GROUP):
        if _pool_of(resolver, resources, logical_id) == pool_id:
            client.create_group(**_api_arguments(client, _GROUP, resolver, resources, logical_id))
    return UserPool(endpoint_url, pool_id, client_id, region, pool_logical_id, client_logical_id)


def _pool_of(resolver: Resolver, resources: Mapping[str, Any], logical_id: str) -> object:
    properties = resources[logical_id].get("Properties") or {}
    return resolver.value(properties.get("UserPoolId"), f"{logical_id}.UserPoolId")


def _api_arguments(
    client: Any, resource_type: str, resolver: Resolver, resources: Mapping[str, Any], logical_id: str
) -> dict[str, Any]:
    """The resource's Properties as its create call takes them; what the API has no place for is left out
    (a CloudFormation-only property, or one moto's model lacks)."""
    properties = resolver.value(resources[logical_id].get("Properties") or {}, logical_id)
    accepted = client.meta.service_model.operation_model(_OPERATIONS[resource_type]).input_shape.members
    renamed = {_API_NAMES[resource_type].get(name, name): value for name, value in properties.items()}
    return {name: value for name, value in renamed.items() if name in accepted}
