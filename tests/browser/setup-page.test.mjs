// The setup page end to end in Debian's headless Chromium (playwright-core, executablePath),
// against the local stack that scripts/browser-test.sh starts: its moto server enforces
// IAM, so keys, secrets, the role and its trust policy are checked for real.
//
// Env: IK_BASE_URL, IK_TOKEN (the local gateway's token), IK_PRINCIPALS (JSON from
// moto_principals.py), CHROMIUM (the browser binary). Tests run in file order: Save
// creates the integration that the duplicate-name and list tests use.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(HERE, "screenshots");
const BASE = process.env.IK_BASE_URL;
const TOKEN = process.env.IK_TOKEN;
const P = JSON.parse(readFileSync(process.env.IK_PRINCIPALS, "utf8"));
const PAGE = `${BASE}/integrations/aws/setup`;
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const NAME = `browser-${Date.now().toString(36)}`;
const BUCKET = `infrakitchen-${P.account}-bucket`;

let browser;
before(async () => {
  assert.ok(BASE && TOKEN && P.user, "run through scripts/browser-test.sh");
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // As root, without the sandbox; no background traffic to hosts this machine cannot reach.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

// A new context and page with the token entered through the page's own field, and
// every console error and uncaught exception recorded.
async function open(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 }, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push({ text: m.text(), url: m.location().url || "" }); });
  page.on("pageerror", (e) => errors.push({ text: `uncaught: ${e.message}`, url: "" }));
  const resp = await page.goto(PAGE);
  assert.equal(resp.status(), 200);
  await page.fill("#token", TOKEN);
  await page.click("#token-use");
  await waitText(page, "#token-status", "Token accepted.");
  return { context, page, errors };
}

// Chromium logs every 4xx answer to fetch as a console error; the API's expected
// refusals (a 400 or 409 under test) are not errors of the page. Anything else is: a CSP
// violation, an uncaught exception, a failed asset.
async function close({ context, errors }) {
  const real = errors.filter((e) => {
    const path = e.url ? new URL(e.url).pathname : "";
    const apiRefusal = /^Failed to load resource: the server responded with a status of 4\d\d/.test(e.text)
      && path.startsWith("/integrations/aws") && !path.startsWith("/integrations/aws/setup");
    return !apiRefusal;
  });
  await context.close();
  assert.deepEqual(real, [], "console errors");
}

