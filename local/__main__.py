"""`make run`: the API of template.yaml on 127.0.0.1, with a local Secrets Manager, sign-in, quota table and
OpenAI stub.

As deployed by default, every request needs a user's token: `make token` (local/token.py) signs a
development user in to the template's own user pool, held by moto, and the gateway checks the token as
API Gateway's JWT authorizer does. AUTH=none turns that off, locally only, and says so on every request.
With OPENAI_API_KEY set, the function talks to the real OpenAI (the key goes into the local secret), or
with OPENAI_BASE_URL too, to that OpenAI-compatible host. The quotas count in the template's own table,
in moto, empty at each start; POLICY=path.json gives the function another policy file (edits to the
policy file apply from the next request, no restart: a change is logged, and a broken one refused while the last
good policy serves). It refuses to start with a policy file the function would refuse, or a key OpenAI refuses
(local/start_checks.py). The terminal shows one line per request;
LOG_FORMAT=json shows the function's own log lines instead. See local/stand_ins.py for the stand-ins.
The demo page (web/, demo_page/server.py) is served on the next port (taken: a free one), and its origin
may call the API.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from http import HTTPStatus

from demo_page.server import DemoPage
from local import stand_ins, start_checks, token
from local.cloudformation import TemplateError
from local.console import Console
from local.exchanges import AccessRecord
from local.gateway import LocalApi
from local.jwt_authorizer import WRONG_ISSUER
from local.stand_ins import TEMPLATE, SetupError

EXAMPLE_BODY = '{"session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}}'
LOG_FORMATS = ("short", "json")


def serve(port: int, log_format: str, environ: Mapping[str, str], warnings: Sequence[str] = ()) -> None:
    """Start everything, print how to reach it (and ``warnings``), and block until SIGINT or SIGTERM."""
    # Blocked in this thread before any other starts (they inherit it), then waited for: a handler that
    # sets an Event can deadlock against the main thread's own wait on it.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    terminal = sys.stdout
    with ExitStack() as running:
        page = running.enter_context(DemoPage(port % 65535 + 1))
        local = stand_ins.start(
            running,
            environ,
            page.origins,
            stub_port=(port + 1) % 65535 + 1,
            environment=start_checks.key_source(environ),
        )
        console = Console(terminal) if log_format == "short" else None
        if console is not None:
            running.enter_context(console.capturing())  # before the function is imported: its logger writes there
        api = LocalApi.from_template(
            TEMPLATE,
            local.overrides,
            port=port,
            environment=local.environment,
            on_request=_with_hints(console.request if console is not None else _gateway_answer_as_json, port),
            **local.gateway_options(),
        )
        running.enter_context(api)
        start_checks.check_policy(environ)  # as the function reads it, now that the gateway has loaded it
        # Only the process holding the port gets here: the state file of the port is this run's.
        state = token.write_state(port, api.url, local.user_pool, local.authenticate)
        running.callback(state.unlink, missing_ok=True)
        page.configure(api.url, local.realtime_url, local.user_pool, local.authenticate)
        lines = [
            f"token vending API on {api.url}",
            f"  the demo page: {page.url}/ (sign in, pick a profile and a voice, Connect: a voice call)",
            f"  Realtime calls (WebRTC, with a client secret): {local.realtime_url}",
            f"  Realtime sessions (WebSocket, with a client secret): {local.realtime_websocket_url}",
            f"  routes: {', '.join(route.route_key for route in api.routes)}",
            f"  OpenAI SDK base_url: {api.url}/v1",
            *(f"  {line}" for line in local.description),
            *_how_to_call(api, port, local, page),
            *(f"  warning: {warning}" for warning in warnings),
            "  one line per request (LOG_FORMAT=json: the function's own log lines); Ctrl-C stops",
        ]
        print("\n".join(lines), file=terminal, flush=True)
        signal.sigwait(stop_signals)
        print("stopping", file=terminal, flush=True)


def _how_to_call(api: LocalApi, port: int, local: stand_ins.StandIns, page: DemoPage) -> list[str]:
    url = api.url

    def mint(authorization: str = "") -> str:
        headers = f"{authorization} -H 'Content-Type: application/json'"
        return f"curl -s {url}/v1/realtime/client_secrets{headers} -d '{EXAMPLE_BODY}'"

    others = [origin for origin in (api.cors.origins if api.cors else ()) if origin not in page.origins]
    if not others:
        cors = (
            "  CORS: the demo page only (the template's AllowedOrigins is empty): "
            "ALLOWED_ORIGINS=http://localhost:5173 make run lets that page call"
        )
    else:
        source = "ALLOWED_ORIGINS, not the template's" if local.allowed_origins else "the template's AllowedOrigins"
        cors = f"  CORS: pages on {', '.join(others)} may call it ({source}), and the demo page"
    if not local.authenticate:
        return [
            "  authentication: OFF (AUTH=none), here only: every request reaches the function as one anonymous",
            "    user; the deployed API requires a user's token",
            cors,
            f"  try: {mint()}",
        ]
    if local.user_pool is None:
        return [cors, f"  try: {mint()}"]
    return [
        "  authentication: every request needs a user's token, checked as the deployed JWT authorizer checks it",
        f"  a token, in another terminal: export TOKEN=$({_on_port(port)}make -s token)",
        "    (TOKEN_USER=alice: another user; TOKEN_GROUPS=premium: its groups, comma-separated)",
        cors,
        f"  try: {mint(' -H "Authorization: Bearer $TOKEN"')}",
        f'  an OpenAI SDK takes the token as its api_key: OpenAI(api_key=TOKEN, base_url="{url}/v1")',
    ]


def _on_port(port: int) -> str:
    return "" if str(port) == token.DEFAULT_PORT else f"PORT={port} "


def _with_hints(on_request: Callable[[AccessRecord], None], port: int) -> Callable[[AccessRecord], None]:
    """``on_request``, with what a developer of make run most likely needs to do added to the gateway's note."""
    # Each make run's user pool is new, and so is its issuer: a token of an earlier run names another.
    earlier_run = f"(a token from an earlier make run? get a new one: {_on_port(port)}make -s token)"

    def hinted(record: AccessRecord) -> None:
        if record.status == HTTPStatus.UNAUTHORIZED and record.note.endswith(WRONG_ISSUER):
            record = replace(record, note=f"{record.note} {earlier_run}")
        on_request(record)

    return hinted


