"""One exchange at the local gateway: the request as the client sent it, the answer, and its access record. Apart
from gateway.py so that the authorizers and the console read them without importing the gateway."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the client sent it; ``target`` is path?query, percent-encoding intact."""

    method: str
    target: str
    headers: Iterable[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class LocalResponse:
    """What the gateway answers the client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class AccessRecord:
    """One request as the gateway served it; ``note`` says what API Gateway answered itself, and why."""

    started: datetime
    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    note: str = ""
