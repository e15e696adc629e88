// The setup page in Debian's Firefox ESR too (headless, driven over WebDriver BiDi by
// puppeteer-core, which needs no patched browser): sign-in at the local OpenID provider in
// the page's sign-in window, a field error as it is typed, and a Test Connection that
// passes every step against the IAM-enforcing stack, with no console error; choosing role
// delegation hides the key fields. The thorough
// tests are setup-page.test.mjs, in Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const BASE = process.env.IK_BASE_URL;
const P = JSON.parse(readFileSync(process.env.IK_PRINCIPALS, "utf8"));
const FIREFOX = process.env.FIREFOX;

let browser;
before(async () => {
  assert.ok(BASE && FIREFOX, "run through scripts/browser-test.sh");
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    // No update checks, telemetry or other traffic to hosts this machine cannot reach.
    extraPrefsFirefox: {
      "app.update.enabled": false,
      "datareporting.policy.dataSubmissionEnabled": false,
      "network.captive-portal-service.enabled": false,
      "network.connectivity-service.enabled": false,
    },
  });
});
after(async () => { await browser?.close(); });

async function text(page, selector) {
  return page.$eval(selector, (e) => e.textContent.trim());
}

test("Firefox: sign-in in the sign-in window, a field error as it is typed, and a passing Test Connection", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  const resp = await page.goto(`${BASE}/integrations/aws/setup`);
  assert.equal(resp.status(), 200);
  await page.waitForFunction(() => document.querySelector("#auth-who").textContent === "You are not signed in.");
  const opened = new Promise((resolve) => page.once("popup", resolve));
  await page.click("#signin");
  const popup = await opened;
  await popup.waitForSelector("#username");
  await popup.type("#username", "developer");
  await popup.type("#password", "local-password");
  await popup.click('button[type="submit"]');
  await page.waitForFunction(() => document.querySelector("#auth-who").textContent.startsWith("Signed in as"), { timeout: 15000 });
  assert.equal(await text(page, "#auth-who"), "Signed in as Local Developer (developer).");

  await page.type("#f-account", "12345");
  await page.waitForFunction(() => document.querySelector("#f-account-error").textContent !== "");
  assert.equal(await text(page, "#f-account-error"), "must be exactly 12 digits (e.g. 123456789012)");
  await page.$eval("#f-account", (e) => { e.value = ""; });
  await page.type("#f-account", P.account);
  assert.equal(await text(page, "#f-account-error"), "");
  assert.equal(await text(page, "#bucket-name"), `infrakitchen-${P.account}-bucket`);

  await page.type("#f-name", `firefox-${Date.now().toString(36)}`);
  await page.type("#f-labels", "firefox");
  await page.keyboard.press("Enter");
  await page.type("#f-key", P.user.id);
  await page.type("#f-secret", P.user.secret);
  await page.type("#f-role", P.role);
  await page.click("#f-bucket");
  await page.click("#test");
  await page.waitForSelector("#report-body [data-outcome]", { timeout: 60000 });
  const steps = await page.$$eval("#report-body li.step", (lis) => lis.map((li) => [li.dataset.step, li.dataset.status]));
  assert.deepEqual(steps, [["credentials", "passed"], ["account", "passed"], ["assume_role", "passed"],
    ["role_identity", "passed"], ["state_bucket", "passed"]]);
  assert.deepEqual(await page.$$eval("#chips li span", (s) => s.map((e) => e.textContent)), ["firefox"]);
  // Role delegation from the keyboard (the arrows move within the radio group): the key
  // fields and the form's Test Connection go, the primary action says what comes next.
  await page.focus("#f-auth-keys");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.$eval("#f-auth-role", (e) => e.checked), true);
  const shown = (sel) => page.$eval(sel, (e) => e.getClientRects().length > 0);
  for (const sel of ["#f-key", "#f-secret", "#f-external", "#test"]) assert.equal(await shown(sel), false, sel);
  assert.equal(await text(page, "#save"), "Save and set up the role");
  await page.close();
  assert.deepEqual(errors, [], "console errors");
});
