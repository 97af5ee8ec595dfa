"""The quota table, the function's reach into it, its concurrency ceiling, and the alarms and dashboard that watch
the quotas, proved on the template as CloudFormation receives it (the SAM transform of tests/templates.py).

The alarms and the dashboard name metrics the function publishes: METRICS below is the one list of them (the
issue's contract), and the alarms are also checked against what the function's own observability module emits.
"""

import json
import re
from typing import Any

import pytest

from tests.output import Output
from tests.templates import (
    API_ID,
    SERVICE,
    Stack,
    alarm_metric,
    dashboard,
    dashboard_metrics,
    dashboard_searches,
    deploy,
    emitted,
    namespace_of,
    raw_template,
    sam_transform,
)
from voice_access import observability

# What the function publishes in its stack's namespace (POWERTOOLS_METRICS_NAMESPACE): each metric by service alone,
# and by service and its own dimensions (with the values an alarm may pick, where the contract names them).
METRICS: dict[str, dict[str, set[str] | None]] = {
    "ClientSecretsMinted": {"endpoint": None, "profile": None},
    "UpstreamLatency": {"endpoint": None, "profile": None},
    "SpendBrakeUsed": {"endpoint": None, "profile": None},
    "QuotaRefusals": {"limit": {"caller", "spend_brake", "budget", "concurrent_calls", "money_brake"}},
    "DependencyErrors": {"dependency": {"dynamodb", "secretsmanager"}},
    "ConfigurationErrors": {"reason": None},
    "UpstreamErrors": {"kind": None},
    "RequestsRejected": {"endpoint": None, "reason": None},
    "UnexpectedErrors": {},
    "QuotaFailOpen": {"profile": None},
    "QuotaRefundFailures": {},
    # The supervisor's: a call's policy violations, its end, its time, tokens and cost, and its own health.
    "PolicyViolations": {"kind": {"session_change", "tool_call"}, "action": {"restored", "ended"}},
    "CallsEnded": {"reason": None},
    "CallSeconds": {},
    "Tokens": {"direction": {"input", "output"}},
    "Cost": {},
    "UsageRefused": {},
    "SidebandMessagesSkipped": {"reason": None},
    "Backstops": {"outcome": {"ended", "already_ended"}},
    "SupervisorHandovers": {},
    # The minting function's, when a call it opened could not be supervised (and was hung up).
    "SupervisionFailures": {"step": None},
}
# Counted from the API's access log by the template's own metric filter, not by the function.
API_THROTTLES = "ApiThrottles"
ALARM_EMAIL = "alarms@example.com"

CASES: dict[str, dict[str, str]] = {
    "defaults": {},
    "ceiling": {"ReservedConcurrency": "5"},
    "email": {"AlarmEmail": ALARM_EMAIL},
    "brake": {"SpendBrakeMintsPerDay": "5000", "ReservedConcurrency": "50", "QuotaRefusalsAlarmPerMinute": "7"},
    "iam": {"CallerAuth": "iam"},
    "page": {"AllowedOrigins": "https://app.example.com"},
}


@pytest.fixture(scope="module")
def transformed() -> dict[str, dict[str, Any]]:
    return sam_transform(CASES)


@pytest.fixture(scope="module")
def stacks(transformed: dict[str, dict[str, Any]]) -> dict[str, Stack]:
    return {case: deploy(transformed[case], CASES[case]) for case in CASES}


