// The demo page: sign in, list the profiles the policy lets this user have (GET /v1/realtime/profiles), then open
// a WebRTC session one of three ways (each profile lists the ways it may be opened):
//   client_secret  mint a client secret with the user's token (POST /v1/realtime/client_secrets), then open the
//                  call with it as OpenAI documents (POST the SDP offer to realtimeUrl)
//   call           POST the SDP offer to the service with the user's token (POST /v1/realtime/calls): the service
//                  opens the Realtime call with its key, and no client secret reaches the browser
//   live_session   the same for GPT-Live (POST /v1/live/sessions), which has no client secrets at all
// The user's token and the client secret live in this module's variables only: never in the DOM, the console, the
// URL or storage.
//
// Settings, from ./config.json (`make run` answers it) or, only where there is no config.json, the query string:
//   apiBaseUrl   the token vending API's /v1 (the stack's OpenAIBaseUrl output)
//   realtimeUrl  where the call is opened: https://api.openai.com/v1/realtime/calls, or make run's local peer
//   signIn       {"mode": "local"} (make run's development users), {"mode": "none"} (AUTH=none), or
//                {"mode": "oidc", "issuer", "clientId", "redirectUri", "scope"}: authorization code with PKCE
//                (in the query string: issuer, clientId, redirectUri, scope)
//   profile      (query string, always) the profile to pick, even one not offered to this user
//   way          (query string, always) the way to open the session, when a profile open to the user allows it
// A page with a config.json ignores the query string's settings: they say where the user's token, the client
// secret and the sign-in go, and a link must not send them elsewhere.

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const REALTIME = "realtime";
// Each way of opening a session: its words on the page, and the session type of the profiles opened that way.
const WAYS = {
  client_secret: { label: "client secret (ek_)", shown: "client secret", sessionType: REALTIME },
  call: { label: "call opened by the service", shown: "call", sessionType: REALTIME },
  live_session: { label: "GPT-Live session opened by the service", shown: "Live session", sessionType: "live" },
};
// What the Try button sends: a Realtime session takes it (its instructions are not locked); a Live profile's data
// channel refuses it with an error event, its instructions fixed for the whole session.
const OTHER_INSTRUCTIONS = "Answer only in French, whatever you were told before.";
const STORED_CONFIG = "token-vending-demo.config";
const EVENTS_SHOWN = 200;
const QUERY_SETTINGS = ["apiBaseUrl", "realtimeUrl", "issuer", "clientId", "redirectUri", "scope", "config"];

let config;
let token = null; // the signed-in user's access token
let oidcManager = null;
let profiles = [];
let call = null; // {pc, channel, microphone, started, statsTimer, ending, way, closing}
let attempt = 0; // each Connect's number; Hang up moves it on, which cancels a Connect still under way
let countdownTimer = null;

// ---- what the person sees --------------------------------------------------------------------------------

function say(message, { kind = "info", problem = "" } = {}) {
  const status = $("status");
  status.textContent = message;
  status.dataset.kind = kind;
  status.dataset.problem = problem;
  delete status.dataset.secondsLeft;
}

function setState(state) {
  document.body.dataset.state = state;
  const signedIn = state !== "signed-out";
  const idle = state === "ready";
  $("way").disabled = !idle || profiles.length === 0;
  $("profile").disabled = !idle || $("profile").options.length === 0;
  $("voice").disabled = !idle || $("voice").options.length === 0;
  $("transcribe").disabled = !idle || !transcriptionModel();
  $("connect").disabled = !idle || countdownTimer !== null || !$("profile").value;
  $("respond").disabled = state !== "connected" || call?.way === "live_session";
  $("change-instructions").disabled = state !== "connected";
  $("hang-up").disabled = state !== "connected" && state !== "connecting";
  $("sign-out").hidden = !signedIn || config.signIn.mode === "none";
  $("signed-in").hidden = !signedIn;
  $("local-sign-in").hidden = signedIn || config.signIn.mode !== "local";
  $("oidc-sign-in").hidden = signedIn || config.signIn.mode !== "oidc";
}

