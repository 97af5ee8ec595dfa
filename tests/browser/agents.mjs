// Drives Debian's headless Chromium with playwright-core through tests/browser/agents.html: reads
// {"executablePath", "url", "args"} as JSON on stdin (the client secret stays off the command line), opens the
// page with a fake microphone, runs window.talk(args) in it and prints one JSON document: what the call
// returned, the page's console lines and the browser's version. Run by tests/integration/test_agents_browser.py.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";

import { chromium } from "playwright-core";

import { MEDIA_FLAGS as FLAGS } from "./chromium.mjs";

const { executablePath, url, args } = JSON.parse(await text(process.stdin));
const profile = mkdtempSync(join(tmpdir(), "token-vending-agents-"));
const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: FLAGS });
const browser = context.browser()?.version() ?? null;
const consoleLines = [];
let result = null;
try {
  const page = await context.newPage();
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.name}: ${error.message}`));
  await page.goto(url);
  result = await page.evaluate(
    (input) => window.talk?.(input) ?? { ok: false, error: "the page's module did not load" },
    args,
  );
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ browser, result, console: consoleLines }));
