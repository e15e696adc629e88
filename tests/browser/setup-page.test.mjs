// The setup page end to end in Debian's headless Chromium (playwright-core, executablePath),
// against the local stack that scripts/browser-test.sh starts: its moto server enforces
// IAM, so keys, secrets, the role and its trust policy are checked for real, and people
// sign in at the local OpenID provider (scripts/oidc-provider) in the page's sign-in
// window, as they would at the platform's identity provider.
//
// Env: IK_BASE_URL, IK_ISSUER (the provider), IK_TOKEN and IK_TOKEN_OTHER (access tokens of
// the users developer and other-tenant, for the tests' own API calls), IK_PRINCIPALS (JSON
// from moto_principals.py), CHROMIUM (the browser binary), IK_PYTHON, IK_MOTO_URL,
// IK_ADMIN_KEY_ID and IK_ADMIN_SECRET (to create a delegated role in moto as the account's
// admin, with moto_principals.py role). Tests run in file order: Save
// creates the integration that the duplicate-name and list tests use.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(HERE, "screenshots");
const BASE = process.env.IK_BASE_URL;
const ISSUER = process.env.IK_ISSUER;
const TOKEN = process.env.IK_TOKEN;
const TOKEN_OTHER = process.env.IK_TOKEN_OTHER;
const P = JSON.parse(readFileSync(process.env.IK_PRINCIPALS, "utf8"));
const PAGE = `${BASE}/integrations/aws/setup`;
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const NAME = `browser-${Date.now().toString(36)}`;
const BUCKET = `infrakitchen-${P.account}-bucket`;
const PASSWORD = "local-password";
const SESSION_ENDED = "Your session has ended. Sign in again to continue — your form is kept.";

let browser;
before(async () => {
  assert.ok(BASE && ISSUER && TOKEN && TOKEN_OTHER && P.user, "run through scripts/browser-test.sh");
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

// A new context (no provider session) and page, with every console error and uncaught
// exception of the setup page recorded.
async function fresh(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 }, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push({ text: m.text(), url: m.location().url || "" }); });
  page.on("pageerror", (e) => errors.push({ text: `uncaught: ${e.message}`, url: "" }));
  return { context, page, errors };
}

// The page, signed in as `user` through the provider's login page in the sign-in window.
async function open(options = {}, user = "developer") {
  const s = await fresh(options);
  const resp = await s.page.goto(PAGE);
  assert.equal(resp.status(), 200);
  await signIn(s.page, user);
  return s;
}

// Clicks Sign in (or presses Enter on it: `keyboard`), signs in in the window that opens
// (a provider session of the context signs in without the form), and waits for the page
// to say who is signed in.
async function signIn(page, user = "developer", { keyboard = false } = {}) {
  const opened = page.context().waitForEvent("page");
  if (keyboard) await page.keyboard.press("Enter");
  else await page.click("#signin");
  const popup = await opened;
  const closed = new Promise((resolve) => popup.once("close", () => resolve(false)));
  const form = await Promise.race([popup.waitForSelector("#username", { timeout: 15000 }).then(() => true, () => false), closed]);
  if (form) {
    if (keyboard) {
      await tabTo(popup, "username");
      await popup.keyboard.type(user);
      await popup.keyboard.press("Tab");
      assert.equal(await activeId(popup), "password");
      await popup.keyboard.type(PASSWORD);
      await popup.keyboard.press("Enter");
    } else {
      await popup.fill("#username", user);
      await popup.fill("#password", PASSWORD);
      await popup.getByRole("button", { name: "Sign in" }).click();
    }
  }
  await Promise.race([closed, new Promise((_, no) => setTimeout(() => no(new Error("the sign-in window did not close")), 15000))]);
  await waitText(page, "#auth-who", "Signed in as");
}

