"""The keys' cache (the API key and the safety identifier key, read together): at most one fetch per TTL,
and a Secrets Manager outage does not drop good keys."""

import pytest

from voice_access.clients.deadline import Deadline
from voice_access.clients.secrets import ApiKeySource, Credentials
from voice_access.domain.errors import DependencyUnavailable

SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-api-key-AbCdEf"
DEADLINE = Deadline.after(3600)
SAFETY_KEY = "s" * 32


def keys(api_key: str) -> Credentials:
    return Credentials(api_key, SAFETY_KEY)


class ScriptedSource(ApiKeySource):
    """The cache with Secrets Manager replaced by a script of answers (a key, or an outage)."""

    def __init__(self, *answers: Credentials | DependencyUnavailable) -> None:
        super().__init__()
        self.answers = list(answers)
        self.fetches = 0

    def _fetch(self, secret_id: str, extension_port: int | None, deadline: Deadline) -> Credentials:
        self.fetches += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def outage() -> DependencyUnavailable:
    return DependencyUnavailable("Secrets Manager is unavailable.", code="secrets_unavailable")


def test_within_the_ttl_the_key_is_fetched_once() -> None:
    # Given a cache with a long TTL
    source = ScriptedSource(keys("sk-test-one"))

    # When the key is asked for three times
    got = [source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE) for _ in range(3)]

    # Then Secrets Manager was asked once
    assert got == [keys("sk-test-one")] * 3
    assert source.fetches == 1


def test_after_the_ttl_an_outage_serves_the_key_already_held() -> None:
    # Given a key fetched once, and a TTL that has passed
    source = ScriptedSource(keys("sk-test-one"), outage(), keys("sk-test-two"))
    source.get(SECRET_ID, ttl_seconds=0, deadline=DEADLINE)

    # When Secrets Manager is out of reach at the next fetch, and back at the one after
    during = source.get(SECRET_ID, ttl_seconds=0, deadline=DEADLINE)
    after = source.get(SECRET_ID, ttl_seconds=0, deadline=DEADLINE)

    # Then the held key bridged the outage, and the fetch after it read the secret again
    assert (during.api_key, after.api_key) == ("sk-test-one", "sk-test-two")
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
    source = ScriptedSource(keys("sk-test-revoked"), keys("sk-test-new"))
    source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE)

    # When it is forgotten and asked for again
    source.forget()

    # Then the secret is read again at once
    assert source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE).api_key == "sk-test-new"


def test_a_key_held_for_another_secret_is_not_served() -> None:
    # Given a key held for one secret
    source = ScriptedSource(keys("sk-test-one"), outage())
    source.get(SECRET_ID, ttl_seconds=300, deadline=DEADLINE)

    # When another secret is asked for while Secrets Manager is out of reach
    # Then the other secret's key is not served in its place
    with pytest.raises(DependencyUnavailable):
        source.get(SECRET_ID + "-other", ttl_seconds=300, deadline=DEADLINE)


def test_the_keys_never_show_in_a_repr() -> None:
    # Given credentials, as a traceback or a debugger would print them
    shown = repr(keys("sk-test-shown-3c9d"))

    # Then neither key is in the text
    assert "sk-test-shown-3c9d" not in shown
    assert SAFETY_KEY not in shown
