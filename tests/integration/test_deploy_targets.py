"""`make secret` and `make web-config` (tools/deploy.py) against moto in server mode: a stack with the template's
outputs in its CloudFormation, its secret in its Secrets Manager, reached by the command's own boto3 through the
ordinary endpoint setting. The stacks are samconfig.toml's own (default and prod)."""

import json
import os
import re
import select
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.deployment import REGION
from tests.keys import TEST_API_KEY, TEST_SAFETY_KEY
from tests.paths import ROOT

SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
DEFAULT_STACK = SAMCONFIG["default"]["global"]["parameters"]["stack_name"]
PROD_STACK = SAMCONFIG["prod"]["global"]["parameters"]["stack_name"]
API = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{REGION}_AbCdEfGhI"
CLIENT_ID = "4k9example0app0client0id0"
# The template's outputs and parameters a stack that creates its user pool has (a stand-in resource: moto's
# CloudFormation makes no Secrets Manager secret, so the secret is made beside it and its ARN passed in). The lists
# are Strings here: CloudFormation describes a CommaDelimitedList as the text given, moto as a Python list's repr.
STACK_TEMPLATE: dict[str, dict[str, Any]] = {
    "Parameters": {
        "SecretArn": {"Type": "String"},
        "CognitoCallbackUrls": {"Type": "String", "Default": "http://localhost:5173/"},
        "AllowedOrigins": {"Type": "String", "Default": ""},
        "OpenAIUpstreamUrl": {"Type": "String", "Default": "https://api.openai.com"},
    },
    "Resources": {"AlarmTopic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {
        "ApiKeySecretArn": {"Value": {"Ref": "SecretArn"}},
        "OpenAIBaseUrl": {"Value": f"{API}/v1"},
        "JwtIssuer": {"Value": ISSUER},
        "UserPoolClientId": {"Value": CLIENT_ID},
    },
}
SAFETY_KEY = re.compile(r"[0-9a-f]{64}")
PROMPT = b"(typing is not shown): "


