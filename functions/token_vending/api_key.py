"""Secrets Manager, the one place the OpenAI API key comes from.

The secret string is the bare key or JSON ``{"api_key": "..."}``. A warm container keeps the key
for ``ttl_seconds`` and fetches it at most once per TTL, so a rotated key is picked up within it; a
key OpenAI refuses is forgotten at once, and a key already held outlives a Secrets Manager outage.
"""

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from token_vending.errors import DependencyUnavailable, ServiceMisconfigured
from token_vending.observability import count, logger, traced

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Short and bounded: the key is on the path of every cold request.
_BOTO_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"})
# botocore logs whole response bodies, the secret among them, at DEBUG: never let it.
logging.getLogger("botocore").setLevel(logging.INFO)
# An HTTP header value: an OpenAI key is printable ASCII with no spaces.
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")
# Fail closed on these: an operator has to act. Anything else may pass (throttling, an outage).
_OPERATOR_ERRORS = {
    "ResourceNotFoundException": "api_key_missing",
    "AccessDeniedException": "api_key_unreadable",
    "DecryptionFailure": "api_key_unreadable",
    "InvalidRequestException": "api_key_unreadable",
    "InvalidParameterException": "api_key_unreadable",
}


@dataclass(frozen=True)
class _Cached:
    secret_id: str
    api_key: str
    fetched_at: float


class ApiKeySource:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._client: SecretsManagerClient | None = None

    def clear(self) -> None:
        with self._lock:
            self._cached = None
            self._client = None

    def forget(self) -> None:
        """Drop the cached key (OpenAI refused it): the next request reads the secret again."""
        with self._lock:
            self._cached = None

    def get(self, secret_id: str, ttl_seconds: int) -> str:
        with self._lock:
            cached = self._cached if self._cached and self._cached.secret_id == secret_id else None
            now = time.monotonic()
            if cached and now - cached.fetched_at < ttl_seconds:
                return cached.api_key
            try:
                api_key = self._fetch(secret_id)
            except DependencyUnavailable:
                if cached is None:
                    raise
                # Secrets Manager is briefly out of reach: the key we hold is better than a 503.
                logger.warning("serving the cached api key past its ttl", secret_id=secret_id)
                return cached.api_key
            self._cached = _Cached(secret_id, api_key, now)
            return api_key

    @traced
    def _fetch(self, secret_id: str) -> str:
        count("SecretFetches")
        try:
            if self._client is None:
                self._client = boto3.client("secretsmanager", config=_BOTO_CONFIG)
            answer = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            aws_code = exc.response.get("Error", {}).get("Code", "Unknown")
            if reason := _OPERATOR_ERRORS.get(aws_code):
                # AWS's message tells "no such secret" from "a secret with no value yet"; it holds no secret.
                aws_message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
                raise _misconfigured(reason, secret_id, aws_code=aws_code, aws_message=aws_message) from None
            raise _unavailable(secret_id, aws_code) from None
        except BotoCoreError as exc:
            raise _unavailable(secret_id, type(exc).__name__) from None
        return _parse(answer.get("SecretString"), secret_id)


def _parse(secret_string: str | None, secret_id: str) -> str:
    text = (secret_string or "").strip()
    if text[:1] in ("{", "[", '"'):  # JSON: it must be the documented object
        try:
            document = json.loads(text)
        except ValueError:
            raise _misconfigured("api_key_malformed", secret_id, problem="not valid JSON") from None
        api_key = document.get("api_key") if isinstance(document, dict) else None
        if not isinstance(api_key, str):
            raise _misconfigured("api_key_malformed", secret_id, problem='JSON without a string "api_key"')
        text = api_key.strip()
    if not _KEY_CHARACTERS.fullmatch(text):
        raise _misconfigured("api_key_malformed", secret_id, problem="empty, or not one token of printable ASCII")
    return text


def _misconfigured(reason: str, secret_id: str, **details: str) -> ServiceMisconfigured:
    logger.error("cannot use the openai api key secret", reason=reason, secret_id=secret_id, **details)  # type: ignore[arg-type]
    count("ConfigurationErrors", reason=reason)
    return ServiceMisconfigured(
        "This service cannot read its OpenAI API key, so it cannot mint client secrets. "
        "The operator must put a valid key into the service's secret (see the service's logs).",
        code=reason,
    )


def _unavailable(secret_id: str, aws_code: str) -> DependencyUnavailable:
    logger.warning("secrets manager unavailable", secret_id=secret_id, aws_code=aws_code)
    count("DependencyErrors", dependency="secretsmanager")
    return DependencyUnavailable(
        "This service could not read its OpenAI API key from AWS Secrets Manager. Retry in a moment.",
        code="secrets_unavailable",
    )


api_keys = ApiKeySource()
