"""Shared fixtures: moto's Secrets Manager, the template's Cognito user pool and its quota table over real
HTTP, the OpenAI stub, the function's environment taken from template.yaml, events from events/, and a guard
that fails any test whose output shows a secret: the API key, a client secret, a user's token or an e-mail
address.
"""

import io
import json
import logging
import re
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext as LambdaContext

from local.aws import FAKE_CREDENTIALS, LocalAws, dynamodb_client
from local.gateway import LocalApi
from local.quota_table import LocalTables
from local.quota_table import create_from_template as create_tables
from local.secrets_extension import LOCAL_LAYER_ARN, SecretsExtension
from local.user_pool import UserPool, create_from_template, dev_username
from openai_stub.server import OpenAIStub
from tests.issuers import MINTED_TOKENS

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
TEMPLATE = ROOT / "template.yaml"
FUNCTION = "TokenVendingFunction"
# Fake, and long enough that a leak of any part of it would be noticed.
TEST_API_KEY = "sk-test-4e1f0c2b9a7d4c55b0e3"
TEST_SAFETY_KEY = "safety-test-5d0c8e1a7b3f4e62a9c1d7f0b8e4a2c6"
REGION = "us-east-1"

_minted_anywhere: set[str] = set()
# Every token the user pool fixtures signed, and the addresses of their users (tests/issuers.py keeps its own).
_user_tokens: set[str] = set()
_user_emails: set[str] = set()
# A JWT's header and payload: base64url JSON objects, so each starts eyJ ('{"').
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}")
# An address: a dot-atom local part, then a domain ending in a letters-only TLD (not "openai@6.49.0",
# not a decorator, which has no local part).
_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# What every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _token_pieces(tokens: Iterable[str]) -> set[str]:
    """What shows a token: the whole; its payload (the claims: subject, username, groups) alone; and its first
    24 characters, the first piece of a token printed in two (a second piece that lacks them holds the payload)."""
    pieces: set[str] = set()
    for token in tokens:
        pieces |= {token, token[:24]}
        segments = token.split(".")
        if len(segments) == 3 and segments[1]:
            pieces.add(segments[1])
    return pieces


def _record_text(record: logging.LogRecord) -> str:
    """A record as a handler could show it: its message, exception and stack, and its extra fields."""
    extras = (repr(value) for key, value in vars(record).items() if key not in _RECORD_FIELDS)
    return "\n".join([logging.Formatter().format(record), *extras])


def _decoded(text: str) -> str:
    """The text with JSON \\u escapes and (repeated) percent-encoding undone, so "alice%40example.test" reads as
    an address."""
    text = _JSON_ESCAPE.sub(lambda escape: chr(int(escape[1], 16)), text)
    for _ in range(3):
        text, previous = urllib.parse.unquote(text), text
        if text == previous:
            break
    return text


def secret_shown(shown: str) -> str | None:
    """What the guard says about a text that shows the API key, a minted client secret, a user's token (or a
    piece of one) or an e-mail address, plain or encoded; None when it shows none. It names how many values
    leaked and at most their first 6 characters."""
    decoded = _decoded(shown)
    text = shown if decoded == shown else f"{shown}\n{decoded}"
    secrets = {TEST_API_KEY, TEST_SAFETY_KEY, FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], *_minted_anywhere}
    leaked = sorted(s for s in secrets if s in text)
    if leaked:
        return f"a secret appeared in the output: {len(leaked)} value(s), e.g. {leaked[0][:6]}..."
    if any(piece in text for piece in _token_pieces(_user_tokens | MINTED_TOKENS)) or _JWT.search(text):
        return "a user's token (or something shaped like a JWT) appeared in the output"
    if any(email in text for email in _user_emails) or _EMAIL.search(text):
        return "an e-mail address appeared in the output"
    return None


@pytest.fixture(scope="session")
def secrets_manager_url() -> Iterator[str]:
    """The tests' moto server (local.aws.LocalAws: DynamoDB's requests one at a time, as DynamoDB serialises an
    item's writes): its Secrets Manager is reached by the function's own boto3 through the ordinary endpoint
    setting; the user pool and the quota tables are there too."""
    aws = LocalAws().start()
    url = aws.endpoint_url
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        # The local AWS takes only its run's credentials, as AWS takes only a valid signature.
        env.setenv("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"])
        env.setenv("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_REGION", REGION)
        yield url
    aws.stop()


@pytest.fixture(scope="session")
def user_pool(secrets_manager_url: str) -> UserPool:
    """The template's user pool, app client and groups, in the same moto server, made as `make run` makes them."""
    import voice_access.clients.secrets  # noqa: F401 - holds botocore's logger at INFO: it logs bodies (tokens) at DEBUG

    pool = create_from_template(TEMPLATE, {}, secrets_manager_url, REGION)
    assert pool is not None, "template.yaml creates no user pool with its defaults"
    return pool