function duration(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [h && `${h} h`, (h || m) && `${m} min`, `${s} s`].filter(Boolean);
  return parts.join(" ");
}

// The refusal's own words, with its "Try again in …" counting down (added where it has none).
function countdown(seconds, message) {
  stopCountdown();
  const until = Date.now() + seconds * 1000;
  const wait = /Try again in [^.;]+/;
  const said = wait.test(message) ? message : `${message.replace(/\.?\s*$/, ".")} Try again in ${duration(seconds)}.`;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      stopCountdown();
      say("You may connect again.");
      setState(token || config.signIn.mode === "none" ? "ready" : "signed-out");
      return;
    }
    say(said.replace(wait, `Try again in ${duration(left)}`), { kind: "error", problem: "quota" });
    $("status").dataset.secondsLeft = String(left);
  };
  countdownTimer = setInterval(tick, 1000);
  tick();
  setState(document.body.dataset.state);
}

function clearSession() {
  $("session").hidden = true;
  for (const field of $("session").querySelectorAll("dd")) field.textContent = "";
  delete $("connect-time").dataset.ms;
  delete $("audio-received").dataset.bytes;
  delete $("session-way").dataset.way;
}

function stopCountdown() {
  if (countdownTimer !== null) clearInterval(countdownTimer);
  countdownTimer = null;
}

// An event as the panel shows it: its type and a few telling fields. Anything shaped like a secret is hidden,
// whatever the other side sends.
function hidden(value) {
  return typeof value === "string" && /^(ek_|sk-)|eyJ[\w-]+\.eyJ/.test(value) ? "[hidden]" : value;
}

function summary(event) {
  const session = event.session;
  const closed = event.type === "session.closed" ? `${hidden(event.reason ?? "")}: ` : "";
  if (session) {
    return `${closed}voice ${hidden(session.audio?.output?.voice ?? "?")}, model ${hidden(session.model ?? "?")}`;
  }
  if (event.type === "response.output_audio_transcript.delta" || event.type === "session.output_transcript.delta") {
    return JSON.stringify(hidden(event.delta));
  }
  if (event.type === "session.usage.updated") return usage(event.usage);
  if (event.type === "error") return hidden(event.error?.message ?? "");
  if (event.response) return `${hidden(event.response.id)} ${hidden(event.response.status)}`;
  if (event.item) return `${hidden(event.item.type)} ${hidden(event.item.role ?? "")}`;
  return "";
}

function showEvent(event) {
  const list = $("events");
  const item = document.createElement("li");
  const type = document.createElement("code");
  type.textContent = String(hidden(event.type));
  item.append(type, ` ${summary(event)}`);
  list.prepend(item);
  while (list.children.length > EVENTS_SHOWN) list.lastElementChild.remove();
}

function usage(used) {
  return used ? `${Number(used.seconds ?? 0)} s (${Number(used.active_seconds ?? 0)} s active)` : "";
}

function transcriptLine(key, who) {
  let line = document.querySelector(`#transcript li[data-key="${CSS.escape(key)}"]`);
  if (!line) {
    line = document.createElement("li");
    line.dataset.key = key;
    line.dataset.who = who;
    const label = document.createElement("strong");
    label.textContent = who === "user" ? "You: " : "Model: ";
    line.append(label, document.createElement("span"));
    $("transcript").append(line);
  }
  return line.lastElementChild;
}

// ---- the API ---------------------------------------------------------------------------------------------

