"""`make secret` and `make web-config`: what a deployed stack needs after `sam deploy`, read from its outputs.

secret      puts the JSON the function reads, {"api_key", "safety_identifier_key"}, into the stack's secret (its
            ApiKeySecretArn output). The key comes from OPENAI_API_KEY, else from a prompt that shows nothing typed;
            the safety identifier key already there is kept (a new one would change every user's identifier), and
            made (random, 32 bytes) only when there is none. Neither key is ever printed.
web-config  writes web/config.json for the demo page from the stack's outputs: apiBaseUrl (OpenAIBaseUrl), the
            sign-in (JwtIssuer, UserPoolClientId) and OpenAI's Realtime calls URL.

The stack is samconfig.toml's: CONFIG_ENV picks its environment ("default", "prod"), STACK_NAME overrides the
name. The region and credentials are the AWS CLI's (AWS_PROFILE, AWS_DEFAULT_REGION, ~/.aws/config;
boto3 and the SAM CLI do not read AWS_REGION), unless samconfig
sets them, as for `sam deploy`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

ROOT = Path(__file__).resolve().parent.parent
SAMCONFIG = ROOT / "samconfig.toml"
WEB_CONFIG = ROOT / "web" / "config.json"
DEFAULT_UPSTREAM = "https://api.openai.com"
# What the stack's own user pool client allows (template.yaml, UserPoolClient's AllowedOAuthScopes).
DEFAULT_SCOPE = "openid email profile"


class DeployError(Exception):
    """Something the person running the target must fix; the message says what and how."""


@dataclass(frozen=True)
class Target:
    """Which stack, where: samconfig.toml's environment, or the overrides given."""

    stack_name: str
    region: str | None
    profile: str | None


