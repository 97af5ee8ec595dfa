"""The function's settings, the service's (config/settings.py) and the minting function's own
(config/mint_settings.py): read from the environment once, loud about what is wrong."""

import os
from pathlib import Path

import pytest

from voice_access.config.mint_settings import MintSettings, checked_settings, get_settings
from voice_access.config.settings import BUNDLED_POLICY, Settings, SettingsError
from voice_access.domain.errors import ServiceMisconfigured

VARIABLES = (
    "OPENAI_API_KEY_SECRET_ID",
    "OPENAI_UPSTREAM_URL",
    "SECRET_CACHE_TTL_SECONDS",
    "UPSTREAM_CONNECT_TIMEOUT_SECONDS",
    "UPSTREAM_READ_TIMEOUT_SECONDS",
    "POLICY_PATH",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
    "GROUPS_CLAIM",
    "OPENAI_API_KEY_SOURCE",
    "QUOTA_TABLE_NAME",
    "SPEND_BRAKE_MINTS_PER_DAY",
)
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-api-key-AbCdEf"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean function environment holding only the required variable (the settings caches are empty: conftest)."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ID", SECRET_ARN)
    return monkeypatch


def test_settings_read_every_variable_by_its_environment_name() -> None:
    # Given a full function environment
    env = {
        "OPENAI_API_KEY_SECRET_ID": SECRET_ARN,
        "OPENAI_UPSTREAM_URL": "http://127.0.0.1:8765",
        "SECRET_CACHE_TTL_SECONDS": "30",
        "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.5",
        "UPSTREAM_READ_TIMEOUT_SECONDS": "3",
        "POLICY_PATH": "/opt/policy.json",
        "GROUPS_CLAIM": "https://example.com/roles",
        "AWS_REGION": "us-east-1",
        "OPENAI_API_KEY_SOURCE": "the key in OPENAI_API_KEY given to make run",
    }

    # When
    settings = MintSettings.from_environment(env)

    # Then
    assert settings.service == Settings.from_environment(env)
    assert settings.service.api_key_secret_id == SECRET_ARN
    assert (
        settings.service.upstream("/v1/realtime/client_secrets") == "http://127.0.0.1:8765/v1/realtime/client_secrets"
    )
    assert settings.service.secret_cache_ttl_seconds == 30
    assert settings.upstream_connect_timeout_seconds == 0.5
    assert settings.upstream_read_timeout_seconds == 3.0
    assert settings.service.policy_path == Path("/opt/policy.json")
    assert settings.groups_claim == "https://example.com/roles"
    assert settings.service.api_key_source == "the key in OPENAI_API_KEY given to make run"


def test_settings_default_everything_but_the_secret_id() -> None:
    # Given only the secret id
    env = {"OPENAI_API_KEY_SECRET_ID": "openai-api-key"}

    # When
    settings = MintSettings.from_environment(env)

    # Then
    assert (
        settings.service.upstream("/v1/realtime/client_secrets") == "https://api.openai.com/v1/realtime/client_secrets"
    )
    assert settings.service.secret_cache_ttl_seconds == 300
    assert settings.upstream_connect_timeout_seconds == 2.0
    assert settings.upstream_read_timeout_seconds == 8.0
    assert settings.service.policy_path == BUNDLED_POLICY
    assert settings.groups_claim == "cognito:groups"
    assert settings.service.api_key_source == "the key in the service's secret"


