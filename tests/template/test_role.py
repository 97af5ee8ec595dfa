"""The functions' roles read the secret as AWS hands it, and nothing more: a full secret ARN or none (the stack's
own), kms:Decrypt on a customer managed key only when one is given (and only through Secrets Manager), X-Ray's grant
only with tracing on; and every log group keeps its retention and deletion settings explicit. Proved on the template as
CloudFormation receives it (the SAM transform of tests/templates.py).
"""

import json
import re
from typing import Any

import pytest

from local.cloudformation import Resolver, TemplateError
from tests.deployment import REGION
from tests.templates import Stack, deploy, raw_template, refused_by_rules, sam_transform

SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:openai/realtime-api-key-AbC123"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
XRAY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
# Each function's own role: the minting function's, and the supervisor's (which reads the same key).
FUNCTION_ROLES = {"TokenVendingFunction": "TokenVendingFunctionRole", "SupervisorFunction": "SupervisorFunctionRole"}

CASES: dict[str, dict[str, str]] = {
    "defaults": {},
    "tracing": {"EnableTracing": "true"},
    "own-secret": {"OpenAIApiKeySecretArn": SECRET_ARN},
    "own-secret+kms": {"OpenAIApiKeySecretArn": SECRET_ARN, "OpenAIApiKeySecretKmsKeyArn": KMS_KEY_ARN},
    "own-secret+kms+tracing": {
        "OpenAIApiKeySecretArn": SECRET_ARN,
        "OpenAIApiKeySecretKmsKeyArn": KMS_KEY_ARN,
        "EnableTracing": "true",
    },
}


@pytest.fixture(scope="module")
def transformed() -> dict[str, dict[str, Any]]:
    return sam_transform(CASES)


@pytest.fixture(scope="module")
def stacks(transformed: dict[str, dict[str, Any]]) -> dict[str, Stack]:
    return {case: deploy(transformed[case], CASES[case]) for case in CASES}


def statements(stack: Stack, role_name: str = "TokenVendingFunctionRole") -> list[dict[str, Any]]:
    role = stack.of_type("AWS::IAM::Role")[role_name]
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def managed_policies(stack: Stack, role_name: str = "TokenVendingFunctionRole") -> list[str]:
    role = stack.of_type("AWS::IAM::Role")[role_name]
    return list(role.get("ManagedPolicyArns", []))


@pytest.mark.parametrize(
    "arn",
    [
        "",
        SECRET_ARN,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/openai_key.v2+x=y@z-a1B2c3",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:key-Zz9Zz9",
        "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:key-000000",
    ],
)
def test_the_secret_arn_takes_a_full_arn_or_nothing(arn: str) -> None:
    # Given the OpenAIApiKeySecretArn parameter
    parameter = raw_template()["Parameters"]["OpenAIApiKeySecretArn"]

    # When a full ARN (or nothing) is checked against it, as CloudFormation and make run's gateway check it
    resolver = Resolver(raw_template(), {"OpenAIApiKeySecretArn": arn}, REGION)

    # Then it is accepted
    assert re.fullmatch(parameter["AllowedPattern"], arn)
    assert resolver.value({"Ref": "OpenAIApiKeySecretArn"}, "test") == arn


@pytest.mark.parametrize(
    "arn",
    [
        "openai/realtime-api-key",  # the name
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai/realtime-api-key",  # a partial ARN
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai/realtime-api-key-AbC12",  # a suffix cut short
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai/realtime-api-key-*",  # a wildcard
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai/realtime-api-key-AbC123 ",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ],
)
def test_a_partial_secret_arn_is_refused_at_deploy_saying_what_to_paste(arn: str) -> None:
    # Given the OpenAIApiKeySecretArn parameter
    parameter = raw_template()["Parameters"]["OpenAIApiKeySecretArn"]

    # When a name, a partial ARN or another ARN is checked against it
    # Then CloudFormation refuses it (as the gateway does), with a message that says what to paste and where from
    assert not re.fullmatch(parameter["AllowedPattern"], arn)
    with pytest.raises(TemplateError, match="OpenAIApiKeySecretArn"):
        Resolver(raw_template(), {"OpenAIApiKeySecretArn": arn}, REGION)
    message = " ".join(parameter["ConstraintDescription"].split())
    assert "full ARN" in message
    assert "aws secretsmanager describe-secret --secret-id NAME --query ARN --output text" in message


@pytest.mark.parametrize("function_name", FUNCTION_ROLES)
@pytest.mark.parametrize("case", CASES)
def test_the_role_reads_exactly_the_secret_and_decrypts_only_with_the_key_given(
    stacks: dict[str, Stack], case: str, function_name: str
) -> None:
    # Given the function's role under the case's parameters
    stack = stacks[case]
    given = CASES[case]
    role_name = FUNCTION_ROLES[function_name]

    # When its statements on Secrets Manager and KMS are read
    secret = [s for s in statements(stack, role_name) if "secretsmanager:" in json.dumps(s["Action"])]
    kms = [s for s in statements(stack, role_name) if "kms:" in json.dumps(s)]

    # Then it reads the one secret (the given one, else the stack's own), and decrypts only with a key given, only
    # through Secrets Manager in the stack's region; no managed policy grants either
    own = given.get("OpenAIApiKeySecretArn")
    # (a secret given by ARN also with any 6-character suffix: a partial ARN the parameter's pattern cannot tell,
    # such as ...:secret:openai-secret, must still be readable)
    expected_secret = [own, f"{own}-??????"] if own else stack.ref("ApiKeySecret")
    assert secret == [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": expected_secret}]
    if "OpenAIApiKeySecretKmsKeyArn" in given:
        assert kms == [
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": KMS_KEY_ARN,
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}},
            }
        ]
    else:
        assert kms == []
    assert not [arn for arn in managed_policies(stack, role_name) if "secret" in arn.lower() or "kms" in arn.lower()]
    function = stack.of_type("AWS::Lambda::Function")[function_name]
    assert function["Environment"]["Variables"]["OPENAI_API_KEY_SECRET_ID"] == (own or stack.ref("ApiKeySecret"))


