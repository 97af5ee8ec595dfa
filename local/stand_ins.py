"""What `make run` and `make invoke` give the function in place of AWS and OpenAI.

One moto server holds the secret (the OpenAI API key and a safety identifier key), the template's
Cognito user pool, the issuer of the tokens the gateway checks (AUTH=none: none checked), the
template's quota table, empty at each start (local/quota_table.py), and its SQS queues and schedule groups. A
function's asynchronous invocations of another (the supervisor) run as Lambda runs them, each in a process of its
own (local/lambda_service.py), and the one-time schedules a function creates fire when due (local/scheduler.py):
start_async_invocations, which the tests use too. The function reads the secret from
moto's Secrets Manager API, as deployed by default (SECRETS_VIA=extension: through a stand-in for the Parameters
and Secrets Lambda Extension). OpenAI is the local stub, the real OpenAI when OPENAI_API_KEY is set, or any
OpenAI-compatible host when OPENAI_BASE_URL is set too. ALLOWED_ORIGINS takes the place of the template's CORS
origins; POLICY=path.json, of the function's own policy file.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local import cloudformation, queues, quota_table, scheduler, user_pool
from local.aws import REGION, LocalAws
from local.lambda_service import LocalLambda
from local.queues import LocalQueues
from local.quota_table import LocalTables
from local.scheduler import POLL_SECONDS, ScheduleGroups, SchedulePoller
from local.secrets_extension import LOCAL_LAYER_ARN, SecretsExtension
from local.secrets_manager import LocalSecretsManager
from local.template import read_functions
from local.user_pool import UserPool
from openai_stub.server import OpenAIStub

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
# The policy the function reads when POLICY_PATH is unset (functions/voice_access/config/settings.py).
BUNDLED_POLICY = TEMPLATE.parent / "functions" / "voice_access" / "config" / "policy.json"
REAL_OPENAI = "https://api.openai.com"
STUB_API_KEY = "sk-local-dev"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What API Gateway takes in AllowOrigins: "*", "http(s)://*", or an origin (scheme://host[:port], no path).
_ORIGIN = re.compile(r"\*|https?://(\*|[^\s/?#*]+)")


class SetupError(Exception):
    """A setting of the developer's that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class AsyncInvocations:
    """The template's functions invoked asynchronously (``functions``: the Invoke API and the tests' API of it), the
    SQS queues their failures go to, and the schedule groups whose one-time schedules ``scheduler`` fires."""

    functions: LocalLambda
    scheduler: SchedulePoller
    queues: LocalQueues
    schedule_groups: ScheduleGroups

    @property
    def physical(self) -> dict[str, dict[str, str]]:
        """The queues' and the groups', for local.cloudformation.Resolver's ``physical``."""
        return {**self.queues.physical, **self.schedule_groups.physical}

    def function_environment(self) -> dict[str, str]:
        """What sends a function's Lambda and Scheduler requests to these."""
        return {
            **self.functions.function_environment(),
            "AWS_ENDPOINT_URL_SCHEDULER": self.schedule_groups.endpoint_url,
        }


