"""The local DynamoDB: the template's quota table made in moto from its own Properties, and conditional updates
that stay atomic under concurrent requests (moto's alone are not: see local.aws.one_dynamodb_request_at_a_time)."""

import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.aws import FAKE_CREDENTIALS, LocalAws, one_dynamodb_request_at_a_time
from local.cloudformation import TemplateError
from local.quota_table import LocalTables, create_from_template
from tests.deployment import REGION
from tests.local_api import busy_switching
from tests.paths import TEMPLATE

LIMIT = 10
CALLERS = 50


def test_the_quota_table_is_made_from_the_templates_properties(quota_tables: LocalTables, dynamodb: Any) -> None:
    # Given the template's QuotaTable, made in moto for this test
    name = quota_tables.name("QuotaTable")

    # When moto describes it
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]

    # Then it is the template's: key pk (a string), on demand, encrypted, TTL on expires_at
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    # and the function's environment names it, and sends DynamoDB's requests to moto
    assert quota_tables.physical == {"QuotaTable": {"Ref": name, "Arn": table["TableArn"]}}
    assert quota_tables.function_environment() == {"AWS_ENDPOINT_URL_DYNAMODB": quota_tables.endpoint_url}


def test_make_runs_table_is_named_for_its_logical_id_and_each_tests_is_its_own(secrets_manager_url: str) -> None:
    # Given a moto server of make run's own, and the tests' one
    with LocalAws() as aws:
        # When the tables are made as make run makes them, and twice as the tests make them
        make_run = create_from_template(TEMPLATE, {}, aws.endpoint_url, REGION)
    first, second = (create_from_template(TEMPLATE, {}, secrets_manager_url, REGION, unique=True) for _ in "12")

    # Then make run's is local-QuotaTable, and each of the tests' has a name of its own
    assert make_run.name("QuotaTable") == "local-QuotaTable"
    assert first.name("QuotaTable").startswith("local-QuotaTable-")
    assert first.name("QuotaTable") != second.name("QuotaTable")


def test_a_property_the_local_dynamodb_cannot_honour_is_refused(tmp_path: Path, secrets_manager_url: str) -> None:
    # Given a template whose table streams its changes (nothing local would read the stream)
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Streamed:\n"
        "    Type: AWS::DynamoDB::Table\n"
        "    Properties:\n"
        "      BillingMode: PAY_PER_REQUEST\n"
        "      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: pk, KeyType: HASH}]\n"
        "      StreamSpecification: {StreamViewType: NEW_IMAGE}\n"
    )

    # When its tables are made, Then the property is named, not left out
    with pytest.raises(TemplateError, match="Streamed: the local DynamoDB cannot honour StreamSpecification"):
        create_from_template(template, {}, secrets_manager_url, REGION, unique=True)


def test_a_table_its_condition_leaves_out_is_not_made(tmp_path: Path, secrets_manager_url: str) -> None:
    # Given a template whose table exists only when a parameter says so
    template = tmp_path / "template.yaml"
    template.write_text(
        "Parameters:\n"
        "  Quotas: {Type: String, Default: 'off'}\n"
        "Conditions:\n"
        "  QuotasOn: !Equals [!Ref Quotas, 'on']\n"
        "Resources:\n"
        "  Counters:\n"
        "    Type: AWS::DynamoDB::Table\n"
        "    Condition: QuotasOn\n"
        "    Properties:\n"
        "      BillingMode: PAY_PER_REQUEST\n"
        "      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: pk, KeyType: HASH}]\n"
    )

    # When its tables are made with the default, and with the parameter on
    off = create_from_template(template, {}, secrets_manager_url, REGION, unique=True)
    on = create_from_template(template, {"Quotas": "on"}, secrets_manager_url, REGION, unique=True)

    # Then only the second has it, and only the second sends the function to DynamoDB
    assert (off.physical, off.function_environment()) == ({}, {})
    assert list(on.physical) == ["Counters"]
    assert "AWS_ENDPOINT_URL_DYNAMODB" in on.function_environment()


def test_concurrent_conditional_updates_admit_exactly_the_limit(secrets_manager_url: str, quota_table: str) -> None:
    # Given one item's counter with a limit of 10, and 50 callers on their own connections, at once, ten times
    # over (raw moto admits 11 or more in about a quarter of such trials)
    client = boto3.client(
        "dynamodb",
        endpoint_url=secrets_manager_url,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(max_pool_connections=CALLERS),
    )
    for trial in range(10):
        with busy_switching():
            admitted = _race(client, quota_table, f"caller#{trial}")

        # Then exactly the limit is admitted each time, and the counter says so
        assert admitted == LIMIT, f"trial {trial}"
        item = client.get_item(TableName=quota_table, Key={"pk": {"S": f"caller#{trial}"}})["Item"]
        assert item["mints"] == {"N": str(LIMIT)}


def test_other_services_requests_do_not_wait_for_dynamodbs() -> None:
    # Given an app that holds a DynamoDB request until another request has been answered
    inside, answered_meanwhile = threading.Event(), threading.Event()
    held: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_20120810."):
            inside.set()
            held.append(answered_meanwhile.wait(timeout=10))  # a safety net: the test fails, it does not hang
        else:
            answered_meanwhile.set()
        return [b"{}"]

    serialised: Any = one_dynamodb_request_at_a_time(app)
    dynamodb_request = threading.Thread(
        target=serialised, args=({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem"}, lambda *_: None)
    )

    # When a DynamoDB request is being answered and a Secrets Manager request arrives
    dynamodb_request.start()
    assert inside.wait(timeout=10)
    serialised({"HTTP_X_AMZ_TARGET": "secretsmanager.GetSecretValue"}, lambda *_: None)
    dynamodb_request.join()

    # Then the Secrets Manager request did not wait for it
    assert held == [True]


def _race(client: Any, table: str, pk: str) -> int:
    """How many of CALLERS conditional increments, sent at once, the store admits."""
    start = threading.Barrier(CALLERS)
    admitted: list[str] = []
    # Once, here: botocore makes a client's exception classes on first use, and threads that race to it can each
    # make their own, which the others' `except` then does not match.
    refused = client.exceptions.ConditionalCheckFailedException

    def increment() -> None:
        start.wait()
        try:
            client.update_item(
                TableName=table,
                Key={"pk": {"S": pk}},
                UpdateExpression="ADD mints :one",
                ConditionExpression="attribute_not_exists(mints) OR mints < :limit",
                ExpressionAttributeValues={":one": {"N": "1"}, ":limit": {"N": str(LIMIT)}},
            )
            admitted.append(pk)
        except refused:
            pass

    callers = [threading.Thread(target=increment) for _ in range(CALLERS)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    return len(admitted)