def test_the_quota_table_holds_disposable_counters(transformed: dict[str, dict[str, Any]]) -> None:
    # Given the default deployment's quota table, as CloudFormation receives it
    table = transformed["defaults"]["Resources"]["QuotaTable"]

    # When its properties are read
    properties = table["Properties"]

    # Then it is keyed by pk alone, on demand, expires windows by TTL, is encrypted, keeps no backups, is named by
    # CloudFormation, and goes with the stack
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert properties["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert "TableName" not in properties
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Delete", "Delete")


@pytest.mark.parametrize("case", CASES)
def test_the_function_may_only_update_items_of_its_quota_table(stacks: dict[str, Stack], case: str) -> None:
    # Given the function's role under the case's parameters
    stack = stacks[case]
    role = stack.of_type("AWS::IAM::Role")["TokenVendingFunctionRole"]

    # When the statements of its inline policies that mention DynamoDB are listed
    statements = [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]
    dynamodb = [statement for statement in statements if "dynamodb" in json.dumps(statement)]

    # Then there is one: UpdateItem and the listing's BatchGetItem, allowed on exactly the table's ARN; no managed
    # policy grants DynamoDB
    assert dynamodb == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:UpdateItem", "dynamodb:BatchGetItem"],
            "Resource": stack.resolver.value({"Fn::GetAtt": ["QuotaTable", "Arn"]}, "test"),
        }
    ]
    assert not [arn for arn in role.get("ManagedPolicyArns", []) if "dynamodb" in arn.lower()]
    environment = stack.of_type("AWS::Lambda::Function")["TokenVendingFunction"]["Environment"]["Variables"]
    assert environment["QUOTA_TABLE_NAME"] == stack.ref("QuotaTable")


@pytest.mark.parametrize("case", CASES)
def test_the_concurrency_ceiling_is_reserved_only_when_asked(stacks: dict[str, Stack], case: str) -> None:
    # Given the case's ReservedConcurrency (0 by default)
    stack = stacks[case]
    ceiling = int(CASES[case].get("ReservedConcurrency", "0"))

    # When the function and the alarms are read
    function = stack.of_type("AWS::Lambda::Function")["TokenVendingFunction"]
    alarms = stack.of_type("AWS::CloudWatch::Alarm")

    # Then with a ceiling the function reserves it and an alarm watches it; without one neither is there
    if ceiling:
        assert int(function["ReservedConcurrentExecutions"]) == ceiling
        assert float(alarms["ConcurrencyCeilingAlarm"]["Threshold"]) == ceiling
    else:
        assert "ReservedConcurrentExecutions" not in function
        assert "ConcurrencyCeilingAlarm" not in alarms


@pytest.mark.parametrize("case", CASES)
def test_the_alarm_email_is_subscribed_only_when_given(stacks: dict[str, Stack], case: str) -> None:
    # Given the case's AlarmEmail (empty by default)
    stack = stacks[case]

    # When the topic's subscriptions are listed
    subscriptions = list(stack.of_type("AWS::SNS::Subscription").values())

    # Then the address given is subscribed to the alarm topic by e-mail, and nothing else is
    if "AlarmEmail" in CASES[case]:
        assert subscriptions == [{"TopicArn": stack.ref("AlarmTopic"), "Protocol": "email", "Endpoint": ALARM_EMAIL}]
    else:
        assert subscriptions == []


def test_the_alarm_email_parameter_takes_one_address_or_none() -> None:
    # Given the AlarmEmail parameter's pattern
    pattern = raw_template()["Parameters"]["AlarmEmail"]["AllowedPattern"]

    # When addresses are checked against it
    # Then one address or nothing is allowed, and a list or a stray word is not
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, ALARM_EMAIL)
    assert not re.fullmatch(pattern, ALARM_EMAIL + "," + ALARM_EMAIL.replace("alarms", "ops"))
    assert not re.fullmatch(pattern, "alarms")


@pytest.mark.parametrize("case", CASES)
def test_every_alarm_notifies_the_topic_and_stays_quiet_without_data(stacks: dict[str, Stack], case: str) -> None:
    # Given the alarms under the case's parameters
    stack = stacks[case]
    alarms = stack.of_type("AWS::CloudWatch::Alarm")

    # When their actions and their handling of missing data are read
    # Then each tells the topic when it fires and when it clears, and no data (no traffic) is not an alarm
    topic = stack.ref("AlarmTopic")
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert len(alarm["AlarmDescription"]) > 80, f"{name}: say what happened and what to do"


