"""Secrets Manager, the one place the OpenAI API key and the safety identifier key come from.

The secret string is JSON ``{"api_key": "...", "safety_identifier_key": "..."}``; a bare key, the form
earlier versions took, is refused as having no safety identifier key. A warm container keeps both for
``ttl_seconds`` and fetches them at most once per TTL, so a rotated key is picked up within it; an API
key OpenAI refuses is forgotten at once, and keys already held outlive a Secrets Manager outage.

Two ways to read it, chosen by the deployment: Secrets Manager's own API, a GetSecretValue request signed here
with the execution role's credentials and sent with the urllib3 the function already uses (aws_api.py); or the
AWS Parameters and Secrets Lambda Extension on localhost, when it is attached
(``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`` is set). boto3's import and client, about 160 ms of a cold
start, are needed for neither.

The API can be asked while the function's code is still being imported (the extension cannot: it may not serve
until the init phase is over), so in an on-demand container (``prefetch``) the keys' round
trip runs beside the rest of the import rather than after it.

Every read keeps to the request's deadline, and to a budget of its own so that a slow Secrets Manager leaves time
to mint with a key already held.
"""

import json
import os
import re
import threading
import time
from typing import Any, Protocol
from urllib.parse import quote

import urllib3
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, TimeoutError

from voice_access.clients import aws_api
from voice_access.clients.aws_signature import CredentialsMissing
from voice_access.clients.deadline import POOL_CLASSES, Deadline, DeadlineHTTPConnectionPool, keeping_to
from voice_access.domain.errors import DependencyUnavailable, ServiceError, ServiceMisconfigured
from voice_access.observability import count, logger, traced

# Short and bounded, on both paths: the key is on the path of every cold request.
_CONNECT_TIMEOUT_SECONDS = 1
_READ_TIMEOUT_SECONDS = 2
# The extension waits for Secrets Manager (the template caps that at 2 s): allow for it.
_EXTENSION_TIMEOUT = urllib3.Timeout(connect=_CONNECT_TIMEOUT_SECONDS, read=_READ_TIMEOUT_SECONDS + 1)
# One connect and one answer, however the answer arrives.
_EXTENSION_BUDGET_SECONDS = _CONNECT_TIMEOUT_SECONDS + _READ_TIMEOUT_SECONDS + 1
_API_TIMEOUT = urllib3.Timeout(connect=_CONNECT_TIMEOUT_SECONDS, read=_READ_TIMEOUT_SECONDS)
# A connect, a retry of it, one answer.
_API_BUDGET_SECONDS = 2 * _CONNECT_TIMEOUT_SECONDS + _READ_TIMEOUT_SECONDS
_EXTENSION_TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
# An HTTP header value: an OpenAI key is printable ASCII with no spaces.
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")
# An HMAC key an operator generates (`make secret`, or `openssl rand -hex 32`): long enough not to be guessed, and
# not a placeholder. Hex has 16 distinct characters and base64 more; 32 spaces or "a" * 32 have one.
_SAFETY_KEY = re.compile(r"[\x21-\x7e]{32,}")
_SAFETY_KEY_MIN_DISTINCT = 8
# Fail closed on these: an operator has to act. Anything else may pass (throttling, an outage).
_OPERATOR_ERRORS = {
    "ResourceNotFoundException": "api_key_missing",
    "AccessDeniedException": "api_key_unreadable",
    "DecryptionFailure": "api_key_unreadable",
    "InvalidRequestException": "api_key_unreadable",
    "InvalidParameterException": "api_key_unreadable",
    # A request signed for the wrong region or endpoint, or credentials AWS does not know: not for a retry to mend.
    "InvalidSignatureException": "api_key_unreadable",
    "IncompleteSignature": "api_key_unreadable",
    "MissingAuthenticationToken": "api_key_unreadable",
    "UnrecognizedClientException": "api_key_unreadable",
    "InvalidClientTokenId": "api_key_unreadable",
}