// What a refusal means to the person, from its status and OpenAI's error envelope.
async function refusal(response, profile) {
  let message = "";
  let code = "";
  try {
    const body = await response.json();
    message = body?.error?.message ?? body?.message ?? "";
    code = String(body?.error?.code ?? "");
  } catch {
    // an answer without a JSON body: its status says enough
  }
  if (response.status === 401) {
    signOut();
    return { problem: "sign-in", message: "Your sign-in has expired or was not accepted: sign in again." };
  }
  if (response.status === 403 && code.startsWith("profile_not_for_")) {
    return { problem: "forbidden", message };
  }
  if (response.status === 403) {
    const text = `The profile "${profile}" needs another group: sign in as a member of it, or pick another profile.`;
    return { problem: "forbidden", message: text };
  }
  if (response.status === 429) {
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    return { problem: "quota", message: message || "Too many calls", retryAfter: retryAfter > 0 ? retryAfter : 60 };
  }
  return { problem: "failed", message: `${message || response.statusText} (HTTP ${response.status})` };
}

function authorization() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function loadProfiles() {
  setState("loading");
  say("Loading the profiles you may use…");
  let response;
  try {
    response = await fetch(`${config.apiBaseUrl}/realtime/profiles`, { headers: authorization() });
  } catch {
    setState("ready");
    say(`The API at ${config.apiBaseUrl} cannot be reached (is it running, and does it allow this page's origin?).`, {
      kind: "error",
      problem: "unreachable",
    });
    return;
  }
  if (!response.ok) {
    const { problem, message } = await refusal(response, "");
    if (token || config.signIn.mode === "none") setState("ready");
    say(message, { kind: "error", problem });
    return;
  }
  const sessionTypes = new Set(Object.values(WAYS).map((way) => way.sessionType));
  profiles = (await response.json()).data.filter((profile) => sessionTypes.has(profile.session_type));
  const ways = $("way");
  ways.replaceChildren();
  for (const [way, { label }] of Object.entries(WAYS)) {
    const option = new Option(label, way);
    option.disabled = !profiles.some((profile) => opensAs(profile, way));
    ways.add(option);
  }
  const asked = query.get("way");
  const offered = [...ways.options].filter((option) => !option.disabled).map((option) => option.value);
  ways.value = offered.includes(asked) ? asked : (offered[0] ?? "client_secret");
  showWay();
  say(profiles.length ? "Pick a way, a profile and a voice, then Connect." : "No voice profile is open to you.");
  setState("ready");
}

// The ways a profile may be opened (a service that lists none: its session type's first).
function opensAs(profile, way) {
  const ways = profile.ways ?? [profile.session_type === "live" ? "live_session" : "client_secret"];
  return profile.session_type === WAYS[way].sessionType && ways.includes(way);
}

// The profiles that may be opened the chosen way, the default (or the one the link asks for) chosen.
function showWay() {
  const way = $("way").value;
  const select = $("profile");
  const before = select.value;
  select.replaceChildren();
  const open = profiles.filter((profile) => opensAs(profile, way));
  for (const profile of open) select.add(new Option(profile.name, profile.name, false, profile.default));
  const asked = query.get("profile");
  if (asked && !profiles.some((profile) => profile.name === asked)) {
    select.add(new Option(`${asked} (not offered to you)`, asked));
  }
  if (asked && [...select.options].some((option) => option.value === asked)) select.value = asked;
  else if (open.some((profile) => profile.name === before)) select.value = before;
  showProfile();
}

function showProfile() {
  const profile = profiles.find((candidate) => candidate.name === $("profile").value);
  const voices = profile?.settable?.["audio.output.voice"]?.enum ?? [];
  const voice = $("voice");
  const before = voice.value;
  voice.replaceChildren(...voices.map((name) => new Option(name, name)));
  voice.value = voices.includes(before) ? before : voices.includes("marin") ? "marin" : (voices[0] ?? "");
  const model = transcriptionModel();
  $("transcribe-model").textContent = model ? `(${model})` : "(not offered by this profile)";
  if (!model) $("transcribe").checked = false;
  const instructions = profile?.fixed?.instructions;
  $("profile-description").textContent = profile
    ? `${profile.description}${instructions ? ` Instructions: “${instructions}”` : ""}`
    : "";
}

