// The local stack's STS trust-policy proxy: it sits in front of moto and makes
// `sts:AssumeRole` evaluate the role's trust policy as AWS does.
//
// Why: moto 5.2.5, even with IAM enforcement on, accepts an AssumeRole WITHOUT the
// ExternalId a trust policy requires (StringEquals on sts:ExternalId), accepts any caller
// for a role in another account (it checks trust only for roles in the caller's own
// account), and hands out credentials for roles that do not exist. AWS refuses all three
// with AccessDenied. The platform's role-delegation tests must see those refusals locally.
//
// How: every request is forwarded to moto byte for byte (method, path, query, headers,
// body; the response streamed back). Only a signed STS `AssumeRole` is looked at first:
//   1. the caller's principal ARN from the SigV4 access key id: a long-term key is mapped
//      to its IAM user through moto's IAM (with admin credentials, cached); a temporary key
//      is one this proxy saw issued in an AssumeRole response (role chaining);
//   2. the role's trust policy from moto's IAM (`iam:GetRole`, never cached: it changes);
//   3. `@cloud-copilot/iam-simulate` evaluates the trust policy as the resource policy of
//      `sts:AssumeRole` on the role (plus `sts:TagSession` / `sts:SetSourceIdentity` when
//      the call sets tags / a source identity, as AWS requires), the caller's identity side
//      allowed: identity policies stay moto's job (its IAM enforcement checks them).
//   Denied -> the exact STS AccessDenied answer, nothing forwarded. Allowed -> forwarded.
// What it cannot evaluate (an unknown access key, a role in an account it has no admin
// for, a malformed request) goes to moto untouched: moto answers as it does without it.
//
// Env: STS_PROXY_PORT (required), STS_PROXY_HOST (127.0.0.1), STS_PROXY_UPSTREAM (moto,
// e.g. http://127.0.0.1:4566), STS_PROXY_ADMIN_ACCESS_KEY_ID / STS_PROXY_ADMIN_SECRET_ACCESS_KEY:
// an admin's key in moto, or comma-separated lists (same order), one admin per account
// whose roles and users the proxy should see (moto scopes IAM reads to the key's account).
// Local only: the admin keys are those of a throwaway emulator, and are never logged.
// The proxy's own lookups are ordinary signed requests to moto: made while a no-auth window
// (POST /moto-api/reset-auth) is open, they use up part of its count.
import http from "node:http";
import { createHash, createHmac, randomUUID } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { runSimulation } from "@cloud-copilot/iam-simulate";

const env = (name, fallback) => (process.env[name] ?? "").trim() || fallback;
const PORT = Number(env("STS_PROXY_PORT", ""));
const HOST = env("STS_PROXY_HOST", "127.0.0.1");
const UPSTREAM = new URL(env("STS_PROXY_UPSTREAM", "http://127.0.0.1:4566"));
const ADMIN_IDS = env("STS_PROXY_ADMIN_ACCESS_KEY_ID", "").split(",").map((s) => s.trim()).filter(Boolean);
const ADMIN_SECRETS = env("STS_PROXY_ADMIN_SECRET_ACCESS_KEY", "").split(",").map((s) => s.trim()).filter(Boolean);
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) {
  console.error("sts-trust-proxy: set STS_PROXY_PORT to a TCP port");
  process.exit(2);
}
if (UPSTREAM.protocol !== "http:") {
  console.error("sts-trust-proxy: STS_PROXY_UPSTREAM must be an http:// URL (moto on loopback)");
  process.exit(2);
}
if (ADMIN_IDS.length !== ADMIN_SECRETS.length) {
  console.error("sts-trust-proxy: as many admin secret keys as admin key ids, please");
  process.exit(2);
}
const ADMINS = ADMIN_IDS.map((id, i) => ({ id, secret: ADMIN_SECRETS[i] }));

// STS requests are a few hundred bytes (a session policy is at most 2 KB packed, tags 50
// pairs): a bound far above that keeps a stray huge body from being held in memory.
const MAX_STS_BODY = 64 * 1024;
const MAX_UPSTREAM_ANSWER = 1024 * 1024;
const MAX_SESSIONS = 100_000;

