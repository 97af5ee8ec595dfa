"""The one lifecycle the local stand-ins share: ``with Thing(...) as thing`` starts and stops it."""

import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self, cast


def serve_in_background(server: socketserver.BaseServer, name: str) -> threading.Thread:
    """Serve ``server`` on a daemon thread until its ``shutdown()``; join the thread after that."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return thread


def timing_out[Handler: socketserver.StreamRequestHandler](handler: type[Handler], seconds: float) -> type[Handler]:
    """``handler`` with each wait on the client's socket lasting at most ``seconds``: a class of its own per server
    (a server may set attributes on its handler class: werkzeug sets protocol_version)."""
    return cast("type[Handler]", type(handler.__name__, (handler,), {"timeout": seconds}))


class Running:
    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LoopbackHttpServer:
    """An HTTP server on 127.0.0.1 (``port`` 0: a free one), serving from a daemon thread until close(); each wait
    on a client's socket (the rest of a request, or its reading of the answer) lasts at most ``timeout`` seconds
    (None: no limit), so that an idle or short request gives its thread back."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], name: str, port: int = 0, timeout: float | None = None
    ) -> None:
        if timeout is not None:
            handler = timing_out(handler, timeout)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = serve_in_background(self._server, name)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
