"""The service's settings: what every one of its functions reads from its environment, checked once, every
problem named. A function's own settings are read with these, in a module of their own (config/mint_settings.py).

Plain code rather than pydantic: a dozen variables do not need it, and pydantic's import is about half of
a cold start (the policy is validated when the function is built for the same reason; see policy_file.py).
"""

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple, TypedDict
from urllib.parse import urlsplit

from voice_access.domain.errors import ServiceMisconfigured

BUNDLED_POLICY = Path(__file__).with_name("policy.json")


class SettingsError(Exception):
    """The environment does not describe a working deployment."""


class Variables:
    """A function's environment, read variable by variable: every problem is noted, and all are named at once."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        self.environment = environment
        self.problems: list[str] = []

    def read[T](self, variable: str, parse: Callable[[str], T], default: T) -> T:
        value = self.environment.get(variable)
        if value is None or (value == "" and variable != "OPENAI_API_KEY_SECRET_ID"):
            # Empty is unset: `sam local` turns the template's `!If [..., AWS::NoValue]` into ""
            return default
        try:
            return parse(value)
        except ValueError as exc:
            self.problems.append(f"{variable}: {exc}")
            return default

    def check(self) -> None:
        """SettingsError naming every problem noted, if any."""
        if self.problems:
            raise SettingsError(f"invalid function environment: {'; '.join(self.problems)}")


class Settings(NamedTuple):
    """What every function of the service reads: the secret, OpenAI's address, the policy, the quota store."""

    api_key_secret_id: str
    upstream_url: str = "https://api.openai.com"
    secret_cache_ttl_seconds: int = 300
    policy_path: Path = BUNDLED_POLICY
    # Set by the template when the AWS Parameters and Secrets Lambda Extension is attached: the key is
    # read through it on localhost. Unset: from Secrets Manager's API, at this endpoint.
    secrets_extension_port: int | None = None
    secrets_manager_endpoint: str = "https://secretsmanager.us-east-1.amazonaws.com"
    # The quota store: a DynamoDB table (None: none, so a policy with limits refuses to mint) and its endpoint.
    quota_table_name: str | None = None
    dynamodb_endpoint: str = "https://dynamodb.us-east-1.amazonaws.com"
    aws_region: str = "us-east-1"
    # Where the API key in the secret came from, for the words of a key OpenAI refuses. Deployed: the secret
    # itself (the template sets nothing); `make run` names the OPENAI_API_KEY it was given.
    api_key_source: str = "the key in the service's secret"
    # The supervisor of each call and Live session the service opens (a function started through Lambda's Invoke
    # API, by name or ARN), and each one's backstop: a one-time schedule in this group that invokes the supervisor
    # (its ARN) as this role. Unset: nothing can be supervised, so no call or Live session is opened.
    supervisor_function_name: str | None = None
    supervisor_function_arn: str | None = None
    backstop_schedule_group: str | None = None
    backstop_role_arn: str | None = None
    lambda_endpoint: str = "https://lambda.us-east-1.amazonaws.com"
    scheduler_endpoint: str = "https://scheduler.us-east-1.amazonaws.com"

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> "Settings":
        variables = Variables(environment)
        settings = cls.read(variables)
        variables.check()
        return settings

    @classmethod
    def read(cls, variables: Variables) -> "Settings":
        """The settings in ``variables``, each problem noted there (and the missing secret id first)."""
        environment, defaults = variables.environment, cls(api_key_secret_id="")
        region = environment.get("AWS_REGION") or environment.get("AWS_DEFAULT_REGION") or defaults.aws_region
        read = variables.read
        settings = cls(
            api_key_secret_id=read("OPENAI_API_KEY_SECRET_ID", _non_empty, ""),
            upstream_url=read("OPENAI_UPSTREAM_URL", _base_url, defaults.upstream_url),
            secret_cache_ttl_seconds=read(
                "SECRET_CACHE_TTL_SECONDS", integer(0, 3600), defaults.secret_cache_ttl_seconds
            ),
            policy_path=read("POLICY_PATH", Path, defaults.policy_path),
            secrets_extension_port=read("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", integer(1, 65535), None),
            secrets_manager_endpoint=read(
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                _endpoint("secretsmanager"),
                f"https://secretsmanager.{region}.{_dns_suffix(region)}",
            ),
            quota_table_name=read("QUOTA_TABLE_NAME", _table_name, None),
            dynamodb_endpoint=read(
                "AWS_ENDPOINT_URL_DYNAMODB", _endpoint("dynamodb"), f"https://dynamodb.{region}.{_dns_suffix(region)}"
            ),
            aws_region=region,
            api_key_source=read("OPENAI_API_KEY_SOURCE", _phrase, defaults.api_key_source),
            supervisor_function_name=read("SUPERVISOR_FUNCTION_NAME", _function_name, None),
            supervisor_function_arn=read("SUPERVISOR_FUNCTION_ARN", _function_arn, None),
            backstop_schedule_group=read("BACKSTOP_SCHEDULE_GROUP", _schedule_group, None),
            backstop_role_arn=read("BACKSTOP_ROLE_ARN", _role_arn, None),
            lambda_endpoint=read(
                "AWS_ENDPOINT_URL_LAMBDA", _endpoint("lambda"), f"https://lambda.{region}.{_dns_suffix(region)}"
            ),
            scheduler_endpoint=read(
                "AWS_ENDPOINT_URL_SCHEDULER",
                _endpoint("scheduler"),
                f"https://scheduler.{region}.{_dns_suffix(region)}",
            ),
        )
        if "OPENAI_API_KEY_SECRET_ID" not in environment:
            variables.problems.insert(
                0, "OPENAI_API_KEY_SECRET_ID: is required (the secret holding the OpenAI API key)"
            )
        return settings

    def upstream(self, path: str) -> str:
        """The URL of an OpenAI path (``/v1/...``) on the configured upstream."""
        return self.upstream_url + path

    def unsupervised(self) -> str | None:
        """What a function that opens calls lacks to have them supervised (the variables unset); None: nothing."""
        missing = [
            variable
            for variable, value in (
                ("SUPERVISOR_FUNCTION_NAME", self.supervisor_function_name),
                ("SUPERVISOR_FUNCTION_ARN", self.supervisor_function_arn),
                ("BACKSTOP_SCHEDULE_GROUP", self.backstop_schedule_group),
                ("BACKSTOP_ROLE_ARN", self.backstop_role_arn),
            )
            if value is None
        ]
        if not missing:
            return None
        return (
            f"{', '.join(missing)}: required to open calls and Live sessions (each is supervised, with a backstop); "
            "the template sets them"
        )


