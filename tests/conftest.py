"""Shared fixtures: moto's Secrets Manager, the template's Cognito user pool and its quota table over real
HTTP, the OpenAI stub, the function's environment taken from template.yaml, and a guard that fails any test
whose output shows a secret: the API key, a client secret, a user's token or an e-mail address (what it looks
for: tests/secret_guard.py).
"""

import io
import json
import logging
import sys
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, cast

import boto3
import pytest

from local.aws import FAKE_CREDENTIALS, LocalAws, dynamodb_client
from local.gateway import LocalApi
from local.quota_table import LocalTables
from local.quota_table import create_from_template as create_tables
from local.secrets_extension import LOCAL_LAYER_ARN, SecretsExtension
from local.user_pool import UserPool, create_from_template, dev_username
from openai_stub.server import OpenAIStub
from tests import function_caches
from tests.deployment import REGION, template_environment
from tests.dynamodb_faults import DynamoDBFaults
from tests.keys import TEST_API_KEY, TEST_SAFETY_KEY
from tests.lambda_context import FakeLambdaContext, LambdaContext
from tests.local_api import serving_default
from tests.output import Output
from tests.paths import TEMPLATE
from tests.secret_guard import MINTED_SECRETS, USER_EMAILS, USER_TOKENS, record_text, sdp_shown, secret_shown
from tests.supervision import Supervision, supervised
from voice_access.clients.quota_store import Store


@pytest.fixture(scope="session")
def secrets_manager_url() -> Iterator[str]:
    """The tests' moto server (local.aws.LocalAws: DynamoDB's requests one at a time, as DynamoDB serialises an
    item's writes): its Secrets Manager is reached by the function's own signed requests through the SDKs' endpoint
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
        USER_EMAILS.add(dev_username(user))
        signed = user_pool.token(user, groups)
        USER_TOKENS.add(signed)
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


@pytest.fixture
def store(quota_table: str, secrets_manager_url: str) -> Store:
    """The quota store (clients/quota_store.py) on this test's quota table in moto."""
    return Store(quota_table, secrets_manager_url, REGION)


@pytest.fixture
def store_faults(secrets_manager_url: str) -> Iterator[DynamoDBFaults]:
    """A DynamoDB fault injector in front of the moto server (tests/dynamodb_faults.py)."""
    with DynamoDBFaults(secrets_manager_url) as faults:
        yield faults


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
    """How the function reads its key: "direct" (Secrets Manager's API, the template's default) or "extension".

    A test module that covers both overrides this fixture with ``params=["direct", "extension"]``.
    """
    return "direct"


@pytest.fixture(scope="session")
def stub_server() -> Iterator[OpenAIStub]:
    with OpenAIStub(api_key=TEST_API_KEY) as stub:
        yield stub


@pytest.fixture
def openai_stub(stub_server: OpenAIStub) -> Iterator[OpenAIStub]:
    stub_server.reset()
    yield stub_server
    MINTED_SECRETS.update(stub_server.minted)
    assert not stub_server.handler_errors, stub_server.handler_errors


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    """An OpenAI stub of the test's own: the GPT-Live sessions and Realtime calls it opens are never connected, and
    stopping it ends them (the shared stub, only reset, would keep them past the test). What it minted goes to the
    secret guard, as the shared stub's does."""
    with OpenAIStub(TEST_API_KEY) as running:
        yield running
    MINTED_SECRETS.update(running.minted)
    assert running.handler_errors == []


@pytest.fixture
def supervision(secrets_manager_url: str) -> Iterator[Supervision]:
    """Where the function starts each call's supervisor (recorded here, not run) and schedules its backstop."""
    with supervised(secrets_manager_url) as started:
        yield started


@pytest.fixture
def api(api_key_secret_arn: str, stub: OpenAIStub, user_pool: UserPool, supervision: Supervision) -> Iterator[LocalApi]:
    """The template's default deployment, the test's own stub behind it and each call's supervision started (as
    ``supervision`` records it). A module that serves another deployment defines an ``api`` of its own."""
    with serving_default(api_key_secret_arn, stub.base_url, user_pool, environment=supervision.environment) as api:
        yield api


