"""The official OpenAI Python SDK, pointed at the local API with base_url and a user's token as its api_key,
just works."""

import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, cast

import openai
import pytest
from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel

from local.gateway import LocalApi
from local.user_pool import UserPool
from openai_stub.schema import ga_errors
from openai_stub.server import OpenAIStub
from tests.docs import code_block
from tests.local_api import serving_default

# The README's examples name a deployed stack's OpenAIBaseUrl; the tests put the local API's in its place.
README_BASE_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"


@pytest.fixture
def api(api_key_secret_arn: str, openai_stub: OpenAIStub, user_pool: UserPool) -> Iterator[LocalApi]:
    """The local API Gateway, serving the template's routes, environment and JWT authorizer (the default
    deployment: tokens of the template's user pool, here moto's; the key read through the Parameters and
    Secrets Extension, here its stand-in)."""
    with serving_default(api_key_secret_arn, openai_stub.base_url, user_pool) as api:
        yield api


@pytest.fixture
def client(api: LocalApi, user_token: Callable[..., str]) -> openai.OpenAI:
    """An SDK client whose api_key is a signed-in user's token, as an app holds it."""
    return openai.OpenAI(api_key=user_token(), base_url=f"{api.url}/v1", max_retries=0)


def test_the_readmes_deployed_python_example_works_as_written(
    api: LocalApi, user_token: Callable[..., str], openai_stub: OpenAIStub
) -> None:
    # Given the README's example for the deployed API, its base_url the local API's, and its free variable
    # user_access_token a signed-in user's token
    example = code_block("python", "api_key=user_access_token")
    assert example.count(README_BASE_URL) == 1, "the README's example no longer names the example stack's URL"
    namespace: dict[str, Any] = {"__name__": "readme_example", "user_access_token": user_token()}

    # When it runs
    exec(compile(example.replace(README_BASE_URL, f"{api.url}/v1"), "docs/deploy.md", "exec"), namespace)  # noqa: S102 - the README's own text

    # Then its `secret` is a client secret the stub minted (which the output guard therefore knows), minted
    # once, with the caller's safety identifier
    secret = namespace["secret"]
    assert secret.value.startswith("ek_")
    assert secret.value in openai_stub.minted
    assert secret.session.type == "realtime"
    [minted] = openai_stub.requests
    assert minted.safety_identifier is not None
    assert re.fullmatch(r"[0-9a-f]{64}", minted.safety_identifier)


def test_the_sdk_mints_a_ga_client_secret(client: openai.OpenAI, openai_stub: OpenAIStub) -> None:
    # Given the SDK's GA call
    # When it asks for a client secret
    secret = client.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 300},
        session={"type": "realtime", "audio": {"output": {"voice": "cedar"}}},
    )

    # Then it gets one, parsed into its own types
    assert secret.value.startswith("ek_")
    assert secret.expires_at > 0
    assert secret.session.type == "realtime"
    assert ga_errors("RealtimeCreateClientSecretRequest", openai_stub.requests[0].json) == []


def test_openai_documentation_samples_mint_unchanged(client: openai.OpenAI, openai_stub: OpenAIStub) -> None:
    # Given the calls of OpenAI's own documentation, which name the model
    # When the SDK makes them
    realtime = client.realtime.client_secrets.create(
        session={"type": "realtime", "model": "gpt-realtime", "audio": {"output": {"voice": "marin"}}}
    )
    beta = client.beta.realtime.sessions.create(model="gpt-realtime", voice="verse")
    translation = client.realtime.translations.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 600},
        session={
            "model": "gpt-realtime-translate",
            "audio": {
                "input": {"transcription": {"model": "gpt-realtime-whisper"}, "noise_reduction": None},
                "output": {"language": "es"},
            },
        },
    )

    # Then each gets a client secret in its own shape, and OpenAI got schema-valid requests
    assert realtime.value.startswith("ek_")
    assert realtime.session.model_dump()["type"] == "realtime"
    assert realtime.session.model_dump()["model"] == "gpt-realtime"
    assert beta.client_secret.value.startswith("ek_")
    assert beta.model_dump()["model"] == "gpt-realtime"
    assert translation.value.startswith("ek_")
    assert translation.session.type == "translation"
    schemas = {
        "/v1/realtime/client_secrets": "RealtimeCreateClientSecretRequest",
        "/v1/realtime/translations/client_secrets": "RealtimeTranslationClientSecretCreateRequest",
    }
    assert [ga_errors(schemas[request.path], request.json) for request in openai_stub.requests] == [[], [], []]