def test_settings_are_frozen() -> None:
    # Given
    settings = MintSettings.from_environment({"OPENAI_API_KEY_SECRET_ID": "openai-api-key"})

    # When / Then
    with pytest.raises(AttributeError):
        settings.service.secret_cache_ttl_seconds = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.upstream_read_timeout_seconds = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("upstream_url", "expected"),
    [
        ("https://api.openai.com", "https://api.openai.com/v1/realtime/client_secrets"),
        ("https://api.openai.com/", "https://api.openai.com/v1/realtime/client_secrets"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/v1/realtime/client_secrets"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765/v1/realtime/client_secrets"),
        ("https://proxy.example/openai/", "https://proxy.example/openai/v1/realtime/client_secrets"),
        ("http://[::1]:8765", "http://[::1]:8765/v1/realtime/client_secrets"),
    ],
)
def test_an_upstream_url_joins_without_a_double_slash(upstream_url: str, expected: str) -> None:
    # Given
    settings = Settings.from_environment(
        {"OPENAI_API_KEY_SECRET_ID": "openai-api-key", "OPENAI_UPSTREAM_URL": upstream_url}
    )

    # When
    url = settings.upstream("/v1/realtime/client_secrets")

    # Then
    assert url == expected


def test_get_settings_reads_the_process_environment_once(environment: pytest.MonkeyPatch) -> None:
    # Given
    first = get_settings()

    # When the environment changes afterwards
    environment.setenv("SECRET_CACHE_TTL_SECONDS", "1")
    environment.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "1")

    # Then the settings read at start stand
    assert get_settings() is first
    assert first.service.secret_cache_ttl_seconds == 300
    assert first.upstream_read_timeout_seconds == 8.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OPENAI_API_KEY_SECRET_ID", ""),
        ("OPENAI_UPSTREAM_URL", "not a url"),
        ("OPENAI_UPSTREAM_URL", "ftp://api.openai.com"),
        ("OPENAI_UPSTREAM_URL", "http://api.openai.com"),
        ("OPENAI_UPSTREAM_URL", "https://api.openai.com/v1"),
        ("OPENAI_UPSTREAM_URL", "https://api.openai.com/v1/"),
        ("OPENAI_UPSTREAM_URL", "https://x.example/base?a=1"),
        ("OPENAI_UPSTREAM_URL", "https://x.example/#top"),
        ("OPENAI_UPSTREAM_URL", "https://"),
        ("OPENAI_UPSTREAM_URL", "https://x.example:port"),
        ("OPENAI_UPSTREAM_URL", "https://x.exa mple"),
        ("SECRET_CACHE_TTL_SECONDS", "-1"),
        ("SECRET_CACHE_TTL_SECONDS", "3601"),
        ("SECRET_CACHE_TTL_SECONDS", "five minutes"),
        ("UPSTREAM_CONNECT_TIMEOUT_SECONDS", "0"),
        ("UPSTREAM_READ_TIMEOUT_SECONDS", "-8"),
        ("UPSTREAM_READ_TIMEOUT_SECONDS", "30"),
        ("UPSTREAM_READ_TIMEOUT_SECONDS", "nan"),
        ("UPSTREAM_CONNECT_TIMEOUT_SECONDS", "soon"),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "0"),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "65536"),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "http"),
        ("GROUPS_CLAIM", " cognito:groups"),
        ("GROUPS_CLAIM", "groups\n"),
        ("GROUPS_CLAIM", "g" * 257),
        ("OPENAI_API_KEY_SOURCE", "the key\nin a log line"),
        ("OPENAI_API_KEY_SOURCE", "k" * 201),
    ],
)
def test_an_invalid_variable_fails_naming_it(environment: pytest.MonkeyPatch, variable: str, value: str) -> None:
    # Given
    environment.setenv(variable, value)

    # When
    with pytest.raises(SettingsError) as caught:
        get_settings()

    # Then
    assert variable in str(caught.value)


def test_a_missing_secret_id_fails_naming_it(environment: pytest.MonkeyPatch) -> None:
    # Given
    environment.delenv("OPENAI_API_KEY_SECRET_ID")

    # When
    with pytest.raises(SettingsError) as caught:
        get_settings()

    # Then
    assert "OPENAI_API_KEY_SECRET_ID" in str(caught.value)


