"""The template's functions run as the Lambda runtime runs them, in this process.

The init phase imports each handler with its function's environment and code on sys.path; an invocation gets a
Lambda context with its deadline, runs in one of the function's execution environments (one invocation at a time
in each, as in Lambda), and fails as Lambda reports it: past its deadline (FunctionTimedOut) or with an
exception (FunctionFailed).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self

from local.cloudformation import ACCOUNT_ID
from local.lambda_context import LambdaContext
from local.template import LocalFunction

# Execution environments per function. Lambda gives each of a burst's invocations an environment of its own,
# with its own CPU; here they all share one interpreter (one core's worth of Python at a time), so more
# environments than this add no throughput: only time-sliced invocations, each slower than in Lambda by the
# number of others, and the stand-ins behind them (moto answers DynamoDB one request at a time) queued
# longer than any function's own timeouts allow. Invocations past this many wait for a free environment, within
# API Gateway's integration timeout, not the function's. A timed-out invocation gives its environment back while
# its thread runs on (a thread cannot be killed, unlike Lambda's environment), so after timeouts more than this
# many invocations may really run at once.
EXECUTION_ENVIRONMENTS = 4
# The Lambda runtime has no profile; a developer's AWS_PROFILE would override the fake credentials.
_NOT_IN_LAMBDA = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
Handler = Callable[[dict[str, Any], Any], Any]


class FunctionTimedOut(Exception):
    """The function did not return within its timeout (it keeps running, as a thread cannot be stopped)."""


class NoEnvironmentFree(FunctionTimedOut):
    """Every execution environment of the function stayed busy until the deadline: the invocation never began."""


class FunctionFailed(Exception):
    """The function raised; ``__cause__`` is what it raised."""


def runtime_environment(function: LocalFunction, region: str, name: str) -> dict[str, str]:
    """The variables the Lambda runtime sets for the function (named ``name``), before the template's own."""
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_SAM_LOCAL": "true",  # as `sam local` sets it: Powertools then skips X-Ray
        "_HANDLER": function.handler,
    }