@pytest.fixture
def user_token(user_pool: UserPool) -> Callable[..., str]:
    """``user_token(user="developer", groups=())``: a fresh access token signed by the user pool, whose user
    (created on first use) is a member of exactly ``groups``. The output guard fails a test that shows it."""

    def token(user: str = "developer", groups: Iterable[str] = ()) -> str:
        _user_emails.add(dev_username(user))
        signed = user_pool.token(user, groups)
        _user_tokens.add(signed)
        return signed

    return token


@pytest.fixture
def secrets_manager(secrets_manager_url: str) -> Any:
    return boto3.client("secretsmanager", endpoint_url=secrets_manager_url, region_name=REGION)


@pytest.fixture
def api_key_secret_arn(secrets_manager: Any) -> str:
    """A fresh secret holding the test keys, as the operator puts them in (JSON form)."""
    secret = {"api_key": TEST_API_KEY, "safety_identifier_key": TEST_SAFETY_KEY}
    created = secrets_manager.create_secret(
        Name=f"openai-api-key-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(secret)
    )
    return str(created["ARN"])


@pytest.fixture
def quota_tables(secrets_manager_url: str) -> LocalTables:
    """The template's tables (its QuotaTable), made from their own Properties in the moto server, under names of
    this test's own: every test's counters start empty."""
    return create_tables(TEMPLATE, {}, secrets_manager_url, REGION, unique=True)


@pytest.fixture
def quota_table(quota_tables: LocalTables) -> str:
    """The name of this test's quota table (the template's QuotaTable)."""
    return quota_tables.name("QuotaTable")


@pytest.fixture
def dynamodb(secrets_manager_url: str) -> Any:
    """A DynamoDB client of the moto server, e.g. to read a quota table's items."""
    return dynamodb_client(secrets_manager_url, REGION)


@pytest.fixture(scope="session")
def extension_server(secrets_manager_url: str) -> Iterator[SecretsExtension]:
    """The Parameters and Secrets Extension stand-in, in front of moto's Secrets Manager."""
    environment = {
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_manager_url,
        "AWS_REGION": REGION,
        **FAKE_CREDENTIALS,
    }
    with SecretsExtension(environment) as extension:
        yield extension


@pytest.fixture
def secrets_via() -> str:
    """How the function reads its key: "sdk" (boto3) or "extension" (the template's default).

    A test module that covers both overrides this fixture with ``params=["sdk", "extension"]``.
    """
    return "sdk"


@pytest.fixture(scope="session")
def stub_server() -> Iterator[OpenAIStub]:
    with OpenAIStub(api_key=TEST_API_KEY) as stub:
        yield stub


@pytest.fixture
def openai_stub(stub_server: OpenAIStub) -> Iterator[OpenAIStub]:
    stub_server.reset()
    yield stub_server
    _minted_anywhere.update(stub_server.minted)
    assert not stub_server.handler_errors, stub_server.handler_errors


