"""`make invoke EVENT=events/<file>.json`: `sam local invoke` without Docker.

The function runs in this process on the event, with the template's environment and timeout and the
stand-ins `make run` uses (local/stand_ins.py: a fresh quota table; POLICY=path.json: another policy
file). As `sam local invoke` does, it prints the function's
result as JSON on stdout and its logs on stderr. Exits 0 when the function returned (whatever status its
answer carries), 1 when it raised or timed out, 2 when the event or a setting cannot be used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import Any

from local import stand_ins, start_checks
from local.cloudformation import TemplateError
from local.gateway import LocalApi
from local.lambda_runtime import FunctionFailed, FunctionTimedOut
from local.stand_ins import TEMPLATE, SetupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make invoke", description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, help="an API Gateway event, e.g. events/client_secrets.json")
    parser.add_argument("--function", help="the function's logical id (needed if the template has several)")
    arguments = parser.parse_args(argv)
    answer = sys.stdout
    try:
        event = _event(arguments.event)
        stand_ins.check(os.environ)
        with ExitStack() as running:
            local = stand_ins.start(running, os.environ, environment=start_checks.key_source(os.environ, "make invoke"))
            api = LocalApi.from_template(
                TEMPLATE,
                local.overrides,
                environment=local.environment,
                **local.gateway_options(),
            )
            function = _function(api, arguments.function)
            print(f"make invoke: {function} ({api.functions[function].handler}) on {arguments.event}", file=sys.stderr)
            for line in local.description:
                print(f"  {line}", file=sys.stderr)
            # The function's logs go to stderr, so stdout holds only its result.
            with redirect_stdout(sys.stderr):
                context = api.runtime.load().context(function)
                try:
                    result = api.runtime.call(function, event, context)
                except FunctionTimedOut:
                    timeout = api.functions[function].timeout
                    message = f"RequestId: {context.aws_request_id} Error: Task timed out after {timeout:.2f} seconds"
                    print(json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}), file=answer)
                    return 1
                except FunctionFailed as failed:
                    error = failed.__cause__ or failed
                    traceback.print_exception(error)
                    print(json.dumps(_error_payload(error, context.aws_request_id)), file=answer)
                    return 1
    except (SetupError, TemplateError) as error:
        print(f"make invoke: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result), file=answer)
    return 0


def _event(path: Path) -> dict[str, Any]:
    try:
        event = json.loads(path.read_text())
    except OSError as error:
        raise SetupError(f"cannot read EVENT={path}: {error.strerror}") from None
    except ValueError as error:
        raise SetupError(f"EVENT={path} is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise SetupError(f"EVENT={path} must hold a JSON object (an API Gateway event)")
    return event


def _function(api: LocalApi, chosen: str | None) -> str:
    if chosen is not None and chosen not in api.functions:
        raise SetupError(f"FUNCTION={chosen} is not one of the template's functions: {', '.join(api.functions)}")
    if chosen is None and len(api.functions) != 1:
        raise SetupError(f"the template has several functions: choose one with FUNCTION= ({', '.join(api.functions)})")
    return chosen or next(iter(api.functions))


def _error_payload(error: BaseException, request_id: str) -> dict[str, Any]:
    """What Lambda answers for an unhandled exception."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


if __name__ == "__main__":
    sys.exit(main())
