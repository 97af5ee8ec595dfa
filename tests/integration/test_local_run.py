"""`make run` (python -m local) as a process, end to end; the gateway itself is in test_local_gateway.py."""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import unittest.mock
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import boto3
import pytest
import urllib3

from local.secrets_manager import LocalSecretsManager

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lines(stream, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _drained(lines: queue.Queue[str | None]) -> str:
    text = []
    while (line := lines.get(timeout=10)) is not None:
        text.append(line)
    return "".join(text)


def test_the_local_secrets_manager_is_reached_through_the_ordinary_boto3_path():
    # Given the embedded Secrets Manager holding a key
    with LocalSecretsManager(api_key="sk-test-1") as secrets, unittest.mock.patch.dict(os.environ):
        # When a plain boto3 client runs in the environment it gives the function
        os.environ.update(secrets.client_environment())
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=secrets.secret_arn)

    # Then the secret is the JSON the function expects
    assert json.loads(answer["SecretString"]) == {"api_key": "sk-test-1"}


@dataclass
class LocalService:
    url: str
    printed: list[str]


@pytest.fixture(scope="module")
def local_service() -> Iterator[LocalService]:
    """`python -m local` (what `make run` runs) on a free port, with the OpenAI stub; stopped with SIGINT."""
    port = _free_port()
    environment = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
    environment.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: queue.Queue[str | None] = queue.Queue()
    stderr: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(process.stdout, stdout), daemon=True),
        threading.Thread(target=_lines, args=(process.stderr, stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    service = LocalService(f"http://127.0.0.1:{port}", [])
    try:
        while not any(service.url in line for line in service.printed):
            line = stdout.get(timeout=60)
            assert line is not None, f"python -m local exited early:\n{''.join(service.printed)}{_drained(stderr)}"
            service.printed.append(line)
        yield service
    finally:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    output, errors = "".join(service.printed) + _drained(stdout), _drained(stderr)
    # SIGINT stops everything cleanly, and nothing secret was ever printed
    assert exit_code == 0, errors
    assert "Traceback" not in errors
    for secret in ["sk-local-dev", *MINTED_BY_LOCAL_SERVICE]:
        assert secret not in output + errors, "a secret appeared in the output of python -m local"


MINTED_BY_LOCAL_SERVICE: list[str] = []


def test_make_run_serves_client_secrets(local_service: LocalService) -> None:
    # Given `make run` serving on a free port
    # When a client secret is asked for over HTTP
    response = urllib3.request(
        "POST",
        f"{local_service.url}/v1/realtime/client_secrets",
        json={"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}},
        timeout=30,
        retries=False,
    )

    # Then the function minted one through the local Secrets Manager and the stub
    assert response.status == HTTPStatus.OK, response.data
    MINTED_BY_LOCAL_SERVICE.append(response.json()["value"])
    assert MINTED_BY_LOCAL_SERVICE[-1].startswith("ek_")


def _readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return str(next(block for block in blocks if containing in block))


def test_the_readmes_local_python_example_works_as_written(local_service: LocalService) -> None:
    # Given the README's SDK example for the local service (it names port 3000)
    example = _readme_block("python", "http://127.0.0.1:3000/v1")

    # When it runs against `make run`
    ran = subprocess.run(
        [sys.executable, "-c", example.replace("http://127.0.0.1:3000", local_service.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it prints what it promises and raises nothing
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith("ek_")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readmes_local_curl_example_works_as_written(local_service: LocalService) -> None:
    # Given the README's curl example for the local service
    example = _readme_block("bash", "curl -s http://127.0.0.1:3000")

    # When it runs against `make run`
    ran = subprocess.run(
        ["bash", "-c", example.replace("http://127.0.0.1:3000", local_service.url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # Then it gets a client secret
    minted = json.loads(ran.stdout)
    MINTED_BY_LOCAL_SERVICE.append(minted["value"])
    assert minted["value"].startswith("ek_")