// The model of input transcription the chosen profile lets the app set (its default, or the first it allows);
// null when it lets the app set none.
function transcriptionModel() {
  const profile = profiles.find((candidate) => candidate.name === $("profile").value);
  const rule = profile?.settable?.["audio.input.transcription.model"];
  return rule?.default ?? rule?.enum?.[0] ?? null;
}

// The session asked for: the voice and transcription picked. GPT-Live's needs its model (the profile's default).
function sessionAsked(way, voice, transcription) {
  const session = {};
  if (way === "live_session") {
    const profile = profiles.find((candidate) => candidate.name === $("profile").value);
    const model = profile?.fixed?.model ?? profile?.settable?.model?.default ?? profile?.settable?.model?.enum?.[0];
    if (model) session.model = model;
  } else {
    session.type = REALTIME;
  }
  if (voice) session.audio = { output: { voice } };
  if (transcription) session.audio = { ...session.audio, input: { transcription: { model: transcription } } };
  return session;
}

async function mint(profile, session) {
  return fetch(`${config.apiBaseUrl}/realtime/client_secrets`, {
    method: "POST",
    headers: { ...authorization(), "Content-Type": "application/json", "X-Profile": profile },
    body: JSON.stringify({ session }),
  });
}

// ---- the call --------------------------------------------------------------------------------------------

async function connect() {
  const way = $("way").value;
  const profile = $("profile").value;
  const voice = $("voice").value;
  const transcription = $("transcribe").checked ? transcriptionModel() : null;
  const session = sessionAsked(way, voice, transcription);
  const mine = ++attempt;
  const cancelled = () => mine !== attempt;
  $("events").replaceChildren();
  $("transcript").replaceChildren();
  clearSession();
  setState("connecting");
  const started = performance.now();
  if (way !== "client_secret") {
    // The service opens the session: the browser sends its offer and the user's token, and holds no secret
    const path = way === "call" ? "realtime/calls" : "live/sessions";
    try {
      await open(way, started, cancelled, (offer) => fromService(path, profile, session, offer, cancelled));
    } catch (error) {
      if (!cancelled()) hangUp(`The session could not be opened (${error?.name ?? "error"}): Connect again.`, "failed");
    }
    return;
  }
  say("Asking for a client secret…");
  let minted;
  try {
    minted = await mint(profile, session);
  } catch {
    if (cancelled()) return;
    say(`The API at ${config.apiBaseUrl} cannot be reached.`, { kind: "error", problem: "unreachable" });
    setState("ready");
    return;
  }
  if (cancelled()) {
    minted.body?.cancel().catch(() => {}); // the secret, if any, goes unread: no call is opened with it
    return;
  }
  if (!minted.ok) {
    const { problem, message, retryAfter } = await refusal(minted, profile);
    setState(token || config.signIn.mode === "none" ? "ready" : "signed-out");
    if (problem === "quota") countdown(retryAfter, message);
    else say(message, { kind: "error", problem });
    return;
  }
  let secret = (await minted.json().catch(() => ({}))).value;
  if (cancelled()) return;
  try {
    await open(way, started, cancelled, (offer) => withSecret(secret, offer, cancelled));
  } catch (error) {
    if (!cancelled()) hangUp(`The call could not be opened (${error?.name ?? "error"}): Connect again.`, "failed");
  } finally {
    secret = null; // one call per secret
  }
}