# Not a NamedTuple (about 60 us of every cold start to define): compared by its values, never used as a tuple.
class Credentials:
    """What the secret holds: the OpenAI API key, and the key of the callers' safety identifiers."""

    __slots__ = ("api_key", "safety_identifier_key")

    def __init__(self, api_key: str, safety_identifier_key: str) -> None:
        self.api_key = api_key
        self.safety_identifier_key = safety_identifier_key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "Credentials(...)"  # never the keys, in a traceback or a debugger

    def _values(self) -> tuple[str, str]:
        return self.api_key, self.safety_identifier_key


class _Cached:
    __slots__ = ("credentials", "fetched_at", "secret_id")

    def __init__(self, secret_id: str, credentials: Credentials, fetched_at: float) -> None:
        self.secret_id = secret_id
        self.credentials = credentials
        self.fetched_at = fetched_at


class Reader(Protocol):
    """Where the secret is read (the service's settings say): through the extension on ``secrets_extension_port``
    when set, else from Secrets Manager's API at ``secrets_manager_endpoint``, signed for ``aws_region``."""

    @property
    def secrets_extension_port(self) -> int | None: ...

    @property
    def secrets_manager_endpoint(self) -> str: ...

    @property
    def aws_region(self) -> str: ...


class SecretSettings(Reader, Protocol):
    """The secret, how long its keys are kept, and where it is read: the service's settings say."""

    @property
    def api_key_secret_id(self) -> str: ...

    @property
    def secret_cache_ttl_seconds(self) -> int: ...


class ApiKeySource:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: _Cached | None = None

    def clear(self) -> None:
        with self._lock:
            self._cached = None

    def forget(self) -> None:
        """Drop the cached keys (OpenAI refused the API key): the next request reads the secret again."""
        with self._lock:
            self._cached = None

    def get(self, secret_id: str, ttl_seconds: int, reader: Reader, *, deadline: Deadline) -> Credentials:
        """The keys; read by ``deadline`` as ``reader`` says when none are held from the last ``ttl_seconds``."""
        # One read at a time: a request that comes during another's (a prefetch's) waits for its keys.
        if not self._lock.acquire(timeout=max(deadline.remaining(), 0)):
            raise _unavailable(secret_id, "timeout")
        try:
            cached = self._cached if self._cached and self._cached.secret_id == secret_id else None
            now = time.monotonic()
            if cached and now - cached.fetched_at < ttl_seconds:
                return cached.credentials
            try:
                credentials = self._fetch(secret_id, reader, deadline)
            except DependencyUnavailable:
                if cached is None:
                    raise
                # Secrets Manager is briefly out of reach: the keys we hold are better than a 503.
                logger.warning("serving the cached api key past its ttl", secret_id=secret_id)
                return cached.credentials
            self._cached = _Cached(secret_id, credentials, now)
            return credentials
        finally:
            self._lock.release()

    def held_or_refusal(self, settings: SecretSettings, *, deadline: Deadline) -> "Credentials | ServiceError":
        """The keys, or why they cannot be had, as a value: a request checks its own input first, and fails on a
        secret it cannot read only once the request itself has passed."""
        try:
            return self.get(settings.api_key_secret_id, settings.secret_cache_ttl_seconds, settings, deadline=deadline)
        except ServiceError as error:
            return error

    def prefetch(self, secret_id: str, ttl_seconds: int, reader: Reader) -> threading.Thread | None:
        """Read the keys in the background, from Secrets Manager's API, for the first request to find them held: the
        thread reading, or None through the extension or with no cache. A read that fails is logged and counted as
        any, and the request reads again."""
        if reader.secrets_extension_port is not None or ttl_seconds == 0:
            # The extension may not serve before the init phase is over; keys not kept would be read again.
            return None

        def read() -> None:
            try:
                self.get(secret_id, ttl_seconds, reader, deadline=Deadline.after(_API_BUDGET_SECONDS))
            except ServiceError:
                pass  # logged and counted where it was raised
            except Exception:
                logger.exception("reading the keys in the background failed")

        thread = threading.Thread(target=read, name="prefetch-keys", daemon=True)
        thread.start()
        return thread

    @traced
    def _fetch(self, secret_id: str, reader: Reader, deadline: Deadline) -> Credentials:
        if deadline.passed:
            raise _unavailable(secret_id, "timeout")
        if reader.secrets_extension_port:
            count("SecretFetches", via="extension")
            return _parse(_via_extension(secret_id, reader.secrets_extension_port, deadline), secret_id)
        count("SecretFetches", via="direct")
        return _parse(_via_api(secret_id, reader, deadline), secret_id)


