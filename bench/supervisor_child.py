"""One supervisor invocation, as the benchmark runs it: a fresh interpreter that imports the supervisor's handler and
invokes it once with an asynchronous invocation's event, as Lambda does in a new execution environment.

Run as a script by ``python -I`` (as child.py is), with only the standard library until the handler's own import.
The argument is a JSON object: ``sys_path`` (the code, then its layers, then the runtime's boto3, as Lambda orders
them), ``handler`` (module.attribute), ``event``, ``function_name``, ``memory_mb``, ``timeout_seconds`` (the
context counts down from it) and ``report_fd``, where it writes one JSON line once the handler has returned. stdout
carries the function's logs and metrics, for the parent to keep.

The CPU time is the process's (every thread's, user and system apart, from getrusage) at the end of the import and
at the handler's return: the handler's is the difference, the import's (with the interpreter's start) the first.
"""

import json
import os
import resource
import sys
import time


class Context:
    """The attributes Powertools and the supervisor read from the runtime's context object."""

    aws_request_id = "00000000-0000-4000-8000-000000000001"

    def __init__(self, function_name: str, memory_mb: int, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def main() -> None:
    config = json.loads(sys.argv[1])
    report = os.fdopen(config["report_fd"], "w")
    sys.path[:0] = config["sys_path"]
    module_name, _, attribute = config["handler"].rpartition(".")

    started = time.perf_counter()
    handler = getattr(__import__(module_name, fromlist=[attribute]), attribute)
    imported = time.perf_counter()
    at_import = resource.getrusage(resource.RUSAGE_SELF)
    context = Context(config["function_name"], config["memory_mb"], config["timeout_seconds"])
    handler(config["event"], context)
    returned = time.perf_counter()
    at_return = resource.getrusage(resource.RUSAGE_SELF)
    report.write(
        json.dumps(
            {
                "import_ms": (imported - started) * 1e3,
                # Since exec: the interpreter's start and the import.
                "import_cpu_ms": (at_import.ru_utime + at_import.ru_stime) * 1e3,
                "handler_ms": (returned - imported) * 1e3,
                "handler_user_ms": (at_return.ru_utime - at_import.ru_utime) * 1e3,
                "handler_sys_ms": (at_return.ru_stime - at_import.ru_stime) * 1e3,
                "peak_rss_kb": _peak_rss_kb(),
                "websockets_imported": "websockets" in sys.modules,
                "boto3_imported": "boto3" in sys.modules,
                "botocore_imported": any(name.startswith("botocore.") for name in sys.modules),
                "pydantic_imported": "pydantic" in sys.modules,
            }
        )
        + "\n"
    )
    report.close()


def _peak_rss_kb() -> int:
    """This process's peak resident set since exec (VmHWM; see child.py)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