// The WebRTC session, its SDP offer answered by `answer` (null: refused, and already said); it stops where Hang up
// cancelled it (`cancelled()`), which has closed the connection and freed the microphone.
async function open(way, started, cancelled, answer) {
  say("Opening the call…");
  const pc = new RTCPeerConnection();
  call = { pc, channel: null, microphone: null, started, statsTimer: null, ending: false, way, closing: false };
  pc.ontrack = (event) => {
    if (call?.pc === pc) $("remote-audio").srcObject = event.streams[0] ?? new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (call?.pc === pc && pc.connectionState === "failed") {
      hangUp("The call's connection failed: Connect again.", "failed");
    }
  };
  let microphone;
  try {
    microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    const text = "The microphone is not available: allow this page to use it, then Connect again.";
    if (!cancelled()) hangUp(text, "microphone");
    return;
  }
  if (cancelled()) {
    for (const track of microphone.getTracks()) track.stop();
    return;
  }
  call.microphone = microphone;
  for (const track of microphone.getAudioTracks()) pc.addTrack(track, microphone);
  const channel = pc.createDataChannel("oai-events");
  call.channel = channel;
  channel.onmessage = (message) => {
    if (call?.channel === channel) onEvent(JSON.parse(message.data));
  };
  channel.onclose = () => {
    if (call?.channel === channel && !call.ending) hangUp("The call ended: the other side hung up.", "ended");
  };
  const offer = await pc.createOffer();
  if (cancelled()) return;
  await pc.setLocalDescription(offer);
  if (cancelled()) return;
  const answered = await answer(offer.sdp);
  if (!answered || cancelled()) return;
  $("session-way").textContent = WAYS[way].shown;
  $("session-way").dataset.way = way;
  $("session-id").textContent = String(hidden(answered.id ?? ""));
  await pc.setRemoteDescription({ type: "answer", sdp: answered.sdp });
  if (cancelled()) return;
  say("Waiting for the session…");
  call.statsTimer = setInterval(showAudioReceived, 500);
}

// OpenAI's answer to the offer, the call opened with the client secret at realtimeUrl.
async function withSecret(secret, sdp, cancelled) {
  let answer;
  try {
    answer = await fetch(config.realtimeUrl, {
      method: "POST",
      body: sdp,
      headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/sdp" },
    });
  } catch {
    if (!cancelled()) hangUp(`The Realtime peer at ${config.realtimeUrl} cannot be reached.`, "unreachable");
    return null;
  }
  if (cancelled()) {
    answer.body?.cancel().catch(() => {});
    return null;
  }
  if (!answer.ok) {
    const problem = answer.status === 401 ? "secret" : "failed";
    const text =
      answer.status === 401
        ? "The client secret was refused (expired or unknown): Connect again for a new one."
        : `The Realtime peer refused the call (HTTP ${answer.status}).`;
    hangUp(text, problem);
    return null;
  }
  return { sdp: await answer.text(), id: callId(answer) };
}

// OpenAI's answer to the offer, the session opened by the service at `path` (realtime/calls: the SDKs' form of
// the offer and the session, answered with the SDP and the call's Location; live/sessions: OpenAI's JSON).
async function fromService(path, profile, session, sdp, cancelled) {
  let body;
  let type = {};
  if (path === "realtime/calls") {
    body = new FormData();
    body.append("sdp", sdp);
    body.append("session", JSON.stringify(session));
  } else {
    body = JSON.stringify({ session, transport: { type: "webrtc", sdp } });
    type = { "Content-Type": "application/json" };
  }
  let answer;
  try {
    answer = await fetch(`${config.apiBaseUrl}/${path}`, {
      method: "POST",
      body,
      headers: { ...authorization(), ...type, "X-Profile": profile },
    });
  } catch {
    if (!cancelled()) hangUp(`The API at ${config.apiBaseUrl} cannot be reached.`, "unreachable");
    return null;
  }
  if (cancelled()) {
    answer.body?.cancel().catch(() => {});
    return null;
  }
  if (!answer.ok) {
    const { problem, message, retryAfter } = await refusal(answer, profile);
    if (cancelled() && problem !== "sign-in") return null;
    endCall();
    setState(token || config.signIn.mode === "none" ? "ready" : "signed-out");
    if (problem === "quota") countdown(retryAfter, message);
    else say(message, { kind: "error", problem });
    return null;
  }
  if (path === "realtime/calls") return { sdp: await answer.text(), id: callId(answer) };
  const opened = await answer.json();
  return { sdp: opened?.transport?.sdp, id: opened?.session?.id };
}