def template_environment(
    overrides: dict[str, str], physical: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The function's environment exactly as template.yaml gives it, for these parameter overrides;
    ``physical``: resources that exist locally (local.gateway.Resolver's), e.g. LocalTables.physical."""
    return LocalApi.from_template(TEMPLATE, overrides, physical=physical).functions[FUNCTION].environment


@pytest.fixture
def function_env(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    api_key_secret_arn: str,
    openai_stub: OpenAIStub,
    secrets_via: str,
    quota_tables: LocalTables,
) -> Iterator[dict[str, str]]:
    """The template's environment, pointed at moto (or the extension stand-in before it), this test's own
    quota table in moto and the stub; every cache of the function cleared."""
    from voice_access.clients.secrets import api_keys
    from voice_access.config.settings import get_settings
    from voice_access.domain.policy import cached_policy

    overrides = {"OpenAIApiKeySecretArn": api_key_secret_arn, "OpenAIUpstreamUrl": openai_stub.base_url}
    if secrets_via == "extension":
        overrides["SecretsExtensionLayerArn"] = LOCAL_LAYER_ARN
    else:
        overrides["SecretsReader"] = "sdk"
    environment = template_environment(overrides, quota_tables.physical) | quota_tables.function_environment()
    if secrets_via == "extension":
        extension = request.getfixturevalue("extension_server")
        environment |= extension.function_environment()  # the stand-in's port, and the session token
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # Short timeouts keep the fault tests quick; the values are still the function's own settings.
    monkeypatch.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    cached_policy.cache_clear()
    api_keys.clear()
    yield environment
    get_settings.cache_clear()
    cached_policy.cache_clear()
    api_keys.clear()


@dataclass
class FakeLambdaContext:
    function_name: str = "TokenVendingFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:TokenVendingFunction"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    """The attributes Powertools reads from the runtime's context object."""
    return cast(LambdaContext, FakeLambdaContext())


@dataclass
class CountdownLambdaContext(FakeLambdaContext):
    """An invocation with `remaining_ms` left when it starts, counting down as Lambda's context does."""

    remaining_ms: int = 15_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.remaining_ms - int((time.monotonic() - self.started) * 1000))


def lambda_context_with(remaining_ms: int) -> LambdaContext:
    """A fresh invocation's context with `remaining_ms` left (the fixture's always has 15 s)."""
    return cast(LambdaContext, CountdownLambdaContext(remaining_ms=remaining_ms))


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """An API Gateway event from events/, with top-level fields replaced (``body`` may be a dict)."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    for key, value in changes.items():
        event[key] = json.dumps(value) if key == "body" and not isinstance(value, str) else value
    return event


@dataclass
class Output:
    """What the test printed: Powertools log lines and EMF metrics."""

    _capsys: pytest.CaptureFixture[str]
    _log_stream: io.StringIO
    _printed: list[str] = field(default_factory=list)

    def _drain(self) -> str:
        out, err = self._capsys.readouterr()
        self._printed.append(out + err)
        return "".join(self._printed)

    def text(self) -> str:
        return self._log_stream.getvalue() + self._drain()

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._log_stream.getvalue().splitlines() if line.startswith("{")]

    def metrics(self) -> list[dict[str, Any]]:
        """EMF documents: JSON lines with an ``_aws`` key, printed by Metrics or logged (a mint's log line)."""
        lines = self._log_stream.getvalue().splitlines() + self._drain().splitlines()
        documents = [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]
        return [document for document in documents if "_aws" in document]

    def metric_count(self, name: str, **dimensions: str) -> int:
        return sum(
            int(sum(m[name]))
            for m in self.metrics()
            if name in m and all(m.get(key) == value for key, value in dimensions.items())
        )


@pytest.fixture(autouse=True)
def output(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Output]:
    """Captures what the function logs and prints, and fails the test if the API key or a minted secret shows."""
    # api_key holds botocore's logger at INFO, as in the function, before any fixture creates a secret with boto3.
    import voice_access.clients.secrets  # noqa: F401
    from voice_access.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    # Swapped by hand: setStream() would flush the old stream, which may be a finished test's capture.
    previous, handler.stream = handler.stream, stream
    caplog.set_level(logging.DEBUG)  # every library at DEBUG: botocore, for one, logs response bodies there
    captured = Output(capsys, stream)
    try:
        yield captured
    finally:
        handler.stream = sys.__stdout__ if getattr(previous, "closed", False) else previous
    # (caplog.text would hold only the teardown's records by now: read every phase's)
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    # The stub fixture has been torn down by now (this one was set up first) and added its minted values.
    leak = secret_shown(captured.text() + "\n".join(_record_text(r) for r in records))
    # pytest.fail, not assert: assertion introspection would print the secret itself
    if leak:
        pytest.fail(leak, pytrace=False)


@pytest.fixture
def websockets_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """websockets' client logs the upgrade's headers at DEBUG, the client secret among them."""
    caplog.set_level(logging.INFO, logger="websockets")


# What the guard has said about an item's captured output, and the reports of its phases so far.
_LEAK = pytest.StashKey[str]()
_REPORTS = pytest.StashKey[list[pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The guard for what the `output` fixture cannot read: pytest's own capture of file descriptors 1 and 2
    (a subprocess's output) and its log sections. A section that shows a secret is replaced in every report
    of the item, and the item's teardown fails, once (the fixture may have failed it already), as the
    fixture's does."""
    report = yield
    reports = item.stash.setdefault(_REPORTS, [])
    reports.append(report)
    # Every phase's sections, again at teardown: the stub's teardown has added the values it minted by then.
    sections = list(item._report_sections)
    leaks = [secret_shown(content) for _, _, content in sections]
    if not any(leaks) and (leak := secret_shown("\n".join(content for _, _, content in sections))):
        leaks = [leak] * len(sections)  # shown only across sections (one print to stdout, one to stderr)
    for (when, key, content), leak in zip(sections, leaks, strict=True):
        if leak:
            item.stash.setdefault(_LEAK, leak)
            hidden = f"[the secret guard hid this output: {leak}]"
            item._report_sections[item._report_sections.index((when, key, content))] = (when, key, hidden)
            for each in reports:
                each.sections = [
                    (title, hidden if title == f"Captured {key} {when}" and text == content else text)
                    for title, text in each.sections
                ]
    if report.when == "teardown":
        leak = item.stash.get(_LEAK, None)
        if leak and not report.failed:
            report.outcome = "failed"
            report.longrepr = leak
        del item.stash[_REPORTS]
    return report