def test_every_problem_is_named_at_once(environment: pytest.MonkeyPatch) -> None:
    # Given two variables wrong and the required one missing
    environment.delenv("OPENAI_API_KEY_SECRET_ID")
    environment.setenv("SECRET_CACHE_TTL_SECONDS", "-1")
    environment.setenv("OPENAI_UPSTREAM_URL", "ftp://api.openai.com")

    # When
    with pytest.raises(SettingsError) as caught:
        get_settings()

    # Then one message names all three, so one redeploy fixes them
    for variable in ("OPENAI_API_KEY_SECRET_ID", "SECRET_CACHE_TTL_SECONDS", "OPENAI_UPSTREAM_URL"):
        assert variable in str(caught.value)


def test_the_services_problems_and_the_functions_own_are_named_at_once(environment: pytest.MonkeyPatch) -> None:
    # Given a variable of the service's wrong, one of the minting function's own, and the required one missing
    environment.delenv("OPENAI_API_KEY_SECRET_ID")
    environment.setenv("GROUPS_CLAIM", " groups")
    environment.setenv("SECRET_CACHE_TTL_SECONDS", "-1")

    # When
    with pytest.raises(SettingsError) as caught:
        get_settings()

    # Then one message names them all: the required one first, then the service's, then the function's own
    assert str(caught.value) == (
        "invalid function environment: "
        "OPENAI_API_KEY_SECRET_ID: is required (the secret holding the OpenAI API key); "
        "SECRET_CACHE_TTL_SECONDS: must be a whole number from 0 to 3600; "
        "GROUPS_CLAIM: must be a claim name such as cognito:groups (printable, no surrounding spaces)"
    )


def test_a_broken_environment_refuses_to_mint_naming_what_to_fix(environment: pytest.MonkeyPatch) -> None:
    # Given
    environment.setenv("UPSTREAM_READ_TIMEOUT_SECONDS", "30")

    # When
    with pytest.raises(ServiceMisconfigured) as caught:
        checked_settings()

    # Then the caller hears it is the operator's to fix (the variable is named in the log line, not to the caller)
    assert caught.value.code == "settings_invalid"
    assert "operator" in caught.value.message
    assert "UPSTREAM_READ_TIMEOUT_SECONDS" not in caught.value.message


def test_the_extension_port_is_read_when_the_template_sets_it() -> None:
    # Given the variable the template sets when the extension layer is attached
    env = {"OPENAI_API_KEY_SECRET_ID": "openai-api-key", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "2773"}

    # When
    settings = Settings.from_environment(env)

    # Then
    assert settings.secrets_extension_port == 2773
    assert Settings.from_environment({"OPENAI_API_KEY_SECRET_ID": "x"}).secrets_extension_port is None


def test_an_empty_optional_variable_is_unset_as_sam_local_writes_no_value() -> None:
    # Given the environment `sam local invoke` gives the function: AWS::NoValue becomes ""
    env = {
        "OPENAI_API_KEY_SECRET_ID": "openai-api-key",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "",
        "UPSTREAM_READ_TIMEOUT_SECONDS": "",
    }

    # When
    settings = MintSettings.from_environment(env)

    # Then each takes its default: no extension, so the key is read from Secrets Manager's API
    assert settings.service.secrets_extension_port is None
    assert settings.upstream_read_timeout_seconds == 8.0


# --- the quota store and the spend brake ---


def quota_settings(**variables: str) -> MintSettings:
    return MintSettings.from_environment({"OPENAI_API_KEY_SECRET_ID": "openai-api-key", **variables})


def test_without_quota_variables_there_is_no_store_and_no_brake() -> None:
    # Given / When
    settings = quota_settings()

    # Then
    assert settings.service.quota_table_name is None
    assert settings.spend_brake_mints_per_day == 0
    assert settings.service.aws_region == "us-east-1"
    assert settings.service.dynamodb_endpoint == "https://dynamodb.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    "name",
    ["local-QuotaTable", "token-vending-QuotaTable-1A2B3C4D5E6F", "abc", "a.b_c-d", "x" * 255],
)
def test_a_quota_table_name_is_read_as_cloudformation_names_it(name: str) -> None:
    assert quota_settings(QUOTA_TABLE_NAME=name).service.quota_table_name == name


