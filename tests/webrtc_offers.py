"""A browser's SDP offer, made by aiortc as a WebRTC client makes one: a microphone and the events channel."""

import asyncio
import functools

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from openai_stub.realtime_peer import offer_loopback_candidates


@functools.cache
def offer(*, data_channel: bool = True) -> str:
    """An offer, with the events channel unless told not to (never connected: the tests that use it check what
    answers it, not the media)."""

    async def create() -> str:
        offer_loopback_candidates()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        if data_channel:
            pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp: str = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(create())
