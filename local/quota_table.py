"""The template's DynamoDB tables (the quota table) in moto's DynamoDB, made from their own Properties.

Each AWS::DynamoDB::Table present under the parameter overrides is created from its Properties, resolved as
CloudFormation would: key schema, attribute definitions, billing mode and encryption with CreateTable, the
TTL attribute with UpdateTimeToLive, point-in-time recovery (when on) with UpdateContinuousBackups. So the
counters `make run` and the tests keep cannot drift from the table the stack creates. A property this
module cannot honour is refused (TemplateError) rather than left out.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from local import cloudformation
from local.aws import REGION, dynamodb_client
from local.cloudformation import Resolver, TemplateError

_TABLE = "AWS::DynamoDB::Table"
# CloudFormation's properties that CreateTable takes as they are.
_AS_IS = frozenset(
    {
        "AttributeDefinitions",
        "BillingMode",
        "DeletionProtectionEnabled",
        "GlobalSecondaryIndexes",
        "KeySchema",
        "LocalSecondaryIndexes",
        "ProvisionedThroughput",
        "TableClass",
        "Tags",
    }
)
_HONOURED = _AS_IS | {"TableName", "SSESpecification", "TimeToLiveSpecification", "PointInTimeRecoverySpecification"}
# SSESpecification's names in CloudFormation -> in CreateTable.
_SSE_NAMES = {"SSEEnabled": "Enabled", "SSEType": "SSEType", "KMSMasterKeyId": "KMSMasterKeyId"}


@dataclass(frozen=True)
class Table:
    logical_id: str
    name: str
    arn: str


@dataclass(frozen=True)
class LocalTables:
    """The template's tables in moto at ``endpoint_url``."""

    endpoint_url: str
    tables: tuple[Table, ...] = ()

    @property
    def physical(self) -> dict[str, dict[str, str]]:
        """Each table's Ref (its name) and Arn, for local.cloudformation.Resolver's ``physical``."""
        return {table.logical_id: {"Ref": table.name, "Arn": table.arn} for table in self.tables}

    def function_environment(self) -> dict[str, str]:
        """Where the function's DynamoDB requests go: the SDKs' service-specific endpoint variable, which the
        function's own client reads too; nothing when the template has no table."""
        return {"AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url} if self.tables else {}

    def name(self, logical_id: str) -> str:
        """The table name of the template's ``logical_id``."""
        for table in self.tables:
            if table.logical_id == logical_id:
                return table.name
        created = ", ".join(table.logical_id for table in self.tables) or "none"
        raise KeyError(f"no table {logical_id} was created (created: {created})")


def create_from_template(
    template_path: Path | str,
    overrides: Mapping[str, str],
    endpoint_url: str,
    region: str = REGION,
    *,
    unique: bool = False,
) -> LocalTables:
    """Create every table of the template present under ``overrides`` in moto at ``endpoint_url``.

    A table is named as its TableName says, else "local-<logical id>" (CloudFormation would make up
    <stack>-<logical id>-<random>); ``unique``: with random characters appended, so that each call has tables
    of its own (empty counters for each test on one moto server).
    """
    resolver = Resolver(cloudformation.load(template_path), overrides, region)
    client = dynamodb_client(endpoint_url, region)
    created: list[Table] = []
    for logical_id, resource in resolver.present(_TABLE).items():
        properties: dict[str, Any] = resolver.value(resource.get("Properties") or {}, logical_id)
        if unknown := sorted(set(properties) - _HONOURED):
            raise TemplateError(
                f"{logical_id}: the local DynamoDB cannot honour {', '.join(unknown)} "
                f"(it honours {', '.join(sorted(_HONOURED))}): remove them, or teach local/quota_table.py them"
            )
        name = str(properties.get("TableName") or f"local-{logical_id}")
        if unique:
            name = f"{name}-{secrets.token_hex(4)}"
        try:
            created.append(Table(logical_id, name, _create(client, name, properties)))
        except (ClientError, ParamValidationError) as error:
            raise TemplateError(f"{logical_id}: moto's DynamoDB refused the table's Properties: {error}") from None
    return LocalTables(endpoint_url, tuple(created))


def _create(client: Any, name: str, properties: Mapping[str, Any]) -> str:
    """Create the table ``name`` as ``properties`` say; its ARN."""
    arguments = {key: value for key, value in properties.items() if key in _AS_IS}
    if "SSESpecification" in properties:
        sse = properties["SSESpecification"]
        arguments["SSESpecification"] = {_SSE_NAMES.get(key, key): value for key, value in sse.items()}
        if "Enabled" in arguments["SSESpecification"]:
            arguments["SSESpecification"]["Enabled"] = _true(sse["SSEEnabled"])
    arn = str(client.create_table(TableName=name, **arguments)["TableDescription"]["TableArn"])
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and _true(ttl.get("Enabled")):
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    recovery = properties.get("PointInTimeRecoverySpecification")
    if recovery and _true(recovery.get("PointInTimeRecoveryEnabled")):
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    return arn


def _true(value: object) -> bool:
    """A CloudFormation Boolean: YAML's true, or the string "true" (as a parameter gives it)."""
    return value is True or str(value).lower() == "true"
