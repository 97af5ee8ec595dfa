"""The keys' cache (the API key and the safety identifier key, read together): at most one fetch per TTL,
a Secrets Manager outage does not drop good keys, and a read begun in the background serves the first request."""

import threading
from dataclasses import dataclass

import pytest

from voice_access.clients.deadline import Deadline
from voice_access.clients.secrets import ApiKeySource, Credentials, Reader
from voice_access.domain.errors import DependencyUnavailable

SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-api-key-AbCdEf"
DEADLINE = Deadline.after(3600)
SAFETY_KEY = "s" * 32


@dataclass(frozen=True)
class Where:
    secrets_extension_port: int | None = None
    secrets_manager_endpoint: str = "https://secretsmanager.us-east-1.amazonaws.com"
    aws_region: str = "us-east-1"


READER = Where()
EXTENSION = Where(secrets_extension_port=2773)


def keys(api_key: str) -> Credentials:
    return Credentials(api_key, SAFETY_KEY)


class ScriptedSource(ApiKeySource):
    """The cache with Secrets Manager replaced by a script of answers (a key, or an outage)."""

    def __init__(self, *answers: Credentials | DependencyUnavailable) -> None:
        super().__init__()
        self.answers = list(answers)
        self.fetches = 0
        self.reading = threading.Event()  # set once a read has begun
        self.answer_now = threading.Event()  # a read answers once this is set: at once, unless a test clears it
        self.answer_now.set()

    def _fetch(self, secret_id: str, reader: Reader, deadline: Deadline) -> Credentials:
        self.fetches += 1
        self.reading.set()
        assert self.answer_now.wait(timeout=60), "the test never let the read answer"
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
    got = [source.get(SECRET_ID, reader=READER, ttl_seconds=300, deadline=DEADLINE) for _ in range(3)]

    # Then Secrets Manager was asked once
    assert got == [keys("sk-test-one")] * 3
    assert source.fetches == 1


def test_after_the_ttl_an_outage_serves_the_key_already_held() -> None:
    # Given a key fetched once, and a TTL that has passed
    source = ScriptedSource(keys("sk-test-one"), outage(), keys("sk-test-two"))
    source.get(SECRET_ID, reader=READER, ttl_seconds=0, deadline=DEADLINE)

    # When Secrets Manager is out of reach at the next fetch, and back at the one after
    during = source.get(SECRET_ID, reader=READER, ttl_seconds=0, deadline=DEADLINE)
    after = source.get(SECRET_ID, reader=READER, ttl_seconds=0, deadline=DEADLINE)

    # Then the held key bridged the outage, and the fetch after it read the secret again
    assert (during.api_key, after.api_key) == ("sk-test-one", "sk-test-two")
    assert source.fetches == 3


def test_an_outage_with_no_key_held_is_an_error() -> None:
    # Given a cold container
    source = ScriptedSource(outage())

    # When Secrets Manager is out of reach
    # Then there is nothing to serve
    with pytest.raises(DependencyUnavailable):
        source.get(SECRET_ID, reader=READER, ttl_seconds=300, deadline=DEADLINE)


def test_a_forgotten_key_is_fetched_again_within_the_ttl() -> None:
    # Given a key OpenAI has just refused
    source = ScriptedSource(keys("sk-test-revoked"), keys("sk-test-new"))
    source.get(SECRET_ID, reader=READER, ttl_seconds=300, deadline=DEADLINE)

    # When it is forgotten and asked for again
    source.forget()

    # Then the secret is read again at once
    assert source.get(SECRET_ID, reader=READER, ttl_seconds=300, deadline=DEADLINE).api_key == "sk-test-new"


def test_a_key_held_for_another_secret_is_not_served() -> None:
    # Given a key held for one secret
    source = ScriptedSource(keys("sk-test-one"), outage())
    source.get(SECRET_ID, reader=READER, ttl_seconds=300, deadline=DEADLINE)

    # When another secret is asked for while Secrets Manager is out of reach
    # Then the other secret's key is not served in its place
    with pytest.raises(DependencyUnavailable):
        source.get(SECRET_ID + "-other", reader=READER, ttl_seconds=300, deadline=DEADLINE)


def test_the_keys_never_show_in_a_repr() -> None:
    # Given credentials, as a traceback or a debugger would print them
    shown = repr(keys("sk-test-shown-3c9d"))

    # Then neither key is in the text
    assert "sk-test-shown-3c9d" not in shown
    assert SAFETY_KEY not in shown


class WatchedLock:
    """The cache's lock, saying when a request (any thread but the background read's) has come to wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.request_waiting = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if threading.current_thread().name != "prefetch-keys":
            self.request_waiting.set()
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def prefetch(source: ScriptedSource) -> threading.Thread:
    reading = source.prefetch(SECRET_ID, 300, READER)
    assert reading is not None
    return reading


def test_a_request_during_a_background_read_waits_for_it_and_reads_nothing_itself() -> None:
    # Given a read begun in the background (the init phase), not yet answered
    source = ScriptedSource(keys("sk-test-one"))
    source._lock = lock = WatchedLock()  # type: ignore[assignment]
    source.answer_now.clear()
    reading = prefetch(source)
    assert source.reading.wait(timeout=60)

    # When the first request asks for the keys, and the background read answers once the request waits for it
    got: list[Credentials] = []
    asking = threading.Thread(target=lambda: got.append(source.get(SECRET_ID, 300, READER, deadline=DEADLINE)))
    asking.start()
    assert lock.request_waiting.wait(timeout=60)
    source.answer_now.set()
    asking.join(timeout=60)
    reading.join(timeout=60)

    # Then the request has the background read's keys, and Secrets Manager was asked once
    assert got == [keys("sk-test-one")]
    assert source.fetches == 1


def test_a_request_whose_deadline_passes_during_a_background_read_is_refused_in_time() -> None:
    # Given a background read that has not answered
    source = ScriptedSource(keys("sk-test-one"))
    source.answer_now.clear()
    reading = prefetch(source)
    assert source.reading.wait(timeout=60)

    # When a request with no time left asks for the keys
    # Then it is refused at once, as Secrets Manager out of reach, rather than waiting past its deadline
    with pytest.raises(DependencyUnavailable):
        source.get(SECRET_ID, 300, READER, deadline=Deadline.after(0))
    source.answer_now.set()
    reading.join(timeout=60)
    assert source.fetches == 1


def test_a_failed_background_read_keeps_nothing_and_the_request_reads_again() -> None:
    # Given a background read that met an outage
    source = ScriptedSource(outage(), keys("sk-test-one"))
    prefetch(source).join(timeout=60)

    # When the first request asks for the keys
    got = source.get(SECRET_ID, 300, READER, deadline=DEADLINE)

    # Then it read them itself
    assert got == keys("sk-test-one")
    assert source.fetches == 2


def test_nothing_is_read_in_the_background_through_the_extension() -> None:
    # Given a deployment that reads the key through the extension, which may not serve during the init phase
    source = ScriptedSource(keys("sk-test-one"))

    # When a background read is asked for
    reading = source.prefetch(SECRET_ID, 300, EXTENSION)

    # Then none began: the first request reads the keys
    assert reading is None
    assert source.fetches == 0


def test_nothing_is_read_in_the_background_when_no_keys_are_kept() -> None:
    # Given a deployment that keeps no keys between requests (SECRET_CACHE_TTL_SECONDS=0)
    source = ScriptedSource(keys("sk-test-one"))

    # When a background read is asked for
    reading = source.prefetch(SECRET_ID, 0, READER)

    # Then none began: its keys would be read again by the first request all the same
    assert reading is None
    assert source.fetches == 0