def function_settings[F](environment: Mapping[str, str], own: Callable[[Settings, Variables], F]) -> F:
    """A function's settings: the service's, and its own as ``own`` reads them beside the service's; SettingsError
    naming every problem with either at once."""
    variables = Variables(environment)
    settings = own(Settings.read(variables), variables)
    variables.check()
    return settings


class UpstreamTimeouts(TypedDict):
    """How long a function waits on OpenAI's HTTP answers, as its settings name them."""

    upstream_connect_timeout_seconds: float
    upstream_read_timeout_seconds: float


def upstream_timeouts(variables: Variables, connect: float, read: float) -> UpstreamTimeouts:
    """UPSTREAM_CONNECT_TIMEOUT_SECONDS (``connect`` unless set) and UPSTREAM_READ_TIMEOUT_SECONDS (``read``)."""
    return UpstreamTimeouts(
        upstream_connect_timeout_seconds=variables.read("UPSTREAM_CONNECT_TIMEOUT_SECONDS", seconds(10), connect),
        upstream_read_timeout_seconds=variables.read("UPSTREAM_READ_TIMEOUT_SECONDS", seconds(25), read),
    )


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def printable(longest: int, words: str) -> Callable[[str], str]:
    """A value of at most ``longest`` printable characters, without surrounding spaces; else ``must be <words>``."""

    def parse(value: str) -> str:
        if not (len(value) <= longest and value.isprintable() and value.strip() == value):
            raise ValueError(f"must be {words}")
        return value

    return parse