# One connection to Secrets Manager for the container's life, made on the first read; a refused connect is tried once
# more.
_api_pools = urllib3.PoolManager(
    num_pools=1, maxsize=1, retries=urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
)
_api_pools.pool_classes_by_scheme = POOL_CLASSES


def _via_api(secret_id: str, reader: Reader, deadline: Deadline) -> str | None:
    """GetSecretValue, signed: the secret's string, or None when it has none (a binary secret)."""
    budget = deadline.within(_API_BUDGET_SECONDS)
    try:
        answer = aws_api.post(
            _api_pools,
            reader.secrets_manager_endpoint,
            "secretsmanager.GetSecretValue",
            {"SecretId": secret_id},
            json_version="1.1",
            service="secretsmanager",
            region=reader.aws_region,
            timeout=_API_TIMEOUT,
            deadline=budget,
        )
    except CredentialsMissing as missing:
        raise _misconfigured("api_key_unreadable", secret_id, problem=str(missing)) from None
    except aws_api.Unanswered as failed:
        raise _unavailable(secret_id, "timeout" if budget.passed else failed.kind) from None
    if answer.status != 200:
        aws_message = str(answer.body.get("message") or answer.body.get("Message") or "")
        raise _aws_error(secret_id, answer.code or f"HTTP {answer.status}", aws_message)
    if not answer.json:
        raise _unavailable(secret_id, "Secrets Manager answered with something other than JSON")
    return _secret_string(answer.body, secret_id)


def _secret_string(answer: dict[str, Any], secret_id: str) -> str | None:
    """GetSecretValue's string; a secret with only a binary value is refused as such."""
    secret_string = answer.get("SecretString")
    if not isinstance(secret_string, str) and answer.get("SecretBinary"):
        raise _misconfigured(
            "api_key_malformed", secret_id, problem="a binary secret: the key must be the secret's string"
        )
    return secret_string if isinstance(secret_string, str) else None


# One connection to the extension for the container's life, made on the first fetch.
_extension_pools: dict[int, urllib3.HTTPConnectionPool] = {}


def _via_extension(secret_id: str, port: int, deadline: Deadline) -> str | None:
    """GetSecretValue through the extension: its answer is GetSecretValue's, as JSON."""
    pool = _extension_pools.get(port)
    if pool is None:
        retries = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
        pool = _extension_pools[port] = DeadlineHTTPConnectionPool("localhost", port, maxsize=1, retries=retries)
    budget = deadline.within(_EXTENSION_BUDGET_SECONDS)
    try:
        with keeping_to(budget):
            response = pool.request(
                "GET",
                f"/secretsmanager/get?secretId={quote(secret_id, safe='')}",
                headers={_EXTENSION_TOKEN_HEADER: os.environ.get("AWS_SESSION_TOKEN", "")},
                timeout=_EXTENSION_TIMEOUT,
            )
    except HTTPError as exc:
        reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
        timed_out = isinstance(reason, TimeoutError) and not isinstance(reason, NewConnectionError)
        raise _unavailable(
            secret_id, "timeout" if budget.passed or timed_out else f"extension {type(exc).__name__}"
        ) from None
    if response.status != 200:
        # The extension passes Secrets Manager's error on, its code in the text; the text holds no secret.
        text = response.data[:1000].decode("utf-8", "replace")
        aws_code = next((code for code in _OPERATOR_ERRORS if code in text), f"extension HTTP {response.status}")
        if response.status in (401, 403) and aws_code not in _OPERATOR_ERRORS:
            aws_code = "AccessDeniedException"  # the session token was refused: a deployment problem
        if aws_code in _OPERATOR_ERRORS:
            raise _aws_error(secret_id, aws_code, text)
        raise _unavailable(secret_id, aws_code)
    try:
        answer: Any = json.loads(response.data)
    except ValueError:
        raise _unavailable(secret_id, "extension answered with invalid JSON") from None
    return _secret_string(answer, secret_id) if isinstance(answer, dict) else None


