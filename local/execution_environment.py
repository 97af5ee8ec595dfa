"""One invocation in a process of its own, as Lambda runs it in a new execution environment:
`python -m local.execution_environment FD`, started by local/lambda_service.py in the function's code root with the
function's environment (its handler in _HANDLER).

The first line of stdin is the invocation ({"event", "request_id", "invoked_function_arn", "timeout"}); stdin stays
open while the process that started this one lives, and its end ends this process too, so that none outlives a
stopped run. The init phase imports the handler with the code root first on sys.path (the repository that holds
local/ off it, and local/ out of sys.modules: the function sees its own code and its dependencies only); then the
handler runs with a context counting down from the function's timeout. What it writes to stdout and stderr is its
log. What became of it goes to file descriptor FD as JSON lines: {"deadline": <time.monotonic() at which it times
out>} once the handler is called, then {"result": ...} or {"error": {"errorType", "errorMessage", "stackTrace"}}
(Lambda's error payload). The process leaves as soon as that is written, as Lambda freezes the environment when the
handler returns.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, NoReturn, TextIO

from local.lambda_context import LambdaContext


def main(argv: list[str]) -> NoReturn:
    outcome = os.fdopen(int(argv[1]), "w", buffering=1)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())  # make run blocks its stop signals, and a child inherits that
    invocation = json.loads(sys.stdin.readline())
    threading.Thread(target=_leave_with_parent, name="parent-watch", daemon=True).start()
    for entry in os.environ.pop("PYTHONPATH", "").split(os.pathsep):
        if entry in sys.path:
            sys.path.remove(entry)
    for name in [name for name in sys.modules if name == "local" or name.startswith("local.")]:
        del sys.modules[name]  # the context's class stays, bound here; the function cannot import local/
    code_root = os.getcwd()
    if code_root not in sys.path:
        sys.path.insert(0, code_root)
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as error:  # reported as the runtime reports a failed init
        traceback.print_exception(error)
        kind = "Runtime.HandlerNotFound" if isinstance(error, AttributeError) else "Runtime.ImportModuleError"
        _leave(outcome, {"error": _error(error, f"Unable to import module '{module_name}': {error}", kind)})
    context = LambdaContext(
        function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        memory_limit_in_mb=int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]),
        invoked_function_arn=str(invocation["invoked_function_arn"]),
        aws_request_id=str(invocation["request_id"]),
        deadline=time.monotonic() + float(invocation["timeout"]),
        log_group_name=os.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
    )
    _write(outcome, {"deadline": context.deadline})
    try:
        result = handler(invocation["event"], context)
    except Exception as error:  # reported as the runtime reports an unhandled error, from the handler's frame on
        error = error.with_traceback(error.__traceback__.tb_next if error.__traceback__ else None)
        traceback.print_exception(error)
        _leave(outcome, {"error": _error(error, str(error), type(error).__name__)})
    try:
        _leave(outcome, {"result": result})
    except (TypeError, ValueError) as error:
        _leave(outcome, {"error": _error(error, f"Unable to marshal response: {error}", "Runtime.MarshalError")})


def _error(error: BaseException, message: str, kind: str) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": kind, "stackTrace": traceback.format_tb(error.__traceback__)}


def _write(outcome: TextIO, message: dict[str, Any]) -> None:
    outcome.write(json.dumps(message) + "\n")


def _leave(outcome: TextIO, message: dict[str, Any]) -> NoReturn:
    """Report ``message`` and end the process at once: threads the function left running end with it."""
    _write(outcome, message)
    outcome.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if "result" in message else 1)


def _leave_with_parent() -> NoReturn:
    sys.stdin.read()  # returns when the process that started this one closes stdin, or is gone
    os._exit(1)


if __name__ == "__main__":
    main(sys.argv)
