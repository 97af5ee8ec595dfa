"""Configuration from the function's environment, validated once."""

import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

BUNDLED_POLICY = Path(__file__).with_name("policy.json")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    api_key_secret_id: str = Field(alias="OPENAI_API_KEY_SECRET_ID", min_length=1)
    # A plain str checked with urllib: pydantic's HttpUrl costs about 20 ms of every cold start.
    upstream_url: str = Field(alias="OPENAI_UPSTREAM_URL", default="https://api.openai.com")
    secret_cache_ttl_seconds: int = Field(alias="SECRET_CACHE_TTL_SECONDS", default=300, ge=0, le=3600)
    upstream_connect_timeout_seconds: float = Field(alias="UPSTREAM_CONNECT_TIMEOUT_SECONDS", default=2.0, gt=0, le=10)
    upstream_read_timeout_seconds: float = Field(alias="UPSTREAM_READ_TIMEOUT_SECONDS", default=8.0, gt=0, le=25)
    policy_path: Path = Field(alias="POLICY_PATH", default=BUNDLED_POLICY)
    # Set by the template when the AWS Parameters and Secrets Lambda Extension is attached: the key is
    # read through it on localhost. Unset: the key is read with boto3.
    secrets_extension_port: int | None = Field(
        alias="PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", default=None, ge=1, le=65535
    )

    @field_validator("upstream_url")
    @classmethod
    def _base_url_only(cls, url: str) -> str:
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("must be a URL such as https://api.openai.com") from None
        if parts.scheme not in ("https", "http") or not parts.hostname or any(c.isspace() for c in url.strip()):
            raise ValueError("must be a URL such as https://api.openai.com")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise ValueError("must be a base URL, without a query or fragment")
        if parts.path.rstrip("/").endswith("/v1"):
            raise ValueError("must not end in /v1: the function adds /v1/realtime/client_secrets")
        # The API key travels in this request: cleartext only to a stand-in on this machine.
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("must be https (http only on loopback)")
        return url.strip().rstrip("/")

    @property
    def client_secrets_url(self) -> str:
        return self.upstream_url + "/v1/realtime/client_secrets"


class SettingsError(Exception):
    """The environment does not describe a working deployment."""


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid function environment: {problems}") from None