@pytest.fixture
def aws(secrets_manager_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment a person's shell would give the command: credentials and region, no OpenAI key, the endpoint
    moto's (AWS_ENDPOINT_URL, botocore's own setting) and no AWS configuration files of this machine."""
    environment = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}
    return environment | {
        "AWS_ENDPOINT_URL": secrets_manager_url,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def cloudformation(secrets_manager_url: str) -> Any:
    return boto3.client("cloudformation", endpoint_url=secrets_manager_url, region_name=REGION)


@pytest.fixture
def deployed(cloudformation: Any, secrets_manager: Any) -> Iterator[Callable[..., str]]:
    """``deployed(name, outputs=None, **parameters)``: a stack of that name whose secret is new and empty (as the
    template creates it), with the template's outputs (or only ``outputs``); its secret's ARN."""
    names: list[str] = []

    def deploy(name: str, outputs: list[str] | None = None, **parameters: str) -> str:
        arn = str(secrets_manager.create_secret(Name=f"openai-api-key-{uuid.uuid4().hex[:8]}")["ARN"])
        template = dict(STACK_TEMPLATE)
        if outputs is not None:
            template["Outputs"] = {key: STACK_TEMPLATE["Outputs"][key] for key in outputs}
        given = {"SecretArn": arn, **parameters}
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in given.items()],
        )
        names.append(name)
        return arn

    yield deploy
    for name in names:
        cloudformation.delete_stack(StackName=name)


def run(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.deploy", *arguments],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shows_the_key(text: str | bytes) -> bool:
    """Whether ``text`` shows any 6 characters of the test key in a row, past its sk- prefix."""
    shown = text.decode(errors="replace") if isinstance(text, bytes) else text
    return any(TEST_API_KEY[start : start + 6] in shown for start in range(3, len(TEST_API_KEY) - 5))


def secret_value(secrets_manager: Any, arn: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(secrets_manager.get_secret_value(SecretId=arn)["SecretString"])
    return parsed


def test_make_secret_puts_the_key_from_the_environment_with_a_new_safety_key(
    aws: dict[str, str], deployed: Callable[..., str], secrets_manager: Any
) -> None:
    # Given samconfig.toml's default stack, its secret created empty, and the key in OPENAI_API_KEY
    arn = deployed(DEFAULT_STACK)

    # When make secret runs
    ran = run(aws | {"OPENAI_API_KEY": TEST_API_KEY}, "secret")

    # Then the secret holds the key and a new random safety identifier key, and says where it put them, showing
    # neither
    assert ran.returncode == 0, ran.stderr
    value = secret_value(secrets_manager, arn)
    assert value["api_key"] == TEST_API_KEY
    assert SAFETY_KEY.fullmatch(value["safety_identifier_key"])
    assert arn in ran.stdout
    assert "new random safety identifier key" in ran.stdout
    assert not shows_the_key(ran.stdout + ran.stderr)
    assert value["safety_identifier_key"][:8] not in ran.stdout + ran.stderr


def test_make_secret_keeps_the_safety_key_already_there(
    aws: dict[str, str], deployed: Callable[..., str], secrets_manager: Any
) -> None:
    # Given the production stack (CONFIG_ENV=prod) whose secret holds an old key and a safety identifier key
    arn = deployed(PROD_STACK)
    old = {"api_key": "sk-old-revoked-0000", "safety_identifier_key": TEST_SAFETY_KEY}
    secrets_manager.put_secret_value(SecretId=arn, SecretString=json.dumps(old))

    # When make secret runs with the new key
    ran = run(aws | {"OPENAI_API_KEY": TEST_API_KEY}, "secret", "--config-env", "prod")

    # Then the key is replaced and the safety identifier key kept, so no user's identifier changes
    assert ran.returncode == 0, ran.stderr
    assert secret_value(secrets_manager, arn) == {"api_key": TEST_API_KEY, "safety_identifier_key": TEST_SAFETY_KEY}
    assert "kept its safety identifier key" in ran.stdout
    assert not shows_the_key(ran.stdout + ran.stderr)
    assert PROD_STACK in ran.stdout


def test_make_secret_reads_the_key_at_a_prompt_that_shows_nothing(
    aws: dict[str, str], deployed: Callable[..., str], secrets_manager: Any
) -> None:
    # Given a stack named by STACK_NAME, no OPENAI_API_KEY, and the command on a terminal (a pseudo-terminal, whose
    # line discipline echoes what is typed unless the program turns echo off)
    name = f"token-vending-{uuid.uuid4().hex[:6]}"
    arn = deployed(name)
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.deploy", "secret", "--stack-name", name],
        cwd=ROOT,
        env=aws,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)

    # When the key is typed at the prompt, once the prompt shows
    try:
        shown = read_until(controller, PROMPT)
        os.write(controller, TEST_API_KEY.encode() + b"\n")
        shown += read_until(controller, None)
    finally:
        os.close(controller)
        returncode = process.wait(timeout=120)

    # Then nothing typed shows on the terminal, and the secret holds the key
    assert returncode == 0, shown.decode(errors="replace")
    assert not shows_the_key(shown)
    assert secret_value(secrets_manager, arn)["api_key"] == TEST_API_KEY


def read_until(controller: int, wanted: bytes | None) -> bytes:
    """What the terminal shows until ``wanted`` does (None: until the program closes it)."""
    shown = b""
    while wanted is None or wanted not in shown:
        ready, _, _ = select.select([controller], [], [], 120)  # a hang's bound, not a synchronisation
        assert ready, f"the terminal showed nothing more after {shown!r}"
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the program closed the terminal
            chunk = b""
        if not chunk:
            assert wanted is None, f"the program ended before showing {wanted!r}: {shown!r}"
            return shown
        shown += chunk
    return shown


def test_make_secret_explains_a_missing_stack_and_a_missing_output(
    aws: dict[str, str], deployed: Callable[..., str]
) -> None:
    # Given no stack of one name, and a stack without the ApiKeySecretArn output
    missing = f"token-vending-{uuid.uuid4().hex[:6]}"
    other = f"token-vending-{uuid.uuid4().hex[:6]}"
    deployed(other, outputs=["OpenAIBaseUrl"])

    # When make secret runs for each
    no_stack = run(aws | {"OPENAI_API_KEY": TEST_API_KEY}, "secret", "--stack-name", missing)
    no_output = run(aws | {"OPENAI_API_KEY": TEST_API_KEY}, "secret", "--stack-name", other)

    # Then each fails saying what is missing and how to go on
    assert no_stack.returncode == 1
    assert f"no stack {missing} in {REGION}: deploy it first" in no_stack.stderr
    assert "CONFIG_ENV=prod" in no_stack.stderr
    assert no_output.returncode == 1
    assert f"stack {other} ({REGION}) has no ApiKeySecretArn output" in no_output.stderr


def test_make_secret_names_what_aws_refused_by_its_code_not_its_message(
    aws: dict[str, str], deployed: Callable[..., str], secrets_manager: Any
) -> None:
    # Given a stack whose secret is gone (AWS's own message would quote the resource, and an AccessDenied the
    # caller's role session, often an e-mail address)
    arn = deployed(DEFAULT_STACK)
    secrets_manager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    # When make secret runs
    ran = run(aws | {"OPENAI_API_KEY": TEST_API_KEY}, "secret")

    # Then it fails naming the operation and AWS's error code only
    assert ran.returncode == 1
    assert "make secret: AWS refused" in ran.stderr
    assert "ResourceNotFoundException" in ran.stderr
    assert "can't find the specified secret" not in ran.stderr  # AWS's own message, here moto's
    assert arn not in ran.stderr
    assert not shows_the_key(ran.stdout + ran.stderr)


def test_make_secret_refuses_an_empty_key(
    aws: dict[str, str], deployed: Callable[..., str], secrets_manager: Any
) -> None:
    # Given a stack whose secret is empty, and nothing typed at the prompt (the input ends)
    name = f"token-vending-{uuid.uuid4().hex[:6]}"
    arn = deployed(name)

    # When make secret runs
    ran = run(aws, "secret", "--stack-name", name)

    # Then it refuses, saying where a key comes from, and puts nothing
    assert ran.returncode == 1
    assert "no OpenAI API key given: set OPENAI_API_KEY, or type it at the prompt" in ran.stderr
    with pytest.raises(secrets_manager.exceptions.ResourceNotFoundException):
        secrets_manager.get_secret_value(SecretId=arn)


def test_make_web_config_writes_the_pages_settings_from_the_outputs(
    aws: dict[str, str], deployed: Callable[..., str], tmp_path: Path
) -> None:
    # Given samconfig.toml's default stack, with its own user pool and the default callback URL
    deployed(DEFAULT_STACK)
    written = tmp_path / "config.json"

    # When make web-config runs
    ran = run(aws, "web-config", "--output", str(written))

    # Then web/config.json says where the API is, how to sign in (back to the pool's callback URL), and where OpenAI
    # takes the call; and, as the page's origin is not allowed by the API, says how to allow it
    assert ran.returncode == 0, ran.stderr
    assert json.loads(written.read_text()) == {
        "apiBaseUrl": f"{API}/v1",
        "realtimeUrl": "https://api.openai.com/v1/realtime/calls",
        "signIn": {
            "mode": "oidc",
            "issuer": ISSUER,
            "clientId": CLIENT_ID,
            "redirectUri": "http://localhost:5173/",
            "scope": "openid email profile",
        },
    }
    assert f"from stack {DEFAULT_STACK} ({REGION})" in ran.stdout
    assert "Deploy with AllowedOrigins=http://localhost:5173" in ran.stderr


def test_make_web_config_takes_the_pages_url_and_says_nothing_when_its_origin_is_allowed(
    aws: dict[str, str], deployed: Callable[..., str], tmp_path: Path
) -> None:
    # Given a stack that allows the page's origin and calls another OpenAI-compatible host
    name = f"token-vending-{uuid.uuid4().hex[:6]}"
    deployed(name, AllowedOrigins="https://app.example.com", OpenAIUpstreamUrl="https://openai.example.net/")
    written = tmp_path / "config.json"

    # When make web-config runs with the page's URL
    ran = run(aws, "web-config", "--stack-name", name, "--redirect-uri", "https://app.example.com/voice/",
              "--output", str(written))  # fmt: skip

    # Then the page is sent back there, and calls that host
    assert ran.returncode == 0, ran.stderr
    config = json.loads(written.read_text())
    assert config["signIn"]["redirectUri"] == "https://app.example.com/voice/"
    assert config["realtimeUrl"] == "https://openai.example.net/v1/realtime/calls"
    assert ran.stderr == ""


def test_make_web_config_explains_a_stack_a_page_cannot_use(
    aws: dict[str, str], deployed: Callable[..., str], tmp_path: Path
) -> None:
    # Given a stack for SigV4 backends (no JwtIssuer output) and one with the operator's own issuer (no client id)
    iam, own_issuer = (f"token-vending-{uuid.uuid4().hex[:6]}" for _ in range(2))
    deployed(iam, outputs=["ApiKeySecretArn", "OpenAIBaseUrl"])
    deployed(own_issuer, outputs=["ApiKeySecretArn", "OpenAIBaseUrl", "JwtIssuer"])
    written = tmp_path / "config.json"

    # When make web-config runs for each
    for_iam = run(aws, "web-config", "--stack-name", iam, "--output", str(written))
    for_issuer = run(aws, "web-config", "--stack-name", own_issuer, "--output", str(written))

    # Then each says why, and what would do; nothing is written
    assert for_iam.returncode == 1
    assert "takes SigV4-signed backends (CallerAuth=iam)" in for_iam.stderr
    assert for_issuer.returncode == 1
    assert "make web-config CLIENT_ID=..." in for_issuer.stderr
    assert not written.exists()


def test_the_make_targets_pass_the_stack_samconfig_and_the_person_pick() -> None:
    # Given the Makefile
    # When the targets' commands are listed (make -n runs nothing)
    def planned(*arguments: str) -> str:
        listed = subprocess.run(["make", "-n", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        return " ".join(listed.stdout.split())

    # Then each runs tools.deploy with samconfig.toml's environment, and the stack and page URL when given
    assert '-m tools.deploy secret --config-env "default"' in planned("secret")
    assert '-m tools.deploy secret --config-env "prod" --stack-name "mine"' in planned(
        "secret", "CONFIG_ENV=prod", "STACK_NAME=mine"
    )
    assert '-m tools.deploy web-config --config-env "default" --redirect-uri "https://app.example.com/"' in planned(
        "web-config", "REDIRECT_URI=https://app.example.com/"
    )
    assert 'deploy --guided --config-env "prod"' in planned("deploy", "CONFIG_ENV=prod")