// The call's id, from the Location OpenAI (or the service) answered: /v1/realtime/calls/{call_id}
function callId(answer) {
  return (answer.headers.get("Location") ?? "").split("/").pop() || null;
}

function showSession(session) {
  $("session-voice").textContent = String(hidden(session.audio?.output?.voice ?? ""));
  $("session-instructions").textContent = String(hidden(session.instructions ?? ""));
  $("session-model").textContent = String(hidden(session.model ?? ""));
  $("session-transcription").textContent = String(hidden(session.audio?.input?.transcription?.model ?? "off"));
  $("session").hidden = false;
}

function onEvent(event) {
  showEvent(event);
  // The session as OpenAI holds it: when it starts (Realtime: created; GPT-Live: started), changes and closes
  if (["session.created", "session.updated", "session.started", "session.closed"].includes(event.type)) {
    showSession(event.session ?? {});
  }
  if ((event.type === "session.created" || event.type === "session.started") && call) {
    const elapsed = Math.round(performance.now() - call.started);
    $("connect-time").textContent = `${elapsed} ms`;
    $("connect-time").dataset.ms = String(elapsed);
    const asking = call.way === "live_session" ? "" : ", or ask for a response";
    say(`Connected: talk${asking}.`, { kind: "ok" });
    setState("connected");
  } else if (event.type === "response.output_audio_transcript.delta") {
    transcriptLine(event.item_id ?? event.response_id, "model").textContent += event.delta ?? "";
  } else if (event.type === "response.output_audio_transcript.done") {
    transcriptLine(event.item_id ?? event.response_id, "model").textContent = event.transcript ?? "";
  } else if (event.type === "conversation.item.input_audio_transcription.delta") {
    transcriptLine(event.item_id, "user").textContent += event.delta ?? "";
  } else if (event.type === "conversation.item.input_audio_transcription.completed") {
    transcriptLine(event.item_id, "user").textContent = event.transcript ?? "";
  } else if (event.type === "session.output_transcript.delta") {
    // GPT-Live's transcript is the session's timeline, without items: one line for the model, one for the user
    transcriptLine("live-output", "model").textContent += event.delta ?? "";
  } else if (event.type === "session.input_transcript.delta") {
    transcriptLine("live-input", "user").textContent += event.delta ?? "";
  } else if (event.type === "session.usage.updated") {
    $("session-usage").textContent = usage(event.usage);
  } else if (event.type === "session.closed") {
    // The session's last record (and its usage) stays shown until the next Connect
    if (event.usage) $("session-usage").textContent = usage(event.usage);
    const reason = String(hidden(event.reason ?? ""));
    endCall();
    if (reason === "close_requested") say("Session closed.");
    else say(`The session ended (${reason || "no reason given"}).`, { kind: "error", problem: "ended" });
    setState(token || config.signIn.mode === "none" ? "ready" : "signed-out");
  } else if (event.type === "error") {
    say(`The model's side reported: ${hidden(event.error?.message ?? "an error")} (the call goes on).`, {
      kind: "error",
      problem: "event",
    });
  }
}

async function showAudioReceived() {
  if (!call) return;
  let bytes = 0;
  const stats = await call.pc.getStats().catch(() => null);
  if (!stats) return;
  stats.forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") bytes += report.bytesReceived ?? 0;
  });
  $("audio-received").textContent = `${(bytes / 1000).toFixed(1)} kB`;
  $("audio-received").dataset.bytes = String(bytes);
}

function send(event) {
  if (call?.channel?.readyState === "open") call.channel.send(JSON.stringify(event));
}

function askForResponse() {
  send({ type: "response.create" });
}

// Asks the session to take other instructions: a Realtime session does (the page shows its session.updated); a
// GPT-Live profile's data channel allows no session.update, and OpenAI answers with an error event.
function changeInstructions() {
  const session = call?.way === "live_session" ? {} : { type: REALTIME };
  send({ type: "session.update", session: { ...session, instructions: OTHER_INSTRUCTIONS } });
}

