"""Logger, metrics and tracing, created once; every module imports them from here."""

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, single_metric
from aws_lambda_powertools.metrics import MetricUnit

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


def count(name: str, **dimensions: str) -> None:
    """Emit one EMF count with its own dimensions (on top of the service dimension)."""
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=_namespace()) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


def milliseconds(name: str, value: float) -> None:
    with single_metric(name=name, unit=MetricUnit.Milliseconds, value=value, namespace=_namespace()):
        pass