def test_the_agents_sdk_quickstarts_mint_unchanged_with_todays_models(
    client: openai.OpenAI, openai_stub: OpenAIStub
) -> None:
    # Given the mint of the Agents SDK quickstarts (openai-agents-js docs/.../voice-agents/quickstart.mdx and
    # examples/realtime-demo/token.ts: the session's type and model, nothing else), the flagship's mini, a current
    # transcription model, and the session the Python Agents SDK configures by default, with its tracing
    agents_default = OpenAIRealtimeWebSocketModel()._get_session_config({}).model_dump(exclude_unset=True)

    # When the SDK mints each
    quickstart = client.realtime.client_secrets.create(session={"type": "realtime", "model": "gpt-realtime-2.1"})
    mini = client.realtime.client_secrets.create(session={"type": "realtime", "model": "gpt-realtime-2.1-mini"})
    transcription = client.realtime.client_secrets.create(
        session={"type": "transcription", "audio": {"input": {"transcription": {"model": "gpt-live-transcribe"}}}}
    )
    configured = client.realtime.client_secrets.create(session=cast(Any, agents_default | {"tracing": "auto"}))

    # Then each gets a client secret for the model it named, and OpenAI got what was asked, schema-valid
    assert [secret.value[:3] for secret in (quickstart, mini, transcription, configured)] == ["ek_"] * 4
    models = [secret.session.model_dump()["model"] for secret in (quickstart, mini)]
    assert models == ["gpt-realtime-2.1", "gpt-realtime-2.1-mini"]
    sent = [cast(dict[str, Any], request.json)["session"] for request in openai_stub.requests]
    assert [session.get("model") for session in sent] == [
        "gpt-realtime-2.1",
        "gpt-realtime-2.1-mini",
        None,
        "gpt-realtime-2.1",
    ]
    assert sent[2]["audio"]["input"]["transcription"] == {"model": "gpt-live-transcribe"}
    assert sent[3]["tracing"] == "auto"
    assert sent[3]["audio"] == agents_default["audio"]
    assert [ga_errors("RealtimeCreateClientSecretRequest", request.json) for request in openai_stub.requests] == [
        []
    ] * 4


def test_a_model_the_policy_does_not_offer_raises_bad_request_listing_the_offered_ones(
    client: openai.OpenAI, openai_stub: OpenAIStub
) -> None:
    # Given a model OpenAI has but the shipped policy does not offer
    # When the SDK asks for a secret with it
    with pytest.raises(openai.BadRequestError) as raised:
        client.realtime.client_secrets.create(session={"type": "realtime", "model": "gpt-realtime-mini"})

    # Then the SDK's typed error names the field and the models offered, and nothing reached OpenAI
    assert (raised.value.param, raised.value.code) == ("session.model", "invalid_value")
    assert "'gpt-realtime-2.1', 'gpt-realtime-2.1-mini', 'gpt-realtime'" in raised.value.message
    assert openai_stub.requests == []


def test_the_sdk_mints_through_the_beta_sessions_call(client: openai.OpenAI) -> None:
    # Given the SDK's beta call, switched off upstream but served here
    # When it creates a session
    session = client.beta.realtime.sessions.create(voice="marin", input_audio_format="g711_ulaw")

    # Then it gets a client secret in the beta shape
    assert session.client_secret.value.startswith("ek_")
    assert session.voice == "marin"
    assert session.input_audio_format == "g711_ulaw"


