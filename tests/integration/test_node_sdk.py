"""The official OpenAI Node SDK (the npm `openai` package pinned in package.json) against the local API, with
a signed-in user's token as its apiKey, minting OpenAI's samples and the Agents SDK's (`@openai/agents`) defaults
and opening GPT-Live sessions and Realtime calls.

tests/node/*.test.mjs hold the calls and their assertions; this test serves the local API with the template's
JWT authorizer (tokens of its user pool, here in moto), signs two users in, and runs them.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

from local.user_pool import UserPool
from openai_stub.server import OpenAIStub
from tests.browsers import assert_pinned
from tests.local_api import serving_default
from tests.paths import ROOT
from tests.supervision import supervised
from tests.webrtc_offers import offer

NODE_TESTS = ROOT / "tests" / "node"
# The SDKs the scripts import: the official one, and the Agents SDK whose defaults they mint with.
SDK_PACKAGES = ("openai", "@openai/agents")
# Credentials or a base URL of the developer's own would point the SDK elsewhere, or at real OpenAI.
_SDK_ENVIRONMENT = ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")
LIVE_SESSIONS_PATH = "/v1/live/sessions"
CALLS_PATH = "/v1/realtime/calls"


def test_the_node_sdk_works_against_the_local_api(
    api_key_secret_arn: str,
    stub: OpenAIStub,
    user_pool: UserPool,
    user_token: Callable[..., str],
    secrets_manager_url: str,
) -> None:
    # Given Node.js, the pinned SDK, and the local API serving the template's routes, environment and JWT
    # authorizer (the default deployment: tokens of its user pool; the key read through the Parameters and
    # Secrets Extension, here its stand-in), two signed-in users, one of them in the premium group, and a
    # browser's WebRTC offer for the Live sessions and the Realtime calls
    node = shutil.which("node")
    assert node, "Node.js is not installed: install Node.js 20 or newer, then run `npm ci` in the repository root"
    assert_pinned(SDK_PACKAGES)
    scripts = sorted(str(path) for path in NODE_TESTS.glob("*.test.mjs"))
    assert scripts, f"no *.test.mjs files in {NODE_TESTS}"
    # (each call's supervisor recorded, not run: tests/supervision.py)
    with (
        supervised(secrets_manager_url) as supervision,
        serving_default(api_key_secret_arn, stub.base_url, user_pool, environment=supervision.environment) as api,
    ):
        environment = {name: value for name, value in os.environ.items() if name not in _SDK_ENVIRONMENT}
        environment["TOKEN_VENDING_BASE_URL"] = f"{api.url}/v1"
        # In the environment, not on the command line, where any process could read them
        environment["TOKEN_VENDING_USER_TOKEN"] = user_token("node-user")
        environment["TOKEN_VENDING_PREMIUM_TOKEN"] = user_token("node-premium-member", groups=["premium"])
        # The stub's Realtime peer over WebSocket, as make run prints it
        environment["TOKEN_VENDING_REALTIME_URL"] = stub.base_url.replace("http://", "ws://") + "/v1/realtime"
        # About 2.4 KB, far below Linux's 128 KiB for one environment string
        environment["TOKEN_VENDING_LIVE_OFFER"] = offer()

        # When node's test runner runs the SDK scripts (files listed: node 21+ reads arguments as globs)
        finished = subprocess.run(
            [node, "--test", "--test-reporter=spec", *scripts],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # Then every script passes; node's output goes through pytest's capture, which the secret guard reads
    sys.stdout.write(finished.stdout + finished.stderr)
    assert finished.returncode == 0, "the Node SDK tests failed: node's output is in the captured stdout"
    # and OpenAI was asked for the one Live session and the two Realtime calls the scripts open, never for those the
    # service refused; its peer holds just those over WebRTC, never connected, each open until the stub stops
    paths = [request.path for request in stub.requests]
    assert (paths.count(LIVE_SESSIONS_PATH), paths.count(CALLS_PATH)) == (1, 2)
    webrtc = [call for call in stub.calls if call.call_id.startswith(("live_", "rtc_"))]
    assert sorted(call.call_id.split("_")[0] for call in webrtc) == ["live", "rtc", "rtc"]
    assert [(call.audio_frames_received, call.ended) for call in webrtc] == [(0, None)] * 3
