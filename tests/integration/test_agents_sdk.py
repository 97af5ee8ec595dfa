"""Today's Python clients of the Realtime API against `make run`'s local peer over WebSocket, with a client secret
minted for a signed-in user through the token vending API: the Agents SDK's `RealtimeRunner` (openai-agents) and
`client.realtime.connect()` of the official SDK (openai-python), each getting a response."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from agents.realtime import RealtimeAgent, RealtimeRunner
from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel
from openai import OpenAI
from openai.types.realtime import RealtimeServerEvent

from openai_stub.realtime_peer import REPLY_TRANSCRIPT
from tests.docs import code_block
from tests.local_run import QUICKSTART_SESSION, LocalService, local_run

# A guard against a hang, not a timed assertion: each step normally takes milliseconds.
STEP_SECONDS = 20.0
# The start text's line naming the peer's WebSocket URL.
WEBSOCKET_LINE = "Realtime sessions (WebSocket"
pytestmark = pytest.mark.usefixtures("websockets_quiet")


@pytest.fixture(scope="module")
def make_run() -> Iterator[LocalService]:
    with local_run() as service:
        yield service


def test_the_official_sdks_realtime_connect_gets_session_created_and_a_response(make_run: LocalService) -> None:
    # Given a client secret minted through the API, and the official SDK with the peer's base URL
    ws_url = make_run.printed_url(WEBSOCKET_LINE)
    client = OpenAI(
        api_key=make_run.client_secret(QUICKSTART_SESSION),
        base_url=ws_url.replace("ws://", "http://").removesuffix("/realtime"),
    )

    # When it connects, as OpenAI's documentation shows, and asks for a response
    with client.realtime.connect(model="gpt-realtime-2.1") as connection:
        created = connection.recv()
        connection.response.create()
        events: list[RealtimeServerEvent] = []
        while not events or events[-1].type != "response.done":
            events.append(connection.recv())

    # Then it got session.created, then a response with audio and its transcript
    assert created.type == "session.created"
    types = [event.type for event in events]
    assert "response.output_audio.delta" in types
    [done] = [event for event in events if event.type == "response.output_audio_transcript.done"]
    assert done.transcript == REPLY_TRANSCRIPT
    assert events[-1].response.status == "completed"


def test_the_agents_sdks_realtime_runner_gets_the_agents_audio_and_transcript(make_run: LocalService) -> None:
    # Given a client secret minted through the API, and a voice agent as the Agents SDK's quickstart builds one
    ws_url, secret = make_run.printed_url(WEBSOCKET_LINE), make_run.client_secret(QUICKSTART_SESSION)
    agent = RealtimeAgent(name="Assistant", instructions="You are a helpful voice assistant.")
    runner = RealtimeRunner(starting_agent=agent, model=OpenAIRealtimeWebSocketModel())

    async def scenario() -> tuple[list[str], bytes, list[str | None]]:
        # When the runner connects to the peer with the secret, and the user says something
        session = await runner.run(model_config={"url": ws_url, "api_key": secret})
        seen: list[str] = []
        audio = b""
        transcripts: list[str | None] = []
        async with session:
            await session.send_message("Hello!")
            async for event in session:
                seen.append(event.type)
                if event.type == "audio":
                    audio += event.audio.data
                if event.type == "history_updated":
                    transcripts = [transcript_of(item) for item in event.history]
                if event.type == "error" or REPLY_TRANSCRIPT in transcripts:
                    break
        return seen, audio, transcripts

    seen, audio, transcripts = asyncio.run(asyncio.wait_for(scenario(), STEP_SECONDS))

    # Then the agent spoke, with no error on the way: its audio arrived, and its transcript is in the history
    assert "error" not in seen, seen
    assert seen.count("audio") > 0
    assert "audio_end" in seen
    assert len(audio) == 2 * 24_000
    assert REPLY_TRANSCRIPT in transcripts


def transcript_of(item: Any) -> str | None:
    """An assistant message's transcript in the Agents SDK's history, None for anything else."""
    if getattr(item, "role", None) != "assistant":
        return None
    return next((part.transcript for part in item.content if getattr(part, "transcript", None)), None)


@pytest.mark.parametrize(
    "marker", [pytest.param("client.realtime.connect(", id="openai-sdk"), pytest.param("RealtimeRunner(", id="agents")]
)
def test_the_documentations_websocket_examples_run_as_written(
    make_run: LocalService, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an example of docs/local.md, as written but for make run's actual peer URL, and a freshly minted secret
    ws_url = make_run.printed_url(WEBSOCKET_LINE)
    example = (
        code_block("python", marker)
        .replace("ws://127.0.0.1:3002/v1/realtime", ws_url)
        .replace("http://127.0.0.1:3002/v1", ws_url.replace("ws://", "http://").removesuffix("/realtime"))
    )
    secret = make_run.client_secret(QUICKSTART_SESSION)
    namespace: dict[str, Any] = {"client_secret": secret, "__name__": "docs_example"}

    # When it runs
    exec(compile(example, "docs/local.md", "exec"), namespace)  # noqa: S102 - the documentation's own text

    # Then it printed the events of a whole response
    printed = capsys.readouterr().out.split()
    assert printed[-1] == ("response.done" if marker.startswith("client") else "audio_end")
    assert ("response.output_audio.delta" if marker.startswith("client") else "audio") in printed
