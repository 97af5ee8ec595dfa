"""The API key cache: at most one fetch per TTL, and a Secrets Manager outage does not drop a good key."""

import pytest

from token_vending.api_key import ApiKeySource
from token_vending.deadline import Deadline
from token_vending.errors import DependencyUnavailable

SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-api-key-AbCdEf"
DEADLINE = Deadline.after(3600)


class ScriptedSource(ApiKeySource):
    """The cache with Secrets Manager replaced by a script of answers (a key, or an outage)."""

    def __init__(self, *answers: str | DependencyUnavailable) -> None:
        super().__init__()
        self.answers = list(answers)
        self.fetches = 0

    def _fetch(self, secret_id: str, extension_port: int | None, deadline: Deadline) -> str:
        self.fetches += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def outage() -> DependencyUnavailable:
    return DependencyUnavailable("Secrets Manager is unavailable.", code="secrets_unavailable")


def test_within_the_ttl_the_key_is_fetched_once() -> None:
    # Given a cache with a long TTL
    source = ScriptedSource("sk-test-one")

    # When the key is asked for three times
    keys = [source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE) for _ in range(3)]

    # Then Secrets Manager was asked once
    assert keys == ["sk-test-one"] * 3
    assert source.fetches == 1


def test_after_the_ttl_an_outage_serves_the_key_already_held() -> None:
    # Given a key fetched once, and a TTL that has passed
    source = ScriptedSource("sk-test-one", outage(), "sk-test-two")
    source.get(SECRET_ID, ttl_seconds=0, deadline=DEADLINE)

    # When Secrets Manager is out of reach at the next fetch, and back at the one after
    during = source.get(SECRET_ID, ttl_seconds=0, deadline=DEADLINE)
    after = source.get(SECRET_ID, ttl_seconds=0, deadline=DEADLINE)

    # Then the held key bridged the outage, and the fetch after it read the secret again
    assert (during, after) == ("sk-test-one", "sk-test-two")
    assert source.fetches == 3


def test_an_outage_with_no_key_held_is_an_error() -> None:
    # Given a cold container
    source = ScriptedSource(outage())

    # When Secrets Manager is out of reach
    # Then there is nothing to serve
    with pytest.raises(DependencyUnavailable):
        source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE)


def test_a_forgotten_key_is_fetched_again_within_the_ttl() -> None:
    # Given a key OpenAI has just refused
    source = ScriptedSource("sk-test-revoked", "sk-test-new")
    source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE)

    # When it is forgotten and asked for again
    source.forget()

    # Then the secret is read again at once
    assert source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE) == "sk-test-new"


def test_a_key_held_for_another_secret_is_not_served() -> None:
    # Given a key held for one secret
    source = ScriptedSource("sk-test-one", outage())
    source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE)

    # When another secret is asked for while Secrets Manager is out of reach
    # Then the other secret's key is not served in its place
    with pytest.raises(DependencyUnavailable):
        source.get(SECRET_ID + "-other", ttl_seconds=300, deadline=DEADLINE)
