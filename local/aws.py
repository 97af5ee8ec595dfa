"""The local AWS of `make run`, `make invoke` and the tests: one moto server (Secrets Manager, Cognito)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Self

import boto3
from moto.server import ThreadedMotoServer

from local.running import Running

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

REGION = "us-east-1"
# What a Lambda execution role hands the function; moto accepts any credentials.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def secrets_manager_client(endpoint_url: str, region: str = REGION) -> SecretsManagerClient:
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def cognito_client(endpoint_url: str, region: str = REGION) -> CognitoIdentityProviderClient:
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


class LocalAws(Running):
    """moto's server mode on 127.0.0.1 (a free port): every service moto has, over real HTTP."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's URL, e.g. http://127.0.0.1:54321."""
        if self._endpoint_url is None:
            raise RuntimeError("LocalAws is not started")
        return self._endpoint_url

    def start(self) -> Self:
        # moto's per-request access log would drown the gateway's own.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self._endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop the server; everything in it goes with it."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._endpoint_url = None