def _aws_error(secret_id: str, aws_code: str, aws_message: str) -> ServiceMisconfigured | DependencyUnavailable:
    """Fail closed on an error an operator has to act on; anything else may pass (throttling, an outage)."""
    if reason := _OPERATOR_ERRORS.get(aws_code):
        # AWS's message tells "no such secret" from "a secret with no value yet"; it holds no secret.
        return _misconfigured(reason, secret_id, aws_code=aws_code, aws_message=aws_message[:300])
    return _unavailable(secret_id, aws_code)


def _parse(secret_string: str | None, secret_id: str) -> Credentials:
    text = (secret_string or "").strip()
    if text[:1] not in ("{", "[", '"'):
        if not _KEY_CHARACTERS.fullmatch(text):
            raise _misconfigured("api_key_malformed", secret_id, problem="empty, or not one token of printable ASCII")
        # The bare key of earlier versions: there is no safety identifier key beside it.
        raise _safety_key_refused("safety_identifier_key_missing", secret_id, problem="a bare key, not JSON")
    try:
        document = json.loads(text)
    except ValueError:
        raise _misconfigured("api_key_malformed", secret_id, problem="not valid JSON") from None
    if not (isinstance(document, dict) and isinstance(document.get("api_key"), str)):
        raise _misconfigured("api_key_malformed", secret_id, problem='JSON without a string "api_key"')
    api_key = document["api_key"].strip()
    if not _KEY_CHARACTERS.fullmatch(api_key):
        raise _misconfigured("api_key_malformed", secret_id, problem="empty, or not one token of printable ASCII")
    safety_key = document.get("safety_identifier_key")
    if safety_key is None or safety_key == "":
        raise _safety_key_refused("safety_identifier_key_missing", secret_id, problem='no "safety_identifier_key"')
    if not (isinstance(safety_key, str) and _SAFETY_KEY.fullmatch(safety_key)):
        raise _safety_key_refused(
            "safety_identifier_key_malformed",
            secret_id,
            problem='"safety_identifier_key" is not a string of at least 32 printable ASCII characters without spaces',
        )
    if len(set(safety_key)) < _SAFETY_KEY_MIN_DISTINCT:
        raise _safety_key_refused(
            "safety_identifier_key_malformed",
            secret_id,
            problem=f'"safety_identifier_key" has fewer than {_SAFETY_KEY_MIN_DISTINCT} distinct characters: '
            "a placeholder, not a random key",
        )
    return Credentials(api_key, safety_key)


def _misconfigured(reason: str, secret_id: str, **details: str) -> ServiceMisconfigured:
    _log_refusal(reason, secret_id, details)
    return ServiceMisconfigured(
        "This service cannot read its OpenAI API key, so it cannot mint client secrets. "
        "The operator must put a valid key into the service's secret (see the service's logs).",
        code=reason,
    )


def _safety_key_refused(reason: str, secret_id: str, **details: str) -> ServiceMisconfigured:
    _log_refusal(reason, secret_id, details)
    return ServiceMisconfigured(
        "This service has no usable key for its callers' safety identifiers, so it cannot mint client secrets. "
        'The operator must store the service\'s secret as JSON with both "api_key" and "safety_identifier_key" '
        "(`make secret` writes both; by hand, a random value such as the output of `openssl rand -hex 32`: at least "
        "32 printable ASCII characters without spaces, and at least 8 different ones; see docs/deploy.md).",
        code=reason,
    )


def _log_refusal(reason: str, secret_id: str, details: dict[str, str]) -> None:
    logger.error("cannot use the openai api key secret", reason=reason, secret_id=secret_id, **details)  # type: ignore[arg-type]
    count("ConfigurationErrors", reason=reason)


def _unavailable(secret_id: str, aws_code: str) -> DependencyUnavailable:
    logger.warning("secrets manager unavailable", secret_id=secret_id, aws_code=aws_code)
    count("DependencyErrors", dependency="secretsmanager")
    return DependencyUnavailable(
        "This service could not read its OpenAI API key from AWS Secrets Manager. Retry in a moment.",
        code="secrets_unavailable",
    )


api_keys = ApiKeySource()
