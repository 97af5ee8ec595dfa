// The page's side of tests/integration/test_agents_browser.py: the Agents SDK's quickstart, with the peer's
// calls URL in place of OpenAI's, or the service's own calls route with the user's token. What it returns is what
// the page could see, never the client secret, the token or an SDP: the output is read by pytest's secret guard.
import { OpenAIRealtimeWebRTC, OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } from "@openai/agents/realtime";

// The SDK's own guard against a hang; the test's is the driver's timeout.
const REPLY_MS = 20_000;
const CLIENT_SECRET = /\bek_[A-Za-z0-9]/;

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

// The page's own network log of its fetches (the SDK posts its offer with the global fetch, looked up at each
// call): each request's method, URL and headers that name no credential, whose bearer it sent (the key the page was
// given, or another) and whether an ek_ was anywhere in it or in its answer (headers and body). restore() puts the
// browser's fetch back.
function recordFetches(apiKey) {
  const log = [];
  const original = window.fetch;
  const credentialFree = (headers) => [...headers].filter(([name]) => name !== "authorization");
  window.fetch = async (input, init) => {
    const request = new Request(input, init);
    const authorization = request.headers.get("authorization");
    const sent = JSON.stringify([authorization, ...request.headers]) + (await request.clone().text());
    const entry = {
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(credentialFree(request.headers)),
      bearer: authorization === null ? null : authorization === `Bearer ${apiKey}` ? "the page's key" : "another",
      clientSecretSent: CLIENT_SECRET.test(sent),
    };
    log.push(entry);
    const response = await original(input, init);
    const received = JSON.stringify([...response.headers]) + (await response.clone().text());
    Object.assign(entry, {
      status: response.status,
      location: response.headers.get("location"),
      contentType: response.headers.get("content-type"),
      clientSecretReceived: CLIENT_SECRET.test(received),
    });
    return response;
  };
  return { log, restore: () => (window.fetch = original) };
}

// Where in the page an ek_ showed: its DOM, its storage, the session's events and history.
function clientSecretSeen(session, events) {
  const places = {
    dom: document.documentElement.outerHTML,
    storage: JSON.stringify([{ ...localStorage }, { ...sessionStorage }]),
    events: JSON.stringify(events),
    history: JSON.stringify(session.history),
  };
  return Object.keys(places).filter((place) => CLIENT_SECRET.test(places[place]));
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
// the secret then goes as a subprotocol), says hello, and waits for the agent's response to end. Given `baseUrl`
// instead, the agent connects over WebRTC through that calls route, with `apiKey` (the user's token, not an ek_)
// as its bearer: the SDK asks for useInsecureApiKey for any key that is not an ek_. The page's network log and
// where an ek_ showed come back with the result.
export async function talk({ apiKey, url, transport, baseUrl, documented }) {
  if (documented) return talkAsDocumented({ apiKey });
  const agent = new RealtimeAgent({ name: "Assistant", instructions: "You are a helpful voice assistant." });
  const options = baseUrl
    ? { transport: new OpenAIRealtimeWebRTC({ baseUrl, useInsecureApiKey: true }) }
    : transport === "websocket"
      ? { transport: "websocket" }
      : {};
  const session = new RealtimeSession(agent, options);
  let audioBytes = 0;
  session.on("audio", (event) => {
    audioBytes += event.data.byteLength;
  });
  const events = [];
  const errors = [];
  session.on("error", (error) => errors.push(String(error?.error?.message ?? error?.error ?? error)));
  session.on("transport_event", (event) => events.push(event));
  const network = recordFetches(apiKey);
  const replied = awaitReply(session);
  const seen = () => ({
    events: [...new Set(events.map((event) => event.type))],
    errors,
    network: network.log,
    resources: performance.getEntriesByType("resource").map((entry) => entry.name),
    clientSecretSeen: clientSecretSeen(session, events),
  });
  try {
    await session.connect(baseUrl ? { apiKey } : { apiKey, url });
    session.sendMessage("Hello!");
    await replied;
    const transcript = assistantTranscript(session.history);
    return {
      ok: true,
      transport: transportName(session.transport),
      callId: session.transport.callId ?? null,
      audioBytes,
      status: session.transport.status,
      transcript,
      ...seen(),
    };
  } catch (error) {
    return { ok: false, error: `${error?.name}: ${error?.message}`, ...seen() };
  } finally {
    session.close();
    network.restore();
  }
}
