"""`make run` (python -m local), `make token` (python -m local.token) and `make invoke` (python -m local.invoke)
as processes, end to end."""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import unittest.mock
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3

from local.aws import LocalAws
from local.secrets_manager import LocalSecretsManager
from openai_stub.server import OpenAIStub
from tests.docs import code_block
from tests.local_run import (
    JWT,
    REPO,
    STUB_API_KEY,
    LocalService,
    environment,
    free_port,
    local_run,
    make_token,
    run_to_exit,
)
from tests.policies import shipped_policy, shipped_text

MINT_BODY = {"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}
REFUSED_BODY = b'{"session": {"type": "realtime", "audio": {"output": {"voice": "nope"}}}}'
AUTH_OFF = "authentication is off (AUTH=none)"


@pytest.fixture(scope="module")
def local_service() -> Iterator[LocalService]:
    """`make run` as a developer starts it: the local OpenAI stub, the short log lines."""
    with local_run() as service:
        yield service


def test_the_local_secrets_manager_is_reached_through_the_ordinary_boto3_path():
    # Given the embedded Secrets Manager holding a key
    with LocalAws() as aws, LocalSecretsManager("sk-test-1", aws) as secrets, unittest.mock.patch.dict(os.environ):
        # When a plain boto3 client runs in the environment it gives the function
        os.environ.update(secrets.client_environment())
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=secrets.secret_arn)

    # Then the secret is the JSON the function expects: the key, and a safety identifier key new each run
    secret = json.loads(answer["SecretString"])
    assert secret["api_key"] == "sk-test-1"
    assert re.fullmatch(r"[0-9a-f]{64}", secret["safety_identifier_key"])


def test_make_run_says_how_to_get_and_use_a_token(local_service: LocalService) -> None:
    # Given `make run` serving on a port other than 3000
    # When it has started
    started = "".join(local_service.printed)

    # Then it says every request needs a token, and how to get one from that run and use it
    assert "every request needs a user's token" in started
    assert f"export TOKEN=$(PORT={local_service.port} make -s token)" in started
    assert '-H "Authorization: Bearer $TOKEN"' in started
    assert "api_key=TOKEN" in started


def test_make_run_says_no_page_may_call_it_and_how_to_let_one(local_service: LocalService) -> None:
    # Given `make run` with the template's AllowedOrigins (empty) and no ALLOWED_ORIGINS
    # When it has started
    started = "".join(local_service.printed)

    # Then it says only the demo page may call it, why, and how to let a development page call it
    assert (
        "  CORS: the demo page only (the template's AllowedOrigins is empty): "
        "ALLOWED_ORIGINS=http://localhost:5173 make run lets that page call\n"
    ) in started


def test_a_token_of_another_user_pool_is_401_and_the_line_says_to_get_a_new_one(
    local_service: LocalService, user_token: Callable[..., str]
) -> None:
    # Given a token of another user pool, signed by the same moto key (as one from an earlier make run is)
    token = user_token()
    local_service.tokens.append(token)

    # When a client secret is asked for with it
    response = local_service.mint(MINT_BODY, token)

    # Then it is API Gateway's 401, and the terminal line says what is wrong and what to do
    assert (response.status, response.json()) == (HTTPStatus.UNAUTHORIZED, {"message": "Unauthorized"})
    line = local_service.line(r"POST /v1/realtime/client_secrets 401 ")
    assert line.endswith(
        "  refused by the authorizer: the token does not have a valid issuer "
        f"(a token from an earlier make run? get a new one: PORT={local_service.port} make -s token)\n"
    )


def test_make_run_serves_client_secrets_with_one_short_line_each(local_service: LocalService) -> None:
    # Given `make run` serving on a free port, and a user's token from `make token`
    token = local_service.token()

    # When a client secret is asked for over HTTP with it
    response = local_service.mint(MINT_BODY, token)

    # Then the function minted one through the local Secrets Manager and the stub
    assert response.status == HTTPStatus.OK, response.data
    assert response.json()["value"].startswith("ek_")
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
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {local_service.token()}"},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()

    # Then the policy refuses it, naming the field, and the terminal line says so
    assert response.status == HTTPStatus.BAD_REQUEST
    assert answer["error"]["param"] == "session.audio.output.voice"
    line = local_service.line(r"POST /v1/realtime/client_secrets 400 ")
    assert line.endswith("  rejected: invalid_value (param session.audio.output.voice)\n")


