"""Two stacks of this template in one account and region keep apart: each publishes its metrics in a namespace of its
own, its alarms and dashboard watch only that namespace or its own resources, and its layers have names of their own.
Proved on the template as CloudFormation receives it (the SAM transform of tests/templates.py), resolved under two
stack names, as samconfig.toml's default and prod stacks would be.
"""

import tomllib
from typing import Any

import pytest

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
    sam_transform,
)

SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
STACK_NAMES = tuple(SAMCONFIG[environment]["global"]["parameters"]["stack_name"] for environment in ("default", "prod"))
# With every optional alarm and layer present: the concurrency ceiling's alarm and the tracing layer.
PARAMETERS = {"ReservedConcurrency": "5", "EnableTracing": "true"}
# AWS's own metrics are told apart by a resource of the stack: each such dimension names one (by Ref, or by the
# attribute of the dimension's name).
OWN_RESOURCE = {
    "ApiId": "TokenVendingApi",
    "FunctionName": "TokenVendingFunction",
    "QueueName": "SupervisorFailuresQueue",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return sam_transform({"every-alarm": PARAMETERS})["every-alarm"]


@pytest.fixture(scope="module")
def stacks(template: dict[str, Any]) -> dict[str, Stack]:
    return {name: deploy(template, PARAMETERS, stack_name=name) for name in STACK_NAMES}


def metric_identities(stack: Stack) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Every metric the stack's alarms and dashboard read: namespace, name and dimensions (the searches' by their
    schema's namespace and the service they name)."""
    watched = [alarm_metric(alarm) for alarm in stack.of_type("AWS::CloudWatch::Alarm").values()]
    widgets = dashboard(stack)["widgets"]
    watched += dashboard_metrics(widgets)
    watched += [(namespace, metric, {"service": SERVICE}) for namespace, _, metric in dashboard_searches(widgets)]
    return {(namespace, metric, tuple(sorted(dimensions.items()))) for namespace, metric, dimensions in watched}


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_the_function_publishes_in_a_namespace_of_its_stack(stacks: dict[str, Stack], stack_name: str) -> None:
    # Given the stack of that name
    stack = stacks[stack_name]

    # When the function's metric settings and the throttle filter's are read
    (metric_filter,) = stack.of_type("AWS::Logs::MetricFilter").values()
    (transformation,) = metric_filter["MetricTransformations"]

    # Then both publish in the stack's own namespace
    assert namespace_of(stack) == f"TokenVending/{stack_name}"
    assert transformation["MetricNamespace"] == namespace_of(stack)
    assert emitted(stack)["POWERTOOLS_SERVICE_NAME"] == SERVICE


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_every_alarm_watches_its_own_stack(template: dict[str, Any], stacks: dict[str, Stack], stack_name: str) -> None:
    # Given the stack's alarms, before and after CloudFormation resolves them
    stack = stacks[stack_name]
    declared = {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"].endswith("::Alarm")}

    for name, alarm in stack.of_type("AWS::CloudWatch::Alarm").items():
        # When the metric each watches is read
        namespace, _, dimensions = alarm_metric(alarm)

        # Then it is the function's namespace in this stack, or one of AWS's, told apart by a resource of this stack
        if namespace.startswith("AWS/"):
            assert dimensions, f"{name} counts {namespace} of every resource in the account"
            for dimension in declared[name]["Dimensions"]:
                own = OWN_RESOURCE[dimension["Name"]]
                by_attribute = [{"Fn::GetAtt": f"{own}.{dimension['Name']}"}, {"Fn::GetAtt": [own, dimension["Name"]]}]
                assert dimension["Value"] in [{"Ref": own}, *by_attribute], name
        else:
            assert namespace == namespace_of(stack), name


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_the_dashboard_shows_its_own_stack(stacks: dict[str, Stack], stack_name: str) -> None:
    # Given the stack's dashboard
    stack = stacks[stack_name]
    widgets = dashboard(stack)["widgets"]

    # When the metrics and searches of its widgets are read
    plain, searches = dashboard_metrics(widgets), dashboard_searches(widgets)

    # Then each is in the stack's namespace, or one of AWS's for a resource of this stack
    assert searches
    assert {namespace for namespace, _, _ in searches} == {namespace_of(stack)}
    own = {"ApiId": stack.ref("TokenVendingApi"), "FunctionName": stack.ref("TokenVendingFunction")}
    for namespace, metric, dimensions in plain:
        if namespace.startswith("AWS/"):
            assert dimensions, metric
            assert all(own[name] == value for name, value in dimensions.items()), metric
        else:
            assert namespace == namespace_of(stack), metric


def test_two_stacks_watch_disjoint_metrics_and_publish_disjoint_layers(stacks: dict[str, Stack]) -> None:
    # Given the default and the production stack in one account and region
    first, second = (stacks[name] for name in STACK_NAMES)

    # When the metrics each watches of its own namespace, and the names of the layers each publishes, are listed
    def own(stack: Stack) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
        return {identity for identity in metric_identities(stack) if not identity[0].startswith("AWS/")}

    def layers(stack: Stack) -> set[str]:
        return {layer["LayerName"] for layer in stack.of_type("AWS::Lambda::LayerVersion").values()}

    # Then none is the other's: the second stack's traffic never moves the first's alarms, nor its layers' versions
    assert own(first)
    assert own(second)
    assert not own(first) & own(second)
    assert len(layers(first)) == len(layers(second)) == 3
    assert not layers(first) & layers(second)
    assert all(name.startswith(f"{STACK_NAMES[1]}-") for name in layers(second))
