// Drives Debian's headless Chromium with playwright-core (which never downloads a browser here). Reads
// {"executablePath", "steps": [{"url", "call", "args"}]} as JSON on stdin (the token stays off the command
// line), opens each step's page, runs window.calls[call](args) in it, and prints one JSON document: the
// browser's version and, per step, what the call returned, the page's console errors and the requests the
// browser gave up on. Run by tests/integration/test_browser.py.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";

import { chromium } from "playwright-core";

import { FLAGS } from "./chromium.mjs";

const { executablePath, steps } = JSON.parse(await text(process.stdin));
const profile = mkdtempSync(join(tmpdir(), "token-vending-chromium-"));
const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: FLAGS });
const version = context.browser()?.version() ?? null;
const results = [];
try {
  for (const { url, call, args } of steps) {
    const page = await context.newPage();
    const consoleErrors = [];
    const failedRequests = [];
    page.on("console", (message) => message.type() === "error" && consoleErrors.push(message.text()));
    page.on("pageerror", (error) => consoleErrors.push(`${error.name}: ${error.message}`));
    page.on("requestfailed", (request) =>
      failedRequests.push({ method: request.method(), url: request.url(), failure: request.failure()?.errorText }),
    );
    await page.goto(url);
    const result = await page.evaluate(
      ([name, input]) => window.calls?.[name](input) ?? { ok: false, error: "the page's module did not load" },
      [call, args],
    );
    results.push({ url, call, result, consoleErrors, failedRequests });
    await page.close();
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ browser: version, steps: results }));