@pytest.fixture
def function_env(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    api_key_secret_arn: str,
    openai_stub: OpenAIStub,
    secrets_via: str,
    quota_tables: LocalTables,
) -> dict[str, str]:
    """The template's environment, pointed at moto (or the extension stand-in before it), this test's own
    quota table in moto and the stub; every cache of the function empty in it."""
    overrides = {"OpenAIApiKeySecretArn": api_key_secret_arn, "OpenAIUpstreamUrl": openai_stub.base_url}
    if secrets_via == "extension":
        overrides |= {"SecretsReader": "extension", "SecretsExtensionLayerArn": LOCAL_LAYER_ARN}
    environment = template_environment(overrides, quota_tables.physical) | quota_tables.function_environment()
    if secrets_via == "extension":
        extension = request.getfixturevalue("extension_server")
        environment |= extension.function_environment()  # the stand-in's port, and the session token
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # Short timeouts keep the fault tests quick; the values are still the function's own settings.
    monkeypatch.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "0.5")
    function_caches.reset()  # whatever a fixture before this one read, the function reads this environment
    return environment


@pytest.fixture(autouse=True)
def empty_function_caches() -> Iterator[None]:
    """Every test starts as a new execution environment does, with the function's per-container caches empty, and
    leaves them empty (tests/function_caches.py says which)."""
    function_caches.reset()
    yield
    function_caches.reset()


@pytest.fixture
def lambda_context() -> LambdaContext:
    """The attributes Powertools reads from the runtime's context object."""
    return cast(LambdaContext, FakeLambdaContext())


@pytest.fixture(autouse=True)
def output(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Output]:
    """Captures what the function logs and prints, and fails the test if the API key or a minted secret shows."""
    # local/aws.py (imported above) holds botocore's logger at INFO before any fixture creates a secret with boto3.
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
    leak = secret_shown(captured.text() + "\n".join(record_text(r) for r in records))
    # The function's own log lines never hold an SDP offer or answer: their ICE candidates carry the user's
    # addresses (the stub and the peer, standing in for OpenAI, may log theirs).
    if not leak and sdp_shown(stream.getvalue()):
        leak = "an SDP offer or answer (ICE candidates, with the user's addresses) appeared in the function's logs"
    # pytest.fail, not assert: assertion introspection would print the secret itself
    if leak:
        pytest.fail(leak, pytrace=False)


@pytest.fixture
def websockets_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """websockets' client logs the upgrade's headers at DEBUG, the client secret among them."""
    caplog.set_level(logging.INFO, logger="websockets")


# What the guard has said about an item's captured output; the text it shows for each section it hid, by the
# section's title and content; and the reports of the item's phases so far, each with its sections as made.
_LEAK = pytest.StashKey[str]()
_HIDDEN = pytest.StashKey[dict[tuple[str, str], str]]()
_REPORTS = pytest.StashKey[list[tuple[pytest.TestReport, list[tuple[str, str]]]]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The guard for what the `output` fixture cannot read: pytest's own capture of file descriptors 1 and 2
    (a subprocess's output) and its log sections. A section that shows a secret is replaced in every report
    of the item, and the item's teardown fails, once (the fixture may have failed it already), as the
    fixture's does."""
    report = yield
    made = list(report.sections)
    reports = item.stash.setdefault(_REPORTS, [])
    reports.append((report, made))
    hidden = item.stash.setdefault(_HIDDEN, {})
    # Every phase's sections (a report carries those of the item's phases so far), again at teardown: the stub's
    # teardown has added the values it minted by then. A section hidden before is read as hidden.
    shown = [hidden.get(section, section[1]) for section in made]
    leaks = [secret_shown(content) for content in shown]
    if not any(leaks) and (leak := secret_shown("".join(shown))):
        leaks = [leak] * len(made)  # shown only across sections (one print to stdout, one to stderr)
    for section, leak in zip(made, leaks, strict=True):
        if leak:
            item.stash.setdefault(_LEAK, leak)
            hidden[section] = f"[the secret guard hid this output: {leak}]"
    for each, sections in reports:
        each.sections = [(title, hidden.get((title, content), content)) for title, content in sections]
    if report.when == "teardown":
        leak = item.stash.get(_LEAK, None)
        if leak and not report.failed:
            report.outcome = "failed"
            report.longrepr = leak
        del item.stash[_REPORTS]
    return report