def _matching(pattern: str, words: str, longest: int | None = None) -> Callable[[str], str]:
    """A value ``pattern`` matches whole (of at most ``longest`` characters); else ``must be <words>``."""

    def parse(value: str) -> str:
        if not ((longest is None or len(value) <= longest) and re.fullmatch(pattern, value)):
            raise ValueError(f"must be {words}")
        return value

    return parse


# A function's name, with its version or alias (Lambda's own pattern for FunctionName, less the partial ARNs).
_NAME = r"[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
_FUNCTION = rf"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{{12}}:function:)?{_NAME}"

_phrase = printable(200, "a short phrase (printable, at most 200 characters, no surrounding spaces)")
_table_name = _matching(r"[A-Za-z0-9_.-]{3,255}", "a DynamoDB table name (3 to 255 of A-Z, a-z, 0-9, '_', '-', '.')")
_function_name = _matching(
    _FUNCTION, "a Lambda function's name or ARN (e.g. voice-access-SupervisorFunction-AbC123)", longest=170
)
_function_arn = _matching(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:" + _NAME,
    "a Lambda function's ARN (arn:aws:lambda:<region>:<account>:function:<name>)",
    longest=170,
)
_schedule_group = _matching(
    r"[0-9A-Za-z_.-]{1,64}", "an EventBridge Scheduler group's name (1 to 64 of A-Z, a-z, 0-9, '_', '-', '.')"
)
_role_arn = _matching(
    r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}",
    "an IAM role's ARN (arn:aws:iam::<account>:role/<name>)",
    longest=2048,
)


def _endpoint(service: str) -> Callable[[str], str]:
    """A service's endpoint: the signed requests carry credentials, so https, or http on this machine."""

    def parse(url: str) -> str:
        return _base_url(url, example=f"https://{service}.us-east-1.amazonaws.com", api_path=None)

    return parse


# AWS's partitions other than the commercial one (and GovCloud, which shares its suffix), by their regions' prefix, as
# botocore's partitions.json has them (tests/unit/test_settings.py checks the endpoints against botocore's).
_PARTITION_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("eusc-", "amazonaws.eu"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
)


def _dns_suffix(region: str) -> str:
    return next((suffix for prefix, suffix in _PARTITION_SUFFIXES if region.startswith(prefix)), "amazonaws.com")


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not re.fullmatch(r"[0-9]{1,12}", value):  # int() would take " 5", "1_000" and non-ASCII digits
            raise ValueError(f"must be a whole number from {low} to {high}")
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return number

    return parse


def seconds(most: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"must be a number of seconds above 0, at most {most:g}") from None
        if not (math.isfinite(number) and 0 < number <= most):
            raise ValueError(f"must be a number of seconds above 0, at most {most:g}")
        return number

    return parse


def _base_url(url: str, example: str = "https://api.openai.com", api_path: str | None = "/v1") -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"must be a URL such as {example}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in url):
        raise ValueError(f"must be a URL such as {example}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("must be a base URL, without a query or fragment")
    if api_path and parts.path.rstrip("/").endswith(api_path):
        raise ValueError(f"must not end in {api_path}: the function adds /v1/realtime/client_secrets")
    # The API key (or a signature) travels in this request: cleartext only to a stand-in on this machine.
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("must be https (http only on loopback)")
    return url.rstrip("/")


def refused(reason: str, problem: str) -> ServiceMisconfigured:
    """The refusal of a deployment whose configuration (``reason``: its settings or its policy) cannot be used,
    logged and counted: a 500 until an operator fixes it."""
    from voice_access.observability import count, logger  # here: the build's policy check runs without Powertools

    logger.error("refusing to mint: the deployment is misconfigured", reason=reason, problem=problem)
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service is misconfigured and mints nothing until an operator fixes it (see the service's logs).",
        code=reason,
    )