def test_an_empty_quota_table_name_is_no_store() -> None:
    # Given the empty value `sam local` writes for an unset variable / When / Then
    assert quota_settings(QUOTA_TABLE_NAME="").service.quota_table_name is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("QUOTA_TABLE_NAME", "ab"),
        ("QUOTA_TABLE_NAME", "x" * 256),
        ("QUOTA_TABLE_NAME", "quota table"),
        ("QUOTA_TABLE_NAME", "arn:aws:dynamodb:us-east-1:123456789012:table/quota"),
        ("QUOTA_TABLE_NAME", "quota\n"),
        ("QUOTA_TABLE_NAME", "quotä"),
        ("SPEND_BRAKE_MINTS_PER_DAY", "-1"),
        ("SPEND_BRAKE_MINTS_PER_DAY", "1000000001"),
        ("SPEND_BRAKE_MINTS_PER_DAY", "5k"),
        ("SPEND_BRAKE_MINTS_PER_DAY", "1.5"),
        ("SPEND_BRAKE_MINTS_PER_DAY", "1e3"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://dynamodb.us-east-1.amazonaws.com"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://10.0.0.5:8000"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1.nip.io:4566"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "ftp://127.0.0.1:4566"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "dynamodb.us-east-1.amazonaws.com"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.us-east-1.amazonaws.com/?a=1"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "https://dynamodb.us-east-1.amazonaws.com#x"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "https://127.0.0.1:port"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "https://"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://secretsmanager.us-east-1.amazonaws.com"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "secretsmanager.us-east-1.amazonaws.com"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://secretsmanager.us-east-1.amazonaws.com/?a=1"),
    ],
)
def test_an_invalid_quota_variable_fails_naming_it(variable: str, value: str) -> None:
    # Given / When
    with pytest.raises(SettingsError) as caught:
        quota_settings(**{variable: value})

    # Then
    assert variable in str(caught.value)


def test_the_quota_variables_problems_are_named_at_once() -> None:
    # Given / When
    with pytest.raises(SettingsError) as caught:
        quota_settings(
            QUOTA_TABLE_NAME="ab", SPEND_BRAKE_MINTS_PER_DAY="-1", AWS_ENDPOINT_URL_DYNAMODB="http://db.example"
        )

    # Then
    message = str(caught.value)
    assert "QUOTA_TABLE_NAME: must be a DynamoDB table name" in message
    assert "SPEND_BRAKE_MINTS_PER_DAY: must be a whole number from 0 to 1000000000" in message
    assert "AWS_ENDPOINT_URL_DYNAMODB: must be https (http only on loopback)" in message


@pytest.mark.parametrize(("value", "mints"), [("0", 0), ("1", 1), ("5000", 5000), ("1000000000", 10**9), ("", 0)])
def test_the_spend_brake_is_read_within_its_bounds(value: str, mints: int) -> None:
    assert quota_settings(SPEND_BRAKE_MINTS_PER_DAY=value).spend_brake_mints_per_day == mints


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:4566", "http://127.0.0.1:4566"),
        ("http://127.0.0.1:4566/", "http://127.0.0.1:4566"),
        ("http://localhost:5000", "http://localhost:5000"),
        ("http://[::1]:4566", "http://[::1]:4566"),
        ("https://dynamodb.eu-west-1.amazonaws.com", "https://dynamodb.eu-west-1.amazonaws.com"),
        (
            "https://vpce-0abc.dynamodb.us-east-1.vpce.amazonaws.com/",
            "https://vpce-0abc.dynamodb.us-east-1.vpce.amazonaws.com",
        ),
    ],
)
def test_the_dynamodb_endpoint_is_https_or_http_on_loopback(url: str, endpoint: str) -> None:
    assert quota_settings(AWS_ENDPOINT_URL_DYNAMODB=url).service.dynamodb_endpoint == endpoint