def test_the_readmes_local_python_example_works_as_written(local_service: LocalService) -> None:
    # Given the README's SDK example for the local service (it names port 3000), and TOKEN from `make token`
    example = code_block("python", "http://127.0.0.1:3000/v1")

    # When it runs against `make run`
    ran = subprocess.run(
        [sys.executable, "-c", example.replace("http://127.0.0.1:3000", local_service.url)],
        env=environment(TOKEN=local_service.token()),
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
    # Given the README's curl example for the local service, which takes its token from `make -s token`
    example = code_block("bash", "curl -s http://127.0.0.1:3000")
    assert "$(make -s token)" in example

    # When it runs against `make run` (on its port: PORT= tells `make token` which run)
    ran = subprocess.run(
        ["bash", "-c", example.replace("http://127.0.0.1:3000", local_service.url)],
        cwd=REPO,
        env=environment(PORT=str(local_service.port)),
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
    with local_run(LOG_FORMAT="json") as service:
        # When a client secret is minted
        response = service.mint(MINT_BODY, service.token())

        # Then the terminal shows the function's JSON log line for it, as CloudWatch would hold it
        line = service.line(r'"message":"client secret minted"')

        # And a request API Gateway answers itself (the function logs nothing) still gets a line
        urllib3.request("GET", f"{service.url}/v1/nope", timeout=10, retries=False)
        unrouted = json.loads(service.line(r'"gateway":'))
    assert response.status == HTTPStatus.OK
    assert json.loads(line)["profile"] == "assistant"
    assert (unrouted["status"], unrouted["path"]) == (HTTPStatus.NOT_FOUND, "/v1/nope")


def test_openai_base_url_points_make_run_at_that_openai_compatible_host() -> None:
    # Given an OpenAI-compatible host of the developer's (a stub on loopback), named as the OpenAI SDKs take it
    with OpenAIStub(api_key="sk-compatible-host-5b1e") as host:
        settings = {"OPENAI_BASE_URL": f"{host.base_url}/v1", "OPENAI_API_KEY": "sk-compatible-host-5b1e"}
        with local_run(**settings) as service:
            # When `make run` mints a client secret
            response = service.mint(MINT_BODY, service.token())

    # Then the mint reached that host, with the key from OPENAI_API_KEY (checked there at start, minting nothing)
    assert response.status == HTTPStatus.OK
    assert [request.path for request in host.requests] == ["/v1/models", "/v1/realtime/client_secrets"]
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
        ({"AUTH": "off"}, "AUTH='off': only AUTH=none"),
        ({"ALLOWED_ORIGINS": "http://localhost:5173/app"}, "is not an origin: give scheme://host[:port]"),
        ({"POLICY": "no-such-policy.json"}, "POLICY='no-such-policy.json': no such file: give the path of a policy"),
    ],
)
def test_a_setting_make_run_cannot_use_is_refused_saying_what_to_do(settings: dict[str, str], message: str) -> None:
    # Given a setting `make run` cannot use
    # When it starts
    ran = run_to_exit(**settings)

    # Then it stops at once, saying which setting and what it must be
    assert ran.returncode == 2
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr


