"""`make run`: the API of template.yaml on 127.0.0.1, with a local Secrets Manager and OpenAI stub.

With OPENAI_API_KEY set, the function talks to the real OpenAI (the key goes into the local secret).
The function reads the key through a stand-in for the AWS Parameters and Secrets Lambda Extension, as
a deployment with SecretsExtensionLayerArn does; SECRETS_VIA=sdk makes it use boto3 instead.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from local.gateway import LocalApi, TemplateError
from local.openai_stub import OpenAIStub
from local.secrets_extension import LOCAL_LAYER_ARN, SecretsExtension
from local.secrets_manager import LocalSecretsManager

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
REAL_OPENAI = "https://api.openai.com"
STUB_API_KEY = "sk-local-dev"
EXAMPLE_BODY = '{"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}'


def serve(port: int, secrets_via: str) -> None:
    """Start everything, print how to reach it, and block until SIGINT or SIGTERM."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    real_key = os.environ.get("OPENAI_API_KEY", "").strip()
    with ExitStack() as running:
        if real_key:
            upstream, api_key, openai = REAL_OPENAI, real_key, f"the real OpenAI ({REAL_OPENAI})"
        else:
            stub = OpenAIStub(api_key=STUB_API_KEY).start()
            running.callback(stub.stop)
            upstream, api_key = stub.base_url, STUB_API_KEY
            openai = f"the local OpenAI stub at {stub.base_url} (set OPENAI_API_KEY for the real one)"
        secrets = running.enter_context(LocalSecretsManager(api_key=api_key))
        overrides = {"OpenAIApiKeySecretArn": secrets.secret_arn, "OpenAIUpstreamUrl": upstream}
        environment = secrets.client_environment()
        if secrets_via == "extension":
            extension = running.enter_context(SecretsExtension(secrets.client_environment()))
            overrides["SecretsExtensionLayerArn"] = LOCAL_LAYER_ARN
            environment |= extension.function_environment()
            via = (
                f"through a Parameters and Secrets Extension stand-in on port {extension.port} (SECRETS_VIA=sdk: boto3)"
            )
        else:
            via = "with boto3"
        api = LocalApi.from_template(TEMPLATE, overrides, port=port, environment=environment)
        running.enter_context(api)
        routes = ", ".join(route.route_key for route in api.routes)
        print(f"token vending API on {api.url}", flush=True)
        print(f"  routes: {routes}")
        print(f"  OpenAI SDK base_url: {api.url}/v1")
        print(f"  OpenAI: {openai}")
        print(f"  Secrets Manager: moto at {secrets.endpoint_url}, secret {secrets.secret_arn}")
        print(f"  the function reads the key {via}")
        if api.authorizers:
            print(f"  auth: the deployed API requires {', '.join(sorted(api.authorizers))}; none is enforced here")
        print(
            f"  try: curl -s -X POST {api.url}/v1/realtime/client_secrets "
            f"-H 'Content-Type: application/json' -d '{EXAMPLE_BODY}'"
        )
        print("  Ctrl-C stops", flush=True)
        stopping.wait()
        print("stopping", flush=True)


def main() -> int:
    port = os.environ.get("PORT", "3000")
    if not port.isdigit():
        print(f"make run: PORT={port!r} is not a port number", file=sys.stderr)
        return 2
    secrets_via = os.environ.get("SECRETS_VIA", "extension")
    if secrets_via not in ("extension", "sdk"):
        print(f"make run: SECRETS_VIA={secrets_via!r} must be extension or sdk", file=sys.stderr)
        return 2
    try:
        serve(int(port), secrets_via)
    except (TemplateError, OSError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
