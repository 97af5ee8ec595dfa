"""`make run`: the API of template.yaml on 127.0.0.1, with a local Secrets Manager and OpenAI stub.

With OPENAI_API_KEY set, the function talks to the real OpenAI (the key goes into the local secret).
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
from local.secrets_manager import LocalSecretsManager

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
REAL_OPENAI = "https://api.openai.com"
STUB_API_KEY = "sk-local-dev"
EXAMPLE_BODY = '{"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}'


def serve(port: int) -> None:
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
        api = LocalApi.from_template(
            TEMPLATE,
            {"OpenAIApiKeySecretArn": secrets.secret_arn, "OpenAIUpstreamUrl": upstream},
            port=port,
            environment=secrets.client_environment(),
        )
        running.enter_context(api)
        routes = ", ".join(route.route_key for route in api.routes)
        print(f"token vending API on {api.url}", flush=True)
        print(f"  routes: {routes}")
        print(f"  OpenAI SDK base_url: {api.url}/v1")
        print(f"  OpenAI: {openai}")
        print(f"  Secrets Manager: moto at {secrets.endpoint_url}, secret {secrets.secret_arn}")
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
    try:
        serve(int(port))
    except (TemplateError, OSError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
