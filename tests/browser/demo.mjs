// Drives the demo page (web/, served by `make run`) in Debian's headless Chromium with fake media devices, as a
// person would: sign in, pick a way of opening the session, a profile and a voice, Connect, ask for a response,
// hang up. Reads {"executablePath", "url", "scenario", "user", "group", "way", "profile", "voice", "screenshot"} as
// JSON on stdin and prints one JSON document of what the page showed. It sees the user's token and the client
// secret only as the page's network answers, to check that neither appears in the page's DOM or console; it never
// prints them. It reads every request and answer of the page (headers and bodies) to say whether anything shaped
// like a client secret passed, and which credential each request to the API carried, never the values.
// Run by tests/integration/test_demo.py.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";

import { chromium } from "playwright-core";

import { MEDIA_FLAGS as FLAGS } from "./chromium.mjs";

const input = JSON.parse(await text(process.stdin));
const profileDir = mkdtempSync(join(tmpdir(), "token-vending-demo-"));
const context = await chromium.launchPersistentContext(profileDir, {
  executablePath: input.executablePath,
  headless: true,
  args: FLAGS,
  viewport: { width: 1100, height: 900 },
});
const page = await context.newPage();
// Each state the page goes through, in order (body's data-state)
await page.addInitScript(() => {
  window.statesSeen = [];
  new MutationObserver(() => window.statesSeen.push(document.body.dataset.state)).observe(document, {
    subtree: true,
    attributeFilter: ["data-state"],
  });
});
const consoleLines = [];
const secrets = [];
const answers = [];
const reading = [];
const requested = []; // every request's origin and path, to see where the page sent things
page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.name}: ${error.message}`));
page.on("request", (request) => {
  const url = new URL(request.url());
  requested.push(`${url.origin}${url.pathname}`);
});
// The network log as text, to search: each request's headers and body and its answer's, in the order answered
const CLIENT_SECRET = /\bek_[A-Za-z0-9]/;
const traffic = []; // {request: "METHOD origin/path", bearer: "jwt" | "client secret" | "other" | null, text}
const exchanged = async (request, response) => {
  const url = new URL(request.url());
  const headers = await request.allHeaders();
  const sent = request.postDataBuffer()?.toString("latin1") ?? "";
  const answered = response ? JSON.stringify(await response.allHeaders()) : "";
  const answer = response ? await response.body().then((body) => body.toString("latin1"), () => "") : "";
  const bearer = (headers.authorization ?? "").replace(/^Bearer /, "") || null;
  traffic.push({
    request: `${request.method()} ${url.origin}${url.pathname}`,
    status: response?.status() ?? null,
    bearer: bearer && (/^eyJ/.test(bearer) ? "jwt" : CLIENT_SECRET.test(bearer) ? "client secret" : "other"),
    text: [url.href, JSON.stringify(headers), sent, answered, answer].join("\n"),
  });
};
page.on("requestfinished", (request) =>
  reading.push(request.response().then((response) => exchanged(request, response))),
);
page.on("requestfailed", (request) => reading.push(exchanged(request, null)));
page.on("response", (response) => {
  const path = new URL(response.url()).pathname;
  if (path.endsWith("/local/sign-in") || path.endsWith("/realtime/client_secrets")) {
    answers.push({ path, status: response.status(), retryAfter: response.headers()["retry-after"] ?? null });
    reading.push(
      response
        .json()
        .then((body) => secrets.push(...[body?.access_token, body?.value].filter((value) => typeof value === "string")))
        .catch(() => {}),
    );
  }
});

const state = (name) => page.waitForSelector(`body[data-state="${name}"]`);
const attribute = (selector, name) => page.locator(selector).getAttribute(name);
// The session details: whether they show, and what each says
const sessionShown = async () => ({
  visible: await page.locator("#session").isVisible(),
  values: await page.locator("#session dd").evaluateAll((fields) => fields.map((field) => field.textContent)),
});
const seen = async () => ({
  state: await page.getAttribute("body", "data-state"),
  status: await page.locator("#status").textContent(),
  problem: await attribute("#status", "data-problem"),
  connectDisabled: await page.locator("#connect").isDisabled(),
});

async function signIn() {
  await page.goto(input.url);
  await page.waitForSelector("#local-sign-in:not([hidden])");
  await page.fill("#user", input.user);
  await page.selectOption("#group", input.group ?? "");
  await page.click("#sign-in");
  await state("ready");
  return {
    profiles: await page.locator("#profile option").evaluateAll((options) => options.map((option) => option.value)),
    signedIn: await page.locator("#signed-in").textContent(),
    ignored: await page.evaluate(() => {
      const ignored = document.getElementById("ignored");
      return ignored.hidden ? null : ignored.textContent;
    }),
  };
}

// The event types in the page's log, oldest first
const eventsLogged = () =>
  page.locator("#events code").evaluateAll((codes) => codes.map((code) => code.textContent).reverse());
const logged = (type) =>
  page.waitForFunction(
    (wanted) => [...document.querySelectorAll("#events code")].some((code) => code.textContent === wanted),
    type,
  );
const shownIn = (selector) => page.locator(selector).textContent();
const sessionDetails = async () => ({
  way: await shownIn("#session-way"),
  wayKey: await attribute("#session-way", "data-way"),
  id: await shownIn("#session-id"),
  voice: await shownIn("#session-voice"),
  instructions: await shownIn("#session-instructions"),
  model: await shownIn("#session-model"),
  usage: await shownIn("#session-usage"),
});

async function choose() {
  if (input.way) await page.selectOption("#way", input.way);
  if (input.profile) await page.selectOption("#profile", input.profile);
  if (input.voice) await page.selectOption("#voice", input.voice);
}

async function connected() {
  await page.click("#connect");
  await page.waitForSelector('body[data-state="connected"], #status[data-kind="error"]');
  return seen();
}

const scenarios = {
  async call() {
    const signedIn = await signIn();
    if (input.profile) await page.selectOption("#profile", input.profile);
    if (input.voice) await page.selectOption("#voice", input.voice);
    const transcribeOffered = await page.locator("#transcribe-model").textContent();
    if (input.transcribe) await page.check("#transcribe");
    const sessionBefore = await sessionShown();
    const afterConnect = await connected();
    if (afterConnect.state !== "connected") return { signedIn, afterConnect };
    const session = {
      voice: await page.locator("#session-voice").textContent(),
      instructions: await page.locator("#session-instructions").textContent(),
      model: await page.locator("#session-model").textContent(),
      transcription: await page.locator("#session-transcription").textContent(),
    };
    const connectMs = Number(await attribute("#connect-time", "data-ms"));
    // The inbound track's bytes, as the page shows them, grow
    await page.waitForSelector("#audio-received[data-bytes]");
    const bytesBefore = Number(await attribute("#audio-received", "data-bytes"));
    await page.waitForFunction(
      (before) => Number(document.querySelector("#audio-received").dataset.bytes) > before,
      bytesBefore,
    );
    const bytesAfter = Number(await attribute("#audio-received", "data-bytes"));
    await page.click("#respond");
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#events code")].some((code) => code.textContent === "response.done"),
    );
    const events = await page
      .locator("#events code")
      .evaluateAll((codes) => codes.map((code) => code.textContent).reverse());
    const transcript = await page.locator("#transcript").textContent();
    // What the page shows of the user's speech (with transcription on: the peer's fixed transcript)
    const userLines = await page
      .locator('#transcript li[data-who="user"] span')
      .evaluateAll((spans) => spans.map((span) => span.textContent));
    if (input.screenshot) await page.screenshot({ path: input.screenshot, fullPage: true });
    await page.click("#hang-up");
    await state("ready");
    const bytes = [bytesBefore, bytesAfter];
    const sessionAfter = await sessionShown();
    return {
      signedIn,
      transcribeOffered,
      sessionBefore,
      afterConnect,
      session,
      connectMs,
      bytes,
      events,
      transcript,
      userLines,
      afterHangUp: await seen(),
      sessionAfter,
    };
  },

  // A session the service opens (input.way: "call" or "live_session"): Connect, the session's first events, the
  // model's words; then the Try button's session.update, and Hang up.
  async opened() {
    const signedIn = await signIn();
    const ways = await page
      .locator("#way option")
      .evaluateAll((options) => options.map((option) => ({ way: option.value, disabled: option.disabled })));
    await choose();
    const offered = await page.locator("#profile option").evaluateAll((options) => options.map((o) => o.value));
    const afterConnect = await connected();
    if (afterConnect.state !== "connected") return { signedIn, afterConnect };
    const session = await sessionDetails();
    const connectMs = Number(await attribute("#connect-time", "data-ms"));
    if (input.way === "live_session") {
      // GPT-Live speaks first: its transcript, then its usage once the words are out
      await logged("session.usage.updated");
    } else {
      await page.click("#respond");
      await logged("response.done");
    }
    const transcript = await shownIn("#transcript");
    const usage = await shownIn("#session-usage");
    const before = (await eventsLogged()).length;
    await page.click("#change-instructions");
    // The session's answer to it: an error (GPT-Live: not allowed) or session.updated (Realtime)
    // GPT-Live reports the session's seconds every second: a tick is no answer to the change.
    const tick = "session.usage.updated";
    await page.waitForFunction(
      ([count, skipped]) =>
        [...document.querySelectorAll("#events code")]
          .reverse()
          .slice(count)
          .some((code) => code.textContent !== skipped),
      [before, tick],
    );
    const answer = (await eventsLogged()).slice(before).filter((type) => type !== tick);
    const afterChange = { ...(await seen()), session: await sessionDetails() };
    let afterRestore = null;
    if (input.way === "call") {
      // The call's supervisor sees the changed session on its sideband and sends the profile's back: a second
      // session.updated, the instructions the call was opened with
      await page.waitForFunction(
        ([count, opened]) =>
          [...document.querySelectorAll("#events code")]
            .reverse()
            .slice(count)
            .filter((code) => code.textContent === "session.updated").length >= 2 &&
          document.getElementById("session-instructions").textContent === opened,
        [before, session.instructions],
      );
      afterRestore = { ...(await seen()), session: await sessionDetails() };
    }
    await page.click("#hang-up");
    await state("ready");
    const events = await eventsLogged();
    return {
      signedIn,
      ways,
      offered,
      afterConnect,
      session,
      connectMs,
      transcript,
      usage,
      answer,
      afterChange,
      afterRestore,
      afterHangUp: { ...(await seen()), visible: await page.locator("#session").isVisible() },
      sessionAfter: await sessionDetails(),
      events,
    };
  },

  // Connect to the first session event, each way in turn, input.rounds times (the order turning each round)
  async timings() {
    await signIn();
    const ways = ["client_secret", "call", "live_session"];
    const measured = Object.fromEntries(ways.map((way) => [way, []]));
    for (let round = 0; round < input.rounds; round += 1) {
      for (const way of [...ways.slice(round % 3), ...ways.slice(0, round % 3)]) {
        await page.selectOption("#way", way);
        const afterConnect = await connected();
        if (afterConnect.state !== "connected") return { way, afterConnect };
        measured[way].push(Number(await attribute("#connect-time", "data-ms")));
        await page.click("#hang-up");
        await state("ready");
      }
    }
    return { measured };
  },

  async forbidden() {
    const signedIn = await signIn();
    return { signedIn, chosen: await page.locator("#profile").inputValue(), afterConnect: await connected() };
  },

  // Deployed mode, its settings in the query string (a page without config.json: the driver's route answers 404
  // for it): the page shows where they send the sign-in, and the Sign in button sends the person to the issuer's
  // authorization endpoint (from its discovery document) with PKCE. The issuer is the driver's stand-in.
  async oidc() {
    await context.route("**/config.json", (route) => route.fulfill({ status: 404, body: "" }));
    const issuer = new URL(new URL(input.url).searchParams.get("issuer"));
    const discovery = {
      issuer: issuer.href.replace(/\/$/, ""),
      authorization_endpoint: `${issuer.origin}/oauth2/authorize`,
      token_endpoint: `${issuer.origin}/oauth2/token`,
      jwks_uri: `${issuer.origin}/.well-known/jwks.json`,
      response_types_supported: ["code"],
    };
    await context.route(`${issuer.origin}/**`, (route) => {
      const url = new URL(route.request().url());
      if (url.pathname.endsWith("/.well-known/openid-configuration")) {
        return route.fulfill({ json: discovery, headers: { "Access-Control-Allow-Origin": "*" } });
      }
      return route.fulfill({ contentType: "text/html", body: "<!doctype html><title>sign-in</title>" });
    });
    await page.goto(input.url);
    await page.waitForSelector("#oidc-sign-in:not([hidden])");
    const destination = await page.locator("#destination:not([hidden])").textContent();
    const [authorize] = await Promise.all([
      page.waitForRequest((request) => request.url().startsWith(discovery.authorization_endpoint)),
      page.click("#oidc-sign-in-button"),
    ]);
    await page.waitForURL(`${discovery.authorization_endpoint}?**`);
    const asked = Object.fromEntries(new URL(authorize.url()).searchParams);
    return {
      destination,
      authorize: authorize.url().split("?")[0],
      clientId: asked.client_id,
      redirectUri: asked.redirect_uri,
      responseType: asked.response_type,
      scope: asked.scope,
      codeChallengeMethod: asked.code_challenge_method,
      codeChallenge: /^[A-Za-z0-9_-]{43}$/.test(asked.code_challenge ?? ""),
      state: (asked.state ?? "").length >= 16,
    };
  },

  // The README's example of an app of one's own: run as a module body on an origin make run allows, with the
  // user's token as its userAccessToken; it logs the type of each event of the call.
  async readme() {
    await page.goto(input.url);
    const done = page.waitForEvent("console", { predicate: (message) => message.text() === "response.done" });
    await page.evaluate(
      ([source, token]) => new Function("userAccessToken", `return (async () => {${source}})();`)(token),
      [input.source, input.token],
    );
    await done;
    return { logged: consoleLines.filter((line) => line.startsWith("log: ")).map((line) => line.slice(5)) };
  },

  // What a person sees when a token or a client secret is refused: each request leaves the page with its own
  // credential swapped for one that has expired (the driver's route), and reaches the real server.
  async refused() {
    const swapped = (value) => (route) =>
      route.continue({ headers: { ...route.request().headers(), authorization: `Bearer ${value}` } });
    await signIn();
    await page.route("**/realtime/client_secrets", swapped(input.expiredToken));
    const tokenRefused = await connected();
    await page.unroute("**/realtime/client_secrets");
    await page.click("#sign-in");
    await state("ready");
    await page.route("**/realtime/calls", swapped(input.expiredSecret));
    const secretRefused = await connected();
    return { tokenRefused, secretRefused };
  },

  // Hang up while connecting: once while the client secret is being minted, once while the SDP offer is with the
  // peer (each request held by the driver until Hang up is pressed, then let through); then an answer the page
  // cannot use. Each leaves the page ready, and a last Connect opens a call.
  async cancelled() {
    await signIn();
    const held = async (pattern) => {
      let reached;
      const arrived = new Promise((resolve) => (reached = resolve));
      let release;
      const released = new Promise((resolve) => (release = resolve));
      await page.route(pattern, async (route) => {
        reached();
        await released;
        await route.continue();
      });
      await page.click("#connect");
      await arrived;
      await page.click("#hang-up");
      const afterHangUp = await seen();
      const path = pattern.replace("**", "");
      const answered = page.waitForResponse((response) => response.url().endsWith(path));
      release();
      await answered;
      await page.unroute(pattern);
      return afterHangUp;
    };
    const whileMinting = await held("**/realtime/client_secrets");
    const whileOffering = await held("**/realtime/calls");
    await page.route("**/realtime/calls", (route) =>
      route.fulfill({ status: 201, contentType: "application/sdp", body: "v=0\r\nnot an answer\r\n" }),
    );
    const badAnswer = await connected();
    await page.unroute("**/realtime/calls");
    const later = await connected();
    await page.click("#hang-up");
    const states = await page.evaluate(() => window.statesSeen);
    return { whileMinting, whileOffering, badAnswer, later, states };
  },

  // A call the service opens that its supervisor ends (at its maximum length, or when a response spends the
  // budget): Connect, ask for input.responses responses, wait for the call to end; then Connect again.
  async supervised() {
    await signIn();
    await choose();
    const afterConnect = await connected();
    if (afterConnect.state !== "connected") return { afterConnect };
    const session = await sessionDetails();
    for (let asked = 0; asked < (input.responses ?? 0); asked += 1) {
      await page.click("#respond");
    }
    await page.waitForSelector('#status[data-problem="ended"]', { timeout: input.endsWithinMs });
    const ended = await seen();
    const events = await eventsLogged();
    const again = await connected();
    if (again.state === "connected") await page.click("#hang-up");
    return { afterConnect, session, ended, events, again, retryAfter: answers.at(-1) ?? null };
  },

  async quota() {
    const signedIn = await signIn();
    const first = await connected();
    await page.click("#hang-up");
    await state("ready");
    const second = await connected();
    const secondsLeft = Number(await attribute("#status", "data-seconds-left"));
    // The countdown counts down
    await page.waitForFunction(
      (left) => Number(document.querySelector("#status").dataset.secondsLeft) < left,
      secondsLeft,
    );
    const later = Number(await attribute("#status", "data-seconds-left"));
    const laterStatus = await page.locator("#status").textContent();
    const transcribe = {
      disabled: await page.locator("#transcribe").isDisabled(),
      offered: await page.locator("#transcribe-model").textContent(),
    };
    return { signedIn, first, second, secondsLeft, later, laterStatus, transcribe };
  },
};

let result;
let failure = null;
try {
  result = await scenarios[input.scenario]();
} catch (error) {
  failure = `${error.name}: ${error.message.split("\n")[0]}`;
  result = await seen().catch(() => null);
}
await Promise.all(reading);
const dom = await page.evaluate(() => {
  const values = [...document.querySelectorAll("input, select, textarea")].map((field) => field.value);
  return [document.documentElement.outerHTML, ...values].join("\n");
});
const shown = `${dom}\n${consoleLines.join("\n")}\n${page.url()}`;
const secretShown = secrets.some((secret) => shown.includes(secret));
await context.close();
rmSync(profileDir, { recursive: true, force: true });
process.stdout.write(
  JSON.stringify({
    browser: context.browser()?.version() ?? null,
    failure,
    result,
    answers,
    requested,
    secretsCaptured: secrets.length,
    secretShown,
    network: traffic.map(({ text: exchange, ...seenOfIt }) => ({
      ...seenOfIt,
      clientSecret: CLIENT_SECRET.test(exchange),
    })),
    console: consoleLines,
    dom,
  }),
);
