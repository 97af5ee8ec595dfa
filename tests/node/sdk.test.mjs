// The official OpenAI Node SDK, pointed at this API with baseURL, just works.
// Run by tests/integration/test_node_sdk.py, which serves the local API and sets TOKEN_VENDING_BASE_URL.
// Never print a minted value: assertions on it carry their own message, so node shows no actual value.
import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI from "openai";

const baseURL = process.env.TOKEN_VENDING_BASE_URL;
assert.ok(baseURL, "set TOKEN_VENDING_BASE_URL to the local API's /v1 URL (the pytest side does)");

// The SDK insists on a key; this API ignores it (IAM authorises callers when deployed).
const client = new OpenAI({ apiKey: "unused-by-this-service", baseURL, maxRetries: 0 });

function assertSecret(value, expiresAt) {
  assert.ok(typeof value === "string" && value.startsWith("ek_"), "the value is not an ek_ client secret");
  assert.equal(typeof expiresAt, "number");
  assert.ok(expiresAt > Date.now() / 1000, "expires_at is not in the future");
}

test("GA realtime client secret, OpenAI's documentation sample (sends model)", async () => {
  // Given the sample's call, model included
  // When the SDK asks for a client secret
  const secret = await client.realtime.clientSecrets.create({
    session: { type: "realtime", model: "gpt-realtime", audio: { output: { voice: "marin" } } },
  });

  // Then it gets one, with the session the policy fixed
  assertSecret(secret.value, secret.expires_at);
  assert.equal(secret.session.type, "realtime");
  assert.equal(secret.session.model, "gpt-realtime");
  assert.equal(secret.session.audio.output.voice, "marin");
});

test("GA transcription client secret", async () => {
  // Given a transcription session
  // When the SDK asks for a client secret
  const secret = await client.realtime.clientSecrets.create({
    expires_after: { anchor: "created_at", seconds: 120 },
    session: { type: "transcription", audio: { input: { transcription: { model: "gpt-4o-mini-transcribe" } } } },
  });

  // Then it gets one for a transcription session
  assertSecret(secret.value, secret.expires_at);
  assert.equal(secret.session.type, "transcription");
});

test("GA translation client secret (the SDK has no method for it: its generic post)", async () => {
  // Given OpenAI's translation sample
  // When the SDK posts it to the translations route
  const secret = await client.post("/realtime/translations/client_secrets", {
    body: { session: { model: "gpt-realtime-translate", audio: { output: { language: "es" } } } },
  });

  // Then it gets one for a translation session
  assertSecret(secret.value, secret.expires_at);
  assert.equal(secret.session.type, "translation");
});

test("beta sessions call, switched off upstream but served here", async () => {
  // Given the SDK's beta call
  // When it creates a session
  const session = await client.beta.realtime.sessions.create({ voice: "marin", input_audio_format: "g711_ulaw" });

  // Then it gets a client secret in the beta shape
  assertSecret(session.client_secret.value, session.client_secret.expires_at);
  assert.equal(session.object, "realtime.session");
  assert.equal(session.voice, "marin");
  assert.equal(session.input_audio_format, "g711_ulaw");
});

test("beta transcription sessions call", async () => {
  // Given the SDK's beta transcription call
  // When it creates a transcription session
  const session = await client.beta.realtime.transcriptionSessions.create({
    input_audio_transcription: { model: "gpt-4o-mini-transcribe" },
  });

  // Then it gets a client secret in the beta shape
  assertSecret(session.client_secret.value, session.client_secret.expires_at);
  assert.equal(session.object, "realtime.transcription_session");
});

test("a voice outside the policy raises BadRequestError naming the field", async () => {
  // Given a voice the policy does not allow
  // When the SDK asks for a secret with it
  // Then it raises its typed error with OpenAI's param and code
  await assert.rejects(
    client.realtime.clientSecrets.create({ session: { type: "realtime", audio: { output: { voice: "verse2" } } } }),
    (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${error?.constructor?.name}`);
      assert.equal(error.status, 400);
      assert.equal(error.param, "session.audio.output.voice");
      assert.equal(error.code, "invalid_value");
      return true;
    },
  );
});

test("a beta field outside the policy is named as the beta caller sent it", async () => {
  // Given a beta temperature GA has no place for
  // When the SDK creates the session
  // Then the error names the beta field
  await assert.rejects(client.beta.realtime.sessions.create({ temperature: 1.1 }), (error) => {
    assert.ok(error instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${error?.constructor?.name}`);
    assert.equal(error.param, "temperature");
    return true;
  });
});
