"""A stand-in for the AWS Parameters and Secrets Lambda Extension, in front of a Secrets Manager.

In AWS the extension runs beside the function and answers ``GET /secretsmanager/get?secretId=...`` on
``localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``, for callers that send the function's
``AWS_SESSION_TOKEN`` in ``X-Aws-Parameters-Secrets-Token``, with GetSecretValue's answer as JSON. This
one does the same on 127.0.0.1 against moto's server, so the function's extension path runs over real
HTTP here. It keeps no cache, as the template configures the real one (``SECRETS_MANAGER_TTL=0``):
the function keeps its own.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.exceptions import ClientError

from local.running import LoopbackHttpServer, Running

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
# What `make run`, the tests and the benchmark give template.yaml's SecretsExtensionLayerArn (deployed, an
# AWS public parameter names the real layer): this stand-in plays the layer.
LOCAL_LAYER_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:local-secrets-extension:1"
# Stands in for the session token Lambda gives every function (the execution role's credentials): new for each
# run, so that only the function (and what the run hands it to) can ask this stand-in for the secret.
SESSION_TOKEN = secrets.token_urlsafe(32)
# An idle or short request gives its thread back after this many seconds.
SOCKET_TIMEOUT = 10.0


class SecretsExtension(Running):
    """The extension's Secrets Manager endpoint on 127.0.0.1 (a free port); ``.requests`` counts GETs."""

    def __init__(self, secrets_manager_environment: dict[str, str], session_token: str = SESSION_TOKEN) -> None:
        self._client_environment = secrets_manager_environment
        self.session_token = session_token
        self.requests = 0
        self._server: LoopbackHttpServer | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SecretsExtension is not started")
        return self._server.address[1]

    def function_environment(self) -> dict[str, str]:
        """What the template and Lambda give a function with the extension attached."""
        return {"PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(self.port), "AWS_SESSION_TOKEN": self.session_token}

    def start(self) -> Self:
        environment = self._client_environment
        client = boto3.client(
            "secretsmanager",
            endpoint_url=environment["AWS_ENDPOINT_URL_SECRETS_MANAGER"],
            region_name=environment["AWS_REGION"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        )
        self._server = LoopbackHttpServer(_handler(self, client), "secrets-extension", timeout=SOCKET_TIMEOUT)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _count(self) -> None:
        with self._lock:
            self.requests += 1


def _handler(extension: SecretsExtension, client: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall

        def do_GET(self) -> None:
            extension._count()
            url = urlsplit(self.path)
            if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, "").encode(), extension.session_token.encode()):
                self._answer(HTTPStatus.UNAUTHORIZED, b"missing or wrong X-Aws-Parameters-Secrets-Token")
                return
            secret_ids = parse_qs(url.query).get("secretId", [])
            if url.path != "/secretsmanager/get" or len(secret_ids) != 1:
                self._answer(HTTPStatus.BAD_REQUEST, b"expected /secretsmanager/get?secretId=<id>")
                return
            try:
                answer = client.get_secret_value(SecretId=secret_ids[0])
            except ClientError as exc:
                error = exc.response.get("Error", {})
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
                self._answer(status, f"{error.get('Code')}: {error.get('Message')}".encode())
                return
            fields = ("ARN", "Name", "VersionId", "SecretString", "VersionStages")
            body = json.dumps({name: answer[name] for name in fields if name in answer}).encode()
            self._answer(HTTPStatus.OK, body, "application/json")

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the function's own logs say what it asked for

    return Handler
