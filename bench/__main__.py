"""`make bench`: the function as `sam build` built it, side by side with a bare urllib3 handler (floor.py).

Both run as Lambda would run them, on the same loopback stand-ins: one moto server (LocalAws) with the
Secrets Manager secret (behind a Parameters and Secrets Extension stand-in, or asked directly) and the
template's quota table (local/quota_table.py), and the OpenAI stub. Each container is a fresh interpreter
(child.py). Cold runs alternate floor and function, round after round; warm figures come from one
container per handler invoked ``--invocations`` times after its first call.

"default" is the function with the template's default parameters, whatever they choose; "ours" is it reading
the key from Secrets Manager's API explicitly (today's default: the two agree), "ours-extension" through the
extension. Every variant of the function has the caller's identity and quotas on:
the template's QUOTA_TABLE_NAME (the table in moto) and a policy that is the shipped one, with the same
windows and spend brake but every limit raised to 10**9 mints, so that a run of thousands of mints by one
user is never refused. That policy is validated and recorded as `sam build` records the bundled one
(``python -m voice_access.config.policy_check FILE`` with the build's code and the pinned pydantic), so a cold start
reads it without pydantic. The floor has no quota: it is what the quota costs, among the rest.

Besides cold starts, warm latency, memory and size, it reports how long a warm mint waits on the store
(the mint's log line's ``quota_ms``) and on OpenAI (its ``UpstreamLatency``; the floor times its urllib3 call
the same way), the store requests per mint (counted at moto), and each handler's own work per warm mint: the
container's CPU time over the invocation, every thread's, which is its wall time less every wait. (Its wall time
less the two timed waits is reported too, but those timers wrap each client's own work as well: the floor's
wraps all of its urllib3 work and ours the store requests' signing, JSON and connections.)

A start-to-first-answer measurement of its own runs ``--pairs`` pairs of a floor and a default container back
to back, the pair's order alternating, each timed from spawning the interpreter to the first answer back: the
median of the pairs' ratios is the figure least moved by the machine's load drifting. Each cold start's CPU
time (the interpreter's start, the import and the first invocation, without the waits) is reported beside it.

Last, the supervisor (supervisor.py): its handler as built, in a fresh interpreter as Lambda runs an asynchronous
invocation, watching a Realtime call (a response asked for every ``--turn-seconds``) and a GPT-Live session side by
side for ``--supervisor-seconds`` of call each: its CPU per minute of call, memory and events, and Lambda's cost per
1,000 call minutes beside the model's.

Prints a table and writes the figures to bench-results.json (``--output``). ``--quick`` runs a few of
everything, to prove the benchmark works (``make test``); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import supervisor
from local import quota_table
from local.aws import LocalAws
from local.gateway import LocalApi
from local.quota_table import LocalTables
from local.secrets_extension import LOCAL_LAYER_ARN, SecretsExtension
from local.secrets_manager import LocalSecretsManager
from openai_stub.server import OpenAIStub

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TEMPLATE = ROOT / "template.yaml"
FUNCTION = "TokenVendingFunction"
EVENT = ROOT / "events" / "client_secrets.json"
# A read of the secret, at moto: by the function itself, or by the extension stand-in on its behalf.
_SECRET_READ = "secretsmanager.GetSecretValue"  # noqa: S105 - an operation's name
# Fake, and distinct, so a leak into the logs is unmistakable.
API_KEY = "sk-bench-3f9a1c7e5d2b"
SAFETY_KEY = "floor-safety-key-8c2e6a0f4b7d1e9c3a5f"  # the floor's own; the function's is in the local secret
# A Lambda Python runtime is the interpreter and the AWS SDK; `make bench` installs that SDK here.
DEFAULT_BUILD = ROOT / ".aws-sam" / "bench" / "build"
DEFAULT_RUNTIME = ROOT / ".aws-sam" / "bench" / "runtime"
# Warm runs alternate floor and ours this many times, so that a drift in the machine's speed hits both.
WARM_CONTAINERS = 2
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
# The bench policy's every mint limit: far above any run's mints (the most policy.py allows).
BENCH_MINTS = 10**9
MINTED = "client secret minted"


@dataclass
class Variant:
    """A handler and the container it runs in."""

    name: str
    sys_path: list[str]
    handler: str
    environment: dict[str, str]
    via_extension: bool = False
    cold_ms: list[float] = field(default_factory=list)
    import_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    cold_cpu_ms: list[float] = field(default_factory=list)  # the container's CPU time up to its first answer
    paired_ms: list[float] = field(default_factory=list)  # start to first answer, in the floor/default pairs
    first_quota_ms: list[float] = field(default_factory=list)  # the first mint's wait on the store
    first_moto_ms: list[float] = field(default_factory=list)  # moto's time answering the first mint's requests
    warm: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stand:
    """The stand-ins every variant talks to."""

    stub: OpenAIStub
    aws: LocalAws
    extension: SecretsExtension
    secrets: LocalSecretsManager
    tables: LocalTables
    policy: Path
    xray_daemon: socket.socket
    logs: Path
    floor: Path  # floor.py and its bytecode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD, help="a `sam build` output for this machine")
    parser.add_argument("--runtime-dir", type=Path, default=DEFAULT_RUNTIME, help="the AWS SDK a Lambda runtime has")
    parser.add_argument("--rounds", type=int, default=15, help="cold starts of each handler, interleaved")
    parser.add_argument("--invocations", type=int, default=2000, help="warm invocations of each handler")
    parser.add_argument("--pairs", type=int, default=35, help="floor/default pairs, start to first answer")
    parser.add_argument(
        "--supervisor-seconds", type=float, default=30.0, help="call time the supervisor watches (each call's length)"
    )
    parser.add_argument(
        "--turn-seconds", type=float, default=5.0, help="a response asked for on the supervised call this often"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results.json")
    parser.add_argument(
        "--quick", action="store_true", help="2 rounds, 50 invocations, 2 pairs, a 5-second call: proves it runs"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.invocations, args.pairs, args.supervisor_seconds = 2, 50, 2, 5.0
    needed_paths = [args.build_dir / FUNCTION, args.build_dir / "DependenciesLayer", args.runtime_dir / "boto3"]
    needed_paths += [args.build_dir / supervisor.FUNCTION, *(args.build_dir / layer for layer in supervisor.LAYERS)]
    for needed in needed_paths:
        if not needed.exists():
            print(f"make bench: {needed} is missing; run `make bench`, which builds it", file=sys.stderr)
            return 1

    with ExitStack() as running:
        stand = _stand_up(running, args.build_dir)
        variants = _variants(args.build_dir, args.runtime_dir, stand)
        print(
            f"quotas on: the shipped policy's windows and spend brake, each limit raised to {BENCH_MINTS:,} mints"
            f" ({stand.policy}, validated and recorded as sam build records the bundled one), in the template's"
            f" {', '.join(table.logical_id for table in stand.tables.tables)} in moto",
            flush=True,
        )
        warmed = [variants[name] for name in ("floor", "ours", "default")]
        print(f"cold starts: {args.rounds} rounds of {', '.join(variants)}, interleaved", flush=True)
        for round_number in range(args.rounds):
            order = list(variants.values())
            shift = round_number % len(order)  # each handler takes each place in turn
            for variant in order[shift:] + order[:shift]:
                _cold_start(variant, stand)
        floor, default = variants["floor"], variants["default"]
        print(f"start to first answer: {args.pairs} pairs of floor and default, the order alternating", flush=True)
        for pair in range(args.pairs):
            for variant in (floor, default) if pair % 2 == 0 else (default, floor):
                variant.paired_ms.append(_run(variant, stand, invocations=0)[0])
        containers = 1 if args.quick else WARM_CONTAINERS
        print(
            f"warm: {containers} containers each of {', '.join(v.name for v in warmed)}, alternating,"
            f" {args.invocations} invocations each after its first",
            flush=True,
        )
        for _ in range(containers):
            for variant in warmed:
                _warm(variant, stand, args.invocations)
        print(
            f"supervisor: a Realtime call (a response every {args.turn_seconds:g} s) and a GPT-Live session, side by"
            f" side, {args.supervisor_seconds:g} s each",
            flush=True,
        )
        supervised = supervisor.measure(
            stub=stand.stub,
            aws_endpoint=stand.aws.endpoint_url,
            secrets=stand.secrets,
            tables=stand.tables,
            logs=stand.logs,
            build=args.build_dir,
            runtime=args.runtime_dir,
            seconds=args.supervisor_seconds,
            turn_seconds=args.turn_seconds,
            api_key=API_KEY,
        )
        log_lines = _check_logs(stand.logs, [v.name for v in warmed], expected=containers * (args.invocations + 1))

    results = _results(variants, _build_bytes(args.build_dir), args, log_lines, stand.policy)
    results["supervisor"] = supervised
    _print_table(results, variants)
    supervisor.print_table(supervised)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    if results["aws_sdk_imported_default"]:
        print(
            "make bench: the default deployment imported the AWS SDK (boto3 or botocore's modules), which its"
            " cold start must not pay for: see `python -X importtime` on voice_access.edge.app",
            file=sys.stderr,
        )
        return 1
    if results["jmespath_imported_default"]:
        print(
            "make bench: the default deployment imported jmespath, which its cold start must not pay for: see"
            " voice_access/observability.py and `python -X importtime` on voice_access.edge.app",
            file=sys.stderr,
        )
        return 1
    return 0


def _stand_up(running: ExitStack, build: Path) -> Stand:
    stub = running.enter_context(OpenAIStub(api_key=API_KEY))
    aws = running.enter_context(LocalAws())
    secrets = running.enter_context(LocalSecretsManager(api_key=API_KEY, aws=aws))
    extension = running.enter_context(SecretsExtension(secrets.client_environment()))
    overrides = {"OpenAIApiKeySecretArn": secrets.secret_arn, "OpenAIUpstreamUrl": stub.base_url}
    tables = quota_table.create_from_template(TEMPLATE, overrides, aws.endpoint_url)
    # Tracing sends segments over UDP to the X-Ray daemon: this socket takes them and nobody reads them.
    daemon = running.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    daemon.bind(("127.0.0.1", 0))
    logs = Path(running.enter_context(tempfile.TemporaryDirectory(prefix="bench-logs-")))
    policy = _bench_policy(build, Path(running.enter_context(tempfile.TemporaryDirectory(prefix="bench-policy-"))))
    floor = _compiled_floor(Path(running.enter_context(tempfile.TemporaryDirectory(prefix="bench-floor-"))))
    return Stand(stub, aws, extension, secrets, tables, policy, daemon, logs, floor)


def _compiled_floor(into: Path) -> Path:
    """floor.py in ``into`` with its bytecode, compiled as the build compiles the function's (functions/Makefile):
    each container then loads it, as it loads the function, rather than compiling it again."""
    shutil.copy(HERE / "floor.py", into / "floor.py")
    py_compile.compile(str(into / "floor.py"), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return into


def _bench_policy(build: Path, into: Path) -> Path:
    """The build's policy with its windows and spend brake as they are and every limit at BENCH_MINTS, in
    ``into``, validated and recorded by the build's own code with the pinned pydantic (functions/Makefile)."""
    document = json.loads((build / FUNCTION / "voice_access" / "config" / "policy.json").read_text())
    for profile in document["profiles"].values():
        for window in (profile.get("limits") or {}).get("per_caller", []):
            window["mints"] = BENCH_MINTS
    if "spend_brake" in document:
        document["spend_brake"]["mints"] = BENCH_MINTS
    path = into / "policy.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    environment = {**os.environ, "PYTHONPATH": str(build / FUNCTION), "PYTHONDONTWRITEBYTECODE": "1"}
    recorded = subprocess.run(  # noqa: S603 - our own interpreter and the build's module
        [sys.executable, "-P", "-m", "voice_access.config.policy_check", str(path)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if recorded.returncode != 0:
        raise SystemExit(f"make bench: the bench policy was refused:\n{recorded.stderr}")
    return path


def _variants(build: Path, runtime: Path, stand: Stand) -> dict[str, Variant]:
    """floor; ours (the key from Secrets Manager's API); the template's defaults; ours through the extension; ours
    traced."""
    lambda_environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        # A container Lambda starts for a request, as every cold start here is.
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}",
        "LAMBDA_TASK_ROOT": str(build / FUNCTION),
        "LAMBDA_RUNTIME_DIR": str(runtime),
        **stand.secrets.client_environment(),
        "AWS_SESSION_TOKEN": stand.extension.session_token,
    }

    def function(name: str, **overrides: str) -> Variant:
        parameters = {
            "OpenAIApiKeySecretArn": stand.secrets.secret_arn,
            "OpenAIUpstreamUrl": stand.stub.base_url,
            **overrides,
        }
        found = LocalApi.from_template(TEMPLATE, parameters, physical=stand.tables.physical).functions[FUNCTION]
        environment = {
            **lambda_environment,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(found.memory_size),
            **found.environment,
            **stand.tables.function_environment(),
            "POLICY_PATH": str(stand.policy),
        }
        layers = [str(build / "DependenciesLayer" / "python")]
        # As the template decides: it sets the port only where it attaches the extension.
        via_extension = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" in found.environment
        if via_extension:
            environment["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] = str(stand.extension.port)
        if found.environment.get("POWERTOOLS_TRACE_DISABLED") == "false":
            layers.append(str(build / "TracingLayer" / "python"))
            environment["AWS_XRAY_DAEMON_ADDRESS"] = f"127.0.0.1:{stand.xray_daemon.getsockname()[1]}"
            environment["_X_AMZN_TRACE_ID"] = TRACE_HEADER
        return Variant(name, [str(build / FUNCTION), *layers, str(runtime)], found.handler, environment, via_extension)

    floor_environment = {
        **lambda_environment,
        "OPENAI_UPSTREAM_URL": stand.stub.base_url,
        "OPENAI_API_KEY": API_KEY,
        "SAFETY_IDENTIFIER_KEY": SAFETY_KEY,
    }
    return {
        "floor": Variant("floor", [str(stand.floor), str(runtime)], "floor.lambda_handler", floor_environment),
        "ours": function("ours", SecretsReader="direct"),
        "default": function("default"),
        "ours-extension": function(
            "ours-extension", SecretsReader="extension", SecretsExtensionLayerArn=LOCAL_LAYER_ARN
        ),
        "ours-traced": function("ours-traced", EnableTracing="true"),
    }


def _run(variant: Variant, stand: Stand, invocations: int) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Start a container, wait for its first answer (the cold start), then for the rest of its run."""
    config = {
        "sys_path": variant.sys_path,
        "handler": variant.handler,
        "event": json.loads(EVENT.read_text()),
        "invocations": invocations,
    }
    read_end, write_end = os.pipe()
    config["report_fd"] = write_end
    with (stand.logs / f"{variant.name}.log").open("ab") as log:
        started = time.perf_counter()
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys._base_executable, "-I", "-B", str(HERE / "child.py"), json.dumps(config)],  # type: ignore[attr-defined]
            env=variant.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            cwd=tempfile.gettempdir(),
        )
        os.close(write_end)
        with os.fdopen(read_end) as report:
            first_line = report.readline()
            cold_ms = (time.perf_counter() - started) * 1e3
            last_line = report.readline()
        if child.wait(timeout=600) != 0 or not first_line or not last_line:
            raise SystemExit(
                f"make bench: {variant.name} failed; see its log:\n{_tail(stand.logs / f'{variant.name}.log')}"
            )
    first, last = json.loads(first_line), json.loads(last_line)
    if first["status"] != 200 or any(status != 200 for status in last["statuses"]):
        raise SystemExit(f"make bench: {variant.name} did not mint (status {first['status']}, then {last['statuses']})")
    return cold_ms, first, last


def _cold_start(variant: Variant, stand: Stand) -> None:
    logged, moto_seconds = _log_size(stand, variant), stand.aws.dynamodb_seconds["UpdateItem"]
    cold_ms, first, _ = _run(variant, stand, invocations=0)
    variant.cold_ms.append(cold_ms)
    variant.import_ms.append(first["import_ms"])
    variant.first_ms.append(first["first_ms"])
    variant.cold_cpu_ms.append(first["cpu_ms"])
    if variant.name != "floor":
        variant.first_quota_ms.extend(_quota_ms(stand, variant, logged))
        variant.first_moto_ms.append((stand.aws.dynamodb_seconds["UpdateItem"] - moto_seconds) * 1e3)


def _warm(variant: Variant, stand: Stand, invocations: int) -> None:
    """One more warm container: its latencies join the variant's; counts are each container's own."""
    connections, fetches = stand.stub.connections, stand.aws.requests[_SECRET_READ]
    store_requests, logged = stand.aws.dynamodb_requests["UpdateItem"], _log_size(stand, variant)
    moto_seconds = stand.aws.dynamodb_seconds["UpdateItem"]
    stand.stub.reset()
    _, _, last = _run(variant, stand, invocations)
    latencies = sorted([*variant.warm.get("latencies_ms", []), *(ns / 1e6 for ns in last["latencies_ns"])])
    previous = variant.warm
    mints = previous.get("mints", 0) + invocations + 1
    store_requests = previous.get("store_requests", 0) + stand.aws.dynamodb_requests["UpdateItem"] - store_requests
    moto_seconds = previous.get("moto_seconds", 0) + stand.aws.dynamodb_seconds["UpdateItem"] - moto_seconds
    walls = [ns / 1e6 for ns in last["latencies_ns"]]
    if variant.name == "floor":
        upstream, store = [ns / 1e6 for ns in last["upstream_ns"]], [0.0] * len(walls)
    else:
        # The container's first mint is its cold start's: the warm ones follow it, one line each, in order.
        minted = _minted_lines(stand, variant, logged)[1:]
        if len(minted) != len(walls):
            raise SystemExit(f"make bench: {variant.name} logged {len(minted)} warm mints, not {len(walls)}")
        upstream = [float(line["UpstreamLatency"][0]) for line in minted]
        store = [float(line["quota_ms"]) for line in minted]
    outside = [wall - up - waited for wall, up, waited in zip(walls, upstream, store, strict=True)]
    quota_ms = sorted([*previous.get("quota_ms", []), *store]) if variant.name != "floor" else []
    outside_ms = sorted([*previous.get("outside_ms", []), *outside])
    upstream_ms = sorted([*previous.get("upstream_ms", []), *upstream])
    own_ms = sorted([*previous.get("own_ms", []), *(ns / 1e6 for ns in last["cpu_ns"])])
    variant.warm = {
        "latencies_ms": latencies,
        "outside_ms": outside_ms,
        "upstream_ms": upstream_ms,
        "own_ms": own_ms,
        "containers": previous.get("containers", 0) + 1,
        "invocations": len(latencies),
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        # Own work: the container's CPU time over the invocation, every thread's (its wall time less every wait).
        "own_work_p50_ms": _percentile(own_ms, 50),
        "own_work_p99_ms": _percentile(own_ms, 99),
        "upstream_wait_p50_ms": _percentile(upstream_ms, 50),
        # Wall time less the waits on the store and OpenAI as the handler timed them (client work included in those).
        "outside_timed_waits_p50_ms": _percentile(outside_ms, 50),
        "peak_rss_mb": max(previous.get("peak_rss_mb", 0), last["peak_rss_kb"] / 1024),
        # Over each container's whole life (its cold start and every warm invocation): the most any opened.
        "upstream_connections": max(previous.get("upstream_connections", 0), stand.stub.connections - connections),
        "secret_fetches": max(previous.get("secret_fetches", 0), stand.aws.requests[_SECRET_READ] - fetches),
        "boto3_imported": last["boto3_imported"],
        "botocore_imported": last["botocore_imported"],
        "pydantic_imported": last["pydantic_imported"],
        "jmespath_imported": last["jmespath_imported"],
        "mints": mints,
        "store_requests": store_requests,
        "store_requests_per_mint": round(store_requests / mints, 3),
        "moto_seconds": moto_seconds,
        # moto (Python) answering the mint's requests one after the other, of the time the mint waits.
        "moto_ms_per_mint": round(moto_seconds * 1e3 / mints, 3),
    }
    if quota_ms:
        variant.warm |= {
            "quota_ms": quota_ms,
            "quota_p50_ms": _percentile(quota_ms, 50),
            "quota_p99_ms": _percentile(quota_ms, 99),
        }


def _log_size(stand: Stand, variant: Variant) -> int:
    log = stand.logs / f"{variant.name}.log"
    return log.stat().st_size if log.exists() else 0


def _minted_lines(stand: Stand, variant: Variant, offset: int) -> list[dict[str, Any]]:
    """The mint lines the variant logged from ``offset`` on; quotas off refuse the run."""
    with (stand.logs / f"{variant.name}.log").open("rb") as log:
        log.seek(offset)
        lines = [json.loads(line) for line in log.read().splitlines() if line.startswith(b"{")]
    minted = [line for line in lines if line.get("message") == MINTED]
    if not minted or any("quota_ms" not in line for line in minted):
        raise SystemExit(f"make bench: {variant.name} minted without a quota check; the bench measures quotas on")
    return minted


def _quota_ms(stand: Stand, variant: Variant, offset: int) -> list[float]:
    """The store waits of the mints the variant logged from ``offset`` on."""
    return [float(line["quota_ms"]) for line in _minted_lines(stand, variant, offset)]


def _check_logs(logs: Path, names: list[str], expected: int) -> int:
    """Speed bought by dropping a feature does not count: the function logged and counted every mint."""
    checked = 0
    for name in names:
        if name == "floor":
            continue
        text = (logs / f"{name}.log").read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        # A mint counts only if its line names the caller by a safety identifier (as the stub required it).
        minted_logs = sum(1 for line in lines if line.get("message") == MINTED and len(line.get("user", "")) == 64)
        minted_metrics = sum(1 for line in lines if "ClientSecretsMinted" in line)
        if minted_logs < expected or minted_metrics < expected:
            raise SystemExit(
                f"make bench: {name} logged {minted_logs} mints and counted {minted_metrics}, not {expected}"
            )
        checked += len(lines)
    if API_KEY in "".join(path.read_text() for path in logs.iterdir()):
        raise SystemExit("make bench: the API key appeared in a log")
    return checked


def _build_bytes(build: Path) -> dict[str, int]:
    def size(path: Path) -> int:
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())

    return {name: size(build / name) for name in (FUNCTION, "DependenciesLayer", "TracingLayer")}


def _percentile(ordered: list[float], percent: float) -> float:
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _results(
    variants: dict[str, Variant], sizes: dict[str, int], args: argparse.Namespace, log_lines: int, policy: Path
) -> dict[str, Any]:
    floor, ours, default = variants["floor"], variants["ours"], variants["default"]
    cold = {name: statistics.median(variant.cold_ms) for name, variant in variants.items()}
    cold_cpu = {name: statistics.median(variant.cold_cpu_ms) for name, variant in variants.items()}
    build_bytes = sizes[FUNCTION] + sizes["DependenciesLayer"]
    pair_ratios = [mine / its for mine, its in zip(default.paired_ms, floor.paired_ms, strict=True)]
    return {
        "cold_ratio": round(cold["ours"] / cold["floor"], 2),
        # The median of the floor/default pairs' ratios, each pair timed from spawning to the first answer.
        "start_to_first_answer_ratio": round(statistics.median(pair_ratios), 2),
        "own_work_p50_ratio": round(ours.warm["own_work_p50_ms"] / floor.warm["own_work_p50_ms"], 2),
        "own_work_p50_ratio_default": round(default.warm["own_work_p50_ms"] / floor.warm["own_work_p50_ms"], 2),
        "warm_p50_ratio": round(ours.warm["p50_ms"] / floor.warm["p50_ms"], 2),
        "warm_p99_ratio": round(ours.warm["p99_ms"] / floor.warm["p99_ms"], 2),
        "rss_ratio": round(ours.warm["peak_rss_mb"] / floor.warm["peak_rss_mb"], 2),
        "cold_ratio_default": round(cold["default"] / cold["floor"], 2),
        "rss_ratio_default": round(default.warm["peak_rss_mb"] / floor.warm["peak_rss_mb"], 2),
        "default_reads_key_via": "extension" if default.via_extension else "direct",
        "build_mb": round(build_bytes / 1e6, 2),
        "upstream_connections": ours.warm["upstream_connections"],
        "secret_fetches": ours.warm["secret_fetches"],
        # How long a mint waits on the quota store (its log line's quota_ms) and how many requests it makes there.
        "quota": {
            name: {
                "warm_p50_ms": variants[name].warm["quota_p50_ms"],
                "warm_p99_ms": variants[name].warm["quota_p99_ms"],
                "share_of_warm_p50": round(variants[name].warm["quota_p50_ms"] / variants[name].warm["p50_ms"], 2),
                "moto_ms_per_warm_mint": variants[name].warm["moto_ms_per_mint"],
                "first_mint_ms": round(statistics.median(variants[name].first_quota_ms), 2),
                "first_mint_moto_ms": round(statistics.median(variants[name].first_moto_ms), 2),
                "store_requests_per_mint": variants[name].warm["store_requests_per_mint"],
            }
            for name in ("ours", "default")
        },
        "aws_sdk_imported_default": default.warm["boto3_imported"] or default.warm["botocore_imported"],
        "jmespath_imported_default": default.warm["jmespath_imported"],
        "cold_ms": {name: round(value, 1) for name, value in cold.items()},
        "cold_ratio_by_variant": {name: round(value / cold["floor"], 2) for name, value in cold.items()},
        "import_ms": {name: round(statistics.median(v.import_ms), 1) for name, v in variants.items()},
        "cold_cpu_ms": {name: round(value, 1) for name, value in cold_cpu.items()},
        "start_to_first_answer": {
            "pairs": len(pair_ratios),
            "floor_ms": round(statistics.median(floor.paired_ms), 1),
            "default_ms": round(statistics.median(default.paired_ms), 1),
            "ratio_of_medians": round(statistics.median(default.paired_ms) / statistics.median(floor.paired_ms), 2),
            "median_pair_ratio": round(statistics.median(pair_ratios), 2),
            "pair_ratio_quartiles": [round(q, 2) for q in statistics.quantiles(pair_ratios, n=4)]
            if len(pair_ratios) > 1
            else [],
        },
        "first_invocation_ms": {name: round(statistics.median(v.first_ms), 2) for name, v in variants.items()},
        "warm": {
            name: {
                k: round(v, 3) if isinstance(v, float) else v
                for k, v in variants[name].warm.items()
                if k not in ("latencies_ms", "quota_ms", "outside_ms", "upstream_ms", "own_ms")
            }
            for name in ("floor", "ours", "default")
        },
        "build_bytes": {**sizes, "function_and_layer": build_bytes},
        "log_lines_checked": log_lines,
        "method": {
            "rounds": args.rounds,
            "invocations": args.invocations,
            "quick": args.quick,
            "python": sys.version.split()[0],
            "machine": os.uname().machine,
            "cpus": os.cpu_count(),
            "cold": "wall time from starting the interpreter to the first answer; median over rounds",
            "cold_cpu": "the container's CPU time from exec to its first answer (no waits); median over rounds",
            "start_to_first_answer": "floor and default back to back, order alternating; the median pair's ratio",
            "own_work": "the container's CPU time (every thread's) over one warm invocation: its wall time less"
            " every wait",
            "waits": "the store's: the mint line's quota_ms; OpenAI's: its UpstreamLatency (the floor: its urllib3"
            " call, timed the same way)",
            "quota": f"the shipped policy's windows and spend brake with every limit at {BENCH_MINTS} mints ({policy})",
            "store_requests": "UpdateItem requests moto answered during the warm containers, over their mints",
            "moto": "moto's own time answering UpdateItem (one at a time, as LocalAws serialises DynamoDB), per mint",
        },
    }


def _print_table(results: dict[str, Any], variants: dict[str, Variant]) -> None:
    warm, cold = results["warm"], results["cold_ms"]
    first, cpu, paired = results["first_invocation_ms"], results["cold_cpu_ms"], results["start_to_first_answer"]
    rows = [
        ("cold start, median (ms)", cold["floor"], cold["ours"], results["cold_ratio"]),
        ("  of which import (ms)", results["import_ms"]["floor"], results["import_ms"]["ours"], None),
        ("  of which first invocation (ms)", first["floor"], first["ours"], None),
        ("  CPU to the first answer (ms)", cpu["floor"], cpu["ours"], _ratio(cpu["ours"], cpu["floor"])),
        ("start to first answer, default (ms)", paired["floor_ms"], paired["default_ms"], None),
        (f"  median of {paired['pairs']} pairs' ratios", "", "", results["start_to_first_answer_ratio"]),
        (
            "  CPU to the first answer, default (ms)",
            cpu["floor"],
            cpu["default"],
            _ratio(cpu["default"], cpu["floor"]),
        ),
        ("warm p50 (ms)", warm["floor"]["p50_ms"], warm["ours"]["p50_ms"], results["warm_p50_ratio"]),
        ("warm p99 (ms)", warm["floor"]["p99_ms"], warm["ours"]["p99_ms"], results["warm_p99_ratio"]),
        (
            "warm own work p50, CPU (ms)",
            warm["floor"]["own_work_p50_ms"],
            warm["ours"]["own_work_p50_ms"],
            results["own_work_p50_ratio"],
        ),
        (
            "warm own work p50, CPU, default (ms)",
            warm["floor"]["own_work_p50_ms"],
            warm["default"]["own_work_p50_ms"],
            results["own_work_p50_ratio_default"],
        ),
        (
            "  wall less timed waits p50 (ms)",
            warm["floor"]["outside_timed_waits_p50_ms"],
            warm["ours"]["outside_timed_waits_p50_ms"],
            None,
        ),
        (
            "warm upstream wait p50 (ms)",
            warm["floor"]["upstream_wait_p50_ms"],
            warm["ours"]["upstream_wait_p50_ms"],
            None,
        ),
    ]
    for name in ("ours", "default"):
        quota, of = results["quota"][name], "" if name == "ours" else f", {name}"
        rows += [
            (f"warm store wait p50{of} (ms)", "-", quota["warm_p50_ms"], None),
            (f"warm store wait p99{of} (ms)", "-", quota["warm_p99_ms"], None),
            ("  moto answering, mean (ms)", "-", quota["moto_ms_per_warm_mint"], None),
            (f"first mint's store wait{of} (ms)", "-", quota["first_mint_ms"], None),
            ("  moto answering (ms)", "-", quota["first_mint_moto_ms"], None),
            (f"store requests per mint{of}", "-", quota["store_requests_per_mint"], None),
        ]
    rows += [
        ("peak RSS (MB)", warm["floor"]["peak_rss_mb"], warm["ours"]["peak_rss_mb"], results["rss_ratio"]),
        (
            "peak RSS, default (MB)",
            warm["floor"]["peak_rss_mb"],
            warm["default"]["peak_rss_mb"],
            results["rss_ratio_default"],
        ),
        ("upstream connections", warm["floor"]["upstream_connections"], warm["ours"]["upstream_connections"], None),
        ("secret fetches", "-", warm["ours"]["secret_fetches"], None),
    ]
    rows.append(("boto3/botocore imported, default", "-", "yes" if results["aws_sdk_imported_default"] else "no", None))
    rows.append(("jmespath imported, default", "-", "yes" if results["jmespath_imported_default"] else "no", None))
    rows += [
        (f"cold start, {name} (ms)", cold["floor"], cold[name], results["cold_ratio_by_variant"][name])
        for name in variants
        if name not in ("floor", "ours")
    ]
    print(f"\n{'':38} {'floor':>10} {'ours':>10} {'ours/floor':>11}")
    for label, floor_value, ours_value, ratio in rows:
        print(f"{label:38} {_cell(floor_value):>10} {_cell(ours_value):>10} {_cell(ratio, 'x'):>11}")
    sizes = results["build_bytes"]
    print(
        f"{'build, function + layer (MB)':38} {'':>10} {results['build_mb']:>10.2f}"
        f"   (function {sizes[FUNCTION] / 1e6:.2f}, layer {sizes['DependenciesLayer'] / 1e6:.2f};"
        f" tracing layer {sizes['TracingLayer'] / 1e6:.2f} when on; boto3 from the runtime)"
    )


def _ratio(mine: float, its: float) -> float:
    return round(mine / its, 2)


def _cell(value: Any, suffix: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


if __name__ == "__main__":
    sys.exit(main())
