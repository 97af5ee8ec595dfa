"""A CloudFormation template resolved as a stack would resolve it, for the local stand-ins and the template tests.

The YAML takes CloudFormation's short tags (!Ref, !If, !Sub, ...). Parameters take their overrides or defaults
(an ``AWS::SSM::Parameter::Value<...>`` parameter its Default, as no Parameter Store is asked), checked against
AllowedValues and AllowedPattern. Ref, Fn::GetAtt, Fn::If, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, conditions
and the rule functions resolve as CloudFormation resolves them; a Ref or an attribute of the template's own
resources is what really exists locally (``physical``: moto's user pool, tables), else a stand-in of the shape
CloudFormation returns for the type (a name or an ARN). Anything else fails loudly (TemplateError). A resource
type the template does not use is not known here: add it to _KINDS when a template needs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
_LOCAL_STACK_UUID = "00000000-0000-4000-8000-000000000000"
_NO_VALUE = object()  # AWS::NoValue: the key it stands for is left out


class TemplateError(Exception):
    """The template asks for something the local stand-ins cannot do."""


class CloudFormationLoader(yaml.SafeLoader):
    """A SafeLoader that reads every CloudFormation short tag (!Ref, !If, !Sub, ...) as its long form."""


def _long_form(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag in ("Ref", "Condition"):
        return {tag: value}
    return {f"Fn::{tag}": value}


CloudFormationLoader.add_multi_constructor("!", _long_form)


def load(path: Path | str) -> dict[str, Any]:
    """The template at ``path``, its short tags in their long form."""
    template: dict[str, Any] = yaml.load(Path(path).read_text(), Loader=CloudFormationLoader)  # noqa: S506
    return template


@dataclass(frozen=True)
class _Kind:
    """How CloudFormation names a resource type: the property that names it, its ARN, what Ref returns."""

    name_property: str
    arn: str  # formatted with partition, region, account and name
    ref_is_arn: bool = False  # Ref returns the ARN, not the name
    url: str | None = None  # what Ref returns instead, formatted likewise (an SQS queue's URL)


def _regional(service: str, resource: str) -> str:
    return f"arn:{{partition}}:{service}:{{region}}:{{account}}:{resource}"


_FUNCTION = _Kind("FunctionName", _regional("lambda", "function:{name}"))
_LAYER = _Kind("LayerName", _regional("lambda", "layer:{name}:1"), ref_is_arn=True)
# The types template.yaml (before and after the SAM transform) and the tests refer to.
_KINDS: dict[str, _Kind] = {
    # Secrets Manager appends six random characters to the name.
    "AWS::SecretsManager::Secret": _Kind("Name", _regional("secretsmanager", "secret:{name}-AbCdEf"), ref_is_arn=True),
    "AWS::DynamoDB::Table": _Kind("TableName", _regional("dynamodb", "table/{name}")),
    "AWS::Logs::LogGroup": _Kind("LogGroupName", _regional("logs", "log-group:{name}:*")),
    "AWS::Serverless::Function": _FUNCTION,
    "AWS::Lambda::Function": _FUNCTION,
    "AWS::Serverless::LayerVersion": _LAYER,
    "AWS::Lambda::LayerVersion": _LAYER,
    "AWS::SNS::Topic": _Kind("TopicName", _regional("sns", "{name}"), ref_is_arn=True),
    "AWS::IAM::Role": _Kind("RoleName", "arn:{partition}:iam::{account}:role/{name}"),
    "AWS::SQS::Queue": _Kind(
        "QueueName", _regional("sqs", "{name}"), url="https://sqs.{region}.amazonaws.com/{account}/{name}"
    ),
    "AWS::Scheduler::ScheduleGroup": _Kind("Name", _regional("scheduler", "schedule-group/{name}")),
}


class Resolver:
    """Resolves a template's intrinsics and conditions under ``overrides``, in ``region``, for a stack named
    ``stack_name`` (AWS::StackName): "local", or another to see what a deployed stack of that name resolves to;
    ``physical``: for a resource that really exists locally, its Ref ("Ref") and attributes."""

    def __init__(
        self,
        template: Mapping[str, Any],
        overrides: Mapping[str, str],
        region: str,
        physical: Mapping[str, Mapping[str, str]] | None = None,
        stack_name: str = "local",
    ) -> None:
        self._physical: dict[str, Mapping[str, str]] = dict(physical or {})
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        if unknown := sorted(set(overrides) - set(declared)):
            raise TemplateError(f"parameter overrides {unknown} are not parameters of the template")
        self._parameters: dict[str, str | list[str]] = {}
        for name, spec in declared.items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                continue  # only an error if something refers to it
            # A CommaDelimitedList is a list wherever it is used: "" is [""], as CloudFormation has it.
            # CloudFormation trims the spaces around each member, and checks each member against
            # AllowedValues and AllowedPattern.
            listed = spec.get("Type") == "CommaDelimitedList"
            members = [item.strip() for item in str(value).split(",")] if listed else [str(value)]
            allowed, pattern = spec.get("AllowedValues"), spec.get("AllowedPattern")
            for member in members:
                shown = f"{name}={value!r}" + (f" (its member {member!r})" if listed else "")
                if allowed is not None and member not in [str(a) for a in allowed]:
                    raise TemplateError(f"parameter {shown} is not one of {allowed}")
                if pattern is not None and not re.fullmatch(pattern, member):
                    raise TemplateError(f"parameter {shown} does not match {pattern}")
            self._parameters[name] = members if listed else str(value)
        self._pseudo: dict[str, object] = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/{_LOCAL_STACK_UUID}",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self._resources: Mapping[str, Any] = template.get("Resources") or {}

    def present(self, resource_type: str | None = None) -> dict[str, Any]:
        """The resources (of ``resource_type``, or all) the stack creates: those whose condition holds."""
        return {
            logical_id: resource
            for logical_id, resource in self._resources.items()
            if resource_type in (None, resource.get("Type"))
            and ("Condition" not in resource or self.condition(resource["Condition"], logical_id))
        }

    def value(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item, where) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._ref(arg, where)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(logical_id, str(self.value(attribute, where)), where)
            if key == "Fn::If":
                condition, if_true, if_false = arg
                return self.value(if_true if self.condition(condition, where) else if_false, where)
            if key == "Fn::Sub":
                return self._sub(arg, where)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(item) for item in self.value(items, where))
            if key == "Fn::Select":
                index, items = arg
                return self.value(items, where)[int(self.value(index, where))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(self.value(text, where)).split(delimiter)
            if key.startswith("Fn::"):
                raise TemplateError(f"{where}: {key} is not supported by the local gateway")
        resolved = {key: self.value(item, f"{where}.{key}") for key, item in node.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def condition(self, node: Any, where: str) -> bool:
        if isinstance(node, bool):
            return node
        if isinstance(node, str):
            if node not in self._conditions:
                raise TemplateError(f"{where}: unknown condition {node}")
            return self.condition(self._conditions[node], f"condition {node}")
        ((key, arg),) = node.items()
        if key == "Condition":
            return self.condition(str(arg), where)
        if key == "Fn::Equals":
            left, right = (self.value(side, where) for side in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.condition(arg[0], where)
        if key == "Fn::And":
            return all(self.condition(item, where) for item in arg)
        if key == "Fn::Or":
            return any(self.condition(item, where) for item in arg)
        # The rule functions (a template's Rules use them): a list against a value, or another list.
        if key == "Fn::Contains":
            members, wanted = (self.value(side, where) for side in arg)
            return str(wanted) in self._members(members, key, where)
        if key == "Fn::EachMemberEquals":
            members, wanted = (self.value(side, where) for side in arg)
            return all(member == str(wanted) for member in self._members(members, key, where))
        if key == "Fn::EachMemberIn":
            members, allowed = (self.value(side, where) for side in arg)
            return set(self._members(members, key, where)) <= set(self._members(allowed, key, where))
        raise TemplateError(f"{where}: {key} is not supported in a condition by the local gateway")

    @staticmethod
    def _members(value: Any, function: str, where: str) -> list[str]:
        if not isinstance(value, list):
            raise TemplateError(f"{where}: {function} needs a list, got {value!r}")
        return [str(member) for member in value]

    def _ref(self, name: str, where: str) -> object:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._physical and "Ref" in self._physical[name]:
            return self._physical[name]["Ref"]
        if name in self._resources:
            kind = self._kind(name, where)
            if kind is None:
                return name  # a type without a known Ref: its logical id stands in
            if kind.url is not None:
                return self._url(name, kind.url)
            return self._arn(name, where) if kind.ref_is_arn else self._name(name)
        raise TemplateError(f"{where}: Ref {name} has no value (no such parameter, or no Default/override)")

    def _get_att(self, logical_id: str, attribute: str, where: str) -> str:
        if logical_id not in self._resources:
            raise TemplateError(f"{where}: Fn::GetAtt {logical_id}.{attribute} names no resource of the template")
        self._kind(logical_id, where)  # refuses a resource its condition leaves out
        if attribute in self._physical.get(logical_id, {}):
            return self._physical[logical_id][attribute]
        if attribute == "Arn" or (attribute.endswith("Arn") and attribute[:-3] in self._type(logical_id)):
            return self._arn(logical_id, where)  # Arn, or TopicArn of an SNS topic
        kind = _KINDS.get(self._type(logical_id))
        if attribute.endswith("Url") and kind is not None and kind.url is not None:
            return self._url(logical_id, kind.url)  # QueueUrl of an SQS queue
        if attribute.endswith("Name"):
            return self._name(logical_id)
        return f"{self._name(logical_id)}-{attribute}"  # a placeholder of the right kind: a string

    def _kind(self, logical_id: str, where: str) -> _Kind | None:
        condition = self._resources[logical_id].get("Condition")
        if condition is not None and not self.condition(condition, logical_id):
            raise TemplateError(
                f"{where}: {logical_id} is a resource its condition {condition} leaves out with these parameters"
            )
        return _KINDS.get(self._type(logical_id))

    def _type(self, logical_id: str) -> str:
        return str(self._resources[logical_id].get("Type", ""))

    def _name(self, logical_id: str) -> str:
        kind = _KINDS.get(self._type(logical_id))
        properties = self._resources[logical_id].get("Properties") or {}
        if kind is not None and kind.name_property in properties:
            return str(self.value(properties[kind.name_property], f"{logical_id}.{kind.name_property}"))
        return f"local-{logical_id}"  # CloudFormation generates <stack>-<logical id>-<random>

    def _arn(self, logical_id: str, where: str) -> str:
        kind = _KINDS.get(self._type(logical_id))
        if kind is None:
            raise TemplateError(
                f"{where}: no local ARN for a {self._type(logical_id)} (local/cloudformation.py's _KINDS)"
            )
        pseudo = {"partition": "aws", "region": self._pseudo["AWS::Region"], "account": ACCOUNT_ID}
        return kind.arn.format(name=self._name(logical_id).lstrip("/"), **pseudo)

    def _url(self, logical_id: str, url: str) -> str:
        return url.format(name=self._name(logical_id), region=self._pseudo["AWS::Region"], account=ACCOUNT_ID)

    def _sub(self, arg: Any, where: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.value(variables[name], where))
            logical_id, _, attribute = name.partition(".")
            if attribute and logical_id in self._resources:
                return self._get_att(logical_id, attribute, where)
            return str(self._ref(name, where))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)
