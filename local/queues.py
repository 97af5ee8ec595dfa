"""The template's SQS queues (a failed asynchronous invocation's destination) in moto's SQS, made from their own
Properties, resolved as CloudFormation would: each property that is a queue attribute with CreateQueue, its tags
too. A property this module cannot honour is refused (TemplateError) rather than left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from local.aws import REGION, sqs_client
from local.created import Created, Resource, declared, local_name, refuse_unhonoured, refused_by_moto

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
class Queue(Resource):
    url: str

    def attributes(self) -> dict[str, str]:
        """Its Ref (its URL) and attributes, for local.cloudformation.Resolver's ``physical``."""
        return {"Ref": self.url, "Arn": self.arn, "QueueName": self.name, "QueueUrl": self.url}


class LocalQueues(Created[Queue]):
    """The template's queues in moto at ``endpoint_url``."""

    kind = "queue"

    @property
    def queues(self) -> tuple[Queue, ...]:
        return self.resources

    def url(self, logical_id: str) -> str:
        """The URL of the template's queue ``logical_id``."""
        return self.created(logical_id).url


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
    resources = declared(template_path, overrides, region, _QUEUE)
    client = sqs_client(endpoint_url, region)
    created: list[Queue] = []
    for logical_id, properties in resources:
        refuse_unhonoured(logical_id, properties, _HONOURED, "SQS", "local/queues.py")
        fifo = _text(properties.get("FifoQueue", False)) == "true"
        name = local_name(properties.get("QueueName"), logical_id, unique=unique, suffix=".fifo" if fifo else "")
        attributes = {key: _text(value) for key, value in properties.items() if key in _ATTRIBUTES}
        tags = {str(tag["Key"]): str(tag["Value"]) for tag in properties.get("Tags") or []}
        with refused_by_moto(logical_id, "SQS", "queue"):
            url = str(client.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"])
            arn = str(client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
        created.append(Queue(logical_id, name, arn, url))
    return LocalQueues(endpoint_url, tuple(created))


def _text(value: object) -> str:
    """A CloudFormation value as SQS takes an attribute: a policy as JSON, a Boolean as "true"/"false"."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
