"""OpenAI's sideband: a WebSocket to a call or a GPT-Live session the service opened, with the API key, that carries
every server event of it and takes client events (``session.update``, ``session.close``). The one module that
imports websockets (the supervisor's own layer carries it; the minting function never loads it).

A Realtime call's is ``wss://<upstream>/v1/realtime?call_id=<id>``, a Live session's
``wss://<upstream>/v1/live/sessions/<id>/attach`` (openai-python 3.63.0, ``resources/live/sideband.py``); ``ws://``
for an upstream on this machine. Attaching replays nothing: what was sent before is not seen.

Memory is bounded: a message over MAX_MESSAGE_BYTES is refused by websockets' ``max_size`` (it closes the connection
with 1009, which the caller sees as a drop, ``oversized``), at most MAX_QUEUED_FRAMES wait unread, and no compression
(no deflate contexts per connection). The API key is in the upgrade's headers only: websockets' own logger, which
shows headers at DEBUG, is held at WARNING.
"""

import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode
from websockets.sync.client import ClientConnection, connect

from voice_access.domain.errors import DependencyUnavailable, ServiceError
from voice_access.observability import count, logger

# A server event of a WebRTC call carries no audio: a session with long instructions and many tools, a response with
# its transcript, are tens of kilobytes. Far more is not an event worth holding in a function's memory.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_QUEUED_FRAMES = 4
OPEN_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 2.0
_USER_AGENT = "openai-realtime-token-vending/0.1"
_CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_quiet = logging.getLogger(__name__ + ".websocket")
_quiet.setLevel(logging.WARNING)

Kind = Literal["call", "live_session"]
# Why a sideband was lost: it closed (OpenAI closed it, or the network dropped it), a message was over the bound, it
# could not be reached or OpenAI refused to attach it (another status than 404).
Lost = Literal["closed", "oversized", "unreachable", "refused"]


class SidebandLost(DependencyUnavailable):
    """The sideband dropped, or could not be attached, in a way that may pass: ``reason`` says which."""

    def __init__(self, reason: Lost, status: int | None = None) -> None:
        super().__init__("OpenAI's sideband to the call was lost.", code="sideband_lost")
        self.reason: Lost = reason
        self.status = status


class CallGone(ServiceError):
    """OpenAI knows no such call or Live session to attach to (404): it has ended."""

    def __init__(self) -> None:
        super().__init__("The call has ended.", code="call_gone")


def sideband_url(upstream_url: str, kind: Kind, call_id: str) -> str:
    """The sideband's URL for a call (``rtc_...``) or a Live session (``live_...``) on ``upstream_url`` (https, or
    http on this machine, as the settings allow)."""
    if not _CALL_ID.fullmatch(call_id):
        raise ValueError("not a call id")
    base = "wss://" + upstream_url.removeprefix("https://") if upstream_url.startswith("https://") else upstream_url
    base = "ws://" + base.removeprefix("http://") if base.startswith("http://") else base
    if kind == "call":
        return f"{base}/v1/realtime?call_id={call_id}"
    return f"{base}/v1/live/sessions/{call_id}/attach"


class Sideband:
    """One attached sideband: events in (``receive``), events out (``send``)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    def receive(self, timeout: float) -> str | bytes | None:
        """The next message, or None when none came within ``timeout`` seconds; SidebandLost once it has dropped."""
        try:
            return self._connection.recv(timeout=max(timeout, 0.0))
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            oversized = closed.sent is not None and closed.sent.code == CloseCode.MESSAGE_TOO_BIG
            raise SidebandLost("oversized" if oversized else "closed") from None

    def send(self, event: Mapping[str, Any]) -> None:
        try:
            self._connection.send(json.dumps(event, separators=(",", ":")))
        except ConnectionClosed:
            raise SidebandLost("closed") from None

    def close(self) -> None:
        self._connection.close()


def attach(upstream_url: str, kind: Kind, call_id: str, api_key: str) -> Sideband:
    """The sideband of ``call_id``, attached with ``api_key``. CallGone when OpenAI knows no such call (it ended),
    SidebandLost when it could not be attached."""
    try:
        connection = connect(
            sideband_url(upstream_url, kind, call_id),
            additional_headers={"Authorization": f"Bearer {api_key}"},
            user_agent_header=_USER_AGENT,
            compression=None,
            open_timeout=OPEN_TIMEOUT_SECONDS,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=MAX_QUEUED_FRAMES,
            proxy=None,
            logger=_quiet,
        )
    except InvalidStatus as refused:
        status = refused.response.status_code
        if status == 404:
            raise CallGone() from None
        if status in (401, 403):
            logger.error("openai rejected the api key on the sideband", upstream_status=status)
            count("ConfigurationErrors", reason="upstream_auth_failed")
        else:
            logger.warning("openai refused to attach the sideband", upstream_status=status)
        raise SidebandLost("refused", status) from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as failed:
        logger.warning("sideband unreachable", error_type=type(failed).__name__)
        raise SidebandLost("unreachable") from None
    return Sideband(connection)
