"""Logger, metrics and tracing, created once; every module imports them from here."""

import functools
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any


class _OnFirstUse:
    """A finder of the named modules that leaves each to run on its first use, not when it is imported."""

    def __init__(self, *names: str) -> None:
        self._names = frozenset(names)

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name not in self._names:
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


# Powertools' Logger imports its JMESPath utilities (with jmespath, typing_extensions and gzip: about 2.5 ms of
# every cold start) for a correlation_id_path, which this function never gives; they still load if ever used.
sys.meta_path.insert(0, _OnFirstUse("aws_lambda_powertools.utilities.jmespath_utils"))

from aws_lambda_powertools import Logger  # noqa: E402 - Powertools after the finder
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit  # noqa: E402
from aws_lambda_powertools.metrics.functions import is_metrics_disabled  # noqa: E402

logger = Logger()


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() in ("false", "0")


def traced[F: Callable[..., Any]](function: F) -> F:
    """Trace a function with X-Ray when tracing is on.

    When it is off the X-Ray SDK is never imported: it costs about 100 ms of cold start. When it is
    on, return values are never recorded: they hold the API key and minted client secrets.
    """
    if not tracing_enabled():
        return function
    from aws_lambda_powertools import Tracer

    return Tracer().capture_method(capture_response=False)(function)


def traced_handler[F: Callable[..., Any]](handler: F) -> F:
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler, capture_response=False)  # type: ignore[return-value]


def _namespace() -> str:
    # The template sets it; a missing one must not turn a mint into a 500.
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "TokenVending"


# One EMF emitter per container, flushed after each metric: each metric keeps its own dimensions, as
# with single_metric, without building a new emitter every time (a third of single_metric's cost).
_metrics: EphemeralMetrics | None = None
_metrics_lock = threading.Lock()


def _emitter() -> EphemeralMetrics:
    global _metrics
    service = os.environ.get("POWERTOOLS_SERVICE_NAME")
    if _metrics is None or (_metrics.namespace, _metrics.service) != (_namespace(), service):
        _metrics = EphemeralMetrics(namespace=_namespace(), service=service)
    return _metrics


def _emit(name: str, unit: MetricUnit, value: float, dimensions: dict[str, str]) -> None:
    """One metric, published by service alone (what alarms watch) and, with dimensions, by them too."""
    with _metrics_lock:
        metrics = _emitter()
        try:
            if dimensions:
                metrics.add_dimensions(service=_service(), **dimensions)
            metrics.add_metric(name=name, unit=unit, value=value)
            metrics.flush_metrics()
        finally:
            metrics.clear_metrics()


def log_mint(
    endpoint: str, profile: str, upstream_ms: float, *, spend_brake_used: int | None = None, **fields: Any
) -> None:
    """The mint's log line, carrying the mint's metrics: ClientSecretsMinted and the UpstreamLatency of the
    call, published by service alone and by service, endpoint and profile; with a spend brake, SpendBrakeUsed
    (its count after this mint) too.

    CloudWatch takes metrics from any JSON log line with an ``_aws`` key, so the line is the metrics'
    EMF document and no second line is written (one cost about 90 us of every warm mint). Powertools
    builds the document's shape once per endpoint and profile; each mint fills in its time and latency.
    When INFO lines are not written (LogLevel WARNING or ERROR) or metrics are switched off, the metrics
    go through Powertools on their own, like every other metric here.
    """
    if logging.getLogger(logger.name).isEnabledFor(logging.INFO) and not is_metrics_disabled():
        braked = spend_brake_used is not None
        shape = _mint_shape(_namespace(), _service(), endpoint, profile, braked)
        document = {
            **shape,
            "_aws": {**shape["_aws"], "Timestamp": int(time.time() * 1000)},
            "UpstreamLatency": [upstream_ms],
            **({"SpendBrakeUsed": [spend_brake_used]} if braked else {}),
        }
        logger.info("client secret minted", **fields, **document)  # the document names endpoint and profile
        return
    logger.info("client secret minted", endpoint=endpoint, profile=profile, **fields)
    with _metrics_lock:
        metrics = _emitter()
        try:
            _add_mint(metrics, _service(), endpoint, profile, upstream_ms, spend_brake_used)
            metrics.flush_metrics()
        finally:
            metrics.clear_metrics()


def log_opened(way: str, profile: str, upstream_ms: float, **fields: Any) -> None:
    """A session the service opened itself (``way``: a GPT-Live session, a Realtime call): its log line, never with
    the SDP; SessionsOpened by way and profile, and the UpstreamLatency of the call."""
    logger.info("session opened", way=way, profile=profile, **fields)
    count("SessionsOpened", way=way, profile=profile)
    milliseconds("UpstreamLatency", upstream_ms)


@functools.cache  # endpoints and profiles are the few the routes and the policy name
def _mint_shape(namespace: str, service: str, endpoint: str, profile: str, braked: bool) -> dict[str, Any]:
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    _add_mint(metrics, service, endpoint, profile, upstream_ms=0, spend_brake_used=0 if braked else None)
    return dict(metrics.serialize_metric_set())


def _add_mint(
    metrics: EphemeralMetrics,
    service: str,
    endpoint: str,
    profile: str,
    upstream_ms: float,
    spend_brake_used: int | None,
) -> None:
    metrics.add_dimensions(service=service, endpoint=endpoint, profile=profile)
    metrics.add_metric(name="ClientSecretsMinted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="UpstreamLatency", unit=MetricUnit.Milliseconds, value=upstream_ms)
    if spend_brake_used is not None:
        metrics.add_metric(name="SpendBrakeUsed", unit=MetricUnit.Count, value=spend_brake_used)


def _service() -> str:
    # The service the Logger names in every line, and so the dimension the mint's line publishes.
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or "service_undefined"


def count(name: str, **dimensions: str) -> None:
    """Emit one EMF count with its own dimensions (on top of the service dimension)."""
    _emit(name, MetricUnit.Count, 1, dimensions)


def milliseconds(name: str, value: float) -> None:
    _emit(name, MetricUnit.Milliseconds, value, {})


def amount(name: str, value: float, **dimensions: str) -> None:
    """Emit one EMF count of ``value`` (several at once, such as a supervisor's skipped messages since its last
    tick) with its own dimensions."""
    _emit(name, MetricUnit.Count, value, dimensions)


def metered(tokens_in: int, tokens_out: int, cost_micro_usd: int) -> None:
    """An event of a call metered (counted once in its ledger): Tokens by direction, and its Cost in dollars."""
    _emit("Tokens", MetricUnit.Count, tokens_in, {"direction": "input"})
    _emit("Tokens", MetricUnit.Count, tokens_out, {"direction": "output"})
    cost_metered(cost_micro_usd)


def cost_metered(cost_micro_usd: int) -> None:
    """Cost metered into a call's ledger (a response's tokens, or a GPT-Live session's billed seconds), in dollars:
    what the daily cost alarm sums."""
    _emit("Cost", MetricUnit.NoUnit, cost_micro_usd / 1_000_000, {})


def call_ended(reason: str, seconds: float, **fields: Any) -> None:
    """A call or Live session the service opened has ended (``reason``): its log line (the caller as its safety
    identifier, never the session, an SDP or a key), CallsEnded by reason and its CallSeconds."""
    logger.info("call ended", reason=reason, seconds=round(seconds, 1), **fields)
    count("CallsEnded", reason=reason)
    _emit("CallSeconds", MetricUnit.Seconds, max(0.0, seconds), {})
