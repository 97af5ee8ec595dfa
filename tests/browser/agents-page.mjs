// The page's side of tests/integration/test_agents_browser.py: the Agents SDK's quickstart, with the peer's
// calls URL in place of OpenAI's. What it returns is what the page could see, never the client secret: the
// output is read by pytest's secret guard.
import { OpenAIRealtimeWebRTC, OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } from "@openai/agents/realtime";

// The SDK's own guard against a hang; the test's is the driver's timeout.
const REPLY_MS = 20_000;

function transportName(transport) {
  if (transport instanceof OpenAIRealtimeWebRTC) return "webrtc";
  if (transport instanceof OpenAIRealtimeWebSocket) return "websocket";
  return transport?.constructor?.name ?? null;
}

function assistantTranscript(history) {
  for (const item of history) {
    if (item.type !== "message" || item.role !== "assistant") continue;
    const part = (item.content ?? []).find((content) => typeof content.transcript === "string" && content.transcript);
    if (part) return part.transcript;
  }
  return null;
}

// Settles when the agent's response on `session` ends; rejects after REPLY_MS.
function awaitReply(session) {
  return new Promise((resolve, reject) => {
    session.on("transport_event", (event) => {
      if (event.type === "response.done") resolve();
    });
    setTimeout(() => reject(new Error(`no response.done in ${REPLY_MS} ms`)), REPLY_MS);
  });
}

// The documentation's own example (docs/browser.md), served by the test as a module whose connect(clientSecret)
// runs the example's lines and returns its session: says hello on it and waits for the agent's response to end.
async function talkAsDocumented({ apiKey }) {
  const { connect } = await import("/docs-example.mjs");
  const session = await connect(apiKey);
  try {
    const replied = awaitReply(session);
    session.sendMessage("Hello!");
    await replied;
    return { ok: true, transport: transportName(session.transport), transcript: assistantTranscript(session.history) };
  } catch (error) {
    return { ok: false, error: `${error?.name}: ${error?.message}` };
  } finally {
    session.close();
  }
}

// Connects a voice agent with a client secret over `transport` ("webrtc", the browser's default, or "websocket":
// the secret then goes as a subprotocol), says hello, and waits for the agent's response to end.
export async function talk({ apiKey, url, transport, documented }) {
  if (documented) return talkAsDocumented({ apiKey });
  const agent = new RealtimeAgent({ name: "Assistant", instructions: "You are a helpful voice assistant." });
  const session = new RealtimeSession(agent, transport === "websocket" ? { transport: "websocket" } : {});
  let audioBytes = 0;
  session.on("audio", (event) => {
    audioBytes += event.data.byteLength;
  });
  const events = [];
  const errors = [];
  session.on("error", (error) => errors.push(String(error?.error?.message ?? error?.error ?? error)));
  session.on("transport_event", (event) => events.push(event.type));
  const replied = awaitReply(session);
  try {
    await session.connect({ apiKey, url });
    session.sendMessage("Hello!");
    await replied;
    const transcript = assistantTranscript(session.history);
    return {
      ok: true,
      transport: transportName(session.transport),
      audioBytes,
      status: session.transport.status,
      transcript,
      events: [...new Set(events)],
      errors,
    };
  } catch (error) {
    return { ok: false, error: `${error?.name}: ${error?.message}`, events: [...new Set(events)], errors };
  } finally {
    session.close();
  }
}
