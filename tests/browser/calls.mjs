// What the page does, called by tests/browser/drive.mjs. Each call answers what the page could see,
// never a minted value or the token: the output is read by pytest's secret guard.
import OpenAI from "openai";
import { VERSION } from "openai/version.mjs";

// The SDK loaded as a browser loads it (the import map in page.html, no bundler).
export function sdk() {
  return { ok: true, version: VERSION };
}

function failure(error) {
  const cause = error?.cause ? `${error.cause.name}: ${error.cause.message}` : null;
  return { ok: false, error: error?.constructor?.name ?? String(error), status: error?.status ?? null, cause };
}

function clientSecret(secret) {
  const isClientSecret = typeof secret?.value === "string" && secret.value.startsWith("ek_");
  return { isClientSecret, type: secret?.session?.type };
}

// The README's browser example, as written, run as a module of its own: its free variable userAccessToken
// is the page's global while it runs, its bare "openai" resolves through page.html's import map, and what it
// minted comes back through an export appended after it.
export async function runReadmeExample({ source, token }) {
  const module = URL.createObjectURL(new Blob([`${source}\nexport { secret };\n`], { type: "text/javascript" }));
  globalThis.userAccessToken = token;
  try {
    const { secret } = await import(module);
    return { ok: true, ...clientSecret(secret) };
  } catch (error) {
    return failure(error);
  } finally {
    delete globalThis.userAccessToken;
    URL.revokeObjectURL(module);
  }
}

// The README's browser example's call with a token and an API given: X-Profile optional, no retries (the
// refusals tests expect to see once).
export async function mintWithSdk({ api, token, profile }) {
  const client = new OpenAI({ apiKey: token, baseURL: `${api}/v1`, dangerouslyAllowBrowser: true, maxRetries: 0 });
  try {
    const secret = await client.realtime.clientSecrets.create(
      { session: { type: "realtime" } },
      profile ? { headers: { "X-Profile": profile } } : undefined,
    );
    return { ok: true, ...clientSecret(secret) };
  } catch (error) {
    return failure(error);
  }
}

// The same call with fetch alone; without a token, what the page can read of the gateway's refusal.
export async function mintWithFetch({ api, token }) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const response = await fetch(`${api}/v1/realtime/client_secrets`, {
      method: "POST",
      headers,
      body: JSON.stringify({ session: { type: "realtime", model: "gpt-realtime" } }),
    });
    const body = await response.json();
    return {
      ok: response.ok,
      status: response.status,
      body: response.ok ? clientSecret(body) : body,
      requestId: response.headers.get("x-request-id"),
    };
  } catch (error) {
    return { ok: false, error: error.name, message: error.message };
  }
}
