// The Agents SDK for JavaScript (@openai/agents) on a server: a voice agent's RealtimeSession over its WebSocket
// transport (the `ws` package under Node), connecting to the local Realtime peer with a client secret minted
// through this API by the official SDK, as docs/local.md shows. Run by tests/integration/test_node_sdk.py,
// which sets TOKEN_VENDING_BASE_URL, TOKEN_VENDING_USER_TOKEN and TOKEN_VENDING_REALTIME_URL (the peer's ws URL).
// Never print a minted value or a token.
import assert from "node:assert/strict";
import { test } from "node:test";

import { RealtimeAgent, RealtimeSession } from "@openai/agents/realtime";
import OpenAI from "openai";

const baseURL = process.env.TOKEN_VENDING_BASE_URL;
const userToken = process.env.TOKEN_VENDING_USER_TOKEN;
const realtimeURL = process.env.TOKEN_VENDING_REALTIME_URL;
assert.ok(baseURL && userToken && realtimeURL, "set the TOKEN_VENDING_* variables (pytest does)");

// A guard against a hang, not a timed assertion.
const REPLY_MS = 20_000;

test("the Agents SDK's RealtimeSession over WebSocket, from Node, gets the agent's reply", async () => {
  // Given a client secret minted as the Agents SDK quickstart's server does, with the user's token
  const client = new OpenAI({ apiKey: userToken, baseURL, maxRetries: 0 });
  const { value: clientSecret } = await client.realtime.clientSecrets.create({
    session: { type: "realtime", model: "gpt-realtime-2.1" },
  });
  const agent = new RealtimeAgent({ name: "Assistant", instructions: "You are a helpful voice assistant." });
  const session = new RealtimeSession(agent, { transport: "websocket" });
  let audioBytes = 0;
  session.on("audio", (event) => {
    audioBytes += event.data.byteLength;
  });
  const replied = new Promise((resolve, reject) => {
    session.on("transport_event", (event) => {
      if (event.type === "response.done") resolve(event);
    });
    setTimeout(() => reject(new Error(`no response.done in ${REPLY_MS} ms`)), REPLY_MS).unref();
  });

  // When it connects to the peer and the user says hello
  try {
    await session.connect({ apiKey: clientSecret, url: realtimeURL });
    session.sendMessage("Hello!");
    const done = await replied;

    // Then the response completed, with the agent's audio
    assert.equal(done.response.status, "completed");
    assert.ok(audioBytes > 0, "no audio arrived");
  } finally {
    session.close();
  }
});
