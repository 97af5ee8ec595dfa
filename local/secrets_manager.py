"""An embedded Secrets Manager for `make run`: the OpenAI API key and the safety identifier key in moto."""

from __future__ import annotations

import json
import secrets
from typing import Self

from local.aws import FAKE_CREDENTIALS, REGION, LocalAws, secrets_manager_client
from local.running import Running


class LocalSecretsManager(Running):
    """One secret, {"api_key": <key>, "safety_identifier_key": <64 random hex characters, new each run>},
    in the Secrets Manager of ``aws`` (which the caller starts and stops)."""

    def __init__(self, api_key: str, aws: LocalAws, secret_name: str = "token-vending/openai-api-key") -> None:  # noqa: S107
        self._api_key = api_key
        self._secret_name = secret_name
        self._aws = aws
        self._secret_arn: str | None = None

    @property
    def endpoint_url(self) -> str:
        """The moto server's URL, e.g. http://127.0.0.1:54321."""
        return self._aws.endpoint_url

    @property
    def secret_arn(self) -> str:
        """The ARN of the secret holding the API key."""
        if self._secret_arn is None:
            raise RuntimeError("LocalSecretsManager is not started")
        return self._secret_arn

    def client_environment(self) -> dict[str, str]:
        """The environment that sends an ordinary boto3 client in the function to this server."""
        return {
            # botocore's service-specific endpoint variable: AWS_ENDPOINT_URL_ + the service id
            # ("Secrets Manager") upper-cased with spaces as underscores.
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **FAKE_CREDENTIALS,
        }

    def start(self) -> Self:
        """Create the secret."""
        secret = {"api_key": self._api_key, "safety_identifier_key": secrets.token_hex(32)}
        created = secrets_manager_client(self.endpoint_url).create_secret(
            Name=self._secret_name, SecretString=json.dumps(secret)
        )
        self._secret_arn = created["ARN"]
        return self

    def stop(self) -> None:
        """Delete the secret. (moto keeps its state per process, not per server: a secret left behind would still
        be there for the next server of the same process, the tests'.)"""
        if self._secret_arn is not None:
            client = secrets_manager_client(self.endpoint_url)
            client.delete_secret(SecretId=self._secret_arn, ForceDeleteWithoutRecovery=True)
        self._secret_arn = None