def start_async_invocations(
    running: ExitStack,
    template_path: Path,
    overrides: Mapping[str, str],
    aws_endpoint_url: str,
    *,
    physical: Mapping[str, Mapping[str, str]] | None = None,
    environment: Mapping[str, str] | None = None,
    layer_environments: Mapping[str, Mapping[str, str]] | None = None,
    region: str = REGION,
    unique: bool = False,
    poll_seconds: float = POLL_SECONDS,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    **options: Any,
) -> AsyncInvocations:
    """The template's queues and schedule groups made in the moto server at ``aws_endpoint_url`` (``unique``: under
    names of their own), and its functions (resolved with ``physical`` and those) invoked asynchronously with
    ``environment`` added to their own, and the schedules of those groups fired when due by ``now``, read every
    ``poll_seconds``; ``running`` stops them. ``options``: LocalLambda's (clock, retry_delays)."""
    made_queues = queues.create_from_template(template_path, overrides, aws_endpoint_url, region, unique=unique)
    groups = scheduler.create_from_template(template_path, overrides, aws_endpoint_url, region, unique=unique)
    physical = {**(physical or {}), **made_queues.physical, **groups.physical}
    functions = read_functions(template_path, overrides, region, physical)
    environment = {**(environment or {}), "AWS_ENDPOINT_URL_SCHEDULER": aws_endpoint_url}
    invoked = running.enter_context(
        LocalLambda(
            functions,
            aws_endpoint_url,
            region=region,
            environment=environment,
            layer_environments=layer_environments,
            **options,
        )
    )
    poller = SchedulePoller(
        aws_endpoint_url, groups.names, invoked.invoke_async, region=region, interval=poll_seconds, now=now
    )
    running.enter_context(poller)
    return AsyncInvocations(invoked, poller, made_queues, groups)


@dataclass(frozen=True)
class StandIns:
    """The template's parameter overrides and the runtime's extra environment that point at the stand-ins."""

    overrides: dict[str, str]
    environment: dict[str, str]
    description: list[str]  # one line each, for a person
    user_pool: UserPool | None  # the template's, when it creates one under these overrides
    authenticate: bool  # False with AUTH=none
    allowed_origins: list[str] | None  # ALLOWED_ORIGINS, the template's AllowedOrigins parameter locally
    tables: LocalTables  # the template's DynamoDB tables (its quota table)
    realtime_url: str  # where a page opens its WebRTC call with a client secret: OpenAI's, or the stub's
    invocations: AsyncInvocations  # asynchronous invocations, their failures' queues, one-time schedules

    @property
    def realtime_websocket_url(self) -> str:
        """Where a client opens a Realtime WebSocket with a client secret (ws:// or wss://): OpenAI's, or the stub's."""
        return self.realtime_url.replace("http", "ws", 1).removesuffix("/calls")

    def gateway_options(self) -> dict[str, Any]:
        """LocalApi.from_template's arguments for the local issuer, the tables and AUTH."""
        physical = {
            **(self.user_pool.physical if self.user_pool else {}),
            **self.tables.physical,
            **self.invocations.physical,
        }
        return {
            "physical": physical or None,
            "discovery": self.user_pool.discovery if self.user_pool else None,
            "authenticate": self.authenticate,
        }


def check(environ: Mapping[str, str]) -> None:
    """Refuse unusable settings before anything starts (SetupError)."""
    _secrets_via(environ)
    chosen_openai(environ)
    _authenticate(environ)
    _allowed_origins(environ)
    _policy(environ)


