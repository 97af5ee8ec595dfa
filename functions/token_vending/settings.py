"""Configuration from the function's environment, validated once."""

import functools
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

BUNDLED_POLICY = Path(__file__).with_name("policy.json")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    api_key_secret_id: str = Field(alias="OPENAI_API_KEY_SECRET_ID", min_length=1)
    upstream_url: HttpUrl = Field(alias="OPENAI_UPSTREAM_URL", default=HttpUrl("https://api.openai.com"))
    secret_cache_ttl_seconds: int = Field(alias="SECRET_CACHE_TTL_SECONDS", default=300, ge=0, le=3600)
    upstream_connect_timeout_seconds: float = Field(alias="UPSTREAM_CONNECT_TIMEOUT_SECONDS", default=2.0, gt=0, le=10)
    upstream_read_timeout_seconds: float = Field(alias="UPSTREAM_READ_TIMEOUT_SECONDS", default=8.0, gt=0, le=25)
    policy_path: Path = Field(alias="POLICY_PATH", default=BUNDLED_POLICY)

    @field_validator("upstream_url")
    @classmethod
    def _base_url_only(cls, url: HttpUrl) -> HttpUrl:
        if url.query or url.fragment:
            raise ValueError("must be a base URL, without a query or fragment")
        if (url.path or "").rstrip("/").endswith("/v1"):
            raise ValueError("must not end in /v1: the function adds /v1/realtime/client_secrets")
        # The API key travels in this request: cleartext only to a stand-in on this machine.
        if url.scheme != "https" and url.host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise ValueError("must be https (http only on loopback)")
        return url

    @property
    def client_secrets_url(self) -> str:
        return str(self.upstream_url).rstrip("/") + "/v1/realtime/client_secrets"


class SettingsError(Exception):
    """The environment does not describe a working deployment."""


@functools.cache
def get_settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid function environment: {problems}") from None
