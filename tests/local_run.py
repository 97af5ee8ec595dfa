"""`make run` (python -m local) as a process, for the tests that drive it end to end: its printed lines, the
tokens `make token` gives for it, and a check when it stops that its output showed no secret."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import urllib3

from local.token import state_path

REPO = Path(__file__).resolve().parent.parent
STUB_API_KEY = "sk-local-dev"  # what `make run` puts in its local secret for its own stub
# The developer's own settings would point the local run elsewhere.
_SETTINGS = (
    *("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOG_FORMAT", "SECRETS_VIA", "PORT"),
    *("AUTH", "ALLOWED_ORIGINS", "TOKEN_USER", "TOKEN_GROUPS", "POLICY"),
)
# What the Agents SDKs' voice-agent quickstarts mint: their default model (each SDK then asks for tracing "auto").
QUICKSTART_SESSION = {"session": {"type": "realtime", "model": "gpt-realtime-2.1"}}
# A JWT: three base64url parts, the first two JSON objects ({" is eyJ).
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(**settings: str) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if name not in _SETTINGS}
    return {**inherited, "PYTHONUNBUFFERED": "1", **settings}


def _lines(stream, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _drained(lines: queue.Queue[str | None]) -> str:
    text = []
    while (line := lines.get(timeout=10)) is not None:
        text.append(line)
    return "".join(text)


def make_token(port: int, **settings: str) -> subprocess.CompletedProcess[str]:
    """`make token` (what it runs) for the `make run` on ``port``."""
    return subprocess.run(
        [sys.executable, "-m", "local.token"],
        cwd=REPO,
        env=environment(PORT=str(port), **settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_to_exit(**settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m local` with ``settings`` (on a free port unless they name one), run until it exits, as it must
    when it refuses to start."""
    return subprocess.run(
        [sys.executable, "-m", "local"],
        cwd=REPO,
        env=environment(**{"PORT": str(free_port()), **settings}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class LocalService:
    url: str
    port: int
    stdout: queue.Queue[str | None]
    pid: int = 0  # the process of `python -m local`: its children are the asynchronous invocations it runs
    printed: list[str] = field(default_factory=list, repr=False)
    # Out of the repr, which a failing test's report would show.
    minted: list[str] = field(default_factory=list, repr=False)
    tokens: list[str] = field(default_factory=list, repr=False)

    def token(self, user: str = "developer", groups: str = "") -> str:
        """A user's token from `make token`, which prints it alone on stdout."""
        ran = make_token(self.port, TOKEN_USER=user, TOKEN_GROUPS=groups)
        assert ran.returncode == 0, ran.stderr
        assert JWT.fullmatch(ran.stdout.removesuffix("\n")), "make token printed more than the token"
        self.tokens.append(ran.stdout.strip())
        return self.tokens[-1]

    def mint(self, body: dict[str, Any], token: str | None = None) -> urllib3.BaseHTTPResponse:
        """POST /v1/realtime/client_secrets with ``body`` (and ``token`` as its bearer); a client secret it gets is
        kept in ``minted``, for the check of the output."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = urllib3.request(
            "POST", f"{self.url}/v1/realtime/client_secrets", json=body, headers=headers, timeout=30, retries=False
        )
        if answer.status == HTTPStatus.OK:
            self.minted.append(str(answer.json()["value"]))
        return answer

    def client_secret(self, body: dict[str, Any]) -> str:
        """A client secret for ``body``, minted with a development user's token from `make token`."""
        answer = self.mint(body, self.token())
        assert answer.status == HTTPStatus.OK, answer.data
        return str(answer.json()["value"])

    def printed_url(self, label: str) -> str:
        """The loopback URL the start text gives for ``label`` (after its colon), as a developer reads it."""
        pattern = rf"{re.escape(label)}[^:]*: ((?:http|ws)://127\.0\.0\.1:\d+/\S*)"
        urls = [found[1] for line in self.printed if (found := re.search(pattern, line))]
        assert len(urls) == 1, f"python -m local printed {len(urls)} URLs for {label!r}:\n{''.join(self.printed)}"
        return urls[0]

    def line(self, pattern: str) -> str:
        """The next printed line matching ``pattern`` (a regex); fails after 10 s without one."""
        while True:
            try:
                line = self.stdout.get(timeout=10)
            except queue.Empty:
                pytest.fail(f"python -m local printed no line matching {pattern!r} in 10 s")
            assert line is not None, f"python -m local exited:\n{''.join(self.printed)}"
            self.printed.append(line)
            if re.search(pattern, line):
                return line


@contextmanager
def local_run(**settings: str) -> Iterator[LocalService]:
    """`python -m local` (what `make run` runs) on a free port; stopped with SIGINT, which must stop it cleanly."""
    service_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=REPO,
        env=environment(PORT=str(service_port), **settings),
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
    service = LocalService(f"http://127.0.0.1:{service_port}", service_port, stdout, process.pid)
    try:
        while not any("Ctrl-C stops" in line for line in service.printed):  # the end of its start text
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
    # pytest.fail, not assert: assertion introspection would print the output, secret and all
    secrets = [STUB_API_KEY, settings.get("OPENAI_API_KEY", STUB_API_KEY), *service.minted, *service.tokens]
    if any(secret in output + errors for secret in secrets):
        pytest.fail("a secret appeared in the output of python -m local", pytrace=False)
    if "@example.test" in output + errors:
        pytest.fail("a user's address appeared in the output of python -m local", pytrace=False)
    # And what `make token` reads goes with it
    assert not state_path(service_port).exists()