def start(
    running: ExitStack,
    environ: Mapping[str, str],
    page_origins: Sequence[str] = (),
    stub_port: int = 0,
    environment: Mapping[str, str] | None = None,
) -> StandIns:
    """Start the stand-ins; ``running`` stops them. ``page_origins`` (the demo page's) may call the API too; the
    OpenAI stub, whose Realtime peer a page calls, is on ``stub_port`` when that is free (0, or taken: any);
    ``environment``: more for every function."""
    secrets_via = _secrets_via(environ)
    chosen = chosen_openai(environ)
    if chosen is None:
        stub = _stub(stub_port)
        running.callback(stub.stop)
        upstream, api_key = stub.base_url, STUB_API_KEY
        openai = f"the local OpenAI stub at {stub.base_url} (OPENAI_API_KEY for the real one)"
    else:
        upstream, api_key = chosen
        openai = f"{upstream}/v1 with the key in OPENAI_API_KEY"
    aws = running.enter_context(LocalAws())
    secrets = running.enter_context(LocalSecretsManager(api_key=api_key, aws=aws))
    overrides = {"OpenAIApiKeySecretArn": secrets.secret_arn, "OpenAIUpstreamUrl": upstream}
    overrides |= cors_overrides(environ, page_origins)
    pool = user_pool.create_from_template(TEMPLATE, overrides, aws.endpoint_url)
    tables = quota_table.create_from_template(TEMPLATE, overrides, aws.endpoint_url)
    shared = secrets.client_environment() | tables.function_environment() | dict(environment or {})
    policy = _policy(environ)
    if policy is not None:
        shared["POLICY_PATH"] = str(policy)
    layers: dict[str, dict[str, str]] = {}
    if secrets_via == "extension":
        extension = running.enter_context(SecretsExtension(secrets.client_environment()))
        overrides |= {"SecretsReader": "extension", "SecretsExtensionLayerArn": LOCAL_LAYER_ARN}
        layers[LOCAL_LAYER_ARN] = extension.function_environment()
        via = f"through a Parameters and Secrets Extension stand-in on port {extension.port}"
    else:
        via = "from Secrets Manager's API, as the template's default (SECRETS_VIA=extension: through the extension)"
    invocations = start_async_invocations(
        running,
        TEMPLATE,
        overrides,
        aws.endpoint_url,
        physical={**(pool.physical if pool else {}), **tables.physical},
        environment=shared,
        layer_environments=layers,
    )
    # The gateway's functions, in this process, get every layer's (the template attaches the extension to them).
    environment = shared | invocations.function_environment() | layers.get(LOCAL_LAYER_ARN, {})
    description = [
        f"OpenAI: {openai}",
        f"Secrets Manager: moto at {aws.endpoint_url}, secret {secrets.secret_arn}",
        f"the function reads the key {via}",
    ]
    if pool is not None:
        groups = ", ".join(sorted(pool.groups())) or "none"
        description.append(f"sign-in: the template's Cognito user pool in moto, {pool.pool_id} (groups: {groups})")
    for table in tables.tables:
        description.append(f"DynamoDB: the template's {table.logical_id} in moto, table {table.name} (empty at start)")
    description += _async_description(invocations)
    if policy is None:
        shown = BUNDLED_POLICY.relative_to(TEMPLATE.parent)
        description.append(f"policy: {shown} (POLICY=path.json: another file); edits apply from the next request")
    else:
        description.append(f"policy: {policy} (POLICY); edits apply from the next request")
    return StandIns(
        overrides,
        environment,
        description,
        pool,
        _authenticate(environ),
        _allowed_origins(environ),
        tables,
        f"{upstream}/v1/realtime/calls",
        invocations,
    )


def _async_description(invocations: AsyncInvocations) -> list[str]:
    """What make run says of asynchronous invocations and schedules, a line each."""
    functions = invocations.functions
    lines = [
        f"Lambda: asynchronous invocations of {', '.join(functions.functions)} on {functions.url}, each in a process "
        "of its own with the template's environment, killed at its Timeout; its log shows here"
    ]
    for queue in invocations.queues.queues:
        lines.append(
            f"SQS: the template's {queue.logical_id} in moto, queue {queue.name} (failed invocations go there)"
        )
    for group in invocations.schedule_groups.groups:
        lines.append(f"EventBridge Scheduler: the template's {group.logical_id} in moto; its one-time schedules fire")
    return lines


def _stub(port: int) -> OpenAIStub:
    try:
        return OpenAIStub(api_key=STUB_API_KEY, port=port).start()
    except OSError as error:
        if port == 0 or error.errno != errno.EADDRINUSE:
            raise
    return OpenAIStub(api_key=STUB_API_KEY).start()