// Hang up: a GPT-Live session is asked to close (its session.closed ends the call, with its last usage); pressed
// again, or for any other call, the page hangs up at once.
function hangUpPressed() {
  if (call?.way === "live_session" && call.channel?.readyState === "open" && !call.closing) {
    call.closing = true;
    send({ type: "session.close" });
    say("Closing the session…");
    return;
  }
  hangUp();
}

// Ends the call, if any, and whatever Connect is under way, saying nothing.
function endCall() {
  attempt += 1; // a Connect still under way stops at its next step
  if (call) {
    call.ending = true;
    clearInterval(call.statsTimer);
    call.channel?.close();
    call.pc.close();
    for (const track of call.microphone?.getTracks() ?? []) track.stop();
    $("remote-audio").srcObject = null;
    call = null;
  }
}

function hangUp(message = "Call ended.", problem = "") {
  endCall();
  clearSession();
  say(message, { kind: problem ? "error" : "info", problem });
  setState(token || config.signIn.mode === "none" ? "ready" : "signed-out");
}

// ---- signing in ------------------------------------------------------------------------------------------

async function signInLocally(event) {
  event.preventDefault();
  const user = $("user").value.trim() || "developer";
  const group = $("group").value;
  say("Signing in…");
  const response = await fetch(config.signIn.url ?? "/local/sign-in", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, groups: group ? [group] : [] }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(body?.error?.message ?? `Sign-in failed (HTTP ${response.status}).`, { kind: "error", problem: "sign-in" });
    return;
  }
  token = body.access_token;
  $("signed-in").textContent = `Signed in as ${user}${group ? ` (group ${group})` : " (no group)"}.`;
  await loadProfiles();
}

async function oidc() {
  if (!oidcManager) {
    const { UserManager, WebStorageStateStore, InMemoryWebStorage } = await import("./vendor/oidc-client-ts.js");
    const { issuer, clientId, redirectUri, scope } = config.signIn;
    oidcManager = new UserManager({
      authority: issuer,
      client_id: clientId,
      redirect_uri: redirectUri ?? `${location.origin}${location.pathname}`,
      scope: scope ?? "openid email profile",
      response_type: "code",
      // The tokens stay in memory: a reload signs in again (at the issuer, usually without a prompt).
      userStore: new WebStorageStateStore({ store: new InMemoryWebStorage() }),
    });
  }
  return oidcManager;
}

async function signInWithIssuer() {
  // Kept for the way back from the issuer, when the page has no config.json: the settings in force, nothing else
  const { apiBaseUrl, realtimeUrl, signIn } = config;
  sessionStorage.setItem(STORED_CONFIG, JSON.stringify({ apiBaseUrl, realtimeUrl, signIn }));
  say("Going to the sign-in page…");
  await (await oidc()).signinRedirect();
}

async function finishSignInWithIssuer() {
  try {
    const user = await (await oidc()).signinRedirectCallback();
    token = user.access_token;
  } catch (error) {
    say(`Sign-in did not complete (${error?.message ?? "no answer from the issuer"}): sign in again.`, {
      kind: "error",
      problem: "sign-in",
    });
    return;
  } finally {
    history.replaceState(null, "", location.pathname);
  }
  $("signed-in").textContent = "Signed in.";
  await loadProfiles();
}

function signOut() {
  if (call) hangUp("Call ended: signed out.");
  token = null;
  profiles = [];
  $("way").replaceChildren();
  $("profile").replaceChildren();
  $("voice").replaceChildren();
  $("profile-description").textContent = "";
  oidcManager?.removeUser();
  setState("signed-out");
}

// ---- start -----------------------------------------------------------------------------------------------