async function waitText(page, selector, expected, timeout = 15000) {
  try {
    await page.waitForFunction(([s, t]) => {
      const e = document.querySelector(s);
      return e && (t === null ? e.textContent.trim() !== "" : e.textContent.includes(t));
    }, [selector, expected], { timeout });
  } catch (e) {
    const got = await page.locator(selector).first().textContent().catch(() => "(none)");
    throw new Error(`${selector}: waited for ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
  }
  return (await page.locator(selector).first().textContent()).trim();
}

async function fillForm(page, f) {
  await page.fill("#f-name", f.name);
  await page.fill("#f-description", "Created by the browser test");
  for (const l of f.labels || []) {
    await page.fill("#f-labels", l);
    await page.press("#f-labels", "Enter");
  }
  await page.fill("#f-account", f.account);
  await page.fill("#f-key", f.key);
  await page.fill("#f-secret", f.secret);
  await page.fill("#f-role", f.role || "");
  await page.fill("#f-duration", "900");
  await page.fill("#f-region", "us-east-1");
  await page.setChecked("#f-bucket", f.bucket !== false);
}

const form = (keys, extra = {}) => ({
  name: NAME, labels: ["Browser", "test"], account: P.account, key: keys.id, secret: keys.secret,
  role: P.role, ...extra,
});

// One character of the secret changed: still 40 valid characters, but not the key's.
const wrongSecret = (s) => s.slice(0, 39) + (s[39] === "A" ? "B" : "A");

async function runTest(page) {
  await page.click("#test");
  await page.waitForSelector("#report-body [data-outcome]", { timeout: 60000 });
  return page.$$eval("#report-body li.step", (lis) => lis.map((li) => [li.dataset.step, li.dataset.status]));
}

async function api(method, path, body) {
  const r = await fetch(`${BASE}/integrations/aws${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

test("the page and its assets are public, same origin, with a strict CSP; the API still wants a token", async () => {
  for (const [path, type] of [["", "text/html"], ["/app.js", "text/javascript"], ["/app.css", "text/css"]]) {
    const r = await fetch(`${PAGE}${path}`);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get("content-type").startsWith(type), path);
    assert.equal(r.headers.get("content-security-policy"), CSP, path);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff", path);
    assert.equal(r.headers.get("referrer-policy"), "no-referrer", path);
    const text = await r.text();
    assert.ok(!/https?:\/\//.test(text), `${path} loads nothing from elsewhere`);
  }
  assert.equal((await fetch(`${BASE}/integrations/aws`)).status, 401);
  assert.equal((await fetch(`${BASE}/integrations/aws/setup-policies?aws_account_id=${P.account}`)).status, 401);
});

test("a bad account id shows the field error as it is typed, the same as the API's; the bucket name follows the account id", async () => {
  const s = await open();
  const { page } = s;
  await page.fill("#f-account", "12345");
  const msg = await waitText(page, "#f-account-error", null);
  assert.equal(msg, "must be exactly 12 digits (e.g. 123456789012)");
  assert.equal(await page.getAttribute("#f-account", "aria-invalid"), "true");
  assert.equal(await page.textContent("#bucket-name"), "infrakitchen-<AWS_ACCOUNT_ID>-bucket");
  await page.fill("#f-account", P.account);
  assert.equal(await page.textContent("#f-account-error"), "");
  assert.equal(await page.getAttribute("#f-account", "aria-invalid"), null);
  assert.equal(await page.textContent("#bucket-name"), BUCKET);

  // Each bad value: the page's message is the API's message for that field.
  const good = { name: "parity", aws_account_id: P.account, aws_access_key_id: P.user.id,
    aws_secret_access_key: P.user.secret };
  const cases = [
    ["#f-account", "aws_account_id", "1234567890123"],
    ["#f-key", "aws_access_key_id", "AKIA0OSFODNN7EXAMP1E"],
    ["#f-key", "aws_access_key_id", "ASIAIOSFODNN7EXAMPLE"],
    ["#f-secret", "aws_secret_access_key", "too-short"],
    ["#f-name", "name", "has space"],
    ["#f-role", "aws_assumed_role_name", `arn:aws:iam::${P.account}:user/SomeUser`],
    ["#f-role", "aws_assumed_role_name", "arn:aws:iam::999999999999:role/Other"],
    ["#f-duration", "aws_session_duration", "900.5"],
    ["#f-region", "aws_default_region", "us-east-01"],
    ["#f-description", "description", "bad\u202Etext"],
  ];
  for (const [sel, field, value] of cases) {
    await page.fill("#f-account", P.account);
    await page.fill(sel, value);
    const shown = await waitText(page, `${sel}-error`, null);
    const body = { ...good, [field]: field === "aws_session_duration" ? Number(value) : value };
    const r = await api("POST", "/test-connection", body);
    assert.equal(r.status, 400, `${field}=${value}`);
    const fromApi = r.body.errors.filter((e) => e.field === field).map((e) => e.message);
    assert.deepEqual([shown], fromApi, `${field}=${value}`);
    await page.fill(sel, "");
  }
  // The external ID needs a role, across fields, as the API says.
  await page.fill("#f-external", "ext-1234");
  assert.equal(await waitText(page, "#f-external-error", null),
    "is only used with aws_assumed_role_name (the role's trust policy checks it)");
  await page.fill("#f-role", P.role);
  assert.equal(await page.textContent("#f-external-error"), "");
  await close(s);
});

test("a wrong secret: Test Connection shows the failed credentials step and its hint (IAM enforced)", async () => {
  const s = await open();
  const { page } = s;
  await fillForm(page, form({ id: P.user.id, secret: wrongSecret(P.user.secret) }));
  const steps = await runTest(page);
  assert.deepEqual(steps, [["credentials", "failed"], ["account", "skipped"], ["assume_role", "skipped"],
    ["role_identity", "skipped"], ["state_bucket", "skipped"]]);
  const cred = page.locator('#report-body li[data-step="credentials"]');
  assert.match(await cred.locator(".badge").textContent(), /failed/);
  assert.ok((await cred.locator(".detail").textContent()).length > 10);
  const hint = await cred.locator(".hint").textContent();
  assert.match(hint, /What to do: .*Secret/);
  assert.equal(await page.getAttribute("#report-body [data-outcome]", "data-outcome"), "failed");
  // The secret is in no attribute or text of the page.
  assert.ok(!(await page.content()).includes(P.user.secret.slice(0, 20)));
  await close(s);
});

test("a user the role does not trust: the failed role step shows the policies that fix it, with copy buttons", async () => {
  const s = await open();
  const { page, context } = s;
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  await fillForm(page, form(P.other, { name: `${NAME}-other` }));
  const steps = await runTest(page);
  assert.deepEqual(steps.slice(0, 3), [["credentials", "passed"], ["account", "passed"], ["assume_role", "failed"]]);
  const step = page.locator('#report-body li[data-step="assume_role"]');
  const pres = step.locator("pre.code");
  assert.ok((await pres.count()) >= 1, "policies shown");
  const doc = JSON.parse(await pres.first().textContent());
  assert.equal(doc.Version, "2012-10-17");
  assert.ok(JSON.stringify(doc).includes(P.role) || JSON.stringify(doc).includes(P.other.arn));
  const copy = step.locator("button[data-copy]").first();
  await copy.click();
  await waitText(page, `#report-body li[data-step="assume_role"] button[data-copy]`, "Copied");
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), await pres.first().textContent());
  // The user's ARN from the passed credentials step fills the guide's policies in too.
  assert.equal(await page.inputValue("#user-arn"), P.other.arn);
  await page.click("#policies-load");
  await waitText(page, "#policies-status", "Filled in for account");
  const titles = await page.$$eval("#policies h4", (hs) => hs.map((h) => h.textContent));
  assert.deepEqual(titles.sort(), ["The role's trust policy", "The state bucket policy", "The user's policy to assume the role"]);
  await close(s);
});

test("the right secret: every step passes; Save then shows the bucket reaching ready and the backend block", async () => {
  const s = await open();
  const { page } = s;
  await fillForm(page, form(P.user));
  await page.locator("#fill").screenshot({ path: join(SHOTS, "setup-form-filled.png") });

  // Saving untested warns first, and saves nothing.
  await page.click("#save");
  await waitText(page, "#form-warning", "has not been tested");
  assert.equal((await api("GET", "?limit=100")).body.items.filter((i) => i.name === NAME).length, 0);

  const steps = await runTest(page);
  assert.deepEqual(steps, [["credentials", "passed"], ["account", "passed"], ["assume_role", "passed"],
    ["role_identity", "passed"], ["state_bucket", "passed"]]);
  assert.equal(await page.getAttribute("#report-body [data-outcome]", "data-outcome"), "passed");
  assert.equal(await page.inputValue("#user-arn"), P.user.arn);
  await page.locator("#report").screenshot({ path: join(SHOTS, "test-connection-passed.png") });

  await page.click("#save");
  await page.waitForSelector("#saved:not([hidden])");
  assert.equal(await page.isVisible("#form-warning"), false);
  assert.equal(await page.inputValue("#f-secret"), "", "the secret is not kept after saving");
  const facts = await page.textContent("#saved-facts");
  assert.ok(facts.includes(NAME));
  assert.match(facts, /AKIA\*{12}[A-Z0-9]{4}/);
  assert.ok(!facts.includes(P.user.id));
  // A passing form's test is run once more with the saved keys, and recorded.
  await waitText(page, "#form-status", "is recorded", 60000);
  assert.match(await page.textContent("#saved-facts"), /Last test\s*passed at/);
  await page.waitForSelector('#bucket-status[data-status="ready"]', { timeout: 90000 });
  assert.ok((await page.textContent("#bucket-status")).includes(BUCKET));
  await page.waitForSelector("#backend:not([hidden])");
  const backend = await page.textContent("#backend-text");
  assert.match(backend, /backend "s3"/);
  assert.ok(backend.includes(`"${BUCKET}"`));
  assert.equal(await page.isVisible("#backend-copy"), true);
  await page.locator("#saved").screenshot({ path: join(SHOTS, "saved-bucket-ready.png") });
  // Nothing of the secret anywhere the page could keep it.
  const kept = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + location.href + document.documentElement.outerHTML);
  assert.ok(!kept.includes(P.user.secret));
  await close(s);
});

test("a duplicate name (ignoring case) shows the API's conflict on the name field", async () => {
  const s = await open();
  const { page } = s;
  await fillForm(page, form(P.user, { name: NAME.toUpperCase(), bucket: false }));
  await page.click("#save"); // the untested warning
  await waitText(page, "#form-warning", "Save again");
  await page.click("#save");
  const msg = await waitText(page, "#f-name-error", null);
  const r = await api("POST", "", { name: NAME.toUpperCase(), aws_account_id: P.account, aws_access_key_id: P.user.id,
    aws_secret_access_key: P.user.secret });
  assert.equal(r.status, 409);
  assert.equal(msg, r.body.errors.find((e) => e.field === "name").message);
  assert.equal(await page.getAttribute("#f-name", "aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-name");
  assert.equal(await page.isHidden("#saved"), true);
  await close(s);
});

test("the list shows each integration's last test and bucket, with re-test and delete", async () => {
  const s = await open();
  const { page } = s;
  const card = page.locator(`#list li.card[data-name="${NAME}"]`);
  await card.waitFor();
  const text = await card.textContent();
  // Saved after a passing test: the saved keys' test is on the record.
  assert.match(text, /Last test\s*passed at/);
  const before = (await api("GET", `/${await card.getAttribute("data-id")}`)).body.last_test.at;
  assert.ok(text.includes(`${BUCKET}: ready`), text);
  await card.getByRole("button", { name: `Re-test ${NAME}` }).click();
  await card.locator("[data-outcome]").waitFor({ timeout: 60000 });
  assert.equal(await card.locator("[data-outcome]").getAttribute("data-outcome"), "passed");
  assert.match(await card.textContent(), /Last test\s*passed at/);
  const after = (await api("GET", `/${await card.getAttribute("data-id")}`)).body.last_test.at;
  assert.ok(Date.parse(after) > Date.parse(before), `the re-test is recorded: ${before} then ${after}`);
  await card.getByRole("button", { name: `Delete ${NAME}` }).click();
  await card.getByRole("button", { name: `Yes, delete ${NAME}` }).click();
  await waitText(page, "#list-status", `Deleted ${NAME}.`);
  assert.equal(await card.count(), 0);
  assert.equal((await api("GET", "?limit=100")).body.items.filter((i) => i.name === NAME).length, 0);
  await close(s);
});

async function axe(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE);
  const { passed, violations } = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return {
      passed: r.passes.length,
      violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) })),
    };
  });
  assert.ok(passed > 10, `axe checked the page (${passed} rules passed)`);
  return violations;
}