def test_without_a_token_it_is_401_and_nothing_reaches_openai() -> None:
    # Given `make run` minting from an OpenAI host of the test's own, so that what reaches it can be seen
    with OpenAIStub(api_key="sk-auth-host-2c7d") as host:
        settings = {"OPENAI_BASE_URL": f"{host.base_url}/v1", "OPENAI_API_KEY": "sk-auth-host-2c7d"}
        with local_run(**settings) as service:
            # When a client secret is asked for with no token, and with a token that is not one
            missing = service.mint(MINT_BODY)
            forged = service.mint(MINT_BODY, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
            # And then with a user's token
            accepted = service.mint(MINT_BODY, service.token())
            refused_line = service.line(r"POST /v1/realtime/client_secrets 401 ")

    # Then both are API Gateway's 401, and only the user's request reached OpenAI (after make run's key check)
    assert (missing.status, missing.json()) == (HTTPStatus.UNAUTHORIZED, {"message": "Unauthorized"})
    assert (forged.status, forged.json()) == (HTTPStatus.UNAUTHORIZED, {"message": "Unauthorized"})
    assert accepted.status == HTTPStatus.OK
    assert [request.path for request in host.requests] == ["/v1/models", "/v1/realtime/client_secrets"]
    # And the terminal line says the authorizer refused it
    assert "client secret minted" not in refused_line


def test_make_token_for_the_premium_group_gets_the_premium_profile_by_default(local_service: LocalService) -> None:
    # Given a token of a member of the premium group (a user of its own: the groups are made exactly these)
    token = local_service.token(user="pat", groups="premium")

    # When a client secret is asked for, naming no profile
    response = local_service.mint(MINT_BODY, token)

    # Then the premium profile minted it (no other test here mints with it)
    assert response.status == HTTPStatus.OK
    local_service.line(r"POST /v1/realtime/client_secrets 200 .* client secret minted \(profile premium\)$")


def test_make_token_refuses_a_group_the_user_pool_has_not(local_service: LocalService) -> None:
    # Given a group template.yaml does not create
    # When `make token` is asked for a member of it
    ran = make_token(local_service.port, TOKEN_GROUPS="premium,staff")

    # Then it prints no token, and names the group, the pool's groups and where groups come from
    assert ran.returncode == 2
    assert ran.stdout == ""
    assert "TOKEN_GROUPS names staff, which the user pool has not (its groups: premium)" in ran.stderr
    assert "template.yaml" in ran.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_token_prints_the_token_alone_on_its_line(local_service: LocalService) -> None:
    # Given `make run` on a port of its own
    # When `make -s token` is run for it, as the README has it
    ran = subprocess.run(
        ["make", "-s", "token"],
        cwd=REPO,
        env=environment(PORT=str(local_service.port)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    local_service.tokens.append(ran.stdout.strip())

    # Then stdout is the token and a newline, nothing else
    assert ran.returncode == 0, ran.stderr
    assert JWT.fullmatch(ran.stdout.removesuffix("\n"))


def test_make_token_without_make_run_says_what_to_do() -> None:
    # Given no `make run` on a port
    port = free_port()

    # When `make token` asks that port's run for a token
    ran = make_token(port)

    # Then it prints no token and says to start `make run` for that port first
    assert ran.returncode == 1
    assert ran.stdout == ""
    assert f"no make run is serving on port {port}. Start it in another terminal (PORT={port} make run)" in ran.stderr


def test_auth_none_mints_without_a_token_and_says_so_on_every_request() -> None:
    # Given `make run` with AUTH=none, and ALLOWED_ORIGINS for a page of the developer's
    with local_run(AUTH="none", ALLOWED_ORIGINS="http://localhost:5173") as service:
        # When a client secret is asked for with no token, from that page, and then an unrouted path
        response = service.mint(MINT_BODY)
        preflight = urllib3.request(
            "OPTIONS",
            f"{service.url}/v1/realtime/client_secrets",
            headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
            timeout=10,
            retries=False,
        )
        urllib3.request("GET", f"{service.url}/v1/nope", timeout=10, retries=False)
        lines = [service.line(r" POST /v1/realtime/client_secrets 200 "), service.line(r" GET /v1/nope 404 ")]
        # And `make token` still gives a token, saying it will not be checked
        ran = make_token(service.port)
        service.tokens.append(ran.stdout.strip())
    started = "".join(service.printed)

    # Then the function minted it for the anonymous user
    assert response.status == HTTPStatus.OK
    # And the start and every request line say authentication is off
    assert "authentication: OFF (AUTH=none)" in started
    assert all(AUTH_OFF in line for line in lines), lines
    assert "client secret minted" in lines[0]
    assert ran.returncode == 0
    assert "has authentication off (AUTH=none): it will not check this token" in ran.stderr
    # And the page's origin is allowed, as ALLOWED_ORIGINS has it
    assert "CORS: pages on http://localhost:5173 may call it" in started
    assert preflight.headers.get("access-control-allow-origin") == "http://localhost:5173"


def _assistant_limited_to(mints: int) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["profiles"]["assistant"]["limits"] = {"per_caller": [{"mints": mints, "seconds": 31 * 86400}]}

    return change


def test_policy_names_the_policy_file_whose_quotas_make_run_enforces_and_an_edit_applies_at_once(
    tmp_path: Path,
) -> None:
    # Given a copy of the policy whose assistant profile allows a caller 2 client secrets a month (a window
    # whose end no test run will meet), and `make run` with POLICY naming it
    policy = shipped_policy(tmp_path, _assistant_limited_to(2))
    with local_run(AUTH="none", POLICY=str(policy)) as service:
        # When the one caller asks 3 times, then once more after the limit is raised in the file
        responses = [service.mint(MINT_BODY) for _ in range(3)]
        shipped_policy(tmp_path, _assistant_limited_to(30))
        responses.append(service.mint(MINT_BODY))
    started = "".join(service.printed)

    # Then the quota table counts in moto: 2 minted, the third refused as OpenAI refuses, with Retry-After
    assert [r.status for r in responses[:3]] == [HTTPStatus.OK, HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS]
    assert responses[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert int(responses[2].headers["Retry-After"]) >= 1
    # And the edit applied without a restart
    assert responses[3].status == HTTPStatus.OK
    # And the start text says which table and which policy file
    assert "DynamoDB: the template's QuotaTable in moto, table local-QuotaTable" in started
    assert f"policy: {policy} (POLICY)" in started


def test_a_policy_edit_under_make_run_is_logged_and_a_broken_one_refused_while_the_last_good_serves(
    tmp_path: Path,
) -> None:
    # Given make run with a policy whose assistant profile allows a caller 30 client secrets a month
    policy = shipped_policy(tmp_path, _assistant_limited_to(30))
    good = policy.read_text()
    with local_run(AUTH="none", POLICY=str(policy)) as service:
        responses = [service.mint(MINT_BODY)]

        # When the file is broken (cut short), and a client secret asked for
        policy.write_text(good[: good.index('"profiles"')])
        responses.append(service.mint(MINT_BODY))
        refused = service.line(r" ERROR policy change refused")

        # And then fixed, allowing 1 a month, and another asked for
        shipped_policy(tmp_path, _assistant_limited_to(1))
        responses.append(service.mint(MINT_BODY))
        reloaded = service.line(r" policy reloaded")

    # Then the broken file was refused, saying where, and the last good policy kept minting
    assert [r.status for r in responses[:2]] == [HTTPStatus.OK, HTTPStatus.OK]
    assert "the last good policy keeps serving" in refused
    assert re.search(rf"problem=policy file {re.escape(str(policy))} is not valid JSON: line 1, column \d+: ", refused)
    # And the fixed one applied at once (2 minted this month, 1 allowed), the line naming the changed profile
    assert responses[2].status == HTTPStatus.TOO_MANY_REQUESTS
    assert 'profiles_changed=["assistant"]' in reloaded
    assert "profiles_added=[]" in reloaded


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            '{"version": 1,\n  "profiles" {}\n}\n',
            "is not valid JSON: line 2, column 14: Expecting ':' delimiter",
            id="json-error",
        ),
        pytest.param(
            shipped_text(lambda document: document["profiles"]["assistant"].pop("session_type")),
            "is invalid: profiles.assistant.session_type: Field required",
            id="schema-error",
        ),
    ],
)
def test_a_policy_file_the_function_would_refuse_stops_make_run_at_start(
    tmp_path: Path, text: str, problem: str
) -> None:
    # Given a POLICY file the function cannot use
    policy = tmp_path / "policy.json"
    policy.write_text(text)

    # When make run starts with it
    ran = run_to_exit(POLICY=str(policy))

    # Then it refuses to start, naming the file and what is wrong where (line and column, or the field's path)
    assert ran.returncode == 2, ran.stderr
    assert f"make run: policy file {policy} {problem}" in ran.stderr
    assert "Fix it, or unset POLICY for the bundled policy, and start make run again" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert "Ctrl-C stops" not in ran.stdout


def test_a_key_openai_refuses_stops_make_run_at_start() -> None:
    # Given an OpenAI (a stub on loopback) that knows another key than the one in OPENAI_API_KEY
    with OpenAIStub(api_key="sk-the-hosts-own-key-7e2a") as host:
        settings = {"OPENAI_BASE_URL": f"{host.base_url}/v1", "OPENAI_API_KEY": "sk-a-revoked-key-0c9d"}

        # When make run starts
        ran = run_to_exit(**settings)
        asked = [(request.method, request.path) for request in host.requests]
        checked = f"{host.base_url}/v1/models"

    # Then it refuses to start, saying the key was refused and what to do; the check minted nothing
    assert ran.returncode == 2, ran.stderr
    assert (
        f"make run: {checked} refused the key in OPENAI_API_KEY (HTTP 401, invalid_api_key): "
        "set OPENAI_API_KEY to a valid API key (https://platform.openai.com/api-keys), or unset it for the local "
        "OpenAI stub"
    ) in ran.stderr
    assert asked == [("GET", "/v1/models")]
    assert "sk-a-revoked-key-0c9d" not in ran.stdout + ran.stderr


def test_an_openai_out_of_reach_at_start_is_a_warning_and_a_key_it_later_refuses_names_openai_api_key() -> None:
    # Given make run whose OPENAI_BASE_URL is out of reach at start
    port = free_port()
    settings = {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "sk-not-the-hosts-key-91b3"}
    with local_run(**settings) as service:
        started = "".join(service.printed)
        # When that host comes up knowing another key, and a client secret is asked for
        with OpenAIStub(api_key="sk-the-hosts-own-key-5f0e", port=port) as host:
            answer = service.mint(MINT_BODY, service.token())
            logged = service.line(r" ERROR openai rejected the api key")
            asked = [request.path for request in host.requests]

    # Then make run started, warning that it could not check the key
    assert re.search(
        rf"\n  warning: could not check OPENAI_API_KEY: http://127.0.0.1:{port}/v1/models did not answer "
        r"\(\w+\); starting anyway; a mint will say if OpenAI refuses the key\n",
        started,
    )
    # And the refusal names the key make run was given, tells the SDKs not to retry, and is logged saying so
    assert answer.status == HTTPStatus.BAD_GATEWAY
    assert answer.json()["error"]["code"] == "upstream_auth_failed"
    assert answer.json()["error"]["message"] == (
        "OpenAI rejected this service's API key: the key in OPENAI_API_KEY given to make run. "
        "The operator must replace it with a valid API key."
    )
    assert answer.headers["x-should-retry"] == "false"
    assert "key_source=the key in OPENAI_API_KEY given to make run" in logged
    assert asked == ["/v1/realtime/client_secrets"]


def test_a_port_in_use_names_the_port_and_another_to_use() -> None:
    # Given something already listening on the port
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        # When `make run` starts on it
        ran = run_to_exit(PORT=str(port))

    # Then it says which port, and how to choose another
    assert ran.returncode == 1
    assert f"port {port} is already in use" in ran.stderr
    assert f"PORT={port + 3} make run" in ran.stderr  # the two after it are a make run's page and stub
    assert "Traceback" not in ran.stderr


def _invoke(event: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.invoke", event],
        cwd=REPO,
        env={**environment(), **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("secrets_via", ["extension", "direct"])
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


def test_make_invoke_opens_a_live_session_from_its_event_file_and_logs_no_sdp() -> None:
    # Given the GPT-Live event file (a browser's offer, a signed-in caller)
    # When `make invoke` runs the function on it
    ran = _invoke("events/live_sessions.json")

    # Then the stub's peer answered the offer: a live_ session and its SDP answer, and the logs name the session
    # opened without a line of either SDP
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout)
    assert result["statusCode"] == HTTPStatus.OK
    opened = json.loads(result["body"])
    assert opened["session"]["id"].startswith("live_")
    assert opened["transport"]["sdp"].startswith("v=0")
    assert '"message":"session opened"' in ran.stderr
    assert "a=candidate" not in ran.stderr
    assert "a=ice-pwd" not in ran.stderr


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