const log = (line) => console.log(`${new Date().toISOString()} ${line}`);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

// ---- SigV4: which key signed a request, and signing the proxy's own admin calls --------

// The credential of a SigV4 request (header or presigned query): key id, region, service.
// SigV4a scopes lack the region, so the service is read from the end of the scope.
function credentialOf(req) {
  const auth = req.headers.authorization ?? "";
  let cred = /Credential=([^,\s]+)/.exec(auth)?.[1];
  const signed = /SignedHeaders=([^,\s]+)/.exec(auth)?.[1];
  if (!cred) {
    const q = new URLSearchParams(req.url.split("?")[1] ?? "");
    cred = q.get("X-Amz-Credential") ?? undefined;
  }
  if (!cred) return null;
  const parts = cred.split("/");
  if (parts.length < 4) return null;
  return {
    accessKeyId: parts[0],
    region: parts.length >= 5 ? parts[2] : "us-east-1",
    service: parts[parts.length - 2],
    signedHeaders: new Set((signed ?? "").toLowerCase().split(";").filter(Boolean)),
  };
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");
const hmac = (key, data) => createHmac("sha256", key).update(data).digest();

// A form body encoded as Python's urlencode does: moto re-encodes the parsed form that way
// to check the signature, so both sides must agree byte for byte.
const formEncode = (params) =>
  Object.entries(params)
    .map(([k, v]) => [k, v].map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, "+")).join("="))
    .join("&");