def test_a_kms_key_without_its_secret_is_refused_at_deploy() -> None:
    # Given a KMS key given alone, and one given with its secret
    template = raw_template()
    alone = {"OpenAIApiKeySecretKmsKeyArn": KMS_KEY_ARN}
    paired = {**alone, "OpenAIApiKeySecretArn": SECRET_ARN}

    # When CloudFormation evaluates the template's rules
    # Then the key alone is refused (the stack's own secret uses the aws/secretsmanager key), with the key's secret
    # it is not, and an alias or a name is no key ARN
    assert refused_by_rules(template, alone) == ["KmsKeyGoesWithItsSecret"]
    assert refused_by_rules(template, paired) == []
    pattern = template["Parameters"]["OpenAIApiKeySecretKmsKeyArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, KMS_KEY_ARN)
    assert re.fullmatch(pattern, f"arn:aws:kms:{REGION}:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab")
    assert not re.fullmatch(pattern, f"arn:aws:kms:{REGION}:123456789012:alias/openai")
    assert not re.fullmatch(pattern, "alias/aws/secretsmanager")


@pytest.mark.parametrize("function_name", FUNCTION_ROLES)
@pytest.mark.parametrize("case", CASES)
def test_x_ray_is_granted_only_with_tracing_on(stacks: dict[str, Stack], case: str, function_name: str) -> None:
    # Given the stack under the case's parameters: tracing on or off
    stack = stacks[case]
    tracing = CASES[case].get("EnableTracing") == "true"
    role_name = FUNCTION_ROLES[function_name]

    # When the function's roles, their grants and the function's tracing mode are read
    function = stack.of_type("AWS::Lambda::Function")[function_name]
    xray = [arn for arn in managed_policies(stack, role_name) if "xray" in arn.lower()]
    xray += [json.dumps(s) for s in statements(stack, role_name) if "xray" in json.dumps(s).lower()]

    # Then the function has one role, the template's own (beside the other function's and the backstop scheduler's);
    # it may write to X-Ray and traces actively only with tracing on; off, it only passes a caller's trace header on
    # (Lambda's default), with no X-Ray grant
    assert sorted(stack.of_type("AWS::IAM::Role")) == sorted([*FUNCTION_ROLES.values(), "BackstopSchedulerRole"])
    assert function["Role"] == stack.resolver.value({"Fn::GetAtt": [role_name, "Arn"]}, "test")
    assert xray == ([XRAY] if tracing else [])
    assert function["TracingConfig"] == {"Mode": "Active" if tracing else "PassThrough"}
    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" in managed_policies(stack, role_name)


@pytest.mark.parametrize("case", CASES)
def test_every_log_group_keeps_its_retention_and_deletion_explicit(
    transformed: dict[str, dict[str, Any]], case: str
) -> None:
    # Given the log groups the transformed template creates
    groups = {name: r for name, r in transformed[case]["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}

    # When their settings are read
    # Then each expires its events, and says what a stack update or delete does with it
    assert set(groups) == {
        "TokenVendingFunctionLogGroup",
        "SupervisorFunctionLogGroup",
        "TokenVendingApiAccessLogGroup",
    }
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == 30, name
        assert group.get("DeletionPolicy") in {"Delete", "Retain"}, name
        assert group.get("UpdateReplacePolicy") == group["DeletionPolicy"], name
