// @ts-check
// Drives the API through openapi-fetch typed with the types openapi-typescript generated
// from openapi.yaml (scripts/client-codegen.sh generates them, type-checks this file
// against them with tsc, and runs it):
//
//   node scripts/client_codegen_test.mjs <base url> <bearer token>
//
// Creates an integration with a unique name (the stack is shared and long-lived), with an
// Idempotency-Key; gets it back; finds it in the list (filtered by a label only it
// carries); deletes it with its ETag in If-Match; and gets 404 for it. One line per check,
// `check ok: ...` or `check FAILED: ...`; exits 1 when any check failed. An integration left
// behind by a failure is deleted. openapi-fetch is loaded from .local/client-codegen (where
// the script installs it), not from the repo.
import { createRequire } from "node:module";
import { randomBytes, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";

/** @typedef {import("ik-api").paths} paths */
/** @typedef {import("ik-api").components["schemas"]["IntegrationView"]} IntegrationView */

const require = createRequire(new URL("../.local/client-codegen/package.json", import.meta.url));
/** @type {(options: import("openapi-fetch").ClientOptions) => import("openapi-fetch").Client<paths>} */
const createClient = require("openapi-fetch").default;

const ACCOUNT = "123456789012";
const KEY_ID = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

const [baseArg, token] = process.argv.slice(2);
if (!baseArg || !token) {
  console.error("usage: node scripts/client_codegen_test.mjs <base url> <bearer token>");
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, "");
const api = createClient({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

let failures = 0;
/** @param {boolean} ok @param {string} what @param {string} [detail] */
function report(ok, what, detail = "") {
  if (ok) {
    console.log(`check ok: ${what}`);
  } else {
    failures += 1;
    console.log(`check FAILED: ${what}${detail ? `: ${detail}` : ""}`);
  }
  return ok;
}
/** @param {string} what @param {() => Promise<string[]>} fn */
async function runCheck(what, fn) {
  try {
    const wrong = await fn();
    return report(wrong.length === 0, what, wrong.join("; "));
  } catch (e) {
    console.error(e);
    return report(false, what, String(e));
  }
}
/** @param {string[]} wrong @param {string} label @param {unknown} got @param {unknown} want */
function expect(wrong, label, got, want) {
  if (!isDeepStrictEqual(got, want)) {
    wrong.push(`${label} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }
}
/** @param {Response} response @param {unknown} body */
function unexpected(response, body) {
  return [`status ${response.status}: ${JSON.stringify(body).slice(0, 300)}`];
}

const name = `codegen-${randomBytes(6).toString("hex")}`;
const label = name; // a label only this run's integration carries
const description = "created by scripts/client_codegen_test.mjs (openapi-fetch with generated types)";
/** @type {{ id?: string, etag?: string, created?: IntegrationView, deleted?: boolean }} */
const state = {};

async function create() {
  const { data, error, response } = await api.POST("/integrations/aws", {
    params: { header: { "Idempotency-Key": randomUUID() } },
    body: {
      name,
      description,
      labels: [label],
      aws_account_id: ACCOUNT,
      aws_access_key_id: KEY_ID,
      aws_secret_access_key: SECRET,
      create_state_bucket: false,
    },
  });
  if (response.status !== 201 || !data) return unexpected(response, error);
  /** @type {string[]} */
  const wrong = [];
  state.id = data.id;
  state.created = data;
  if (!ULID.test(data.id)) wrong.push(`id ${data.id} is not a ULID`);
  expect(wrong, "name", data.name, name);
  expect(wrong, "Location", response.headers.get("location"), `/integrations/aws/${data.id}`);
  expect(wrong, "ETag", response.headers.get("etag"), '"1"');
  if (JSON.stringify(data).includes(SECRET) || "aws_secret_access_key" in data) {
    wrong.push("the response echoes the secret access key");
  }
  return wrong;
}

async function get() {
  const id = /** @type {string} */ (state.id);
  const { data, error, response } = await api.GET("/integrations/aws/{id}", { params: { path: { id } } });
  if (response.status !== 200 || !data) return unexpected(response, error);
  /** @type {string[]} */
  const wrong = [];
  expect(wrong, "id", data.id, id);
  expect(wrong, "name", data.name, name);
  expect(wrong, "description", data.description, description);
  expect(wrong, "labels", data.labels, [label]);
  expect(wrong, "aws_account_id", data.aws_account_id, ACCOUNT);
  expect(wrong, "aws_access_key_id", data.aws_access_key_id, `${KEY_ID.slice(0, 4)}${"*".repeat(12)}${KEY_ID.slice(-4)}`);
  expect(wrong, "aws_assumed_role_name", data.aws_assumed_role_name, null);
  expect(wrong, "aws_external_id", data.aws_external_id, null);
  expect(wrong, "aws_session_duration", data.aws_session_duration, 3600);
  expect(wrong, "aws_default_region", data.aws_default_region, "us-east-1");
  expect(wrong, "create_state_bucket", data.create_state_bucket, false);
  expect(wrong, "state_bucket", data.state_bucket, null);
  expect(wrong, "last_test", data.last_test, null);
  expect(wrong, "revision", data.revision, 1);
  expect(wrong, "shared_with", data.shared_with, []);
  expect(wrong, "updated_at (before any update)", data.updated_at, data.created_at);
  expect(wrong, "the whole view (against the create's)", data, state.created);
  expect(wrong, "ETag", response.headers.get("etag"), '"1"');
  if (JSON.stringify(data).includes(SECRET)) wrong.push("the response echoes the secret access key");
  state.etag = response.headers.get("etag") ?? undefined;
  return wrong;
}

async function listed() {
  const { data, error, response } = await api.GET("/integrations/aws", { params: { query: { label, limit: 10 } } });
  if (response.status !== 200 || !data) return unexpected(response, error);
  /** @type {string[]} */
  const wrong = [];
  expect(wrong, "the ids listed", data.items.map((i) => i.id), [state.id]);
  expect(wrong, "next_token", data.next_token, null);
  return wrong;
}

async function del() {
  const id = /** @type {string} */ (state.id);
  const { error, response } = await api.DELETE("/integrations/aws/{id}", {
    params: { path: { id }, header: { "If-Match": state.etag } },
  });
  if (response.status !== 204) return unexpected(response, error);
  state.deleted = true;
  return [];
}

async function gone() {
  const id = /** @type {string} */ (state.id);
  const { data, error, response } = await api.GET("/integrations/aws/{id}", { params: { path: { id } } });
  if (response.status !== 404 || !error) return unexpected(response, data ?? error);
  /** @type {string[]} */
  const wrong = [];
  if (!("type" in error)) return [`not a problem document: ${JSON.stringify(error)}`];
  expect(wrong, "problem type", error.type, "/problems/not-found");
  expect(wrong, "problem status", error.status, 404);
  return wrong;
}

/** @type {[string, () => Promise<string[]>][]} */
const checks = [
  ["create: POST /integrations/aws with an Idempotency-Key is 201 with a ULID id, Location and ETag, and never echoes the secret", create],
  ['get by id: 200, every field as sent (the key id masked, the defaults filled in), the same view as the create\'s, ETag "1"', get],
  ["list (label filter): the new integration, and only it", listed],
  ["delete with If-Match: its ETag: 204", del],
  ["get after delete: 404, a not-found problem", gone],
];
try {
  for (const [i, [what, fn]] of checks.entries()) {
    if (!(await runCheck(`typescript client: ${what}`, fn)) && i === 0) {
      for (const [next] of checks.slice(1)) report(false, `typescript client: ${next}`, "not run: the create failed");
      break;
    }
  }
} finally {
  if (state.id && !state.deleted) {
    // leave nothing behind on the shared stack
    await api
      .DELETE("/integrations/aws/{id}", { params: { path: { id: state.id }, header: { "If-Match": "*" } } })
      .catch((e) => console.error(`cleanup: deleting ${state.id} failed: ${e}`));
  }
}
process.exit(failures ? 1 : 0);
