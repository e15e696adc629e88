// The local stack's OpenID provider: panva's `oidc-provider` (a certified OpenID Connect
// implementation) configured for this project, on loopback. It plays the platform's
// identity provider (a Cognito user pool or any OIDC provider in production):
//
// - the setup page's public client signs people in with authorization code + PKCE (S256);
// - the confidential client `infrakitchen-local-cli` gets tokens for scripts and tests,
//   with a password grant for the local users (registered through the library's own
//   extension point for grant types) or client credentials;
// - access tokens are RS256 JWTs for the API (`aud` = the API's resource indicator) with
//   the user's `groups`, signed by a key made at start (a restart rotates it: old tokens
//   stop working, as after a key rotation).
//
// Env: OIDC_PORT (9400), OIDC_HOST (127.0.0.1), OIDC_REDIRECT_URIS (comma-separated setup
// page URLs allowed as redirect_uri and post_logout_redirect_uri), OIDC_USERS_FILE (JSON
// users replacing the defaults below), OIDC_ACCESS_TOKEN_TTL (seconds, 3600 as Cognito),
// OIDC_RESOURCE (urn:infrakitchen:api). Local only: the passwords below are public.
import http from "node:http";
import { generateKeyPairSync, randomBytes, timingSafeEqual, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import Provider, { errors } from "oidc-provider";

const env = (name, fallback) => (process.env[name] ?? "").trim() || fallback;
const HOST = env("OIDC_HOST", "127.0.0.1");
const PORT = Number(env("OIDC_PORT", "9400"));
const ISSUER = `http://${HOST}:${PORT}`;
const RESOURCE = env("OIDC_RESOURCE", "urn:infrakitchen:api");
const DEFAULT_TTL = Number(env("OIDC_ACCESS_TOKEN_TTL", "3600"));
const REDIRECT_URIS = env("OIDC_REDIRECT_URIS", "http://127.0.0.1:3000/integrations/aws/setup")
  .split(",").map((s) => s.trim()).filter(Boolean);
const PAGE_ORIGINS = [...new Set(REDIRECT_URIS.map((u) => new URL(u).origin))].join(" ");
export const PAGE_CLIENT = "infrakitchen-setup-page";
export const CLI_CLIENT = "infrakitchen-local-cli";
export const CLI_SECRET = "local-cli-secret";
// The API's one scope: every token for it carries it (API Gateway can require it per route).
const API_SCOPE = "integrations";

// The local people: the developer and a teammate share a team, another tenant does not,
// and the admin is in the admin group the local API is configured with.
const DEFAULT_USERS = [
  { username: "developer", sub: "local-developer", name: "Local Developer", groups: ["local-team"] },
  { username: "teammate", sub: "local-teammate", name: "Local Teammate", groups: ["local-team"] },
  { username: "other-tenant", sub: "local-other-tenant", name: "Other Tenant", groups: ["other-team"] },
  { username: "admin", sub: "local-admin", name: "Local Admin", groups: ["integrations-admins"] },
].map((u) => ({ password: "local-password", ...u }));

function loadUsers() {
  const file = env("OIDC_USERS_FILE", "");
  const list = file ? JSON.parse(readFileSync(file, "utf8")) : DEFAULT_USERS;
  for (const u of list) {
    if (!u.username || !u.sub || !u.password) throw new Error(`${file}: every user needs username, sub and password`);
  }
  return list;
}
const USERS = loadUsers();
const bySub = new Map(USERS.map((u) => [u.sub, u]));
const byUsername = new Map(USERS.map((u) => [u.username, u]));

// Compares digests so that a wrong password's length or prefix takes no less time.
const sameSecret = (a, b) => timingSafeEqual(
  createHash("sha256").update(String(a)).digest(),
  createHash("sha256").update(String(b)).digest(),
);
function checkPassword(username, password) {
  const user = byUsername.get(String(username ?? ""));
  const ok = sameSecret(password ?? "", user ? user.password : "not the password");
  return user && ok ? user : undefined;
}

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), use: "sig", alg: "RS256", kid: randomBytes(8).toString("hex") };