// The settings in force, and where they came from: "file" (config.json: the query string's settings are ignored)
// or "query" (no config.json: the deployer gives them in the link, and the page shows where they send the token).
async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" }).catch(() => null);
  if (response?.status === 200) {
    const loaded = await response.json().catch(() => null);
    return { loaded: loaded && typeof loaded === "object" ? loaded : {}, source: "file" };
  }
  const stored = query.has("code") && query.has("state") && sessionStorage.getItem(STORED_CONFIG);
  if (stored) return { loaded: JSON.parse(stored), source: "query" };
  const loaded = {};
  for (const key of ["apiBaseUrl", "realtimeUrl"]) if (query.get(key)) loaded[key] = query.get(key);
  if (query.get("issuer")) {
    loaded.signIn = {
      mode: "oidc",
      issuer: query.get("issuer"),
      clientId: query.get("clientId"),
      redirectUri: query.get("redirectUri") ?? undefined,
      scope: query.get("scope") ?? undefined,
    };
  }
  return { loaded, source: "query" };
}

function origin(url) {
  try {
    return new URL(url, location.href).origin;
  } catch {
    return String(url);
  }
}

async function start() {
  const { loaded, source } = await loadConfig();
  config = loaded;
  const ignored = QUERY_SETTINGS.filter((key) => source === "file" && query.has(key));
  if (ignored.length) {
    $("ignored").textContent =
      `Ignored from this link: ${ignored.join(", ")}. This page's config.json says where your sign-in goes.`;
    $("ignored").hidden = false;
  }
  const missing = ["apiBaseUrl", "realtimeUrl"].filter((key) => typeof config[key] !== "string");
  if (!["local", "none", "oidc"].includes(config.signIn?.mode)) missing.push("signIn");
  if (missing.length) {
    config.signIn ??= { mode: "none" };
    setState("signed-out");
    $("local-sign-in").hidden = $("oidc-sign-in").hidden = true;
    const where = "config.json, or without one in the query string";
    say(`This page needs ${missing.join(", ")}: give them in ${where} (see docs/browser.md).`, {
      kind: "error",
      problem: "config",
    });
    return;
  }
  config.apiBaseUrl = config.apiBaseUrl.replace(/\/+$/, "");
  $("where").textContent = `API ${config.apiBaseUrl} · calls with a client secret to ${config.realtimeUrl}`;
  if (source === "query") {
    // Settings from a link: before Sign in, the person sees where their token and the sign-in go
    const signIn = config.signIn.mode === "oidc" ? `, sign-in: ${origin(config.signIn.issuer)}` : "";
    const where = `API: ${origin(config.apiBaseUrl)}${signIn}, calls: ${origin(config.realtimeUrl)}`;
    $("destination").textContent =
      `This link's settings send your sign-in and token to ${where}. Sign in only if you trust them.`;
    $("destination").hidden = false;
  }
  $("local-sign-in").addEventListener("submit", signInLocally);
  $("oidc-sign-in-button").addEventListener("click", signInWithIssuer);
  $("sign-out").addEventListener("click", signOut);
  $("way").addEventListener("change", () => {
    showWay();
    setState(document.body.dataset.state);
  });
  $("profile").addEventListener("change", () => {
    showProfile();
    setState(document.body.dataset.state);
  });
  $("connect").addEventListener("click", connect);
  $("respond").addEventListener("click", askForResponse);
  $("change-instructions").addEventListener("click", changeInstructions);
  $("hang-up").addEventListener("click", hangUpPressed);
  for (const group of config.signIn.groups ?? []) $("group").add(new Option(group, group));
  setState("signed-out");
  if (config.signIn.mode === "none") {
    $("signed-in").textContent = "No sign-in: this API checks no tokens (make run with AUTH=none).";
    await loadProfiles();
  } else if (config.signIn.mode === "oidc") {
    $("oidc-issuer").textContent = `With ${config.signIn.issuer}`;
    if (query.has("code") && query.has("state")) await finishSignInWithIssuer();
    else say("Sign in to start.");
  } else {
    say("Sign in to start.");
  }
}

start();