def _gateway_answer_as_json(record: AccessRecord) -> None:
    """With LOG_FORMAT=json, what API Gateway answered itself (the function logged nothing), as a JSON line."""
    if record.note:
        line = {"gateway": record.note, "method": record.method, "path": record.path, "status": record.status}
        print(json.dumps({**line, "requestId": record.request_id}), flush=True)


def main() -> int:
    port = os.environ.get("PORT", "3000")
    if not (port.isdigit() and 0 < int(port) < 65536):
        print(f"make run: PORT={port!r} is not a port number (1-65535)", file=sys.stderr)
        return 2
    log_format = os.environ.get("LOG_FORMAT", "short")
    if log_format not in LOG_FORMATS:
        print(f"make run: LOG_FORMAT={log_format!r} must be one of {', '.join(LOG_FORMATS)}", file=sys.stderr)
        return 2
    try:
        stand_ins.check(os.environ)
        key_warning = start_checks.check_openai_key(os.environ)
        serve(int(port), log_format, os.environ, [key_warning] if key_warning else [])
    except SetupError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            print(
                f"make run: port {port} is already in use (another make run?). Stop what holds it, "
                # the next two ports are a make run's demo page and OpenAI stub
                f"or choose another port: PORT={(int(port) + 2) % 65535 + 1} make run",
                file=sys.stderr,
            )
        else:
            print(f"make run: {error}", file=sys.stderr)
        return 1
    except TemplateError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
