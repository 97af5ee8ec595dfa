"""The supervisor in the template: its function, its own layer, its role, how Lambda runs it (no retries, failures
to a queue that alarms), the backstop's schedule group and role, what the minting function may do to start both,
the alarms and dashboard widgets on what the supervisor meters, and the usage route. Proved on the template as
CloudFormation receives it (the SAM transform of tests/templates.py), and on the layer's pins.

Least privilege is checked statement by statement: each role's grants are listed whole, so a wider one fails here.
"""

import fnmatch
import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from local.cloudformation import ACCOUNT_ID
from tests.deployment import REGION
from tests.output import Output
from tests.paths import ROOT
from tests.templates import (
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

SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:openai/realtime-api-key-AbC123"
CASES: dict[str, dict[str, str]] = {
    "defaults": {},
    "tracing": {"EnableTracing": "true"},
    "iam+own-secret": {"CallerAuth": "iam", "OpenAIApiKeySecretArn": SECRET_ARN},
    "cost": {"DailyCostAlarmUsd": "7.5"},
}
SUPERVISOR_LAYER = ROOT / "layers" / "supervisor" / "requirements.txt"
DEPENDENCIES_LAYER = ROOT / "layers" / "dependencies" / "requirements.txt"
TWO_WEEKS = 14 * 24 * 3600


@pytest.fixture(scope="module")
def transformed() -> dict[str, dict[str, Any]]:
    return sam_transform(CASES)


@pytest.fixture(scope="module")
def stacks(transformed: dict[str, dict[str, Any]]) -> dict[str, Stack]:
    return {case: deploy(transformed[case], CASES[case]) for case in CASES}


def arn(stack: Stack, logical_id: str) -> Any:
    return stack.resolver.value({"Fn::GetAtt": [logical_id, "Arn"]}, "test")


def group_schedules(stack: Stack) -> str:
    """Every schedule of the stack's backstop group, as an IAM resource."""
    return f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/{stack.ref('BackstopScheduleGroup')}/*"


def queue_arn(stack: Stack) -> str:
    return str(arn(stack, "SupervisorFailuresQueue"))


def role(stack: Stack, name: str) -> dict[str, Any]:
    return stack.of_type("AWS::IAM::Role")[name]


def statements(stack: Stack, role_name: str) -> list[dict[str, Any]]:
    """The role's statements: its own policies', then those of the policies beside it that name it."""
    documents = [policy["PolicyDocument"] for policy in role(stack, role_name).get("Policies", [])]
    beside = stack.of_type("AWS::IAM::RolePolicy").values()
    documents += [policy["PolicyDocument"] for policy in beside if policy["RoleName"] == stack.ref(role_name)]
    return [statement for document in documents for statement in document["Statement"]]


def grants(stack: Stack, role_name: str, *services: str) -> list[dict[str, Any]]:
    """The role's statements on the actions of these services (e.g. "dynamodb:")."""
    return [s for s in statements(stack, role_name) if any(service in json.dumps(s["Action"]) for service in services)]


def layer_names(function: dict[str, Any]) -> list[str]:
    """The names of a function's layers (from their version ARNs: arn:aws:lambda:region:account:layer:name:1)."""
    return [layer.split(":")[6] for layer in function["Layers"]]


def pins(path: Path) -> dict[str, str]:
    found = (re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in path.read_text().splitlines())
    return {match[1].lower(): match[2] for match in found if match}


@pytest.mark.parametrize("case", CASES)
def test_the_supervisor_is_its_own_function_with_its_own_layer(stacks: dict[str, Stack], case: str) -> None:
    # Given the stack under the case's parameters
    stack = stacks[case]
    functions = stack.of_type("AWS::Lambda::Function")
    tracing = CASES[case].get("EnableTracing") == "true"

    # When the supervisor and the minting function are read
    supervisor, minting = functions["SupervisorFunction"], functions["TokenVendingFunction"]

    # Then the supervisor runs the shared code from its own entry point, as long as Lambda allows, on arm64, with no
    # concurrency reserved; its layers are the shared dependencies and its own (the WebSocket client), which the
    # minting function does not carry; the tracing layer only with tracing on, as the minting function's
    declared = raw_template()["Resources"]
    tracing_layer = ["local-tracing"] if tracing else []
    assert supervisor["Handler"] == "voice_access.supervision.app.lambda_handler"
    module, _, handler = supervisor["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), handler))
    assert declared["SupervisorFunction"]["Properties"]["CodeUri"] == "functions/"
    assert declared["TokenVendingFunction"]["Properties"]["CodeUri"] == "functions/"
    assert (supervisor["Timeout"], supervisor["MemorySize"]) == (900, 256)
    assert supervisor["Architectures"] == minting["Architectures"] == ["arm64"]
    assert supervisor["Runtime"] == minting["Runtime"]
    assert "ReservedConcurrentExecutions" not in supervisor
    assert layer_names(supervisor) == ["local-dependencies", "local-supervisor", *tracing_layer]
    assert "local-supervisor" not in layer_names(minting)
    (layer,) = [v for v in stack.of_type("AWS::Lambda::LayerVersion").values() if v["LayerName"] == "local-supervisor"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    assert declared["SupervisorLayer"]["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}


@pytest.mark.parametrize("case", CASES)
def test_the_supervisor_publishes_where_the_alarms_look_and_logs_to_its_own_group(
    stacks: dict[str, Stack], case: str
) -> None:
    # Given the stack's two functions
    stack = stacks[case]
    functions = stack.of_type("AWS::Lambda::Function")
    supervisor, minting = functions["SupervisorFunction"], functions["TokenVendingFunction"]
    variables = supervisor["Environment"]["Variables"]

    # When their metric settings, the supervisor's environment and its log group are read
    def powertools(function: dict[str, Any]) -> dict[str, str]:
        return {k: v for k, v in function["Environment"]["Variables"].items() if k.startswith("POWERTOOLS_")}

    group = stack.resources["SupervisorFunctionLogGroup"]

    # Then the supervisor's metrics go to the stack's namespace by the same service as the minting function's (the
    # namespace and dimension its alarms watch); it reads the same secret, OpenAI address and table, and the
    # backstop group whose schedules it deletes; its log group is its own, named by CloudFormation (Lambda would
    # create /aws/lambda/<name> itself on a first invocation before the stack, and the deploy would fail)
    assert powertools(supervisor) == powertools(minting)
    assert powertools(supervisor)["POWERTOOLS_SERVICE_NAME"] == SERVICE
    for shared in ("OPENAI_API_KEY_SECRET_ID", "OPENAI_UPSTREAM_URL", "QUOTA_TABLE_NAME", "SECRET_CACHE_TTL_SECONDS"):
        assert variables[shared] == minting["Environment"]["Variables"][shared], shared
    assert variables["BACKSTOP_SCHEDULE_GROUP"] == stack.ref("BackstopScheduleGroup")
    assert variables["BACKSTOP_ROLE_ARN"] == arn(stack, "BackstopSchedulerRole")
    assert supervisor["LoggingConfig"] == {"LogGroup": stack.ref("SupervisorFunctionLogGroup")}
    assert "LogGroupName" not in group["Properties"]


def test_the_supervisor_layer_pins_the_websocket_client_the_tests_use() -> None:
    # Given the supervisor layer's pins, the minting function's layer's, and the versions the tests install
    layer, dependencies = pins(SUPERVISOR_LAYER), pins(DEPENDENCIES_LAYER)
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    tested = {name.split("[")[0].lower(): pin for name, _, pin in (entry.partition("==") for entry in group) if pin}

    # When they are compared
    # Then the supervisor's layer carries websockets, exactly pinned, at the version the tests run, and the minting
    # function's layer does not carry it
    assert layer == {"websockets": "16.1.1"}
    assert all(tested.get(package) == version for package, version in layer.items())
    assert "websockets" not in dependencies


def test_every_makefile_build_has_its_target() -> None:
    # Given the functions and layers sam build builds with a Makefile
    resources = raw_template()["Resources"]
    built = {
        name: resource["Properties"].get("CodeUri") or resource["Properties"].get("ContentUri")
        for name, resource in resources.items()
        if (resource.get("Metadata") or {}).get("BuildMethod") == "makefile"
    }

    # When each one's Makefile is read
    # Then it has the build-<logical id> target sam build runs (sam build never shares one between two functions)
    assert {"SupervisorFunction", "SupervisorLayer"} <= set(built)
    for name, folder in built.items():
        makefile = (ROOT / folder / "Makefile").read_text()
        assert re.search(rf"^(?:[\w-]+ )*build-{name}(?: [\w-]+)*:", makefile, re.MULTILINE), f"{folder}: {name}"


@pytest.mark.parametrize("case", CASES)
def test_a_failed_supervisor_is_not_retried_and_lands_in_an_encrypted_queue(
    stacks: dict[str, Stack], case: str
) -> None:
    # Given the supervisor's asynchronous invocation settings and its failure queue
    stack = stacks[case]
    (config,) = stack.of_type("AWS::Lambda::EventInvokeConfig").values()
    queue = stack.resources["SupervisorFailuresQueue"]

    # When they are read
    # Then Lambda never retries it, drops an event it could not start within a minute, and sends each failure to the
    # queue, which is encrypted, keeps them 14 days and goes with the stack
    assert config["FunctionName"] == stack.ref("SupervisorFunction")
    assert config["Qualifier"] == "$LATEST"
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (0, 60)
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": queue_arn(stack)}}
    assert queue["Properties"] == {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": TWO_WEEKS}
    declared = raw_template()["Resources"]["SupervisorFailuresQueue"]
    assert (declared["DeletionPolicy"], declared["UpdateReplacePolicy"]) == ("Delete", "Delete")


@pytest.mark.parametrize("case", CASES)
def test_the_supervisors_role_reaches_only_its_table_its_schedules_and_its_queue(
    stacks: dict[str, Stack], case: str
) -> None:
    # Given the supervisor's role
    stack = stacks[case]

    # When its grants other than the secret's (tests/template/test_role.py) are listed
    granted = [s for s in statements(stack, "SupervisorFunctionRole") if not re.search(r"secretsmanager:|kms:", str(s))]

    # Then it may read and write items of the quota table (a transaction's parts, but no delete), delete schedules
    # of the backstop group and make them again (for a call OpenAI would not hang up), passing only the scheduler's
    # role, only to EventBridge Scheduler, and send to its failure queue; nothing else (starting its successor is the
    # function's own grant, below)
    assert granted == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            "Resource": arn(stack, "QuotaTable"),
        },
        {
            "Effect": "Allow",
            "Action": ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"],
            "Resource": group_schedules(stack),
        },
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": arn(stack, "BackstopSchedulerRole"),
            "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        },
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn(stack)},
    ]
    trust = role(stack, "SupervisorFunctionRole")["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]


@pytest.mark.parametrize("case", CASES)
def test_the_supervisor_may_start_its_successor_and_nothing_else_may_but_the_minting_function(
    stacks: dict[str, Stack], case: str
) -> None:
    # Given the permissions on the supervisor, and every role's grants to invoke a function
    stack = stacks[case]
    supervisor = stack.ref("SupervisorFunction")
    permissions = [p for p in stack.of_type("AWS::Lambda::Permission").values() if p["FunctionName"] == supervisor]
    invokers = {
        name: grants(stack, name, "lambda:")
        for name in stack.of_type("AWS::IAM::Role")
        if grants(stack, name, "lambda:")
    }

    # When they are read
    # Then one permission lets the supervisor's own role invoke it (a hand-over's successor), and the only roles
    # granted to invoke it are the minting function's and the backstop scheduler's, on the supervisor alone
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": supervisor,
            "Principal": arn(stack, "SupervisorFunctionRole"),
        }
    ]
    only_the_supervisor = [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn(stack, "SupervisorFunction")}
    ]
    assert invokers == {"TokenVendingFunctionRole": only_the_supervisor, "BackstopSchedulerRole": only_the_supervisor}


@pytest.mark.parametrize("case", CASES)
def test_the_minting_function_may_schedule_a_backstop_only_in_the_group_as_the_scheduler_role(
    stacks: dict[str, Stack], case: str
) -> None:
    # Given the minting function's grants on EventBridge Scheduler and IAM, and its environment
    stack = stacks[case]
    scheduling = grants(stack, "TokenVendingFunctionRole", "scheduler:", "iam:")
    variables = stack.of_type("AWS::Lambda::Function")["TokenVendingFunction"]["Environment"]["Variables"]

    # When they are read
    schedules = group_schedules(stack)

    # Then it may create schedules in the stack's backstop group only (and delete them, when a call it could not
    # supervise is hung up at once), and pass only the scheduler's role, only to EventBridge Scheduler; its
    # environment names the supervisor, the group and that role
    assert scheduling == [
        {"Effect": "Allow", "Action": ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"], "Resource": schedules},
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": arn(stack, "BackstopSchedulerRole"),
            "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        },
    ]
    group = stack.ref("BackstopScheduleGroup")
    name = "end-rtc_u2ZpD1zGRrOQoHU0rFvDq"
    assert fnmatch.fnmatchcase(f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/{group}/{name}", schedules)
    assert not fnmatch.fnmatchcase(f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{name}", schedules)
    assert {
        "SUPERVISOR_FUNCTION_NAME": stack.ref("SupervisorFunction"),
        "SUPERVISOR_FUNCTION_ARN": arn(stack, "SupervisorFunction"),
        "BACKSTOP_SCHEDULE_GROUP": group,
        "BACKSTOP_ROLE_ARN": arn(stack, "BackstopSchedulerRole"),
    }.items() <= variables.items()


def dynamodb_operations() -> set[str]:
    """The DynamoDB operations the service's code makes, as IAM grants them: those clients/quota_store.py sends, with
    a TransactWriteItems granted as the parts the code writes in one ({"Put": ...}: PutItem, and so on)."""
    package = ROOT / "functions" / "voice_access"
    sent = set(
        re.findall(
            r'"((?:Batch|Transact)?(?:Get|Put|Update|Delete|Write)Items?|Query|Scan)"',
            (package / "clients" / "quota_store.py").read_text(),
        )
    )
    parts = {
        part
        for source in package.rglob("*.py")
        for part in re.findall(r'\{"(Put|Update|Delete|ConditionCheck)": ', source.read_text())
    }
    if "TransactWriteItems" in sent:
        sent = sent - {"TransactWriteItems"} | {f"{part}Item" for part in parts}
    return {f"dynamodb:{operation}" for operation in sent}


def test_the_roles_grant_what_the_code_does_on_the_table(stacks: dict[str, Stack]) -> None:
    # Given the DynamoDB operations the code makes (IAM denials never show locally: moto checks no grant)
    operations = dynamodb_operations()
    stack = stacks["defaults"]

    # When the two functions' grants on the table are read
    (supervising,) = grants(stack, "SupervisorFunctionRole", "dynamodb:")
    (minting,) = grants(stack, "TokenVendingFunctionRole", "dynamodb:")

    # Then the supervisor, which runs every one of them (metering is a transaction), may make each, and neither
    # function is granted one the code never makes
    assert {"dynamodb:UpdateItem", "dynamodb:BatchGetItem"} <= operations
    assert set(supervising["Action"]) == operations
    assert set(minting["Action"]) <= operations


@pytest.mark.parametrize("case", CASES)
def test_only_the_stacks_schedules_may_assume_the_backstop_role(stacks: dict[str, Stack], case: str) -> None:
    # Given the backstop scheduler's role
    stack = stacks[case]
    scheduler = role(stack, "BackstopSchedulerRole")

    # When its trust policy and its grants are read
    (trust,) = scheduler["AssumeRolePolicyDocument"]["Statement"]

    # Then EventBridge Scheduler may assume it, only for this account's schedules of the stack's group (its
    # confused deputy guidance names the group's ARN), and it may only invoke the supervisor; no managed policy
    group = f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule-group/{stack.ref('BackstopScheduleGroup')}"
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "scheduler.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID, "aws:SourceArn": group}},
    }
    assert statements(stack, "BackstopSchedulerRole") == [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn(stack, "SupervisorFunction")}
    ]
    assert "ManagedPolicyArns" not in scheduler
    assert "Name" not in stack.resources["BackstopScheduleGroup"]["Properties"]


@pytest.mark.parametrize("case", CASES)
def test_no_role_grants_a_wildcard(stacks: dict[str, Stack], case: str) -> None:
    # Given every role's inline statements
    stack = stacks[case]
    everything = [(name, s) for name in stack.of_type("AWS::IAM::Role") for s in statements(stack, name)]

    # When their actions and resources are read
    # Then none allows every action of a service or every resource
    for name, statement in everything:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert not [action for action in actions if "*" in action], name
        assert "*" not in resources, name


def references(node: Any) -> set[str]:
    """The logical ids a template node refers to: Ref, Fn::GetAtt and the ${...} of Fn::Sub."""
    if isinstance(node, list):
        return set().union(*map(references, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add((value.split(".", 1) if isinstance(value, str) else value)[0])
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^!][^}]*)\}", text)}
            found |= references(value if isinstance(value, str) else value[1:])
        else:
            found |= references(value)
    return found


@pytest.mark.parametrize("case", CASES)
def test_the_resources_depend_on_each_other_without_a_cycle(transformed: dict[str, dict[str, Any]], case: str) -> None:
    # Given the transformed template's resources and what each refers to (or depends on)
    resources = transformed[case]["Resources"]

    def depends_on(resource: dict[str, Any]) -> set[str]:
        named = resource.get("DependsOn") or []
        return {named} if isinstance(named, str) else set(named)

    needs = {
        name: (references(resource.get("Properties")) | depends_on(resource)) & set(resources)
        for name, resource in resources.items()
    }

    # When they are put in the order CloudFormation creates them
    created: list[str] = []
    while len(created) < len(needs):
        ready = sorted(name for name, wanted in needs.items() if name not in created and wanted <= set(created))
        assert ready, f"a circular dependency among {sorted(set(needs) - set(created))}"
        created += ready

    # Then every resource is created, the supervisor before whatever names it, its permission after its role
    assert created.index("SupervisorFunction") < created.index("TokenVendingFunction")
    assert created.index("SupervisorFunctionRole") < created.index("SupervisorSuccessorPermission")


def test_the_supervisors_alarms_watch_its_queue_its_violations_and_the_days_cost(stacks: dict[str, Stack]) -> None:
    # Given the stack's alarms, with the default and with another daily cost threshold
    for case, threshold in (("defaults", 50.0), ("cost", 7.5)):
        stack = stacks[case]
        alarms = stack.of_type("AWS::CloudWatch::Alarm")

        # When the supervisor's four are read
        failures, violations, refused, cost = (
            alarms[name]
            for name in ("SupervisorFailuresAlarm", "PolicyViolationsAlarm", "UsageRefusedAlarm", "DailyCostAlarm")
        )

        # Then failures fire on any message in the queue; violations and refused usage on any in 5 minutes; cost
        # above the threshold over a day; each on the metric as published (by service alone), with no unit (an
        # alarm's unit must be the one published, and Cost is published with none)
        queue_name = stack.resolver.value({"Fn::GetAtt": ["SupervisorFailuresQueue", "QueueName"]}, "test")
        assert alarm_metric(failures) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue_name})
        assert (failures["Statistic"], failures["ComparisonOperator"], float(failures["Threshold"])) == (
            "Maximum",
            "GreaterThanThreshold",
            0,
        )
        assert alarm_metric(violations) == (namespace_of(stack), "PolicyViolations", {"service": SERVICE})
        assert (violations["Statistic"], violations["Period"], violations["EvaluationPeriods"]) == ("Sum", 300, 1)
        assert (violations["ComparisonOperator"], float(violations["Threshold"])) == ("GreaterThanThreshold", 0)
        assert alarm_metric(refused) == (namespace_of(stack), "UsageRefused", {"service": SERVICE})
        assert (refused["Statistic"], refused["Period"], refused["EvaluationPeriods"]) == ("Sum", 300, 1)
        assert (refused["ComparisonOperator"], float(refused["Threshold"])) == ("GreaterThanThreshold", 0)
        assert alarm_metric(cost) == (namespace_of(stack), "Cost", {"service": SERVICE})
        assert (cost["Statistic"], cost["Period"], cost["EvaluationPeriods"]) == ("Sum", 86400, 1)
        assert (cost["ComparisonOperator"], float(cost["Threshold"])) == ("GreaterThanThreshold", threshold)
        assert f"{threshold:g} USD" in cost["AlarmDescription"]
        assert not [name for name, alarm in alarms.items() if "Unit" in alarm]
    assert raw_template()["Parameters"]["DailyCostAlarmUsd"]["Default"] == 50


def test_the_dashboard_shows_call_time_tokens_cost_violations_and_ends(stacks: dict[str, Stack]) -> None:
    # Given the default stack's dashboard
    stack = stacks["defaults"]
    widgets = dashboard(stack)["widgets"]

    # When its plain metrics and searches are read
    plain = dashboard_metrics(widgets)
    searches = {metric: names for _, names, metric in dashboard_searches(widgets)}
    own = namespace_of(stack)

    # Then it shows the seconds of calls, tokens in and out, the metered cost, violations by kind and action, and
    # calls ended by reason, all by the service the supervisor publishes with
    assert (own, "CallSeconds", {"service": SERVICE}) in plain
    assert (own, "Cost", {"service": SERVICE}) in plain
    assert (own, "Tokens", {"service": SERVICE, "direction": "input"}) in plain
    assert (own, "Tokens", {"service": SERVICE, "direction": "output"}) in plain
    assert searches["PolicyViolations"] == {"service", "kind", "action"}
    assert searches["CallsEnded"] == {"service", "reason"}
    boxes = [(w["x"], w["y"], w["width"], w["height"]) for w in widgets]
    cells = [(x + i, y + j) for x, y, width, height in boxes for i in range(width) for j in range(height)]
    assert len(cells) == len(set(cells)), "two widgets overlap"


def test_what_the_supervisor_emits_carries_what_its_alarms_and_widgets_read(
    stacks: dict[str, Stack], output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the metric settings the stack gives the supervisor, and what its alarms and widgets read of its metrics
    stack = stacks["defaults"]
    for name, value in emitted(stack).items():
        monkeypatch.setenv(name, value)
    widgets = dashboard(stack)["widgets"]
    read = [alarm_metric(alarm) for alarm in stack.of_type("AWS::CloudWatch::Alarm").values()]
    read += dashboard_metrics(widgets)
    searched = {metric: names for _, names, metric in dashboard_searches(widgets)}

    # When the supervisor meters an event, ends a call, and counts each kind of violation, as its code does
    observability.metered(1200, 340, 4_321)
    observability.call_ended("max_length", 5.2, user="u", profile="voice", call_id="rtc_1")
    for kind, action in (("session_change", "restored"), ("session_change", "ended"), ("tool_call", "ended")):
        observability.count("PolicyViolations", kind=kind, action=action)
    observability.count("UsageRefused")
    published: set[tuple[str, str, frozenset[str], tuple[tuple[str, str], ...]]] = set()
    for document in output.metrics():
        for entry in document["_aws"]["CloudWatchMetrics"]:
            for metric in entry["Metrics"]:
                for names in entry["Dimensions"]:
                    values = tuple(sorted((name, document[name]) for name in names))
                    published.add((entry["Namespace"], metric["Name"], frozenset(names), values))

    # Then every alarm and plain widget line on these metrics reads a dimension set they are published with, with
    # its values; each search's schema is one of those sets
    supervisor = {"Cost", "Tokens", "CallSeconds", "CallsEnded", "PolicyViolations", "UsageRefused"}
    for namespace, metric, dimensions in read:
        if metric in supervisor:
            identity = (namespace, metric, frozenset(dimensions), tuple(sorted(dimensions.items())))
            assert identity in published, (metric, dimensions)
    schemas = {(namespace, metric, names) for namespace, metric, names, _ in published}
    for metric in supervisor & set(searched):
        assert (namespace_of(stack), metric, frozenset(searched[metric])) in schemas, metric
    assert {metric for _, metric, _ in read} | set(searched) >= supervisor


@pytest.mark.parametrize("case", CASES)
def test_the_usage_route_is_served_and_guarded_as_the_profiles_listing(stacks: dict[str, Stack], case: str) -> None:
    # Given the routes under the case's parameters
    routes = stacks[case].of_type("AWS::ApiGatewayV2::Route")

    # When the usage route is compared with the profiles listing
    usage, profiles = routes["RealtimeUsageRoute"], routes["RealtimeProfilesRoute"]

    # Then it is GET /v1/realtime/usage, on the same integration, with the same authorization and scopes
    assert usage["RouteKey"] == "GET /v1/realtime/usage"
    assert profiles["RouteKey"] == "GET /v1/realtime/profiles"
    assert {k: v for k, v in usage.items() if k != "RouteKey"} == {k: v for k, v in profiles.items() if k != "RouteKey"}


def test_the_outputs_name_the_supervisor_and_its_failure_queue() -> None:
    # Given the template's outputs
    outputs = raw_template()["Outputs"]

    # When the supervisor's are read
    # Then they give the function's name and the failure queue's URL (its Ref)
    assert outputs["SupervisorFunctionName"]["Value"] == {"Ref": "SupervisorFunction"}
    assert outputs["SupervisorFailuresQueueUrl"]["Value"] == {"Ref": "SupervisorFailuresQueue"}