def test_the_sdk_creates_a_beta_transcription_session(client: openai.OpenAI) -> None:
    # Given the SDK's beta transcription call
    # When it creates a transcription session
    session = client.beta.realtime.transcription_sessions.create(
        input_audio_transcription={"model": "gpt-4o-mini-transcribe"}
    )

    # Then it gets a client secret
    assert session.client_secret.value.startswith("ek_")


def test_a_value_outside_the_policy_raises_bad_request_naming_the_field(
    client: openai.OpenAI, openai_stub: OpenAIStub
) -> None:
    # Given a voice the policy does not allow
    # When the SDK asks for a secret with it
    with pytest.raises(openai.BadRequestError) as raised:
        client.realtime.client_secrets.create(session={"type": "realtime", "audio": {"output": {"voice": "verse2"}}})

    # Then the SDK raises its typed error, naming the field, and nothing reached OpenAI
    assert raised.value.param == "session.audio.output.voice"
    assert raised.value.code == "invalid_value"
    assert openai_stub.requests == []


def test_a_beta_value_outside_the_policy_names_the_beta_field(client: openai.OpenAI) -> None:
    # Given a beta call with a temperature GA has no place for
    # When the SDK creates the session
    with pytest.raises(openai.BadRequestError) as raised:
        client.beta.realtime.sessions.create(temperature=1.1)

    # Then the error names the beta field
    assert raised.value.param == "temperature"


def test_rate_limiting_upstream_raises_the_sdks_rate_limit_error(
    client: openai.OpenAI, openai_stub: OpenAIStub
) -> None:
    # Given OpenAI rate limits the service
    from openai_stub.server import Fault

    openai_stub.inject(Fault.rate_limited(retry_after=3))

    # When the SDK asks for a secret
    with pytest.raises(openai.RateLimitError) as raised:
        client.realtime.client_secrets.create(session={"type": "realtime"})

    # Then it sees a 429 with OpenAI's Retry-After passed on
    assert raised.value.response.headers["retry-after"] == "3"


def test_without_a_users_token_the_sdk_raises_its_authentication_error(api: LocalApi, openai_stub: OpenAIStub) -> None:
    # Given an SDK client whose api_key is no token of the issuer's (an OpenAI key's shape)
    stranger = openai.OpenAI(api_key="sk-not-a-token", base_url=f"{api.url}/v1", max_retries=0)

    # When it asks for a client secret
    with pytest.raises(openai.AuthenticationError) as raised:
        stranger.realtime.client_secrets.create(session={"type": "realtime"})

    # Then API Gateway's 401 reaches it as the SDK's typed error, and nothing reached OpenAI
    assert raised.value.response.status_code == HTTPStatus.UNAUTHORIZED
    assert openai_stub.requests == []


def test_a_premium_user_gets_the_premium_profile_and_others_a_permission_denied_error(
    api: LocalApi, user_token: Callable[..., str], openai_stub: OpenAIStub
) -> None:
    # Given a member of the premium group, and a user of no group
    premium = openai.OpenAI(api_key=user_token("paula", ["premium"]), base_url=f"{api.url}/v1", max_retries=0)
    plain = openai.OpenAI(api_key=user_token("oliver"), base_url=f"{api.url}/v1", max_retries=0)

    # When the premium user mints, naming no profile
    secret = premium.realtime.client_secrets.create(session={"type": "realtime"})
    # And the other names the premium profile
    with pytest.raises(openai.PermissionDeniedError) as raised:
        plain.realtime.client_secrets.create(session={"type": "realtime"}, extra_headers={"X-Profile": "premium"})

    # Then the first gets a client secret of the premium profile (5 minutes by default; the assistant's is 1)
    assert secret.value.startswith("ek_")
    sent = openai_stub.requests[0].json
    assert isinstance(sent, dict)
    assert sent["expires_after"]["seconds"] == 300
    # And the other the SDK's typed 403, naming the header, with nothing more sent upstream
    assert raised.value.code == "permission_denied"
    assert raised.value.param == "X-Profile"
    assert len(openai_stub.requests) == 1
