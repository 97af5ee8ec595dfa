"""One deadline per request, and the urllib3 connections that keep to it.

Lambda stops a function at its timeout, and the caller then gets API Gateway's bare 5xx instead of our
envelope. urllib3's timeouts bound each phase and each socket read, not their sum: an upstream that
sends its answer a byte at a time holds a request for as long as it likes. So each invocation gets one
`Deadline` (its remaining time less a margin to answer in), and every socket operation of a request
made through these pools under `keeping_to(deadline)` waits at most until then, and at most its own
phase's timeout. It is all in the calling thread (socket timeouts, no signals, no watchdog), so it holds
in a worker thread too, and costs a clock read and a ``settimeout`` per socket read.
"""

import contextlib
import http.client
import io
import socket
import time
from collections.abc import Buffer, Iterator
from contextvars import ContextVar
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError

# Kept back to answer once the deadline has passed. Answering (the envelope, its log line and metrics)
# takes about 1 ms, a few on a throttled 512 MB CPU; a second also covers a GC pause or a slow thaw. With
# the template's 20 s timeout it leaves 19 s, more than the 18 s the per-phase timeouts can add up to,
# so a full-length invocation is cut by the deadline only where it would have been killed.
ANSWER_MARGIN_SECONDS = 1.0
# For a context that does not say how long is left (one made by hand): the template's timeout.
DEFAULT_INVOCATION_SECONDS = 20.0


# Not a NamedTuple (about 60 us of every cold start to define): compared by its values, never used as a tuple.
class Deadline:
    """A moment on ``time.monotonic()`` by which a request's calls to other parties must be done."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Deadline) and other.at == self.at

    def __hash__(self) -> int:
        return hash(self.at)

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds)

    @classmethod
    def of_invocation(cls, context: object) -> "Deadline":
        """The invocation's remaining time (its Lambda context says) less the margin to answer in."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        seconds = remaining_ms() / 1000 if callable(remaining_ms) else DEFAULT_INVOCATION_SECONDS
        return cls.after(seconds - ANSWER_MARGIN_SECONDS)

    def remaining(self) -> float:
        """Seconds left; negative once passed."""
        return self.at - time.monotonic()

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def within(self, seconds: float) -> "Deadline":
        """This deadline, or ``seconds`` from now if that comes first."""
        return Deadline(min(self.at, time.monotonic() + seconds))

    def timeout(self, limit: float | None) -> float:
        """A socket timeout of at most ``limit`` that ends by the deadline; TimeoutError once it has passed."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        return left if limit is None or limit > left else limit


_in_force: ContextVar[Deadline | None] = ContextVar("deadline_in_force", default=None)


@contextlib.contextmanager
def keeping_to(deadline: Deadline) -> Iterator[None]:
    """Requests made in this block, through this module's pools, keep to ``deadline``."""
    token = _in_force.set(deadline)
    try:
        yield
    finally:
        _in_force.reset(token)


class _ReadingBy(io.RawIOBase):
    """A response's stream whose every refill (status line, headers, body, chunk framing) ends by the deadline."""

    def __init__(self, stream: io.BufferedReader, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._stream, self._socket, self._deadline = stream, sock, deadline
        self._limit = sock.gettimeout()  # the read timeout urllib3 has just set

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        self._socket.settimeout(self._deadline.timeout(self._limit))
        return self._stream.readinto1(buffer)  # one read from the socket at most

    def fileno(self) -> int:
        return self._stream.fileno()

    def close(self) -> None:
        try:
            self._stream.close()  # it holds the socket open until the response is done with it
        finally:
            super().close()


class _Response(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = _in_force.get()
        if deadline is not None:
            self.fp = io.BufferedReader(_ReadingBy(self.fp, sock, deadline))


class _Connection(HTTPConnection):
    """Connects and sends by the deadline in force, each within its own timeout; its responses read by it."""

    response_class = _Response

    def _new_conn(self) -> socket.socket:
        deadline = _in_force.get()
        if deadline is None:
            return super()._new_conn()
        try:
            self.timeout = deadline.timeout(self.timeout)  # the TCP connect
            sock = super()._new_conn()
            # The TLS handshake that follows waits on this socket's timeout: only what the connect left.
            sock.settimeout(deadline.timeout(self.timeout))
        except TimeoutError:
            raise ConnectTimeoutError(self, "The request's deadline passed while connecting.") from None
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = _in_force.get()
        if deadline is not None:
            self.timeout = deadline.timeout(self.timeout)  # urllib3 sets it on a reused socket for the send
        super().request(*args, **kwargs)


class _TLSConnection(_Connection, HTTPSConnection):
    pass


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _Connection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


# For a PoolManager's ``pool_classes_by_scheme``.
POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": DeadlineHTTPConnectionPool,
    "https": DeadlineHTTPSConnectionPool,
}
