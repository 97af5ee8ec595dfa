"""An embedded Secrets Manager for `make run`: moto's server mode holding the OpenAI API key."""

from __future__ import annotations

import json
import logging
from typing import Self

import boto3
from moto.server import ThreadedMotoServer

from local.running import Running

REGION = "us-east-1"
# What a Lambda execution role hands the function; moto accepts any credentials.
_FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class LocalSecretsManager(Running):
    """moto's Secrets Manager on 127.0.0.1 (a free port), with one secret: {"api_key": <key>}."""

    def __init__(self, api_key: str, secret_name: str = "token-vending/openai-api-key") -> None:  # noqa: S107
        self._api_key = api_key
        self._secret_name = secret_name
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None
        self._secret_arn: str | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's URL, e.g. http://127.0.0.1:54321."""
        if self._endpoint_url is None:
            raise RuntimeError("LocalSecretsManager is not started")
        return self._endpoint_url

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
            **_FAKE_CREDENTIALS,
        }

    def start(self) -> Self:
        """Start the server on a free port and create the secret."""
        # moto's per-request access log would drown the gateway's own.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self._endpoint_url = f"http://{host}:{port}"
        client = boto3.client(
            "secretsmanager",
            endpoint_url=self._endpoint_url,
            region_name=REGION,
            aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        created = client.create_secret(Name=self._secret_name, SecretString=json.dumps({"api_key": self._api_key}))
        self._secret_arn = created["ARN"]
        return self

    def stop(self) -> None:
        """Stop the server; the secret goes with it."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._endpoint_url = self._secret_arn = None