@pytest.mark.parametrize("case", CASES)
def test_every_alarm_watches_a_metric_that_is_published(stacks: dict[str, Stack], case: str) -> None:
    # Given the alarms under the case's parameters
    stack = stacks[case]

    # When each alarm's metric is compared with what the function, API Gateway, Lambda and the template publish
    for name, alarm in stack.of_type("AWS::CloudWatch::Alarm").items():
        namespace, metric, dimensions = alarm_metric(alarm)

        # Then it is one of them, under exactly the dimensions it is published with
        if namespace == "AWS/ApiGateway":
            assert metric in {"5xx", "4xx"}, name
            assert dimensions == {"ApiId": API_ID}, name
        elif namespace == "AWS/SQS":
            assert metric == "ApproximateNumberOfMessagesVisible", name
            assert dimensions == {"QueueName": failures_queue_name(stack)}, name
        elif namespace == "AWS/Lambda":
            assert metric in {"ConcurrentExecutions", "Throttles"}, name
            assert dimensions == {"FunctionName": stack.ref("TokenVendingFunction")}, name
        elif metric == API_THROTTLES:
            assert namespace == namespace_of(stack)
            assert dimensions == {}, name
        else:
            assert namespace == namespace_of(stack), name
            assert metric in METRICS, f"{name}: {metric} is not a metric the function publishes"
            assert dimensions.pop("service", None) == SERVICE, f"{name}: the service dimension is missing or wrong"
            assert len(dimensions) <= 1, name
            for dimension, value in dimensions.items():
                allowed = METRICS[metric].get(dimension, set())
                assert allowed is None or value in allowed, f"{name}: {metric} has no {dimension}={value}"


def failures_queue_name(stack: Stack) -> str:
    return str(stack.resolver.value({"Fn::GetAtt": ["SupervisorFailuresQueue", "QueueName"]}, "test"))


def test_the_alarms_cover_what_the_issue_names(stacks: dict[str, Stack]) -> None:
    # Given a deployment with a concurrency ceiling
    alarms = stacks["ceiling"].of_type("AWS::CloudWatch::Alarm")

    # When the alarms' metrics are listed
    watched = sorted(
        (metric, sorted(dimensions.values())) for _, metric, dimensions in map(alarm_metric, alarms.values())
    )

    # Then upstream errors, configuration errors, 5xx, the API's throttling, quota refusals, the spend brake, the
    # quota store, the concurrency ceiling, failed supervisors, policy violations, refused usage and the day's cost
    # each have one
    function = stacks["ceiling"].ref("TokenVendingFunction")
    assert watched == sorted(
        [
            ("UpstreamErrors", [SERVICE]),
            ("ConfigurationErrors", [SERVICE]),
            ("5xx", [API_ID]),
            (API_THROTTLES, []),
            ("QuotaRefusals", sorted([SERVICE, "caller"])),
            ("QuotaRefusals", sorted([SERVICE, "spend_brake"])),
            ("DependencyErrors", sorted([SERVICE, "dynamodb"])),
            ("ConcurrentExecutions", [function]),
            ("Throttles", [function]),
            ("ApproximateNumberOfMessagesVisible", [failures_queue_name(stacks["ceiling"])]),
            ("PolicyViolations", [SERVICE]),
            ("UsageRefused", [SERVICE]),
            ("Cost", [SERVICE]),
        ]
    )


def test_the_quota_refusals_alarm_takes_its_threshold_from_the_parameter(stacks: dict[str, Stack]) -> None:
    # Given deployments with the default and with 7 refusals a minute
    # When the alarm's threshold is read
    # Then it fires above the parameter's value, per minute
    for case, expected in (("defaults", 20), ("brake", 7)):
        alarm = stacks[case].of_type("AWS::CloudWatch::Alarm")["QuotaRefusalsAlarm"]
        assert (float(alarm["Threshold"]), alarm["ComparisonOperator"]) == (expected, "GreaterThanThreshold")
        assert (alarm["Period"], alarm["Statistic"]) == (60, "Sum")