// Chromium logs every 4xx answer to fetch as a console error; the API's expected
// refusals (a 400, 401 or 409 under test) are not errors of the page, nor is what a test
// answers on the API's behalf (`allow`), nor what the provider's own pages log. Anything
// else is: a CSP violation, an uncaught exception, a failed asset.
async function close({ context, errors }, allow = /^$/) {
  const real = errors.filter((e) => {
    const url = e.url ? new URL(e.url) : null;
    if (url && url.origin !== new URL(BASE).origin) return false; // the provider's pages
    const path = url ? url.pathname : "";
    const page = path === "/integrations/aws/setup" || path.startsWith("/integrations/aws/setup/");
    const apiRefusal = /^Failed to load resource: the server responded with a status of 4\d\d/.test(e.text)
      && path.startsWith("/integrations/aws") && !page;
    return !apiRefusal && !allow.test(e.text);
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

const activeId = (page) => page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName));

// Presses Tab until the element with `id` has the focus.
async function tabTo(page, id, max = 60) {
  const seen = [];
  for (let i = 0; i <= max; i++) {
    const now = await activeId(page);
    if (now === id) return;
    seen.push(now);
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached #${id}: ${seen.join(",")}`);
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

async function api(method, path, body, token = TOKEN, headers = {}) {
  const r = await fetch(`${BASE}/integrations/aws${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

// Every integration with this name (or all: `every`) the user of `token` sees (the
// developer's by default).
async function named(name, token = TOKEN, every = false) {
  const items = [];
  let next = null;
  do {
    const r = await api("GET", `?limit=100${next ? `&next_token=${encodeURIComponent(next)}` : ""}`, undefined, token);
    assert.equal(r.status, 200);
    items.push(...r.body.items);
    next = r.body.next_token;
  } while (next);
  return every ? items : items.filter((i) => i.name.toLowerCase() === name.toLowerCase());
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));

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
const serious = (vs) => vs.filter((v) => v.impact === "serious" || v.impact === "critical");
async function noSeriousViolation(page, state) {
  assert.deepEqual(serious(await axe(page)), [], `axe: ${state}`);
}

test("the page, its assets and its configuration are public; CSP: same origin plus the provider; HEAD answers like GET without a body", async () => {
  const issuer = new URL(ISSUER).origin;
  for (const [path, type] of [["", "text/html"], ["/app.js", "text/javascript"], ["/app.css", "text/css"], ["/config.json", "application/json"]]) {
    const r = await fetch(`${PAGE}${path}`);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get("content-type").startsWith(type), path);
    const csp = Object.fromEntries(r.headers.get("content-security-policy").split(";")
      .map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v.join(" ")]));
    assert.deepEqual(csp, {
      "default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": `'self' ${issuer}`,
      "img-src": "'self' data:", "base-uri": "'none'", "form-action": "'none'", "frame-ancestors": "'none'",
    }, path);
    assert.equal(r.headers.get("x-content-type-options"), "nosniff", path);
    assert.equal(r.headers.get("referrer-policy"), "no-referrer", path);
    const text = await r.text();
    if (path !== "/config.json") assert.ok(!/https?:\/\//.test(text), `${path} loads nothing from elsewhere`);
    if (path === "") {
      const head = await fetch(PAGE, { method: "HEAD" });
      assert.equal(head.status, 200, "HEAD");
      assert.ok(head.headers.get("content-type").startsWith("text/html"), "HEAD");
      assert.equal(Number(head.headers.get("content-length")), Buffer.byteLength(text), "HEAD: the GET's length");
      assert.equal(await head.text(), "", "HEAD: no body");
    }
  }
  const config = await (await fetch(`${PAGE}/config.json`)).json();
  assert.deepEqual({ issuer: config.issuer, client_id: config.client_id, resource: config.resource },
    { issuer: ISSUER, client_id: "infrakitchen-setup-page", resource: "urn:infrakitchen:api" });
  assert.match(config.scopes, /\bopenid\b/);
  assert.equal((await fetch(`${BASE}/integrations/aws`)).status, 401);
  assert.equal((await fetch(`${BASE}/integrations/aws/setup-policies?aws_account_id=${P.account}`)).status, 401);
});

test("sign-in: code + PKCE in a window at the provider (a wrong password is refused there), who is signed in, the token in this tab only; sign-out ends the provider's session", async () => {
  const s = await fresh();
  const { context, page } = s;
  const requests = [];
  context.on("request", (r) => requests.push({ url: r.url(), method: r.method(), body: r.postData() }));
  await page.goto(PAGE);
  assert.equal(await waitText(page, "#auth-who", null), "You are not signed in.");
  assert.equal(await waitText(page, "#list-status", null), "Sign in to see your integrations.");
  assert.equal(await page.isHidden("#signout"), true);
  await noSeriousViolation(page, "signed out");

  const opened = context.waitForEvent("page");
  await page.click("#signin");
  const popup = await opened;
  await popup.waitForSelector("#username");
  // The authorization request: code flow, PKCE S256, back to this very page.
  const auth = new URL(requests.find((r) => r.url.startsWith(`${ISSUER}/auth?`)).url).searchParams;
  assert.equal(auth.get("response_type"), "code");
  assert.equal(auth.get("client_id"), "infrakitchen-setup-page");
  assert.equal(auth.get("redirect_uri"), PAGE);
  assert.equal(auth.get("code_challenge_method"), "S256");
  assert.match(auth.get("code_challenge"), /^[A-Za-z0-9_-]{43}$/);
  assert.match(auth.get("state"), /^[A-Za-z0-9_-]{43}$/);
  assert.ok(auth.get("nonce"));
  assert.equal(auth.get("resource"), "urn:infrakitchen:api");
  assert.match(auth.get("scope"), /\bopenid\b/);
  // A wrong password: the provider says so, the window stays.
  await popup.fill("#username", "developer");
  await popup.fill("#password", "not-the-password");
  await popup.getByRole("button", { name: "Sign in" }).click();
  await waitText(popup, "#login-error", "Wrong username or password");
  const closed = popup.waitForEvent("close");
  await popup.fill("#password", PASSWORD);
  await popup.getByRole("button", { name: "Sign in" }).click();
  await closed;
  assert.equal(await waitText(page, "#auth-who", "Signed in as"), "Signed in as Local Developer (developer).");
  assert.equal(await activeId(page), "auth-who");
  assert.equal(await page.isHidden("#signin"), true);
  // The code was exchanged by the page itself: a public client, no secret, its verifier.
  const exchange = new URLSearchParams(requests.find((r) => r.url === `${ISSUER}/token`).body);
  assert.equal(exchange.get("grant_type"), "authorization_code");
  assert.equal(exchange.get("redirect_uri"), PAGE);
  assert.match(exchange.get("code_verifier"), /^[A-Za-z0-9_-]{43}$/);
  assert.equal(exchange.get("client_secret"), null);
  // The token: a JWT for the API, kept in this tab's session storage only.
  const kept = await page.evaluate(() => ({ session: sessionStorage.getItem("infrakitchen-setup-session"), local: localStorage.length }));
  assert.equal(kept.local, 0, "nothing in local storage");
  const at = claims(JSON.parse(kept.session).access_token);
  assert.equal(at.iss, ISSUER);
  assert.equal(at.aud, "urn:infrakitchen:api");
  assert.equal(at.sub, "local-developer");
  // Signed in, the page lists the user's integrations.
  await page.waitForFunction(() => !/Loading|Sign in/.test(document.querySelector("#list-status").textContent));
  await noSeriousViolation(page, "signed in");
  await page.locator("#access").screenshot({ path: join(SHOTS, "signed-in.png") });

  // Sign-out: the provider asks, then sends the browser back to the page, signed out.
  await page.click("#signout");
  await page.waitForURL(`${ISSUER}/**`);
  const end = new URL(requests.find((r) => r.url.startsWith(`${ISSUER}/session/end`)).url).searchParams;
  assert.equal(end.get("post_logout_redirect_uri"), PAGE);
  assert.equal(end.get("client_id"), "infrakitchen-setup-page");
  assert.equal(claims(end.get("id_token_hint")).sub, "local-developer");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(PAGE);
  assert.equal(await waitText(page, "#auth-status", null), "You are signed out.");
  assert.equal(await waitText(page, "#auth-who", null), "You are not signed in.");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("infrakitchen-setup-session")), null);
  // The provider's session ended too: the next sign-in asks for the password again.
  const again = context.waitForEvent("page");
  await page.click("#signin");
  const popup2 = await again;
  await popup2.waitForSelector("#password");
  await popup2.close();
  await waitText(page, "#auth-status", "closed before you signed in");
  assert.equal(await activeId(page), "signin");
  await close(s);
});

test("a sign-in that does not happen: cancelled at the provider, or no provider configured, is said in place", async () => {
  const s = await fresh();
  const { context, page } = s;
  await page.goto(PAGE);
  await waitText(page, "#auth-who", "not signed in");
  const opened = context.waitForEvent("page");
  await page.click("#signin");
  const popup = await opened;
  const closed = popup.waitForEvent("close");
  await popup.getByRole("button", { name: "Cancel" }).click();
  await closed;
  assert.match(await waitText(page, "#auth-status", "Not signed in"), /Not signed in: sign-in cancelled\./);
  assert.equal(await activeId(page), "signin");
  // An API without a provider: the page says sign-in is not available, and why.
  await page.route((u) => u.pathname === "/integrations/aws/setup/config.json", (route) => route.fulfill({
    status: 200, contentType: "application/json",
    body: JSON.stringify({ issuer: null, client_id: null, scopes: "openid profile", resource: null }),
  }));
  await page.reload();
  assert.equal(await waitText(page, "#auth-status", "not available"),
    "Sign-in is not available: this API has no identity provider configured.");
  assert.equal(await page.getAttribute("#signin", "aria-disabled"), "true");
  await close(s);
});

test("a blocked sign-in window: signing in in this tab keeps the form (not its secret) and leaves a clean address", async () => {
  const s = await fresh();
  const { context, page } = s;
  await context.addInitScript(() => { window.open = () => null; });
  await page.goto(PAGE);
  await page.fill("#f-name", `${NAME}-tab`);
  await page.fill("#f-labels", "kept");
  await page.press("#f-labels", "Enter");
  await page.fill("#f-account", P.account);
  await page.fill("#f-secret", P.user.secret);
  await page.click("#signin");
  assert.match(await waitText(page, "#auth-status", "blocked"), /sign in in this tab instead/i);
  assert.equal(await activeId(page), "signin-here");
  await page.click("#signin-here");
  await page.waitForSelector("#username");
  assert.ok(page.url().startsWith(`${ISSUER}/`));
  await page.fill("#username", "developer");
  await page.fill("#password", PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await waitText(page, "#auth-who", "Signed in as Local Developer");
  assert.equal(page.url(), PAGE, "the code left the address");
  assert.equal(await page.inputValue("#f-name"), `${NAME}-tab`);
  assert.equal(await page.inputValue("#f-account"), P.account);
  assert.deepEqual(await page.$$eval("#chips li span", (e) => e.map((x) => x.textContent)), ["kept"]);
  assert.equal(await page.inputValue("#f-secret"), "", "the secret is never kept over the round trip");
  assert.match(await page.textContent("#form-status"), /enter the secret access key again/);
  const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes(P.user.secret) && !stored.includes("infrakitchen-setup-draft"));
  await close(s);
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

test("a wrong secret: Test Connection shows the failed credentials step and its hint (IAM enforced), in plain words", async () => {
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
  assert.match(await page.textContent("#report-body .summary"), /^Failed at the credentials step: /);
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
  assert.match(await page.textContent("#report-body .summary"), /^Failed at the assume role step: /);
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
  assert.deepEqual(titles.sort(), ["The role's trust policy", "The state bucket policy", "The user's policy to assume the role", "The user's policy to inspect its own access key"]);
  await close(s);
});

test("the right secret: every step passes; Save then shows the bucket reaching ready and the backend block (whole lines at 390 px)", async () => {
  const s = await open();
  const { page } = s;
  await fillForm(page, form(P.user));
  await page.locator("#fill").screenshot({ path: join(SHOTS, "setup-form-filled.png") });
  // Save is the primary button, Test Connection the secondary one.
  const look = (id) => page.$eval(id, (b) => getComputedStyle(b).backgroundColor);
  assert.notEqual(await look("#save"), await look("#test"));
  assert.equal(await look("#test"), "rgb(255, 255, 255)");

  const steps = await runTest(page);
  assert.deepEqual(steps, [["credentials", "passed"], ["account", "passed"], ["assume_role", "passed"],
    ["role_identity", "passed"], ["state_bucket", "passed"]]);
  assert.equal(await page.getAttribute("#report-body [data-outcome]", "data-outcome"), "passed");
  const summary = await page.textContent("#report-body .summary");
  assert.match(summary, /^Passed: the keys authenticate/);
  assert.ok(!/proves|does_not_prove|_/.test(summary), `plain words: ${summary}`);
  assert.equal(await page.inputValue("#user-arn"), P.user.arn);
  await page.locator("#report").screenshot({ path: join(SHOTS, "test-connection-passed.png") });

  // Tested and passed: Save saves at once, no question asked.
  await page.click("#save");
  await page.waitForSelector("#saved:not([hidden])");
  assert.equal(await page.isHidden("#confirm"), true);
  assert.equal(await activeId(page), "saved-h");
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
  await noSeriousViolation(page, "saved");
  await page.locator("#saved").screenshot({ path: join(SHOTS, "saved-bucket-ready.png") });
  // At 390 px the backend block keeps its lines whole (the bucket name on one line): the
  // block scrolls sideways, the page does not.
  await page.setViewportSize({ width: 390, height: 844 });
  const block = await page.$eval("#backend-text", (pre) => {
    const line = [...pre.textContent.split("\n")].find((l) => l.includes("bucket "));
    const range = document.createRange();
    const text = pre.firstChild;
    const start = text.textContent.indexOf(line);
    range.setStart(text, start);
    range.setEnd(text, start + line.length);
    return {
      whiteSpace: getComputedStyle(pre).whiteSpace,
      lineBoxes: new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size,
      scrolls: pre.scrollWidth > pre.clientWidth,
      page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    };
  });
  assert.equal(block.whiteSpace, "pre");
  assert.equal(block.lineBoxes, 1, "the bucket line is one line");
  assert.ok(block.scrolls, "the block scrolls sideways at 390 px");
  assert.ok(block.page <= 0, `the page scrolls sideways by ${block.page} px`);
  await page.locator("#backend").screenshot({ path: join(SHOTS, "backend-390px.png") });
  // Nothing of the secret anywhere the page could keep it.
  const kept = await page.evaluate(() => JSON.stringify({ ...sessionStorage }) + location.href + document.documentElement.outerHTML);
  assert.ok(!kept.includes(P.user.secret));
  await close(s);
});

test("a duplicate name (ignoring case) shows the API's conflict on the name field; the form's Idempotency-Key lasts until an edit", async () => {
  const s = await open();
  const { page } = s;
  const keys = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/integrations/aws") keys.push(r.headers()["idempotency-key"]);
  });
  await fillForm(page, form(P.user, { name: NAME.toUpperCase(), bucket: false }));
  await page.click("#save"); // untested: the question first
  await waitText(page, "#confirm-text", "has not been tested");
  await page.click("#confirm-save");
  const msg = await waitText(page, "#f-name-error", null);
  const r = await api("POST", "", { name: NAME.toUpperCase(), aws_account_id: P.account, aws_access_key_id: P.user.id,
    aws_secret_access_key: P.user.secret });
  assert.equal(r.status, 409);
  assert.equal(msg, r.body.errors.find((e) => e.field === "name").message);
  assert.equal(await page.getAttribute("#f-name", "aria-invalid"), "true");
  assert.equal(await activeId(page), "f-name");
  assert.equal(await page.isHidden("#saved"), true);
  // The same form again: the same key (and the same answer). An edit: a new key.
  await page.click("#save");
  await page.waitForFunction(() => document.querySelector("#form-status").textContent.includes("refused some fields"));
  await page.fill("#f-name", `${NAME}-renamed`);
  await page.click("#save");
  await page.click("#confirm-save");
  await page.waitForSelector("#saved:not([hidden])");
  assert.equal(keys.length, 3);
  assert.equal(keys[0], keys[1], "unchanged form: the same Idempotency-Key");
  assert.notEqual(keys[1], keys[2], "edited form: a new Idempotency-Key");
  await close(s);
});

test("the list shows each integration's last test (local time) and bucket, with re-test and delete", async () => {
  // A time zone and language of the user's own, not the server's.
  const s = await open({ timezoneId: "Pacific/Chatham", locale: "en-GB" });
  const { page } = s;
  const card = page.locator(`#list li.card[data-name="${NAME}"]`);
  await card.waitFor();
  const text = await card.textContent();
  // Saved after a passing test: the saved keys' test is on the record.
  assert.match(text, /Last test\s*passed at/);
  const id = await card.getAttribute("data-id");
  const before = (await api("GET", `/${id}`)).body.last_test.at;
  const time = card.locator('dd[data-fact="Last test"] time');
  assert.equal(await time.getAttribute("datetime"), before);
  const local = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "medium", timeZone: "Pacific/Chatham" });
  assert.equal(await time.textContent(), local.format(new Date(before)));
  assert.ok(!text.includes(before), "no raw ISO time in the text");
  assert.ok(text.includes(`${BUCKET}: ready`), text);
  await card.getByRole("button", { name: `Re-test ${NAME}` }).click();
  await card.locator("[data-outcome]").waitFor({ timeout: 60000 });
  assert.equal(await card.locator("[data-outcome]").getAttribute("data-outcome"), "passed");
  assert.match(await card.textContent(), /Last test\s*passed at/);
  const after = (await api("GET", `/${id}`)).body.last_test.at;
  assert.ok(Date.parse(after) > Date.parse(before), `the re-test is recorded: ${before} then ${after}`);
  assert.equal(await time.getAttribute("datetime"), after);
  await card.getByRole("button", { name: `Delete ${NAME}` }).click();
  await card.getByRole("button", { name: `Yes, delete ${NAME}` }).click();
  await waitText(page, "#list-status", `Deleted ${NAME}.`);
  assert.equal(await card.count(), 0);
  assert.equal((await named(NAME)).length, 0);
  await close(s);
});

test("the daily health check: a key AWS does not know turns failing at the credentials step; the list shows it, and the failing filter lists only failing ones", async () => {
  const name = `${NAME}-health`;
  const b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const keyId = "AKIA" + Array.from({ length: 16 }, () => b32[Math.floor(Math.random() * 32)]).join("");
  const created = await api("POST", "", {
    name, aws_account_id: P.account, aws_access_key_id: keyId, aws_secret_access_key: "k".repeat(40),
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  assert.equal(created.body.health, null);
  // The schedule's run, now (local-api runs the health check on SIGUSR1).
  process.kill(Number(process.env.IK_API_PID), "SIGUSR1");
  let view = created.body;
  for (let i = 0; i < 300 && !view.health; i++) {
    await new Promise((r) => setTimeout(r, 200));
    view = (await api("GET", `/${id}`)).body;
  }
  assert.equal(view.health?.status, "failing", JSON.stringify(view));
  assert.equal(view.health.step, "credentials");
  const history = (await api("GET", `/${id}/history`)).body.events.map((e) => e.action);
  assert.ok(history.includes("health_failing"), history.join());

  const s = await open();
  const { page } = s;
  const card = page.locator(`#list li.card[data-name="${name}"]`);
  await card.waitFor();
  const health = card.locator('dd[data-fact="Health"] [data-health]');
  assert.equal(await health.getAttribute("data-health"), "failing");
  assert.match(await health.textContent(), /^failing since .+ at the credentials step: /);
  assert.equal(await card.locator('dd[data-fact="Health"] time').first().getAttribute("datetime"), view.health.since);
  await page.check("#list-failing");
  await waitText(page, "#list-status", " failing integration");
  const states = await page.$$eval("#list li.card", (cards) => cards.map((c) => [c.dataset.name, c.querySelector('dd[data-fact="Health"] [data-health]')?.dataset.health]));
  assert.ok(states.length >= 1 && states.every(([, h]) => h === "failing"), JSON.stringify(states));
  assert.ok(states.some(([n]) => n === name), JSON.stringify(states));
  await card.screenshot({ path: join(SHOTS, "health-failing.png") });
  await page.uncheck("#list-failing");
  await waitText(page, "#list-status", "integration");
  assert.equal((await api("DELETE", `/${id}`, undefined, TOKEN, { "If-Match": `"${view.revision}"` })).status, 204);
  await close(s);
});

test("two clicks on Save 150 ms apart (or two Enters) do not save an untested form: the question shows below, nothing moves", async () => {
  const s = await open();
  const { page } = s;
  const name = `${NAME}-double`;
  const creates = [];
  page.on("request", (r) => { if (r.method() === "POST" && new URL(r.url()).pathname === "/integrations/aws") creates.push(r); });
  await fillForm(page, form(P.user, { name, bucket: false }));
  await page.locator("#save").scrollIntoViewIfNeeded();
  const box = await page.locator("#save").boundingBox();
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  await page.mouse.click(x, y);
  await page.waitForTimeout(150);
  await page.mouse.click(x, y);
  await page.waitForSelector("#confirm:not([hidden])");
  await page.waitForTimeout(400); // a save would have left by now
  assert.equal(creates.length, 0, "nothing saved");
  assert.deepEqual(await page.locator("#save").boundingBox(), box, "Save did not move");
  assert.equal(await page.evaluate(([px, py]) => document.elementFromPoint(px, py).id, [x, y]), "save");
  const confirm = await page.locator("#confirm").boundingBox();
  assert.ok(confirm.y >= box.y + box.height, "the question is below the buttons");
  assert.equal(await activeId(page), "confirm-text");
  assert.match(await page.textContent("#confirm-text"), /has not been tested.*Save it anyway\?/);
  await noSeriousViolation(page, "untested confirm");
  const area = await page.locator("#form").boundingBox();
  await page.screenshot({ path: join(SHOTS, "untested-confirm.png"),
    clip: { x: area.x, y: box.y - 8, width: area.width, height: confirm.y + confirm.height - box.y + 16 } });
  // The keyboard: two Enters on Save ask once, and save nothing either.
  await page.click("#confirm-cancel");
  assert.equal(await page.isHidden("#confirm"), true);
  assert.equal(await activeId(page), "save");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#confirm:not([hidden])");
  await page.waitForTimeout(300);
  assert.equal(creates.length, 0, "nothing saved by two Enters");
  // Only "Save untested" saves it.
  await page.click("#confirm-save");
  await page.waitForSelector("#saved:not([hidden])");
  assert.equal(creates.length, 1);
  assert.equal((await named(name)).length, 1);
  await close(s);
});

test("a 503 after the write landed: a Retry that waits for Retry-After resends the same key, and the page shows the integration saved (one record, no false conflict)", async () => {
  const s = await open();
  const { page } = s;
  const name = `${NAME}-retry`;
  const keys = [];
  const answers = [];
  await page.route((u) => u.pathname === "/integrations/aws", async (route) => {
    const req = route.request();
    if (req.method() !== "POST") return route.continue();
    keys.push(req.headers()["idempotency-key"]);
    if (keys.length > 1) return route.continue();
    // The first save reaches the API and is applied; its answer is lost to a 503.
    const landed = await route.fetch();
    answers.push(landed.status());
    await route.fulfill({
      status: 503,
      headers: { "content-type": "application/problem+json", "retry-after": "2" },
      body: JSON.stringify({
        type: "/problems/dependency-unavailable", title: "A dependency is unavailable; retry later", status: 503,
        detail: "DynamoDB PutItem did not answer (RequestTimeout): the change may have been applied; retry the request (a create retried with the same Idempotency-Key returns the original result)",
      }),
    });
  });
  page.on("response", (r) => {
    if (r.request().method() === "POST" && new URL(r.url()).pathname === "/integrations/aws") answers.push(`${r.status()} ${r.headers()["idempotent-replayed"] || ""}`.trim());
  });
  await fillForm(page, form(P.user, { name, bucket: false }));
  await page.click("#save");
  await page.click("#confirm-save");
  await page.waitForSelector("#form-error:not([hidden])");
  assert.deepEqual(answers.slice(0, 1), [201], "the first save was applied");
  assert.match(await page.textContent("#form-error-h"), /Not saved yet: .*unavailable/);
  assert.match(await page.textContent("#form-error-detail"), /PutItem did not answer/);
  // The Retry control has the focus, and waits the 2 s the API asked for.
  assert.equal(await activeId(page), "retry");
  assert.equal(await page.getAttribute("#retry", "aria-disabled"), "true");
  assert.match(await page.textContent("#retry"), /Retry \(in [12] s\)/);
  await page.click("#retry", { force: true }); // while it waits (aria-disabled): nothing
  await noSeriousViolation(page, "503 error");
  await page.locator("#form-error").screenshot({ path: join(SHOTS, "save-503-retry.png") });
  assert.equal(keys.length, 1, "no retry before Retry-After");
  await page.waitForFunction(() => !document.querySelector("#retry").hasAttribute("aria-disabled"), null, { timeout: 4000 });
  assert.equal(await page.textContent("#retry"), "Retry");
  // The form is as typed, and the retry is the same request under the same key.
  assert.equal(await page.inputValue("#f-secret"), P.user.secret);
  await page.click("#retry");
  await page.waitForSelector("#saved:not([hidden])");
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1], "the same Idempotency-Key");
  assert.match(keys[0], /^[0-9a-f-]{36}$/);
  assert.ok(answers.includes("201 true"), `the API replayed the first answer: ${answers}`);
  assert.match(await page.textContent("#form-status"), new RegExp(`Saved as ${name}: the earlier attempt had been saved`));
  assert.equal(await page.textContent("#f-name-error"), "", "no conflict shown");
  assert.equal((await named(name)).length, 1, "exactly one record");
  await close(s, /status of 503/);
});

test("an expired session: Save keeps the form, says so in place with the focus on Sign in; signed in again, Save goes through once", async () => {
  // short-session's tokens live 8 s (scripts/browser-test.sh); the page counts 5 s less.
  const s = await open({}, "short-session");
  const { page } = s;
  const name = `${NAME}-expired`;
  await fillForm(page, form(P.user, { name, bucket: false }));
  // Once the token lapses the page says so, without taking the focus.
  const typing = await activeId(page);
  await waitText(page, "#session-ended", "Your session has ended", 20000);
  assert.equal(await activeId(page), typing);
  await page.click("#save");
  await page.click("#confirm-save");
  await waitText(page, "#form-status", "Not saved: sign in again");
  assert.equal(await page.textContent("#session-ended"), SESSION_ENDED);
  assert.equal(await activeId(page), "signin");
  // Every field as typed.
  assert.equal(await page.inputValue("#f-name"), name);
  assert.equal(await page.inputValue("#f-secret"), P.user.secret);
  assert.equal(await page.inputValue("#f-role"), P.role);
  assert.deepEqual(await page.$$eval("#chips li span", (e) => e.map((x) => x.textContent)), ["browser", "test"]);
  await noSeriousViolation(page, "session ended");
  await page.locator("#access").screenshot({ path: join(SHOTS, "session-ended.png") });
  // Signed in again (the provider's session: no password asked): back to Save, which
  // saves the form as confirmed (untested) before the session ended.
  await signIn(page, "short-session");
  assert.equal(await page.textContent("#session-ended"), "");
  assert.equal(await activeId(page), "save");
  assert.match(await page.textContent("#form-status"), /Signed in again\. Your form is as you left it: select Save/);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#saved:not([hidden])");
  // The integration is short-session's own: listed with that user's fresh token.
  const own = JSON.parse(await page.evaluate(() => sessionStorage.getItem("infrakitchen-setup-session"))).access_token;
  assert.equal((await named(name, own)).length, 1, "exactly one record");
  await close(s);
});

test("a token the API refuses (401): the same notice in place, and the action works once signed in again", async () => {
  const s = await open();
  const { page } = s;
  await page.fill("#f-account", P.account);
  const real = JSON.parse(await page.evaluate(() => sessionStorage.getItem("infrakitchen-setup-session"))).access_token;
  const forged = `${real.slice(0, real.lastIndexOf(".") + 1)}${Buffer.from("not the signature").toString("base64url")}`;
  await page.route((u) => u.pathname === "/integrations/aws/setup-policies", (route) =>
    route.continue({ headers: { ...route.request().headers(), authorization: `Bearer ${forged}` } }), { times: 1 });
  await page.click("#policies-load");
  await waitText(page, "#session-ended", SESSION_ENDED);
  assert.equal(await activeId(page), "signin");
  assert.match(await page.textContent("#auth-status"), /The API refused the sign-in \(401/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("infrakitchen-setup-session")), null, "the refused token is dropped");
  assert.equal(await page.inputValue("#f-account"), P.account);
  await signIn(page);
  assert.equal(await activeId(page), "policies-load");
  await page.keyboard.press("Enter");
  await waitText(page, "#policies-status", `Filled in for account ${P.account}`);
  await close(s);
});

test("keyboard only: sign in (in the sign-in window too), fill the form and save", async () => {
  const s = await fresh();
  const { page } = s;
  const name = `${NAME}-keys`;
  await page.goto(PAGE);
  await waitText(page, "#auth-who", "not signed in");
  await tabTo(page, "signin");
  await signIn(page, "developer", { keyboard: true });
  assert.equal(await activeId(page), "auth-who");
  for (const [id, value] of [["f-name", name], ["f-account", P.account], ["f-key", P.user.id], ["f-secret", P.user.secret]]) {
    await tabTo(page, id);
    await page.keyboard.type(value);
  }
  await tabTo(page, "save");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#confirm:not([hidden])");
  assert.equal(await activeId(page), "confirm-text");
  await page.keyboard.press("Tab");
  assert.equal(await activeId(page), "confirm-save");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#saved:not([hidden])");
  assert.equal(await activeId(page), "saved-h");
  assert.equal((await named(name)).length, 1);
  await close(s);
});

test("the form comes before the list; the list says what it shows (a first part, more available) and Load more shows the rest", async () => {
  // Another team's 21 integrations (the list's page is 20), created through the API.
  const prefix = `${NAME}-many`;
  const made = await Promise.all(Array.from({ length: 21 }, (_, i) => api("POST", "", {
    name: `${prefix}-${String(i).padStart(2, "0")}`, aws_account_id: P.account, aws_access_key_id: P.user.id,
    aws_secret_access_key: P.user.secret,
  }, TOKEN_OTHER)));
  assert.deepEqual(made.map((r) => r.status), Array(21).fill(201));
  const total = (await named("", TOKEN_OTHER, true)).length; // 21, or more on a reused stack
  const s = await open({}, "other-tenant");
  const { page } = s;
  await waitText(page, "#list-status", "shown");
  assert.equal(await page.textContent("#list-status"), "20 shown, more available: select Load more to see them.");
  assert.equal(await page.locator("#list li.card").count(), 20);
  // The form first, then the report and saved sections, then the list.
  const order = await page.$$eval("main > section", (ss) => ss.map((x) => x.id));
  assert.deepEqual(order, ["access", "prepare", "fill", "report", "saved", "existing"]);
  const top = (sel) => page.$eval(sel, (e) => e.getBoundingClientRect().top + window.scrollY);
  assert.ok((await top("#fill")) < (await top("#existing")));
  assert.ok((await top("#f-name")) < 1500, "the form starts near the top");
  await page.click("#list-more");
  if (total > 40) return close(s);
  await waitText(page, "#list-status", `${total} integrations.`);
  assert.equal(await page.isHidden("#list-more"), true);
  assert.equal(await page.evaluate(() => document.activeElement.closest("li.card") !== null), true, "focus on the first card added");
  await close(s);
});

test("accessibility: axe-core finds no serious or critical violation, before and after a failed test with policies", async () => {
  const s = await open();
  const { page } = s;
  await noSeriousViolation(page, "signed in, empty form");
  await fillForm(page, form(P.other, { name: `${NAME}-a11y` }));
  await page.fill("#f-account", "12"); // a field error on show
  await page.fill("#f-account", P.account);
  await runTest(page);
  await page.click("#policies-load");
  await waitText(page, "#policies-status", "Filled in");
  await noSeriousViolation(page, "a failed test with policies");
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
  for (const id of ["signout", "f-name", "f-account", "f-secret"]) {
    assert.ok(seen.includes(id), `${id} reachable by Tab (${seen.join(",")})`);
  }
  const unlabelled = await page.$$eval("input, textarea", (els) => els
    .filter((e) => !(e.labels && e.labels.length)).map((e) => e.id));
  assert.deepEqual(unlabelled, []);
  await close(s);
});

// ---- role delegation -------------------------------------------------------------------
const DELEGATION_STEPS = ["platform", "assume_role", "role_identity", "state_bucket"];

// The role a user creates in AWS for role delegation: in the IAM-enforcing moto, as the
// account's admin, with exactly `trust` as its trust policy (and S3 permissions).
function createRole(name, trust) {
  const arn = execFileSync(process.env.IK_PYTHON, [join(HERE, "moto_principals.py"), "role",
    process.env.IK_MOTO_URL, process.env.IK_ADMIN_KEY_ID, process.env.IK_ADMIN_SECRET, name,
    JSON.stringify(trust)], { encoding: "utf8", timeout: 30000 }).trim();
  assert.match(arn, new RegExp(`^arn:aws:iam::${P.account}:role/${name}$`));
  return arn;
}

// Chooses role delegation with the keyboard (one Tab stop; the arrows move within the
// group), fills the form and saves it; returns the create request's body.
async function saveDelegated(page, { name, role, bucket }) {
  const creates = [];
  const listen = (r) => { if (r.method() === "POST" && new URL(r.url()).pathname === "/integrations/aws") creates.push(JSON.parse(r.postData())); };
  page.on("request", listen);
  assert.equal(await page.isChecked("#f-auth-keys"), true, "access keys stay the default");
  await page.focus("#f-auth-keys");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.isChecked("#f-auth-role"), true);
  await page.fill("#f-name", name);
  await page.fill("#f-account", P.account);
  await page.fill("#f-role", role);
  await page.setChecked("#f-bucket", bucket);
  await page.click("#save");
  await page.waitForSelector("#onboarding:not([hidden])");
  await page.waitForSelector("#onboarding-body .ext-id", { timeout: 15000 });
  page.off("request", listen);
  assert.equal(creates.length, 1);
  return creates[0];
}

// The panel's trust policy (the code block under its heading).
async function panelPolicy(page, title) {
  const block = page.locator("#onboarding-body .policy").filter({ has: page.getByRole("heading", { name: title, exact: true }) });
  return JSON.parse(await block.locator("pre.code").textContent());
}

// Answers GET .../onboarding as the API does, with `extra` merged in (an operator's
// hosted template: a quick-create link).
async function onboardingRoute(page, extra) {
  await page.route((u) => /^\/integrations\/aws\/[^/]+\/onboarding$/.test(u.pathname), async (route) => {
    const r = await route.fetch();
    assert.equal(r.status(), 200, "GET .../onboarding");
    await route.fulfill({ response: r, json: { ...(await r.json()), ...extra } });
  });
}

async function runOnboardingTest(page) {
  await page.click("#onboarding-test");
  await page.waitForSelector("#onboarding-report [data-outcome]", { timeout: 60000 });
  return page.$$eval("#onboarding-report li.step", (lis) => lis.map((li) => [li.dataset.step, li.dataset.status]));
}

test("role delegation: no key fields, save, the onboarding panel (External ID, trust policy, template), the role created with that trust policy, Test Connection passes and the bucket is made", async () => {
  const s = await open();
  const { page, context } = s;
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const name = `${NAME}-role`;
  const role = `DelegRole${Date.now().toString(36)}`;
  // The two kinds, labelled, in one radio group.
  assert.equal(await page.getByRole("radio", { name: "Access keys (the guide's way)" }).count(), 1);
  await page.getByRole("radio", { name: "Role delegation — recommended: no secret is stored" }).check();
  for (const id of ["#f-key", "#f-secret", "#f-external", "#test"]) assert.equal(await page.isHidden(id), true, `${id} hidden`);
  assert.equal(await page.textContent("#save"), "Save and set up the role");
  assert.match((await page.textContent("#role-first")).replace(/\s+/g, " "), /Test Connection comes after saving: the platform makes the External ID/);
  // The role is required; saying so asks the API nothing.
  await page.fill("#f-name", name);
  await page.fill("#f-account", P.account);
  await page.click("#save");
  assert.equal(await waitText(page, "#f-role-error", null), "is required with auth role_delegation (the role the platform assumes)");
  assert.equal(await activeId(page), "f-role");
  // Back to access keys and again: the radios move with the keyboard.
  await page.getByRole("radio", { name: "Access keys (the guide's way)" }).check();
  assert.equal(await page.isVisible("#f-key"), true);
  assert.equal(await page.textContent("#save"), "Save");
  const sent = await saveDelegated(page, { name, role, bucket: true });
  assert.equal(sent.auth, "role_delegation");
  assert.equal(sent.aws_assumed_role_name, role);
  for (const k of ["aws_access_key_id", "aws_secret_access_key", "aws_external_id"]) assert.ok(!(k in sent), `${k} not sent`);
  assert.equal(await activeId(page), "onboarding-h");
  assert.match(await page.textContent("#form-status"), new RegExp(`Saved as ${name}\\. Now create the role in AWS`));

  // The panel: the External ID (copyable), the trust policy naming the platform's
  // principal with that External ID, the permissions policy, and (no hosted template
  // here: no Launch stack link) the template to download, with its one-line instruction.
  const ext = (await page.textContent("#onboarding-body .ext-id")).trim();
  assert.match(ext, /^ik-[A-Za-z0-9_-]+$/);
  assert.match(await page.textContent("#saved-facts"), new RegExp(`External ID\\s*${ext}`));
  await page.getByRole("button", { name: "Copy the External ID" }).click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), ext);
  const trust = await panelPolicy(page, "The role's trust policy");
  const st = trust.Statement[0];
  assert.equal(st.Principal.AWS, P.admin.arn, "the platform principal: the local API's own identity");
  assert.deepEqual(st.Condition, { StringEquals: { "sts:ExternalId": ext } });
  const perms = await panelPolicy(page, "The role's permissions policy (the state bucket)");
  assert.ok(JSON.stringify(perms).includes(BUCKET));
  assert.equal(await page.locator("#launch-stack").count(), 0);
  assert.match(await page.textContent("#onboarding-body .template-help"),
    new RegExp(`create a stack from it with RoleName ${role} and ExternalId ${ext}`));
  const download = page.waitForEvent("download");
  await page.click("#template-download");
  const file = JSON.parse(readFileSync(await (await download).path(), "utf8"));
  assert.equal(file.Resources.InfraKitchenRole.Type, "AWS::IAM::Role");
  assert.match(await page.textContent("#bucket-status"), /created once the role works/);
  await noSeriousViolation(page, "delegation onboarding");

  // The user creates the role with exactly that trust policy; the test passes each step.
  createRole(role, trust);
  const steps = await runOnboardingTest(page);
  assert.deepEqual(steps, DELEGATION_STEPS.map((n) => [n, "passed"]));
  assert.equal(await activeId(page), "onboarding-test-status");
  assert.match(await page.textContent("#onboarding-test-status"), /passed: the platform can assume your role/);
  assert.match(await page.textContent('#onboarding-report li[data-step="platform"] .detail'), new RegExp(P.admin.arn));
  assert.match(await page.textContent("#saved-facts"), /Last test\s*passed at/);
  // The bucket asked for at save is made through the role.
  await page.waitForSelector('#bucket-status[data-status="ready"]', { timeout: 90000 });
  assert.ok((await page.textContent("#bucket-status")).includes(BUCKET));
  await page.waitForSelector("#backend:not([hidden])");
  await noSeriousViolation(page, "delegation tested");
  // The panel down to the test's steps (what it proves follows, as for access keys).
  const clip = await page.evaluate(() => {
    const panel = document.querySelector("#onboarding").getBoundingClientRect();
    const end = document.querySelector("#onboarding-report ol.steps").getBoundingClientRect();
    return { x: panel.left + scrollX, y: panel.top + scrollY, width: panel.width, height: end.bottom - panel.top + 8 };
  });
  await page.screenshot({ path: join(SHOTS, "delegation-onboarding.png"), fullPage: true, clip });

  // The list: each kind as it is, and no "null" anywhere.
  const card = page.locator(`#list li.card[data-name="${name}"]`);
  await card.waitFor();
  assert.match(await card.locator('dd[data-fact="Connects with"]').textContent(), new RegExp(`^Role delegation, External ID ${ext}$`));
  const list = await page.textContent("#list");
  assert.ok(!/\bnull\b/.test(list), "no null in the list");
  const keyed = page.locator('#list dd[data-fact="Connects with"]').filter({ hasText: /^Access keys / }).first();
  if (await keyed.count()) assert.match(await keyed.textContent(), /^Access keys AKIA\*{12}[A-Z0-9]{4}$/);
  // Nothing secret was made: the record has no key.
  const id = await card.getAttribute("data-id");
  const view = (await api("GET", `/${id}`)).body;
  assert.deepEqual([view.auth, view.aws_access_key_id, view.aws_external_id], ["role_delegation", null, ext]);
  await close(s);
});

test("role delegation: a role that trusts another External ID fails at the role step, retried while IAM propagates, with a hint naming sts:ExternalId; a hosted template shows a Launch stack link", async () => {
  const s = await open();
  const { page } = s;
  const name = `${NAME}-wrongext`;
  const role = `DelegWrong${Date.now().toString(36)}`;
  const LINK = "https://console.aws.amazon.com/cloudformation/home?region=us-east-1#/stacks/quickcreate?templateURL=x";
  // As an operator who hosts the template would answer: with a quick-create link.
  await onboardingRoute(page, { template_url: "https://example.invalid/t.json", quick_create_link: LINK });
  await saveDelegated(page, { name, role, bucket: false });
  const link = page.getByRole("link", { name: /Launch stack/ });
  assert.equal(await link.getAttribute("href"), LINK);
  assert.equal(await link.getAttribute("target"), "_blank");
  assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
  assert.equal(await page.locator("#template-download").count(), 0, "no template block beside the link");
  await noSeriousViolation(page, "delegation onboarding with Launch stack");
  // The role trusts the platform, but with another External ID.
  const trust = await panelPolicy(page, "The role's trust policy");
  const ext = trust.Statement[0].Condition.StringEquals["sts:ExternalId"];
  trust.Statement[0].Condition.StringEquals["sts:ExternalId"] = `${ext}-not-this-one`;
  createRole(role, trust);
  const steps = await runOnboardingTest(page);
  assert.deepEqual(steps, [["platform", "passed"], ["assume_role", "failed"], ["role_identity", "skipped"]]);
  const step = page.locator('#onboarding-report li[data-step="assume_role"]');
  assert.match(await step.locator(".hint").textContent(), /sts:ExternalId/);
  assert.match(await step.locator(".hint").textContent(), new RegExp(P.admin.arn));
  assert.match(await step.locator(".attempts").textContent(), /^Retried \d+ times? while IAM changes propagate/);
  assert.match(await page.textContent("#onboarding-test-status"), /did not pass/);
  assert.equal(await page.isHidden("#backend"), true);
  await close(s);
});
