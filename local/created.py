"""What the template declares of one kind and the local run creates in moto (queues.py, scheduler.py,
quota_table.py): the records of what was created, for local.cloudformation.Resolver's ``physical`` and a lookup by
logical id, and the steps each kind's create_from_template shares (the resources present, their local names, moto's
refusal as a TemplateError).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from botocore.exceptions import ClientError, ParamValidationError

from local import cloudformation
from local.cloudformation import Resolver, TemplateError


@dataclass(frozen=True)
class Resource:
    """A resource the template declares, created in moto: its name there and its ARN."""

    logical_id: str
    name: str
    arn: str

    def attributes(self) -> dict[str, str]:
        """Its Ref (its name) and attributes, as local.cloudformation.Resolver's ``physical`` takes them."""
        return {"Ref": self.name, "Arn": self.arn}


@dataclass(frozen=True)
class Created[R: Resource]:
    """The template's resources of one kind in moto at ``endpoint_url``."""

    # The kind's word in a lookup's KeyError.
    kind: ClassVar[str]

    endpoint_url: str
    resources: tuple[R, ...] = ()

    @property
    def physical(self) -> dict[str, dict[str, str]]:
        """Each resource's Ref and attributes, for local.cloudformation.Resolver's ``physical``."""
        return {resource.logical_id: resource.attributes() for resource in self.resources}

    def created(self, logical_id: str) -> R:
        """The template's resource ``logical_id``."""
        for resource in self.resources:
            if resource.logical_id == logical_id:
                return resource
        created = ", ".join(resource.logical_id for resource in self.resources) or "none"
        raise KeyError(f"no {self.kind} {logical_id} was created (created: {created})")


def declared(
    template_path: Path | str, overrides: Mapping[str, str], region: str, resource_type: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each resource of ``resource_type`` the template has present under ``overrides``: its logical id and its
    Properties, resolved as CloudFormation would (the template read now, each resource's Properties when reached)."""
    resolver = Resolver(cloudformation.load(template_path), overrides, region)
    return (
        (logical_id, resolver.value(resource.get("Properties") or {}, logical_id))
        for logical_id, resource in resolver.present(resource_type).items()
    )


def refuse_unhonoured(
    logical_id: str, properties: Mapping[str, Any], honoured: frozenset[str], service: str, module: str
) -> None:
    """TemplateError if ``properties`` has any the local ``service`` (made by ``module``) cannot honour."""
    if unknown := sorted(set(properties) - honoured):
        raise TemplateError(
            f"{logical_id}: the local {service} cannot honour {', '.join(unknown)} "
            f"(it honours {', '.join(sorted(honoured))}): remove them, or teach {module} them"
        )


def local_name(given: object, logical_id: str, *, unique: bool, suffix: str = "") -> str:
    """The name ``given`` by the template, else "local-<logical id><suffix>"; ``unique``: with random characters
    added before ``suffix``, so that each call has resources of its own (for each test on one moto server)."""
    name = str(given or f"local-{logical_id}{suffix}")
    if unique:
        name = f"{name.removesuffix(suffix)}-{secrets.token_hex(4)}{suffix}"
    return name


@contextmanager
def refused_by_moto(logical_id: str, service: str, kind: str) -> Iterator[None]:
    """Moto's ``service`` refusing what it is asked as a TemplateError naming the resource."""
    try:
        yield
    except (ClientError, ParamValidationError) as error:
        raise TemplateError(f"{logical_id}: moto's {service} refused the {kind}'s Properties: {error}") from None