const resourceServer = {
  scope: API_SCOPE,
  audience: RESOURCE,
  accessTokenFormat: "jwt",
  jwt: { sign: { alg: "RS256" } },
};

const configuration = {
  clients: [
    {
      client_id: PAGE_CLIENT,
      // A browser page holds no secret: PKCE (required for this client) proves the code's owner.
      token_endpoint_auth_method: "none",
      application_type: "web",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      redirect_uris: REDIRECT_URIS,
      post_logout_redirect_uris: REDIRECT_URIS,
    },
    {
      client_id: CLI_CLIENT,
      client_secret: CLI_SECRET,
      token_endpoint_auth_method: "client_secret_post",
      grant_types: ["password", "client_credentials"],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  pkce: { required: () => true },
  scopes: ["openid", "profile", "groups", API_SCOPE],
  claims: { openid: ["sub"], profile: ["name", "preferred_username"], groups: ["groups"] },
  async findAccount(ctx, sub) {
    const user = bySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: user.name ?? user.username, preferred_username: user.username, groups: user.groups ?? [] };
      },
    };
  },
  // Every access token for the API names the person's groups, as a Cognito access token
  // carries `cognito:groups` (the API reads the claim named by GROUPS_CLAIM).
  async extraTokenClaims(ctx, token) {
    const user = token.accountId && bySub.get(token.accountId);
    return user ? { groups: user.groups ?? [], username: user.username } : undefined;
  },
  ttl: {
    AccessToken: (ctx, token) => bySub.get(token.accountId)?.access_token_ttl ?? DEFAULT_TTL,
    ClientCredentials: DEFAULT_TTL,
    IdToken: DEFAULT_TTL,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 8 * 3600,
    Grant: 8 * 3600,
  },
  // The page is a first-party client: no consent screen, it gets what it asks for.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const grant = await ctx.oidc.provider.Grant.find(grantId);
      if (grant) return grant;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    // `integrations` too: a request that names no resource asks for it as a plain scope,
    // and a grant that lacks it sends the browser round the login again.
    grant.addOIDCScope(`openid profile groups ${API_SCOPE}`);
    grant.addOIDCClaims(["sub", "name", "preferred_username", "groups"]);
    grant.addResourceScope(RESOURCE, API_SCOPE);
    await grant.save();
    return grant;
  },
  // The page may call the token endpoint from its origin (and only the page's client).
  clientBasedCORS(ctx, origin, client) {
    return client.clientId === PAGE_CLIENT && REDIRECT_URIS.some((u) => new URL(u).origin === origin);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource },
    resourceIndicators: {
      enabled: true,
      // Tokens are always for the API, also when a client does not name it.
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return resourceServer;
      },
    },
  },
  renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = page("Sign-in error", `<h1>Sign-in error</h1><p role="alert">${escape(out.error)}: ${escape(out.error_description ?? "")}</p>`);
  },
};

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)} · InfraKitchen local sign-in</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
main{max-width:22rem;margin:3rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 3px #0003}
h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;font-weight:600;margin-top:.75rem}
input{width:100%;box-sizing:border-box;font:inherit;padding:.5rem;border:1px solid #6b7280;border-radius:4px}
button{margin-top:1.25rem;width:100%;font:inherit;font-weight:600;padding:.6rem;border:0;border-radius:4px;background:#1d4ed8;color:#fff;cursor:pointer}
button.link{background:none;color:#1d4ed8;text-decoration:underline;width:auto;padding:0}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.error{color:#b91c1c;font-weight:600}.note{color:#4b5563;font-size:.875rem}
</style></head><body><main>${body}</main></body></html>`;
}

function loginPage(uid, { username = "", error = "" } = {}) {
  const err = error ? `<p class="error" id="login-error" role="alert">${escape(error)}</p>` : "";
  return page("Sign in", `<h1>Sign in to InfraKitchen</h1>
<p class="note">Local identity provider. Users: ${USERS.map((u) => `<code>${escape(u.username)}</code>`).join(", ")}.</p>
${err}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="on">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${escape(username)}" ${username ? "" : "autofocus"}${error ? ' aria-describedby="login-error"' : ""}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required ${username ? "autofocus" : ""}>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit" class="link">Cancel</button></form>`);
}

async function logoutSource(ctx, form) {
  ctx.body = page("Sign out", `<h1>Sign out?</h1><p>You are signing out of the local identity provider.</p>${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>
<button type="submit" form="op.logoutForm" class="link">Stay signed in</button>`);
}

const provider = new Provider(ISSUER, configuration);
provider.proxy = false;

// The password grant (RFC 6749 4.3) for scripts and tests only, on the confidential client.
provider.registerGrantType("password", async (ctx, next) => {
  const { username, password, scope } = ctx.oidc.params;
  if (ctx.oidc.client.clientId !== CLI_CLIENT) throw new errors.UnauthorizedClient("password grant is for the local CLI client");
  const user = checkPassword(username, password);
  if (!user) throw new errors.InvalidGrant("wrong username or password");
  const { AccessToken, ResourceServer } = ctx.oidc.provider;
  const at = new AccessToken({ accountId: user.sub, client: ctx.oidc.client, gty: "password" });
  at.resourceServer = new ResourceServer(RESOURCE, resourceServer);
  const asked = scope ? scope.split(" ") : [API_SCOPE];
  at.scope = asked.filter((s) => s === API_SCOPE).join(" ") || undefined;
  ctx.oidc.entity("AccessToken", at);
  const value = await at.save();
  ctx.body = { access_token: value, expires_in: at.expiration, token_type: at.tokenType, scope: at.scope };
  await next();
}, ["username", "password", "scope", "resource"]);

provider.on("server_error", (ctx, err) => console.error("server_error", err));

async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 16384) throw new Error("form too large");
    chunks.push(c);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function send(res, status, html) {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    // Chromium applies form-action to the whole redirect chain of a form post: the login
    // form ends on the page's origin, so that origin must be allowed too.
    "content-security-policy": `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${PAGE_ORIGINS}; frame-ancestors 'none'`,
  });
  res.end(html);
}

// The interaction (login) pages: a username and password checked against the users above.
async function interaction(req, res, uid, action) {
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new errors.SessionNotFound("interaction mismatch");
    if (req.method === "GET" && !action) {
      // The page is a first-party client: only the login prompt is ever shown.
      if (details.prompt.name !== "login") {
        return await provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
      }
      return send(res, 200, loginPage(uid));
    }
    if (req.method === "POST" && action === "login") {
      const form = await formBody(req);
      const user = checkPassword(form.get("username"), form.get("password"));
      if (!user) {
        return send(res, 401, loginPage(uid, { username: form.get("username") ?? "", error: "Wrong username or password." }));
      }
      return await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    }
    if (req.method === "POST" && action === "abort") {
      return await provider.interactionFinished(req, res, { error: "access_denied", error_description: "sign-in cancelled" }, { mergeWithLastSubmission: false });
    }
    send(res, 405, page("Not allowed", "<h1>Not allowed</h1>"));
  } catch (err) {
    send(res, 400, page("Sign-in error", `<h1>Sign-in error</h1><p role="alert">${escape(err.message)}. Start the sign-in again from the page.</p>`));
  }
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/.exec(new URL(req.url, ISSUER).pathname);
  if (m) return void interaction(req, res, m[1], m[2]);
  callback(req, res);
});
server.listen(PORT, HOST, () => {
  console.log(`OpenID provider ${ISSUER} (users: ${USERS.map((u) => u.username).join(", ")}; redirect URIs: ${REDIRECT_URIS.join(", ")})`);
});
