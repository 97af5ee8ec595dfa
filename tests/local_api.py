"""The template served by the local API Gateway for one test, with a quota table of its own in moto and the
function's per-container caches fresh."""

import http.client
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from local import quota_table
from local.exchanges import AccessRecord
from local.gateway import LocalApi
from local.stand_ins import TEMPLATE
from local.user_pool import UserPool
from tests import function_caches
from tests.issuers import LoopbackIssuer


@contextmanager
def serving(
    overrides: Mapping[str, str],
    moto_url: str,
    *,
    physical: Mapping[str, Mapping[str, str]] | None = None,
    environment: Mapping[str, str] | None = None,
    **options: Any,
) -> Iterator[LocalApi]:
    """template.yaml under ``overrides``, its tables new (empty) in the moto server at ``moto_url``, started with
    LocalApi's ``options`` (``physical`` and ``environment`` gain the tables'); os.environ restored after."""
    tables = quota_table.create_from_template(TEMPLATE, overrides, moto_url, unique=True)
    physical = {**(physical or {}), **tables.physical}
    environment = {**tables.function_environment(), **(environment or {})}  # the caller's may reroute DynamoDB
    with (
        mock.patch.dict(os.environ),
        LocalApi.from_template(TEMPLATE, overrides, physical=physical, environment=environment, **options) as api,
    ):
        function_caches.reset()
        try:
            yield api
        finally:
            function_caches.reset()


@contextmanager
def serving_default(
    secret_arn: str,
    upstream: str,
    user_pool: UserPool,
    parameters: Mapping[str, str] | None = None,
    **options: Any,
) -> Iterator[LocalApi]:
    """The template's default deployment: JWT callers of the embedded user pool, the key read from Secrets
    Manager's API (moto's), a new quota table in the pool's moto server, OpenAI at ``upstream``; ``parameters``:
    other overrides."""
    overrides = {"OpenAIApiKeySecretArn": secret_arn, "OpenAIUpstreamUrl": upstream, **(parameters or {})}
    with serving(
        overrides,
        user_pool.endpoint_url,
        physical=user_pool.physical,
        discovery=user_pool.discovery,
        **options,
    ) as api:
        yield api


@contextmanager
def serving_issuer(
    issuer: LoopbackIssuer,
    secret_arn: str,
    upstream: str,
    moto_url: str,
    *,
    records: list[AccessRecord] | None = None,
    **parameters: str,
) -> Iterator[LocalApi]:
    """template.yaml trusting the loopback issuer (JwtIssuer, JwtAudiences), the key read from Secrets Manager's
    API (the default), a new quota
    table in the moto server at ``moto_url`` (the secret's), OpenAI at ``upstream``; ``parameters``: other
    parameter overrides."""
    overrides = {
        "JwtIssuer": issuer.url,
        "JwtAudiences": issuer.audience,
        "OpenAIApiKeySecretArn": secret_arn,
        "OpenAIUpstreamUrl": upstream,
        "SecretsReader": "direct",
        **parameters,
    }
    with serving(
        overrides,
        moto_url,
        discovery={issuer.url: issuer.discovery_url},
        on_request=records.append if records is not None else None,
    ) as api:
        yield api


@dataclass(frozen=True)
class Answer:
    """What the served API answered to one request."""

    status: int
    headers: dict[str, str]  # names in lower case
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = self.json()["error"]
        return error


def request(
    api: LocalApi,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    timeout: float = 10,
) -> Answer:
    """A request to the served API with http.client (urllib3 would log the target and headers: a token among them)."""
    connection = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=dict(headers))
        response = connection.getresponse()
        return Answer(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())
    finally:
        connection.close()


def post(api: LocalApi, target: str, body: bytes, headers: Mapping[str, str], timeout: float = 10) -> Answer:
    """POST ``body`` to the served API (see request)."""
    return request(api, "POST", target, headers, body, timeout)


@contextmanager
def busy_switching() -> Iterator[None]:
    """Threads switched every microsecond: a race that the default 5 ms would seldom show, shown often."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