class LambdaRuntime:
    """``functions`` by logical id, in ``region``; ``environment`` is what the runtime adds to each (credentials);
    ``environments``: how many invocations of one function run at once."""

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        region: str,
        environment: Mapping[str, str] | None = None,
        environments: int = EXECUTION_ENVIRONMENTS,
    ) -> None:
        self.functions = dict(functions)
        self.region = region
        self._environment = dict(environment or {})
        self._handlers: dict[str, Handler] = {}
        # os.environ holds one function's environment at a time, as its container would: invocations of that
        # function run side by side; another function's wait until they are done. With one function (or one at a
        # time) os.environ is set once and never touched per request.
        self._applied: set[str] = set()  # variables the last function set: the next one does not see them
        self._environment_of: str | None = None  # the function whose environment os.environ holds
        self._running = 0  # its invocations under way
        self._environment_changed = threading.Condition()
        # One invocation at a time per execution environment, as in Lambda: a slot per environment.
        self._free = {logical_id: threading.BoundedSemaphore(environments) for logical_id in self.functions}
        self._waiting = dict.fromkeys(self.functions, 0)  # invocations waiting for an environment, by function
        self._waiting_changed = threading.Condition()

    def load(self) -> Self:
        """The init phase: import every handler with its function's environment, failing loudly."""
        for function in self.functions.values():
            if function.logical_id in self._handlers:
                continue
            self._apply_environment(function)
            code_root = str(function.code_uri)
            if code_root not in sys.path:
                sys.path.insert(0, code_root)  # what the runtime does with /var/task
            module_name, _, attribute = function.handler.rpartition(".")
            self._handlers[function.logical_id] = getattr(importlib.import_module(module_name), attribute)
        return self

    def context(self, logical_id: str, timeout: float | None = None) -> LambdaContext:
        """A fresh Lambda context for one invocation of the function, its deadline ``timeout`` from now."""
        function = self.functions[logical_id]
        return LambdaContext(
            function_name=function.logical_id,
            memory_limit_in_mb=function.memory_size,
            invoked_function_arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{function.logical_id}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + (function.timeout if timeout is None else timeout),
            log_group_name=f"/aws/lambda/{function.logical_id}",
        )

    def call(self, logical_id: str, event: dict[str, Any], context: LambdaContext | None = None) -> Any:
        """Invoke the function with ``event`` in a free execution environment and return its result, by its
        context's deadline.

        FunctionTimedOut past the deadline (the call goes on in its thread, its result unused), or
        NoEnvironmentFree if none freed by then; FunctionFailed if the function raised. Invocations of one
        function run concurrently, one per environment. Call it once the handlers are imported (``load``).
        """
        context = context or self.context(logical_id)
        with self.execution_environment(logical_id, context.deadline):
            return self.invoke(logical_id, event, context)

    @contextlib.contextmanager
    def execution_environment(self, logical_id: str, deadline: float) -> Iterator[None]:
        """An execution environment of the function, held for one invocation; NoEnvironmentFree if every one
        stays busy past ``deadline`` (on time.monotonic())."""
        free = self._free[logical_id]
        if not free.acquire(blocking=False) and not self._wait_for_environment(logical_id, deadline):
            raise NoEnvironmentFree(f"{logical_id}: no execution environment freed before the deadline")
        try:
            yield
        finally:
            free.release()

    def _wait_for_environment(self, logical_id: str, deadline: float) -> bool:
        """Whether an execution environment of the function freed before ``deadline``, counted as waiting meanwhile."""
        with self._waiting_changed:
            self._waiting[logical_id] += 1
            self._waiting_changed.notify_all()
        try:
            return self._free[logical_id].acquire(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            with self._waiting_changed:
                self._waiting[logical_id] -= 1
                self._waiting_changed.notify_all()

    def wait_for_waiting(self, logical_id: str, count: int, timeout: float) -> bool:
        """Whether ``count`` invocations of the function wait for an execution environment, now or within
        ``timeout`` seconds (a test's way to know an invocation is queued)."""
        with self._waiting_changed:
            return self._waiting_changed.wait_for(lambda: self._waiting[logical_id] == count, timeout)

    def invoke(self, logical_id: str, event: dict[str, Any], context: LambdaContext) -> Any:
        """Invoke the function in the execution environment the caller holds; as ``call`` otherwise."""
        function = self.functions[logical_id]
        if not self._enter_environment(function, context.deadline):
            raise FunctionTimedOut(f"{logical_id} waited past its deadline for another function's environment")
        outcome: list[tuple[bool, Any]] = []
        done = threading.Event()

        def invoke() -> None:
            try:
                outcome.append((True, self._handlers[logical_id](event, context)))
            except BaseException as error:  # reported to the caller, as Lambda reports an unhandled error
                outcome.append((False, error))
            finally:
                done.set()

        try:
            threading.Thread(target=invoke, name=f"invoke-{context.aws_request_id}", daemon=True).start()
            finished = done.wait(max(0.0, context.deadline - time.monotonic()))
        finally:
            self._leave_environment()
        if not finished:
            raise FunctionTimedOut(f"{logical_id} did not return within {function.timeout} s")
        succeeded, value = outcome[0]
        if not succeeded:
            raise FunctionFailed(f"{logical_id} raised {type(value).__name__}") from value
        return value

    def _apply_environment(self, function: LocalFunction) -> None:
        """The function's environment: what the runtime sets, the template's variables, then credentials."""
        environment = {
            **runtime_environment(function, self.region, function.logical_id),
            **function.environment,
            **self._environment,
        }
        for name in (*_NOT_IN_LAMBDA, *(self._applied - set(environment))):
            os.environ.pop(name, None)
        os.environ.update(environment)
        self._applied = set(environment)
        self._environment_of = function.logical_id

    def _enter_environment(self, function: LocalFunction, deadline: float) -> bool:
        """Take os.environ for ``function``; False if the deadline passed while another function held it."""
        with self._environment_changed:
            free = self._environment_changed.wait_for(
                lambda: self._running == 0 or self._environment_of == function.logical_id,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            if not free:
                return False
            if self._environment_of != function.logical_id:
                self._apply_environment(function)
            self._running += 1
            return True

    def _leave_environment(self) -> None:
        with self._environment_changed:
            self._running -= 1
            if self._running == 0:
                self._environment_changed.notify_all()
