"""The template's SQS queues (a failed asynchronous invocation's destination) in moto's SQS, made from their own
Properties, resolved as CloudFormation would: each property that is a queue attribute with CreateQueue, its tags
too. A property this module cannot honour is refused (TemplateError) rather than left out.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from local import cloudformation
from local.aws import REGION, sqs_client
from local.cloudformation import Resolver, TemplateError

_QUEUE = "AWS::SQS::Queue"
# CloudFormation's properties that are CreateQueue's attributes of the same name.
_ATTRIBUTES = frozenset(
    {
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    }
)
_HONOURED = _ATTRIBUTES | {"QueueName", "Tags"}


@dataclass(frozen=True)
class Queue:
    logical_id: str
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class LocalQueues:
    """The template's queues in moto at ``endpoint_url``."""

    endpoint_url: str
    queues: tuple[Queue, ...] = ()

    @property
    def physical(self) -> dict[str, dict[str, str]]:
        """Each queue's Ref (its URL) and attributes, for local.cloudformation.Resolver's ``physical``."""
        return {
            queue.logical_id: {"Ref": queue.url, "Arn": queue.arn, "QueueName": queue.name, "QueueUrl": queue.url}
            for queue in self.queues
        }

    def url(self, logical_id: str) -> str:
        """The URL of the template's queue ``logical_id``."""
        for queue in self.queues:
            if queue.logical_id == logical_id:
                return queue.url
        created = ", ".join(queue.logical_id for queue in self.queues) or "none"
        raise KeyError(f"no queue {logical_id} was created (created: {created})")


def create_from_template(
    template_path: Path | str,
    overrides: Mapping[str, str],
    endpoint_url: str,
    region: str = REGION,
    *,
    unique: bool = False,
) -> LocalQueues:
    """Create every queue of the template present under ``overrides`` in moto at ``endpoint_url``, named as its
    QueueName says, else "local-<logical id>"; ``unique``: with random characters added, so that each call has queues
    of its own (for each test on one moto server)."""
    resolver = Resolver(cloudformation.load(template_path), overrides, region)
    client = sqs_client(endpoint_url, region)
    created: list[Queue] = []
    for logical_id, resource in resolver.present(_QUEUE).items():
        properties: dict[str, Any] = resolver.value(resource.get("Properties") or {}, logical_id)
        if unknown := sorted(set(properties) - _HONOURED):
            raise TemplateError(
                f"{logical_id}: the local SQS cannot honour {', '.join(unknown)} "
                f"(it honours {', '.join(sorted(_HONOURED))}): remove them, or teach local/queues.py them"
            )
        fifo = _text(properties.get("FifoQueue", False)) == "true"
        name = str(properties.get("QueueName") or f"local-{logical_id}{'.fifo' if fifo else ''}")
        if unique:
            stem, fifo_suffix = (name.removesuffix(".fifo"), ".fifo") if fifo else (name, "")
            name = f"{stem}-{secrets.token_hex(4)}{fifo_suffix}"
        attributes = {key: _text(value) for key, value in properties.items() if key in _ATTRIBUTES}
        tags = {str(tag["Key"]): str(tag["Value"]) for tag in properties.get("Tags") or []}
        try:
            url = str(client.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"])
            arn = str(client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
        except (ClientError, ParamValidationError) as error:
            raise TemplateError(f"{logical_id}: moto's SQS refused the queue's Properties: {error}") from None
        created.append(Queue(logical_id, name, url, arn))
    return LocalQueues(endpoint_url, tuple(created))


def _text(value: object) -> str:
    """A CloudFormation value as SQS takes an attribute: a policy as JSON, a Boolean as "true"/"false"."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
