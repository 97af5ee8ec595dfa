"""One sideband of a call as the local peer serves it: a WebSocket a server attached with the API key
(`GET /v1/realtime?call_id=...`, or `GET /v1/live/sessions/{id}/attach` for GPT-Live).

The peer's loop never writes to the socket itself (a server that stops reading would stall every call): a writer
thread sends what the loop queues, in order, then closes the connection with a close frame (what the SDK's
`graceful_close` asks for; "the server may also enable this behavior by default"). `drop()` cuts the TCP connection
instead, with no close frame, as a network failure would.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection


class Sideband:
    """A sideband's sending side: `deliver` queues a message, `close` ends it after what was queued, `drop` at
    once. Messages queue from the moment it is made, and go out once `start` has the opened connection (a sideband
    is attached before its handshake is answered, so it misses no event sent after the server's connect returns)."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._outbox: queue.SimpleQueue[str | bytes | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    def start(self, connection: ServerConnection) -> None:
        self._writer = threading.Thread(target=self._write, args=(connection,), name="realtime-sideband", daemon=True)
        self._writer.start()

    def deliver(self, message: str | bytes) -> None:
        self._outbox.put(message)

    def close(self) -> None:
        """Close with a close frame once what was queued is sent."""
        self._outbox.put(None)

    def drop(self) -> None:
        """Cut the connection without a close frame; what was queued is lost."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._outbox.put(None)

    def join(self) -> None:
        """Until the writer has sent what it could and closed the connection."""
        if self._writer is not None:
            self._writer.join()

    def _write(self, connection: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            while (message := self._outbox.get()) is not None:
                connection.send(message)
        with contextlib.suppress(ConnectionClosed, OSError):
            connection.close()