def upstream_url(base_url: str) -> str:
    """OPENAI_BASE_URL as the OpenAI SDKs take it (ending in /v1) -> the function's upstream (without /v1)."""
    shown = f"OPENAI_BASE_URL={base_url!r}"
    parts = urlsplit(base_url.strip())
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise SetupError(f"{shown} has a port that is not a number") from None
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SetupError(f"{shown} is not a URL: give the base URL an OpenAI SDK takes, e.g. https://api.openai.com/v1")
    if not path.endswith("/v1"):
        raise SetupError(f"{shown} must end in /v1, as the OpenAI SDKs take it (e.g. https://api.openai.com/v1)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise SetupError(f"{shown} must be https (http only on this machine): the API key travels with every mint")
    return f"{parts.scheme}://{parts.netloc}{path.removesuffix('/v1')}"


def chosen_openai(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The upstream URL and key the environment chooses; None for the local stub."""
    api_key = environ.get("OPENAI_API_KEY", "").strip()
    base_url = environ.get("OPENAI_BASE_URL", "").strip()
    if base_url and not api_key:
        raise SetupError(
            "OPENAI_BASE_URL is set but OPENAI_API_KEY is not: set the key for that host too, "
            "or unset OPENAI_BASE_URL for the local OpenAI stub"
        )
    if not api_key:
        return None
    return (upstream_url(base_url) if base_url else REAL_OPENAI), api_key


def _authenticate(environ: Mapping[str, str]) -> bool:
    auth = environ.get("AUTH", "").strip()
    if auth not in ("", "none"):
        raise SetupError(
            f"AUTH={auth!r}: only AUTH=none (authentication off, locally only) is a setting; "
            "leave AUTH unset for what is deployed"
        )
    return auth != "none"


def cors_overrides(environ: Mapping[str, str], page_origins: Sequence[str] = ()) -> dict[str, str]:
    """ALLOWED_ORIGINS (or else the template's default) and ``page_origins`` as the template's own AllowedOrigins
    parameter, so that CORS is configured locally as a deployment with those origins configures it; nothing
    when there are none."""
    origins = _allowed_origins(environ) or _template_origins()
    origins += [origin for origin in page_origins if origin not in origins]
    return {"AllowedOrigins": ",".join(origins)} if origins else {}


def _template_origins() -> list[str]:
    parameters = cloudformation.load(TEMPLATE).get("Parameters") or {}
    default = str((parameters.get("AllowedOrigins") or {}).get("Default") or "")
    return [origin.strip() for origin in default.split(",") if origin.strip()]


def _allowed_origins(environ: Mapping[str, str]) -> list[str] | None:
    """ALLOWED_ORIGINS, comma-separated; None when unset or empty (the template's origins)."""
    origins = [origin.strip() for origin in environ.get("ALLOWED_ORIGINS", "").split(",") if origin.strip()]
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise SetupError(
                f"ALLOWED_ORIGINS: {origin!r} is not an origin: give scheme://host[:port] with no path "
                "(e.g. http://localhost:5173), or *, comma-separated"
            )
    return origins or None


def _policy(environ: Mapping[str, str]) -> Path | None:
    """POLICY, the policy file to use instead of the build's, as an absolute path; None when unset or empty.

    Only that the file can be read is checked here: the function validates what it holds, and refuses to mint
    (logging why) while it is not a valid policy, as the deployed function would.
    """
    value = environ.get("POLICY", "").strip()
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    instead = f"give the path of a policy file (e.g. a copy of {BUNDLED_POLICY.relative_to(TEMPLATE.parent)}), "
    instead += "or unset POLICY for that one"
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise SetupError(f"POLICY={value!r}: no such file: {instead}") from None
    except IsADirectoryError:
        raise SetupError(f"POLICY={value!r} is a directory: {instead}") from None
    except OSError as error:
        raise SetupError(f"POLICY={value!r} cannot be read ({error.strerror}): {instead}") from None
    return path


def _secrets_via(environ: Mapping[str, str]) -> str:
    secrets_via = environ.get("SECRETS_VIA", "direct")
    if secrets_via not in ("direct", "extension"):
        raise SetupError(f"SECRETS_VIA={secrets_via!r} must be direct (the template's default) or extension")
    return secrets_via
