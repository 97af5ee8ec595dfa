"""`make run` (python -m local) and `make invoke` (python -m local.invoke) as processes, end to end."""

import http.client
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import boto3
import pytest
import urllib3

from local.openai_stub import OpenAIStub
from local.secrets_manager import LocalSecretsManager

REPO = Path(__file__).resolve().parents[2]
STUB_API_KEY = "sk-local-dev"  # what `make run` puts in its local secret for its own stub
# The developer's own settings would point the local run elsewhere.
_SETTINGS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOG_FORMAT", "SECRETS_VIA", "PORT")
MINT_BODY = {"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}
REFUSED_BODY = b'{"session": {"type": "realtime", "audio": {"output": {"voice": "nope"}}}}'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(**settings: str) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if name not in _SETTINGS}
    return {**environment, "PYTHONUNBUFFERED": "1", **settings}


def _lines(stream, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _drained(lines: queue.Queue[str | None]) -> str:
    text = []
    while (line := lines.get(timeout=10)) is not None:
        text.append(line)
    return "".join(text)


@dataclass
class LocalService:
    url: str
    stdout: queue.Queue[str | None]
    printed: list[str] = field(default_factory=list)
    minted: list[str] = field(default_factory=list)

    def line(self, pattern: str) -> str:
        """The next printed line matching ``pattern`` (a regex); fails after 10 s without one."""
        while True:
            line = self.stdout.get(timeout=10)
            assert line is not None, f"python -m local exited:\n{''.join(self.printed)}"
            self.printed.append(line)
            if re.search(pattern, line):
                return line


@contextmanager
def _local_run(**settings: str) -> Iterator[LocalService]:
    """`python -m local` (what `make run` runs) on a free port; stopped with SIGINT, which must stop it cleanly."""
    service_port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=REPO,
        env=_environment(PORT=str(service_port), **settings),
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
    service = LocalService(f"http://127.0.0.1:{service_port}", stdout)
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
    assert exit_code == 0, errors
    assert "Traceback" not in errors
    for secret in [STUB_API_KEY, settings.get("OPENAI_API_KEY", STUB_API_KEY), *service.minted]:
        assert secret not in output + errors, "a secret appeared in the output of python -m local"


@pytest.fixture(scope="module")
def local_service() -> Iterator[LocalService]:
    """`make run` as a developer starts it: the local OpenAI stub, the short log lines."""
    with _local_run() as service:
        yield service


def _mint(url: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request("POST", f"{url}/v1/realtime/client_secrets", json=MINT_BODY, timeout=30, retries=False)


def test_the_local_secrets_manager_is_reached_through_the_ordinary_boto3_path():
    # Given the embedded Secrets Manager holding a key
    with LocalSecretsManager(api_key="sk-test-1") as secrets, unittest.mock.patch.dict(os.environ):
        # When a plain boto3 client runs in the environment it gives the function
        os.environ.update(secrets.client_environment())
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=secrets.secret_arn)

    # Then the secret is the JSON the function expects
    assert json.loads(answer["SecretString"]) == {"api_key": "sk-test-1"}


def test_make_run_serves_client_secrets_with_one_short_line_each(local_service: LocalService) -> None:
    # Given `make run` serving on a free port
    # When a client secret is asked for over HTTP
    response = _mint(local_service.url)

    # Then the function minted one through the local Secrets Manager and the stub
    assert response.status == HTTPStatus.OK, response.data
    local_service.minted.append(response.json()["value"])
    assert local_service.minted[-1].startswith("ek_")
    # And the terminal shows one short line for it, not the function's JSON log lines or EMF documents
    line = local_service.line(r"POST /v1/realtime/client_secrets ")
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST /v1/realtime/client_secrets 200 \d+ ms  client secret minted \(profile assistant\)\n",
        line,
    )
    assert not [printed for printed in local_service.printed if printed.startswith("{")]


