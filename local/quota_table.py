"""The template's DynamoDB tables (the quota table) in moto's DynamoDB, made from their own Properties.

Each AWS::DynamoDB::Table present under the parameter overrides is created from its Properties, resolved as
CloudFormation would: key schema, attribute definitions, billing mode and encryption with CreateTable, the
TTL attribute with UpdateTimeToLive, point-in-time recovery (when on) with UpdateContinuousBackups. So the
counters `make run` and the tests keep cannot drift from the table the stack creates. A property this
module cannot honour is refused (TemplateError) rather than left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.aws import REGION, dynamodb_client
from local.created import Created, Resource, declared, local_name, refuse_unhonoured, refused_by_moto

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


class Table(Resource):
    """A table the template declares, in moto (its Ref its name)."""


class LocalTables(Created[Table]):
    """The template's tables in moto at ``endpoint_url``."""

    kind = "table"

    @property
    def tables(self) -> tuple[Table, ...]:
        return self.resources

    def function_environment(self) -> dict[str, str]:
        """Where the function's DynamoDB requests go: the SDKs' service-specific endpoint variable, which the
        function's own client reads too; nothing when the template has no table."""
        return {"AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url} if self.tables else {}

    def name(self, logical_id: str) -> str:
        """The table name of the template's ``logical_id``."""
        return self.created(logical_id).name


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
    resources = declared(template_path, overrides, region, _TABLE)
    client = dynamodb_client(endpoint_url, region)
    created: list[Table] = []
    for logical_id, properties in resources:
        refuse_unhonoured(logical_id, properties, _HONOURED, "DynamoDB", "local/quota_table.py")
        name = local_name(properties.get("TableName"), logical_id, unique=unique)
        with refused_by_moto(logical_id, "DynamoDB", "table"):
            created.append(Table(logical_id, name, _create(client, name, properties)))
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