@pytest.mark.parametrize(
    ("variables", "region", "endpoint"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1", "https://dynamodb.eu-west-1.amazonaws.com"),
        ({"AWS_REGION": "ap-southeast-2"}, "ap-southeast-2", "https://dynamodb.ap-southeast-2.amazonaws.com"),
        ({"AWS_REGION": "cn-north-1"}, "cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn"),
        ({"AWS_REGION": "cn-northwest-1"}, "cn-northwest-1", "https://dynamodb.cn-northwest-1.amazonaws.com.cn"),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2", "https://dynamodb.us-west-2.amazonaws.com"),
        (
            {"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "us-west-2"},
            "eu-north-1",
            "https://dynamodb.eu-north-1.amazonaws.com",
        ),
        (
            {"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-2"},
            "us-west-2",
            "https://dynamodb.us-west-2.amazonaws.com",
        ),
    ],
)
def test_the_default_dynamodb_endpoint_is_the_regions(variables: dict[str, str], region: str, endpoint: str) -> None:
    # Given the region Lambda sets (AWS_REGION), or the SDKs' fallback / When
    settings = quota_settings(**variables)

    # Then the requests go to, and are signed for, that region
    assert settings.service.aws_region == region
    assert settings.service.dynamodb_endpoint == endpoint


def test_a_set_endpoint_wins_over_the_regions() -> None:
    # Given / When
    settings = quota_settings(AWS_REGION="cn-north-1", AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:4566")

    # Then the endpoint is the one set, and requests are still signed for the region
    assert settings.service.dynamodb_endpoint == "http://127.0.0.1:4566"
    assert settings.service.aws_region == "cn-north-1"


def test_a_set_secrets_manager_endpoint_is_read_and_named_when_wrong() -> None:
    # Given / When a local endpoint, and a wrong one
    settings = quota_settings(AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:4566/")
    with pytest.raises(SettingsError) as caught:
        quota_settings(AWS_ENDPOINT_URL_SECRETS_MANAGER="http://sm.example")

    # Then the first is used as given, and the second's problem names its service's own example
    assert settings.service.secrets_manager_endpoint == "http://127.0.0.1:4566"
    assert "AWS_ENDPOINT_URL_SECRETS_MANAGER: must be https (http only on loopback)" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        quota_settings(AWS_ENDPOINT_URL_SECRETS_MANAGER="ftp://127.0.0.1")
    assert "such as https://secretsmanager.us-east-1.amazonaws.com" in str(caught.value)


# A region of each of AWS's partitions, and a few more of the commercial one.
PARTITION_REGIONS = [
    "us-east-1",
    "eu-central-2",
    "il-central-1",
    "mx-central-1",
    "cn-north-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "us-isof-south-1",
    "eu-isoe-west-1",
    "eusc-de-east-1",
]


@pytest.mark.parametrize("region", PARTITION_REGIONS)
def test_the_default_endpoints_are_the_ones_botocore_resolves_in_every_partition(
    region: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the region Lambda sets, and botocore's own resolution of each service's endpoint there (the reference),
    # with nothing of this process's own setting an endpoint for it
    import botocore.session

    for name in [name for name in os.environ if name.startswith(("AWS_ENDPOINT_URL", "AWS_USE_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    session = botocore.session.get_session()
    expected = {
        service: session.create_client(
            service, region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
        ).meta.endpoint_url
        for service in ("secretsmanager", "dynamodb")
    }

    # When the function reads its settings
    settings = quota_settings(AWS_REGION=region).service

    # Then its requests go where an AWS SDK's would
    assert settings.secrets_manager_endpoint == expected["secretsmanager"]
    assert settings.dynamodb_endpoint == expected["dynamodb"]