def test_make_run_takes_a_chunked_body_and_prints_why_it_refused_it(local_service: LocalService) -> None:
    # Given a body outside the policy, sent chunked (no Content-Length)
    connection = http.client.HTTPConnection(local_service.url.removeprefix("http://"), timeout=30)

    # When it is posted
    connection.request(
        "POST",
        "/v1/realtime/client_secrets",
        body=iter([REFUSED_BODY[:20], REFUSED_BODY[20:]]),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()

    # Then the policy refuses it, naming the field, and the terminal line says so
    assert response.status == HTTPStatus.BAD_REQUEST
    assert answer["error"]["param"] == "session.audio.output.voice"
    line = local_service.line(r"POST /v1/realtime/client_secrets 400 ")
    assert line.endswith("  rejected: invalid_value (param session.audio.output.voice)\n")


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
    local_service.minted.append(minted["value"])
    assert minted["value"].startswith("ek_")


def test_log_format_json_prints_the_functions_own_log_lines() -> None:
    # Given `make run` with LOG_FORMAT=json
    with _local_run(LOG_FORMAT="json") as service:
        # When a client secret is minted
        response = _mint(service.url)
        service.minted.append(response.json()["value"])

        # Then the terminal shows the function's JSON log line for it, as CloudWatch would hold it
        line = service.line(r'"message":"client secret minted"')

        # And a request API Gateway answers itself (the function logs nothing) still gets a line
        urllib3.request("GET", f"{service.url}/v1/nope", timeout=10, retries=False)
        unrouted = json.loads(service.line(r'"gateway":'))
    assert json.loads(line)["profile"] == "assistant"
    assert (unrouted["status"], unrouted["path"]) == (HTTPStatus.NOT_FOUND, "/v1/nope")


def test_openai_base_url_points_make_run_at_that_openai_compatible_host() -> None:
    # Given an OpenAI-compatible host of the developer's (a stub on loopback), named as the OpenAI SDKs take it
    with OpenAIStub(api_key="sk-compatible-host-5b1e") as host:
        settings = {"OPENAI_BASE_URL": f"{host.base_url}/v1", "OPENAI_API_KEY": "sk-compatible-host-5b1e"}
        with _local_run(**settings) as service:
            # When `make run` mints a client secret
            response = _mint(service.url)
            service.minted.append(response.json()["value"])

    # Then the mint reached that host, with the key from OPENAI_API_KEY
    assert response.status == HTTPStatus.OK
    assert [request.path for request in host.requests] == ["/v1/realtime/client_secrets"]
    assert host.minted == service.minted


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, "OPENAI_BASE_URL is set but OPENAI_API_KEY is not"),
        ({"OPENAI_BASE_URL": "https://host.example", "OPENAI_API_KEY": "sk-x"}, "must end in /v1"),
        ({"OPENAI_BASE_URL": "host.example/v1", "OPENAI_API_KEY": "sk-x"}, "is not a URL"),
        ({"OPENAI_BASE_URL": "http://host.example/v1", "OPENAI_API_KEY": "sk-x"}, "must be https"),
        ({"LOG_FORMAT": "yaml"}, "LOG_FORMAT='yaml' must be one of short, json"),
        ({"PORT": "http"}, "PORT='http' is not a port number"),
    ],
)
def test_a_setting_make_run_cannot_use_is_refused_saying_what_to_do(settings: dict[str, str], message: str) -> None:
    # Given a setting `make run` cannot use
    # When it starts
    ran = subprocess.run(
        [sys.executable, "-m", "local"], cwd=REPO, env=_environment(**settings), capture_output=True, text=True
    )

    # Then it stops at once, saying which setting and what it must be
    assert ran.returncode == 2
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_port_in_use_names_the_port_and_another_to_use() -> None:
    # Given something already listening on the port
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        # When `make run` starts on it
        ran = subprocess.run(
            [sys.executable, "-m", "local"],
            cwd=REPO,
            env=_environment(PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )

    # Then it says which port, and how to choose another
    assert ran.returncode == 1
    assert f"port {port} is already in use" in ran.stderr
    assert f"PORT={port + 1} make run" in ran.stderr
    assert "Traceback" not in ran.stderr


def _invoke(event: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.invoke", event],
        cwd=REPO,
        env={**_environment(), **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("secrets_via", ["extension", "sdk"])
def test_make_invoke_prints_the_functions_result_for_an_event_file(secrets_via: str) -> None:
    # Given the GA event file, and the way the function is to read its key
    # When `make invoke` runs the function on it
    ran = _invoke("events/client_secrets.json", SECRETS_VIA=secrets_via)

    # Then stdout is the function's payload-2.0 result as JSON, its logs went to stderr, and it exits 0
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout)
    assert result["statusCode"] == HTTPStatus.OK
    assert json.loads(result["body"])["value"].startswith("ek_")
    assert '"message":"client secret minted"' in ran.stderr
    assert f'"via":"{secrets_via}"' in ran.stderr  # the SecretFetches metric: the key came the chosen way
    assert STUB_API_KEY not in ran.stdout + ran.stderr


def test_make_invoke_answers_a_rejected_event_with_its_400() -> None:
    # Given an event the policy refuses
    # When `make invoke` runs the function on it
    ran = _invoke("events/sessions_rejected.json")

    # Then the result is the function's 400 naming the field (the invocation itself succeeded)
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout)
    assert result["statusCode"] == HTTPStatus.BAD_REQUEST
    assert json.loads(result["body"])["error"]["param"] == "temperature"


def test_make_invoke_refuses_an_event_file_it_cannot_read() -> None:
    # Given no such event file
    # When `make invoke` is asked to run it
    ran = _invoke("events/nope.json")

    # Then it says so and exits 2
    assert ran.returncode == 2
    assert "cannot read EVENT=events/nope.json" in ran.stderr