test("accessibility: axe-core finds no serious or critical violation, before and after a failed test with policies", async () => {
  const s = await open();
  const { page } = s;
  const serious = (vs) => vs.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(serious(await axe(page)), []);
  await fillForm(page, form(P.other, { name: `${NAME}-a11y` }));
  await page.fill("#f-account", "12"); // a field error on show
  await page.fill("#f-account", P.account);
  await runTest(page);
  await page.click("#policies-load");
  await waitText(page, "#policies-status", "Filled in");
  assert.deepEqual(serious(await axe(page)), []);
  await close(s);
});

test("320 px wide: nothing scrolls sideways; keyboard focus is always visible; every field is labelled", async () => {
  const s = await open({ viewport: { width: 320, height: 640 } });
  const { page } = s;
  await fillForm(page, form(P.other, { name: `${NAME}-narrow` }));
  await runTest(page); // a report with long ARNs and policy documents
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `scrolls sideways by ${overflow} px`);
  await page.locator("#report").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(SHOTS, "report-320px.png") });
  // Tab through the page from its heading (a click sets where Tab starts): each focused
  // element shows an outline.
  await page.click("h1");
  const seen = [];
  for (let i = 0; i < 25; i++) {
    await page.keyboard.press("Tab");
    const f = await page.evaluate(() => {
      const e = document.activeElement;
      const cs = getComputedStyle(e);
      return { id: e.id || e.tagName, outline: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
    });
    assert.ok(f.outline !== "none" && f.width >= 2, `focus not visible on ${f.id}: ${JSON.stringify(f)}`);
    seen.push(f.id);
  }
  for (const id of ["token", "token-use", "f-name", "f-account", "f-secret"]) {
    assert.ok(seen.includes(id), `${id} reachable by Tab (${seen.join(",")})`);
  }
  const unlabelled = await page.$$eval("input, textarea", (els) => els
    .filter((e) => !(e.labels && e.labels.length)).map((e) => e.id));
  assert.deepEqual(unlabelled, []);
  await close(s);
});
