"""One Lambda container, as the benchmark runs it: a fresh interpreter that imports a handler and invokes it.

Run as a script by ``python -I`` (no venv, no site-packages of the user, no PYTHON* variables), with only
the standard library until the handler's own import, so the handler pays for everything it loads. The
argument is a JSON object: ``sys_path`` (the code, then its layers, then the runtime's boto3, as Lambda
orders them), ``handler`` (module.attribute), ``event``, ``invocations`` after the first, and
``report_fd``, where it writes one JSON line after the first invocation and one at the end. stdout, which
carries the function's logs and metrics, is left to the parent to send wherever Lambda's would go.

Each warm invocation's wall time and this process's CPU time over it are read outside the handler; a handler
that times its own call to OpenAI (the floor: its module's ``upstream_ns``) has that read after it too.
"""

import json
import os
import sys
import time


class Context:
    """The attributes Powertools reads from the runtime's context object."""

    function_name = "TokenVendingFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:TokenVendingFunction"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def main() -> None:
    config = json.loads(sys.argv[1])
    report = os.fdopen(config["report_fd"], "w")
    sys.path[:0] = config["sys_path"]
    module_name, _, attribute = config["handler"].rpartition(".")
    event, context = config["event"], Context()

    started = time.perf_counter()
    module = __import__(module_name, fromlist=[attribute])
    handler = getattr(module, attribute)
    imported = time.perf_counter()
    status = handler(event, context)["statusCode"]
    first = time.perf_counter()
    report.write(
        json.dumps(
            {
                "status": status,
                "import_ms": (imported - started) * 1e3,
                "first_ms": (first - imported) * 1e3,
                # Since exec: the interpreter's start, the import and the first invocation, without the waits.
                "cpu_ms": time.process_time_ns() / 1e6,
            }
        )
        + "\n"
    )
    report.flush()

    latencies_ns, cpu_ns, upstream_ns, statuses = [], [], [], set()
    for _ in range(config["invocations"]):
        cpu_before = time.process_time_ns()
        before = time.perf_counter_ns()
        statuses.add(handler(event, context)["statusCode"])
        latencies_ns.append(time.perf_counter_ns() - before)
        cpu_ns.append(time.process_time_ns() - cpu_before)
        upstream_ns.append(getattr(module, "upstream_ns", None))

    report.write(
        json.dumps(
            {
                "statuses": sorted(statuses),
                "latencies_ns": latencies_ns,
                "cpu_ns": cpu_ns,
                "upstream_ns": upstream_ns,
                "peak_rss_kb": _peak_rss_kb(),
                "boto3_imported": "boto3" in sys.modules,
                # Powertools imports botocore's bare package (logging, os, re) to tag the SDK's user agent;
                # the SDK itself is its modules (botocore.session, .client, .auth, ...).
                "botocore_imported": any(name.startswith("botocore.") for name in sys.modules),
                "pydantic_imported": "pydantic" in sys.modules,
                "xray_imported": "aws_xray_sdk" in sys.modules,
                # Powertools' JMESPath utilities, left to load on first use (voice_access/observability.py).
                "jmespath_imported": "jmespath" in sys.modules,
            }
        )
        + "\n"
    )
    report.close()


def _peak_rss_kb() -> int:
    """This process's peak resident set since exec (VmHWM). getrusage's ru_maxrss would not do: on Linux
    it keeps the peak from before exec, that of the parent process this one was forked from."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
