"""template.yaml as CloudFormation receives it, for the template tests (tests/template): after the SAM transform
(the translator `sam validate` runs, in .venv-sam), its resources under a parameter set resolved as a stack would
create them, and the readers of its alarms and dashboard.

The transform runs in .venv-sam because aws-sam-translator pins a pydantic older than ours (the reason the
SAM CLI has a venv of its own); `make validate` installs it, and `make test` runs that first (`make unit` runs
tests/unit alone, which needs no .venv-sam).
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import yaml

from local.cloudformation import CloudFormationLoader, Resolver
from tests.deployment import REGION
from tests.paths import ROOT, TEMPLATE

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
API_ID = "a1b2c3d4e5"
POOL_ID = f"{REGION}_AbCdEfGhI"
POOL_CLIENT_ID = "4k9example0app0client0id0"
# What CloudFormation gives for the stack's own resources; the rest resolve to the gateway's stand-ins.
PHYSICAL = {
    "TokenVendingApi": {"Ref": API_ID},
    "UserPool": {"Ref": POOL_ID, "ProviderURL": f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"},
    "UserPoolClient": {"Ref": POOL_CLIENT_ID},
}

# Run by .venv-sam's Python: the template (JSON) and a list of parameter sets on stdin, one transformed
# template per set on stdout. No managed policy is named in the template, so none need be looked up.
_TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

request = json.load(sys.stdin)
json.dump([transform(json.loads(request["template"]), parameters, NoManagedPolicies())
           for parameters in request["parameters"]], sys.stdout)
"""


def sam_transform(parameter_sets: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """template.yaml after the SAM transform under each parameter set, by name (one translator run for all)."""
    assert SAM_PYTHON.is_file(), f"{SAM_PYTHON} is missing: run `make validate`, which installs the SAM CLI there"
    template = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)  # noqa: S506
    # As `sam validate` does: the translator takes only S3 locations for code and layer content.
    for resource in template["Resources"].values():
        uri = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
        if (key := uri.get(resource["Type"])) and key in resource.get("Properties", {}):
            resource["Properties"][key] = "s3://bucket/value"
    request = {"template": json.dumps(template), "parameters": list(parameter_sets.values())}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    run = subprocess.run(
        [str(SAM_PYTHON), "-c", _TRANSFORM],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**environment, "AWS_DEFAULT_REGION": REGION},
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"the SAM transform failed:\n{run.stderr}"
    return dict(zip(parameter_sets, json.loads(run.stdout), strict=True))


@dataclass(frozen=True)
class Stack:
    """The resources a transformed template creates under one parameter set, their properties resolved."""

    resources: dict[str, dict[str, Any]]
    resolver: Resolver

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r["Properties"] for name, r in self.resources.items() if r["Type"] == resource_type}

    def ref(self, logical_id: str) -> Any:
        return self.resolver.value({"Ref": logical_id}, "test")


def deploy(template: dict[str, Any], parameters: dict[str, str], stack_name: str = "local") -> Stack:
    """What a stack named ``stack_name`` creates from the transformed ``template`` under ``parameters``."""
    conditions = Resolver(template, parameters, REGION, stack_name=stack_name)
    present = {
        name: resource
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or conditions.condition(resource["Condition"], name)
    }
    # Only what is created has a physical id: a reference to a resource left out still fails to resolve.
    physical = {name: ids for name, ids in PHYSICAL.items() if name in present}
    resolver = Resolver(template, parameters, REGION, physical, stack_name=stack_name)
    resources = {
        name: {"Type": resource["Type"], "Properties": resolver.value(resource.get("Properties") or {}, name)}
        for name, resource in present.items()
    }
    return Stack(resources, resolver)


def refused_by_rules(template: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The rules whose assertions fail, as CloudFormation evaluates a template's Rules before any change."""
    resolver = Resolver(template, parameters, REGION)
    return [
        name
        for name, rule in (template.get("Rules") or {}).items()
        if resolver.condition(rule.get("RuleCondition", True), name)
        and not all(resolver.condition(assertion["Assert"], name) for assertion in rule["Assertions"])
    ]


def raw_template() -> dict[str, Any]:
    """template.yaml as written, before the transform."""
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)  # noqa: S506
    return loaded


SERVICE = raw_template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]


def emitted(stack: Stack) -> dict[str, str]:
    """The function's metric settings in this stack: its POWERTOOLS_* variables, resolved."""
    variables = stack.of_type("AWS::Lambda::Function")["TokenVendingFunction"]["Environment"]["Variables"]
    return {name: value for name, value in variables.items() if name.startswith("POWERTOOLS_")}


def namespace_of(stack: Stack) -> str:
    return emitted(stack)["POWERTOOLS_METRICS_NAMESPACE"]


def alarm_metric(alarm: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    return alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


def dashboard(stack: Stack) -> dict[str, Any]:
    body = stack.of_type("AWS::CloudWatch::Dashboard")["TokenVendingDashboard"]["DashboardBody"]
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def dashboard_metrics(widgets: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    """Each plain metric of the widgets: namespace, name and dimensions."""
    found = []
    for widget in widgets:
        for line in widget["properties"]["metrics"]:
            fields = [field for field in line if isinstance(field, str)]
            if fields:
                namespace, metric, *pairs = fields
                found.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def dashboard_searches(widgets: list[dict[str, Any]]) -> list[tuple[str, set[str], str]]:
    """Each SEARCH of the widgets: the schema's namespace, its dimension names, and the metric it names."""
    found = []
    for widget in widgets:
        for line in widget["properties"]["metrics"]:
            for field in line:
                if isinstance(field, dict) and "expression" in field:
                    match = re.fullmatch(
                        r"SEARCH\('\{\"([\w/-]+)\",([\w,]+)\} MetricName=\"(\w+)\" service=\"([\w-]+)\"', '\w+', \d+\)",
                        field["expression"],
                    )
                    assert match, f"an unexpected expression: {field['expression']}"
                    namespace, names, metric, service = match.groups()
                    assert service == SERVICE
                    found.append((namespace, set(names.split(",")), metric))
    return found