@dataclass(frozen=True)
class Stack:
    name: str
    region: str
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]

    def output(self, key: str, what: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise DeployError(
                f"stack {self.name} ({self.region}) has no {key} output ({what}): is it a stack of this template, "
                "deployed to the end? `sam deploy` prints its outputs; name another stack with STACK_NAME=..."
            )
        return value


def target(config_env: str, stack_name: str | None, samconfig: Path = SAMCONFIG) -> Target:
    """The stack samconfig.toml's ``config_env`` deploys (its deploy parameters over its global ones), or
    ``stack_name`` when given."""
    config = tomllib.loads(samconfig.read_text()) if samconfig.is_file() else {}
    if config_env not in config and not stack_name:
        known = ", ".join(sorted(key for key, value in config.items() if isinstance(value, dict))) or "none"
        raise DeployError(f"{samconfig.name} has no [{config_env}] environment (it has: {known}): set CONFIG_ENV")
    environment = config.get(config_env, {})
    settings = {
        **environment.get("global", {}).get("parameters", {}),
        **environment.get("deploy", {}).get("parameters", {}),
    }
    name = stack_name or settings.get("stack_name")
    if not name:
        raise DeployError(f"{samconfig.name}'s [{config_env}] names no stack_name: name the stack with STACK_NAME=...")
    return Target(str(name), settings.get("region"), settings.get("profile"))


def session(where: Target) -> Any:
    return boto3.Session(profile_name=where.profile, region_name=where.region)


def describe(aws: Any, where: Target) -> Stack:
    region = aws.region_name
    if not region:
        raise DeployError("no AWS region: set AWS_DEFAULT_REGION, or a region in ~/.aws/config (`aws configure`)")
    try:
        (found,) = aws.client("cloudformation").describe_stacks(StackName=where.stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            raise DeployError(
                f"no stack {where.stack_name} in {region}: deploy it first (`make deploy`), or pick yours with "
                "CONFIG_ENV=prod (samconfig.toml), STACK_NAME=... or AWS_DEFAULT_REGION=..."
            ) from None
        raise
    outputs = {item["OutputKey"]: item["OutputValue"] for item in found.get("Outputs", [])}
    parameters = {item["ParameterKey"]: item.get("ParameterValue", "") for item in found.get("Parameters", [])}
    return Stack(where.stack_name, region, outputs, parameters)


def api_key(environ: Mapping[str, str], prompt: Callable[[str], str], stack: Stack) -> str:
    """The OpenAI API key: OPENAI_API_KEY, else typed at a prompt that shows nothing."""
    key = environ.get("OPENAI_API_KEY")
    if key is None:
        try:
            key = prompt(f"OpenAI API key for {stack.name} (typing is not shown): ")
        except EOFError:
            key = ""
    key = key.strip()
    if not key:
        raise DeployError("no OpenAI API key given: set OPENAI_API_KEY, or type it at the prompt")
    if any(character.isspace() for character in key):
        raise DeployError("the OpenAI API key has a space or line break inside it: give the key alone")
    return key


def current_value(client: Any, secret_arn: str) -> dict[str, Any]:
    """The secret's JSON object now; {} when it has no value yet (the stack created it empty) or holds no object."""
    try:
        text = client.get_secret_value(SecretId=secret_arn).get("SecretString") or ""
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return {}
        raise
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def put_secret(aws: Any, stack: Stack, key: str) -> str:
    """Put ``key`` into the stack's secret, keeping its safety identifier key; what was done, for the person."""
    secret_arn = stack.output("ApiKeySecretArn", "the secret the function reads the key from")
    client = aws.client("secretsmanager")
    value = current_value(client, secret_arn)
    kept = isinstance(value.get("safety_identifier_key"), str) and bool(value["safety_identifier_key"])
    value["api_key"] = key
    if not kept:
        value["safety_identifier_key"] = secrets.token_hex(32)
    try:
        client.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(value))
    except ParamValidationError:  # its message would quote the value
        raise DeployError("Secrets Manager cannot take this key as it is (too long?): check the key") from None
    safety = "kept its safety identifier key" if kept else "with a new random safety identifier key"
    return f"put the OpenAI API key into {secret_arn} (stack {stack.name}, {stack.region}); {safety}"


def web_config(stack: Stack, redirect_uri: str | None, client_id: str | None) -> dict[str, Any]:
    """The demo page's config.json for ``stack``: its API, its sign-in, and OpenAI's Realtime calls URL."""
    api_base_url = stack.output("OpenAIBaseUrl", "the API's /v1")
    issuer = stack.outputs.get("JwtIssuer")
    if not issuer:
        raise DeployError(
            f"stack {stack.name} takes SigV4-signed backends (CallerAuth=iam), not signed-in users: a web page cannot "
            "call it. The demo page needs a stack deployed with CallerAuth=jwt"
        )
    own_pool = "UserPoolClientId" in stack.outputs
    client_id = client_id or stack.outputs.get("UserPoolClientId")
    if not client_id:
        raise DeployError(
            f"stack {stack.name} signs users in with your issuer ({issuer}): give your app's client id there, "
            "make web-config CLIENT_ID=..."
        )
    callbacks = [url.strip() for url in stack.parameters.get("CognitoCallbackUrls", "").split(",") if url.strip()]
    redirect_uri = redirect_uri or (callbacks[0] if own_pool and callbacks else None)
    sign_in = {"mode": "oidc", "issuer": issuer, "clientId": client_id, "scope": DEFAULT_SCOPE}
    if redirect_uri:
        sign_in["redirectUri"] = redirect_uri
    upstream = (stack.parameters.get("OpenAIUpstreamUrl") or DEFAULT_UPSTREAM).rstrip("/")
    return {"apiBaseUrl": api_base_url, "realtimeUrl": f"{upstream}/v1/realtime/calls", "signIn": sign_in}


def origin_warning(stack: Stack, config: Mapping[str, Any]) -> str | None:
    """Why the page would fail to call the API: the origin it is served from is not among AllowedOrigins."""
    redirect_uri = config["signIn"].get("redirectUri")
    if not redirect_uri:
        return None
    parts = urlsplit(redirect_uri)
    origin = f"{parts.scheme}://{parts.netloc}"
    allowed = [item.strip() for item in stack.parameters.get("AllowedOrigins", "").split(",") if item.strip()]
    if origin in allowed or "*" in allowed:
        return None
    return (
        f"note: the API allows no page from {origin} (its AllowedOrigins: {', '.join(allowed) or 'none'}): served "
        f"from there, the page cannot call it. Deploy with AllowedOrigins={origin} (sam deploy --parameter-overrides)"
    )


def write_web_config(path: Path, config: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["secret", "web-config"])
    parser.add_argument("--config-env", default="default", help="samconfig.toml's environment (default: default)")
    parser.add_argument("--stack-name", help="the stack, instead of samconfig.toml's")
    parser.add_argument("--output", type=Path, default=WEB_CONFIG, help="web-config: where to write (web/config.json)")
    parser.add_argument("--redirect-uri", help="web-config: where the issuer sends users back (the page's URL)")
    parser.add_argument("--client-id", help="web-config: the app's client id at your own issuer (JwtIssuer)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = _arguments(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    try:
        where = target(arguments.config_env, arguments.stack_name or None)
        aws = session(where)
        stack = describe(aws, where)
        if arguments.command == "secret":
            print(put_secret(aws, stack, api_key(environ, getpass.getpass, stack)))
        else:
            config = web_config(stack, arguments.redirect_uri, arguments.client_id)
            write_web_config(arguments.output, config)
            print(
                f"wrote {arguments.output} from stack {stack.name} ({stack.region}): the API at "
                f"{config['apiBaseUrl']}, sign-in at {config['signIn']['issuer']}"
            )
            if (warning := origin_warning(stack, config)) is not None:
                print(warning, file=sys.stderr)
    except DeployError as error:
        print(f"make {arguments.command}: {error}", file=sys.stderr)
        return 1
    except NoCredentialsError:
        print(
            f"make {arguments.command}: no AWS credentials: `aws configure` (or `aws sso login`), or set AWS_PROFILE",
            file=sys.stderr,
        )
        return 1
    except ClientError as error:
        # The code and operation only: AWS's message can name the caller's role session (often an e-mail address).
        code = error.response.get("Error", {}).get("Code", "an error")
        print(f"make {arguments.command}: AWS refused {error.operation_name} with {code}", file=sys.stderr)
        return 1
    except BotoCoreError as error:
        print(f"make {arguments.command}: AWS could not be asked: {type(error).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