// One signed Query-API call to moto (POST /, form body) as an admin; resolves to
// { status, body } whatever the status. Only the three signed headers plus the length.
function callAws(admin, service, params) {
  const version = service === "sts" ? "2011-06-15" : "2010-05-08";
  const body = formEncode({ ...params, Version: version });
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const scope = `${day}/us-east-1/${service}/aws4_request`;
  const contentType = "application/x-www-form-urlencoded; charset=utf-8";
  const canonical = ["POST", "/", "", `content-type:${contentType}\nhost:${UPSTREAM.host}\nx-amz-date:${amzDate}\n`,
    "content-type;host;x-amz-date", sha256(body)].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  let key = hmac(`AWS4${admin.secret}`, day);
  for (const part of ["us-east-1", service, "aws4_request"]) key = hmac(key, part);
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  const headers = {
    host: UPSTREAM.host,
    "content-type": contentType,
    "x-amz-date": amzDate,
    "content-length": Buffer.byteLength(body),
    authorization: `AWS4-HMAC-SHA256 Credential=${admin.id}/${scope}, SignedHeaders=content-type;host;x-amz-date, Signature=${signature}`,
  };
  return new Promise((resolve, reject) => {
    const r = http.request({ hostname: UPSTREAM.hostname, port: UPSTREAM.port || 80, method: "POST", path: "/", headers, agent }, (res) => {
      const chunks = [];
      let size = 0;
      res.on("data", (c) => {
        size += c.length;
        if (size > MAX_UPSTREAM_ANSWER) res.destroy(new Error("answer too large"));
        else chunks.push(c);
      });
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    r.setTimeout(10_000, () => r.destroy(new Error(`moto did not answer ${params.Action} within 10 s`)));
    r.on("error", reject);
    r.end(body);
  });
}

const xmlUnescape = (s) =>
  s.replace(/&(lt|gt|quot|apos|amp|#x[0-9a-fA-F]+|#\d+);/g, (_, e) =>
    ({ lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" })[e] ??
    String.fromCodePoint(e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
const xmlEscape = (s) => String(s).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const xmlTag = (xml, name) => {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return m ? xmlUnescape(m[1]) : undefined;
};

// An admin call that must succeed (or fail with one of `tolerated` error codes, -> null).
async function admin(adminKey, service, params, tolerated = []) {
  const { status, body } = await callAws(adminKey, service, params);
  if (status === 200) return body;
  const code = xmlTag(body, "Code") ?? `HTTP ${status}`;
  if (tolerated.includes(code)) return null;
  throw new Error(`${service}:${params.Action} as the proxy's admin ${adminKey.id.slice(0, 8)}... failed: ${code}`);
}

// ---- what the proxy knows: admins per account, callers, issued sessions ----------------

let adminsByAccount = null; // Promise<Map<account, admin>>
const callers = new Map(); // long-term access key id -> principal
const sessions = new Map(); // temporary access key id -> principal (learned from responses)

function forgetEverything() {
  adminsByAccount = null;
  callers.clear();
  sessions.clear();
}

// The account of each admin key (asked once; asked again after a failure or a moto reset).
function adminAccounts() {
  if (!adminsByAccount) {
    adminsByAccount = (async () => {
      const map = new Map();
      for (const a of ADMINS) {
        const account = xmlTag(await admin(a, "sts", { Action: "GetCallerIdentity" }), "Account");
        if (account && !map.has(account)) map.set(account, a);
      }
      return map;
    })();
    adminsByAccount.catch(() => { adminsByAccount = null; });
  }
  return adminsByAccount;
}

// The principal behind an access key, or null when the proxy cannot tell (then moto decides).
async function callerOf(accessKeyId) {
  if (sessions.has(accessKeyId)) return sessions.get(accessKeyId);
  if (callers.has(accessKeyId)) return callers.get(accessKeyId);
  if (!/^AKIA[A-Z0-9]{12,124}$/.test(accessKeyId)) return null; // temporary key not seen issued
  const admins = await adminAccounts();
  const any = admins.values().next().value;
  if (!any) return null;
  // moto's GetAccessKeyInfo names the key's account (or the asker's own one when it knows
  // no such key, which the user lookup below then rules out).
  const account = xmlTag(await admin(any, "sts", { Action: "GetAccessKeyInfo", AccessKeyId: accessKeyId }), "Account");
  const inAccount = admins.get(account);
  if (!inAccount) return null;
  const lastUsed = await admin(inAccount, "iam", { Action: "GetAccessKeyLastUsed", AccessKeyId: accessKeyId }, ["NoSuchEntity"]);
  const userName = lastUsed && xmlTag(lastUsed, "UserName");
  if (!userName) return null;
  const user = await admin(inAccount, "iam", { Action: "GetUser", UserName: userName }, ["NoSuchEntity"]);
  if (!user) return null;
  const arn = xmlTag(user, "Arn");
  const principal = {
    arn, // arn:aws:iam::<acct>:user/<path><name>
    principalArn: arn,
    account: arn.split(":")[4],
    type: "User",
    username: userName,
    userid: xmlTag(user, "UserId"),
  };
  callers.set(accessKeyId, principal);
  return principal;
}

// A role (ARN, trust policy) from moto's IAM, or null when it has no such role.
async function roleOf(adminKey, name) {
  const body = await admin(adminKey, "iam", { Action: "GetRole", RoleName: name }, ["NoSuchEntity"]);
  if (!body) return null;
  const raw = xmlTag(body, "AssumeRolePolicyDocument") ?? "";
  let trust;
  try { trust = JSON.parse(decodeURIComponent(raw)); } catch { trust = JSON.parse(raw); } // IAM URL-encodes it
  return { arn: xmlTag(body, "Arn"), trust };
}

// Remember the credentials an AssumeRole answer hands out: their key is a later caller.
function recordSession(xml, roleArn) {
  const accessKeyId = xmlTag(xml, "AccessKeyId");
  const sessionArn = /<AssumedRoleUser>[\s\S]*?<Arn>([^<]*)<\/Arn>/.exec(xml)?.[1];
  if (!accessKeyId || !sessionArn) return;
  const arn = xmlUnescape(sessionArn); // arn:aws:sts::<acct>:assumed-role/<name>/<session>
  const [, partition, account, roleName] = /^arn:([^:]+):sts::(\d{12}):assumed-role\/([^/]+)\//.exec(arn) ?? [];
  if (!account) return;
  if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
  sessions.set(accessKeyId, {
    arn,
    // aws:PrincipalArn of a role session is the role's ARN (with its path), as in AWS.
    principalArn: roleArn ?? `arn:${partition}:iam::${account}:role/${roleName}`,
    account,
    type: "AssumedRole",
    userid: xmlTag(xml, "AssumedRoleId"),
    sourceIdentity: xmlTag(xml, "SourceIdentity"),
  });
}

// ---- the evaluation --------------------------------------------------------------------

// The identity side is moto's job: an allow-all identity policy leaves the decision to the
// trust policy, which must admit the caller, by its ARN or by its account (as in AWS, in
// the same account too; naming only the account, AWS also wants the caller's identity
// policy to allow it, and moto checks that one).
const IDENTITY_ALLOWS_STS = [{ name: "identity-checked-by-moto", policy: {
  Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sts:*", Resource: "*" }] } }];

// Request parameters indexed by `prefix.member.N.suffix` (Tags, TransitiveTagKeys).
function members(p, prefix, suffix = "") {
  const out = [];
  for (let i = 1; i <= 200 && p[`${prefix}.member.${i}${suffix}`] !== undefined; i++) out.push(p[`${prefix}.member.${i}${suffix}`]);
  return out;
}

function contextFor(caller, p, region, sourceIp) {
  const now = new Date();
  const ctx = {
    "aws:PrincipalArn": caller.principalArn,
    "aws:PrincipalAccount": caller.account,
    "aws:PrincipalType": caller.type,
    "aws:CurrentTime": now.toISOString().replace(/\.\d{3}Z$/, "Z"),
    "aws:EpochTime": String(Math.floor(now.getTime() / 1000)),
    "aws:SecureTransport": "false", // the local stack speaks plain HTTP
    "aws:RequestedRegion": region,
    "aws:PrincipalIsAWSService": "false",
    "aws:ViaAWSService": "false",
    "sts:RoleSessionName": p.RoleSessionName,
  };
  if (sourceIp) ctx["aws:SourceIp"] = sourceIp;
  if (caller.userid) ctx["aws:userid"] = caller.userid;
  if (caller.username) ctx["aws:username"] = caller.username;
  // Absent when not sent: that is what makes StringEquals on it fail, as in AWS.
  if (p.ExternalId !== undefined) ctx["sts:ExternalId"] = p.ExternalId;
  if (p.SourceIdentity !== undefined) ctx["sts:SourceIdentity"] = p.SourceIdentity;
  if (caller.sourceIdentity) ctx["aws:SourceIdentity"] = caller.sourceIdentity;
  const tagKeys = members(p, "Tags", ".Key");
  const tagValues = members(p, "Tags", ".Value");
  tagKeys.forEach((k, i) => { ctx[`aws:RequestTag/${k}`] = tagValues[i] ?? ""; });
  if (tagKeys.length) ctx["aws:TagKeys"] = tagKeys;
  const transitive = members(p, "TransitiveTagKeys");
  if (transitive.length) ctx["sts:TransitiveTagKeys"] = transitive;
  return ctx;
}

// Why the trust policy said no, from the library's analysis (no values: they may be secret).
function whyDenied(analysis) {
  const ra = analysis?.resourceAnalysis;
  if (!ra) return "no analysis";
  if (ra.denyStatements?.length) {
    // identifier: the statement's Sid, or its 1-based index
    return `explicit Deny in ${ra.denyStatements.map((s) => `statement ${s.explain?.identifier}`).join(", ")}`;
  }
  const failed = [];
  for (const s of ra.unmatchedStatements ?? []) {
    if (s.explain?.effect !== "Allow" || !s.actionMatch || s.principalMatch === "NoMatch") continue;
    for (const c of s.explain?.conditions ?? []) {
      if (!c.matches) failed.push(`${c.operator} ${c.conditionKeyValue}${c.failedBecauseMissing ? " (absent from the request)" : ""}`);
    }
  }
  return failed.length ? `condition failed: ${[...new Set(failed)].join("; ")}` : "no Allow statement names the caller for this action";
}

// Decide an AssumeRole: { deny: false } to forward, or { deny: true, caller, action, role }.
async function judge(cred, p, sourceIp) {
  const roleMatch = /^arn:([^:]+):iam::(\d{12}):role\/(?:[^/]+\/)*([^/]+)$/.exec(p.RoleArn ?? "");
  if (!roleMatch || !p.RoleSessionName) return { deny: false, note: "malformed AssumeRole: left to moto" };
  const [, , roleAccount, roleName] = roleMatch;
  const caller = await callerOf(cred.accessKeyId);
  if (!caller) return { deny: false, note: `caller key ${cred.accessKeyId.slice(0, 8)}... unknown to the proxy: left to moto` };
  const adminKey = (await adminAccounts()).get(roleAccount);
  if (!adminKey) return { deny: false, note: `no admin for account ${roleAccount}: left to moto`, caller };
  const role = await roleOf(adminKey, roleName);
  // AWS answers AccessDenied for a role that does not exist (moto hands out credentials).
  // The ARN must name the role's path too.
  if (!role || role.arn !== p.RoleArn) {
    return { deny: true, caller, action: "sts:AssumeRole", why: role ? `the role's ARN is ${role.arn}` : "no such role" };
  }
  const actions = ["sts:AssumeRole"];
  if (members(p, "Tags", ".Key").length) actions.push("sts:TagSession");
  if (p.SourceIdentity !== undefined) actions.push("sts:SetSourceIdentity");
  const contextVariables = contextFor(caller, p, cred.region, sourceIp);
  for (const action of actions) {
    const result = await runSimulation({
      request: {
        principal: caller.arn,
        action,
        resource: { resource: role.arn, accountId: roleAccount },
        contextVariables,
      },
      identityPolicies: IDENTITY_ALLOWS_STS,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: role.trust,
    }, { simulationMode: "Strict" });
    if (result.resultType === "error") {
      throw new Error(`the policy library refused the simulation: ${result.errors?.message ?? "invalid input"}`);
    }
    if (result.overallResult !== "Allowed") {
      const analysis = result.resultType === "single" ? result.result?.analysis : result.results?.[0]?.analysis;
      return { deny: true, caller, action, role: role.arn, why: whyDenied(analysis) };
    }
  }
  return { deny: false, caller, role: role.arn };
}

// ---- the HTTP side ---------------------------------------------------------------------

function stsError(res, status, type, code, message) {
  const requestId = randomUUID();
  const body = `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>${type}</Type>` +
    `<Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
  res.writeHead(status, { "Content-Type": "text/xml", "Content-Length": Buffer.byteLength(body), "x-amzn-RequestId": requestId });
  res.end(body);
}

// Headers of one connection, not of the request; `expect` was answered by this server
// already (unless the client signed it, then it goes on as it came).
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"]);
function passHeaders(raw, signed = new Set()) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!HOP_BY_HOP.has(name) || signed.has(name)) out.push(raw[i], raw[i + 1]);
  }
  return out;
}

// Forward the request to moto. `body`: the buffered body, or null to stream it.
// `onAnswer(status, text)`: called with a (bounded) copy of the answer, for AssumeRole.
function forward(req, res, body, signed, onAnswer) {
  const up = http.request({
    hostname: UPSTREAM.hostname, port: UPSTREAM.port || 80, method: req.method, path: req.url,
    headers: passHeaders(req.rawHeaders, signed), setHost: false, agent,
  }, (upRes) => {
    res.writeHead(upRes.statusCode, upRes.statusMessage, passHeaders(upRes.rawHeaders));
    if (onAnswer) {
      const chunks = [];
      let size = 0;
      upRes.on("data", (c) => { size += c.length; if (size <= MAX_UPSTREAM_ANSWER) chunks.push(c); });
      upRes.on("end", () => {
        try { onAnswer(upRes.statusCode, Buffer.concat(chunks).toString("utf8")); } catch (e) { log(`recording an answer failed: ${e.message}`); }
      });
    }
    upRes.pipe(res);
    upRes.on("error", () => res.destroy());
  });
  up.on("error", (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { "Content-Type": "text/plain" });
      res.end(`sts-trust-proxy: moto at ${UPSTREAM.origin} did not answer: ${e.message}\n`);
    } else res.destroy();
  });
  res.on("close", () => { if (!res.writableFinished) up.destroy(); });
  if (body) up.end(body);
  else req.pipe(up);
}

// The whole body, or null past the bound.
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > limit) { req.pause(); resolve(null); } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

// The Query-API parameters of an STS request, from its URL and its form body (moto reads
// either). A parameter given twice with different values is refused rather than guessed:
// the proxy must judge the same values moto then acts on.
function queryParams(url, body) {
  const all = new Map();
  for (const source of [new URLSearchParams(url.split("?")[1] ?? ""), new URLSearchParams(body)]) {
    for (const [k, v] of source) {
      if (!all.has(k)) all.set(k, new Set());
      all.get(k).add(v);
    }
  }
  const p = {};
  for (const [k, values] of all) {
    if (values.size > 1) return { ambiguous: k };
    p[k] = [...values][0];
  }
  return p;
}

async function handle(req, res) {
  if (req.url.startsWith("/moto-api/reset")) {
    // moto forgets every key and session: so does the proxy (reset-auth changes nothing).
    if (req.method === "POST" && !req.url.startsWith("/moto-api/reset-auth")) forgetEverything();
    return forward(req, res, null);
  }
  const cred = credentialOf(req);
  if (cred?.service !== "sts") return forward(req, res, null, cred?.signedHeaders);
  const raw = await readBody(req, MAX_STS_BODY);
  if (raw === null) {
    res.setHeader("Connection", "close"); // the rest of the body is never read
    return stsError(res, 413, "Sender", "RequestEntityTooLarge", `sts-trust-proxy: an STS request body is at most ${MAX_STS_BODY} bytes`);
  }
  let text;
  try {
    const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
    const plain = encoding === "gzip" ? gunzipSync(raw, { maxOutputLength: MAX_STS_BODY })
      : encoding === "identity" ? raw : null;
    if (plain === null) return stsError(res, 400, "Sender", "InvalidParameterValue", `sts-trust-proxy: Content-Encoding ${encoding} is not understood`);
    text = plain.toString("utf8");
  } catch {
    return stsError(res, 400, "Sender", "InvalidParameterValue", "sts-trust-proxy: the body does not decompress");
  }
  const p = queryParams(req.url, text);
  if (p.ambiguous) return stsError(res, 400, "Sender", "InvalidParameterCombination", `sts-trust-proxy: parameter ${p.ambiguous} is given twice with different values`);
  if (p.Action !== "AssumeRole") return forward(req, res, raw, cred.signedHeaders);

  const sourceIp = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
  let verdict;
  try {
    verdict = await judge(cred, p, sourceIp);
  } catch (e) {
    // Failing open would let a test believe a refusal is proven; failing with AccessDenied
    // would blame the trust policy. Say what broke instead.
    log(`AssumeRole role=${p.RoleArn} decision=ERROR ${e.message}`);
    return stsError(res, 500, "Receiver", "InternalFailure", `sts-trust-proxy could not evaluate the trust policy: ${e.message}`);
  }
  const who = verdict.caller?.arn ?? `key ${cred.accessKeyId.slice(0, 8)}...`;
  if (verdict.deny) {
    log(`AssumeRole caller=${who} role=${p.RoleArn} decision=DENIED action=${verdict.action} (${verdict.why})`);
    return stsError(res, 403, "Sender", "AccessDenied",
      `User: ${verdict.caller.arn} is not authorized to perform: ${verdict.action} on resource: ${p.RoleArn}`);
  }
  log(`AssumeRole caller=${who} role=${p.RoleArn} decision=${verdict.note ? `NOT EVALUATED (${verdict.note})` : "ALLOWED"}`);
  forward(req, res, raw, cred.signedHeaders, (status, xml) => { if (status === 200) recordSession(xml, verdict.role); });
}

const server = http.createServer((req, res) => {
  res.sendDate = false; // moto's own Date header goes back as it came
  handle(req, res).catch((e) => {
    log(`request failed: ${e.message}`);
    if (!res.headersSent) stsError(res, 500, "Receiver", "InternalFailure", "sts-trust-proxy failed on this request");
    else res.destroy();
  });
});
server.on("clientError", (_e, socket) => socket.destroy());
server.listen(PORT, HOST, () => {
  log(`sts-trust-proxy on http://${HOST}:${PORT} -> ${UPSTREAM.origin} (${ADMINS.length} admin key(s))`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => { server.close(); agent.destroy(); process.exit(0); });