def test_the_functions_own_metrics_carry_the_alarms_dimensions(
    stacks: dict[str, Stack], output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function's metric settings as the stack gives them, and the alarms on its metrics
    stack = stacks["ceiling"]
    for name, value in emitted(stack).items():
        monkeypatch.setenv(name, value)
    alarms = [
        alarm_metric(alarm)
        for alarm in stack.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Namespace"] == namespace_of(stack) and alarm["MetricName"] != API_THROTTLES
    ]

    for namespace, metric, dimensions in alarms:
        # When the function counts the metric, with the alarm's value of its own dimension (or any value)
        own = {name: dimensions.get(name, "any") for name in METRICS[metric]}
        observability.count(metric, **own)

        # Then one of the metric's dimension sets is exactly the alarm's, with the alarm's values
        document = [m for m in output.metrics() if metric in m][-1]
        published = document["_aws"]["CloudWatchMetrics"]
        assert [entry["Namespace"] for entry in published] == [namespace]
        assert sorted(dimensions) in [sorted(names) for names in published[0]["Dimensions"]], metric
        assert all(document[key] == value for key, value in dimensions.items()), metric


@pytest.mark.parametrize("case", CASES)
def test_the_dashboard_is_json_and_names_the_published_metrics(stacks: dict[str, Stack], case: str) -> None:
    # Given the dashboard's body under the case's parameters, substituted as CloudFormation would
    stack = stacks[case]
    widgets = dashboard(stack)["widgets"]

    # When its metrics and searches are read
    metrics = dashboard_metrics(widgets)
    searches = dashboard_searches(widgets)

    # Then each names a metric as it is published, and between them they show mints, refusals by reason and by
    # limit, OpenAI latency, quota use and the store's errors, the API's answers and Lambda's concurrency
    for namespace, metric, dimensions in metrics:
        if namespace == namespace_of(stack) and metric != API_THROTTLES:
            assert metric in METRICS, metric
            assert dimensions.pop("service") == SERVICE, metric
            assert set(dimensions) <= set(METRICS[metric]), metric
        elif namespace == "AWS/ApiGateway":
            assert dimensions == {"ApiId": API_ID}
        elif namespace == "AWS/Lambda":
            assert dimensions == {"FunctionName": stack.ref("TokenVendingFunction")}
    for namespace, names, metric in searches:
        assert namespace == namespace_of(stack)
        assert names == {"service", *METRICS[metric]}, f"{metric} is not published by {sorted(names)}"
    shown = {metric for _, metric, _ in metrics} | {metric for _, _, metric in searches}
    assert {
        "ClientSecretsMinted",
        "RequestsRejected",
        "QuotaRefusals",
        "UpstreamLatency",
        "SpendBrakeUsed",
        "DependencyErrors",
        "QuotaFailOpen",
        "4xx",
        "5xx",
        API_THROTTLES,
        "ConcurrentExecutions",
        "Throttles",
    } <= shown
    assert all(widget["properties"]["region"] == "us-east-1" for widget in widgets)


@pytest.mark.parametrize("case", CASES)
def test_the_dashboard_draws_the_brake_and_the_ceiling_when_set(stacks: dict[str, Stack], case: str) -> None:
    # Given the dashboard under the case's parameters
    widgets = dashboard(stacks[case])["widgets"]

    # When its horizontal lines are read
    lines = {
        line["label"]: line["value"]
        for widget in widgets
        for line in widget["properties"].get("annotations", {}).get("horizontal", [])
    }

    # Then the template's spend brake and concurrency ceiling are drawn when set, and nothing else
    expected = {
        name: int(CASES[case][name])
        for name in ("SpendBrakeMintsPerDay", "ReservedConcurrency")
        if int(CASES[case].get(name, "0"))
    }
    assert lines == expected


def test_the_outputs_name_the_table_the_topic_and_the_dashboard() -> None:
    # Given the template's outputs
    outputs = raw_template()["Outputs"]

    # When the quota's are read
    # Then they give the table, the alarm topic and the dashboard's console address
    assert outputs["QuotaTableName"]["Value"] == {"Ref": "QuotaTable"}
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert "${TokenVendingDashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]
    assert outputs["DashboardUrl"]["Value"]["Fn::Sub"].startswith("https://${AWS::Region}.console.aws.amazon.com/")


# CloudWatch Logs' JSON filter patterns, as far as the template's uses them: { (sel = "s") && (sel = "s") },
# where sel is $.field and "s" a quoted string compared for equality.
_TERM = re.compile(r'\(\s*\$\.(\w+)\s*=\s*"([^"]*)"\s*\)')


def filter_matches(pattern: str, event: dict[str, Any]) -> bool:
    braced = re.fullmatch(r"\{(.*)\}", pattern.strip())
    assert braced, f"not a JSON filter pattern: {pattern}"
    terms = [term.strip() for term in braced[1].split("&&")]
    parsed = [_TERM.fullmatch(term) for term in terms]
    assert all(parsed), f'the test\'s evaluator takes only (\\$.field = "string") terms joined by &&: {pattern}'
    return all(str(event.get(match[1])) == match[2] for match in parsed if match)


def access_log_line(stack: Stack, **context: str) -> dict[str, Any]:
    """One access log line in the stage's format: the given $context variables, the others "-" as API Gateway
    writes a variable without a value."""
    stage = stack.of_type("AWS::ApiGatewayV2::Stage")["TokenVendingApiStage"]
    line = re.sub(r"\$context\.([\w.]+)", lambda m: context.get(m[1], "-"), stage["AccessLogSettings"]["Format"])
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_the_throttle_filter_counts_the_gateways_429s_and_not_the_quotas(stacks: dict[str, Stack]) -> None:
    # Given the metric filter on the API's access log, and three lines: a request API Gateway throttled (no
    # integration ran), a quota refusal (the function answered 429), and a mint
    stack = stacks["defaults"]
    (metric_filter,) = stack.of_type("AWS::Logs::MetricFilter").values()
    common = {"requestId": "abc", "routeKey": "POST /v1/realtime/client_secrets", "identity.sourceIp": "192.0.2.1"}
    throttled = access_log_line(stack, **common, status="429", **{"error.message": "Too Many Requests"})
    quota = access_log_line(stack, **common, status="429", integrationLatency="41")
    minted = access_log_line(stack, **common, status="200", integrationLatency="412")

    # When the filter's pattern is applied to each
    pattern = metric_filter["FilterPattern"]

    # Then only the throttled request counts, as ApiThrottles in the function's namespace, on the access log
    assert filter_matches(pattern, throttled)
    assert not filter_matches(pattern, quota)
    assert not filter_matches(pattern, minted)
    assert metric_filter["LogGroupName"] == stack.ref("TokenVendingApiAccessLogGroup")
    (transformation,) = metric_filter["MetricTransformations"]
    assert (transformation["MetricNamespace"], transformation["MetricName"]) == (namespace_of(stack), API_THROTTLES)
    assert transformation["MetricValue"] == "1"


def test_the_access_log_holds_no_token_and_no_claim(stacks: dict[str, Stack]) -> None:
    # Given the stage's access log format
    stage = stacks["defaults"].of_type("AWS::ApiGatewayV2::Stage")["TokenVendingApiStage"]

    # When the variables it logs are listed
    variables = set(re.findall(r"\$context\.([\w.]+)", stage["AccessLogSettings"]["Format"]))

    # Then none is a claim, a header or the request's body
    assert not {name for name in variables if name.startswith("authorizer.claims") or "header" in name}
    assert {"status", "integrationLatency"} <= variables


def test_pages_may_read_the_quotas_headers(stacks: dict[str, Stack]) -> None:
    # Given an API that allows a page's origin
    stack = stacks["page"]

    # When the headers a page may read are listed
    exposed = stack.of_type("AWS::ApiGatewayV2::Api")["TokenVendingApi"]["CorsConfiguration"]["ExposeHeaders"]

    # Then the SDKs' retry and rate limit headers are among them
    assert {
        "retry-after",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-should-retry",
    } <= set(exposed)
