// The setup page's script: the setup guide's form, Test Connection, Save, the state
// bucket's status and the list of integrations, all through this API's own routes, as the
// user signed in with the platform's OpenID provider (authorization code + PKCE; the
// access token is kept in this tab only, in memory and session storage).
//
// The field rules below mirror shared/src/domain/values/*.rs and http/input.rs, message
// for message, so that mistakes show as they are typed; the API stays the authority and
// its problem+json field errors are shown next to the same fields.
//
// Data from the API is only ever put into the page as text (textContent), never as HTML.
// The secret access key is read from its password field when a request is sent, and the
// field is emptied once the integration is saved; it is never written anywhere else.
"use strict";

(() => {
  const API = "/integrations/aws";
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);

  // ---- small DOM helper: elements with text only ------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  // ---- the field rules ------------------------------------------------------------------
  const chars = (s) => Array.from(s);
  const IAM_CHAR = /^[A-Za-z0-9+=,.@_-]$/;
  const isIam = (c) => IAM_CHAR.test(c);

  function refusedKind(c, lineBreaksAllowed) {
    if (lineBreaksAllowed && (c === "\t" || c === "\n" || c === "\r")) return null;
    if (/^\p{Cc}$/u.test(c)) return "a control character";
    if (!/^\p{Cf}$/u.test(c)) return null;
    const cp = c.codePointAt(0);
    if (cp === 0x061c || cp === 0x200e || cp === 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069)) {
      return "a bidirectional control character, which can make text display differently from what it is";
    }
    if (cp === 0x200b) return "a zero-width space, which is invisible";
    if (cp === 0x200c || cp === 0x200d) return "a zero-width joiner or non-joiner, which is invisible";
    if (cp === 0x2060) return "a word joiner, which is invisible";
    if (cp === 0xfeff) return "a byte order mark (zero-width no-break space), which is invisible";
    if (cp === 0x00ad) return "a soft hyphen, which is usually invisible";
    if (cp === 0xe0001 || (cp >= 0xe0020 && cp <= 0xe007f)) return "a tag character, which is invisible";
    return "a format character, which is invisible or changes how text around it displays";
  }

  function refusedChars(s, lineBreaksAllowed) {
    const found = [];
    chars(s).forEach((c, i) => {
      const kind = refusedKind(c, lineBreaksAllowed);
      if (kind) found.push([i, c, kind]);
    });
    if (!found.length) return null;
    const [i, c, kind] = found[0];
    const hex = c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    const head = `contains U+${hex} (${kind}) at position ${i + 1}`;
    const more = found.length - 1;
    if (more === 0) return `${head}: remove it`;
    if (more === 1) return `${head} and 1 more such character: remove them`;
    return `${head} and ${more} more such characters: remove them`;
  }

  const normaliseLabel = (s) => s.normalize("NFKC").toLowerCase().normalize("NFKC");

  function checkName(v) {
    const n = chars(v).length;
    if (n === 0 || n > 64) return "must be 1 to 64 characters";
    if (!/^[A-Za-z0-9_-]+$/.test(v)) return "may contain only letters, digits, '-' and '_' (e.g. aws-production)";
    return null;
  }

  function checkDescription(v) {
    const tooLong = "must be at most 1024 characters";
    const given = chars(v).length;
    if (given > 1024 * 16) return tooLong;
    const refused = refusedChars(v, true);
    if (refused) return refused;
    const n = chars(v.normalize("NFC")).length;
    if (n > 1024) return n === given ? tooLong : `${tooLong} (has ${n} once normalised to NFC)`;
    return null;
  }

  function checkLabel(v) {
    const tooLong = "must be 1 to 63 characters";
    const given = chars(v).length;
    if (given === 0 || given > 63 * 16) return tooLong;
    const refused = refusedChars(v, false);
    if (refused) return refused;
    const n = chars(normaliseLabel(v)).length;
    if (n > 63) return n === given ? tooLong : `${tooLong} (has ${n} once normalised to NFKC and lower case)`;
    return null;
  }

  function checkAccount(v) {
    return /^[0-9]{12}$/.test(v.trim()) ? null : "must be exactly 12 digits (e.g. 123456789012)";
  }

  function debugChar(c) {
    const esc = { "\t": "\\t", "\n": "\\n", "\r": "\\r", "'": "\\'", "\\": "\\\\" };
    return `'${esc[c] || c}'`;
  }

  function keyTypo(position, c) {
    const at = `${debugChar(c)} at position ${position}`;
    if (c === "0") return `${at} (did you mean the letter 'O'?)`;
    if (c === "1") return `${at} (did you mean the letter 'I' or 'L'?)`;
    if (c === "8") return `${at} (did you mean the letter 'B'?)`;
    if (c === "9") return `${at} (never used)`;
    if (/^[a-z]$/.test(c)) return `${at} (lower case: did you mean '${c.toUpperCase()}'?)`;
    return at;
  }

  function checkAccessKey(v) {
    const s = v.trim();
    if (s.startsWith("ASIA")) {
      return "is a temporary (ASIA...) key: it expires and needs a session token; create a long-term access key (AKIA...) for the IAM user";
    }
    if (!s.startsWith("AKIA")) {
      if (s.slice(0, 4).toUpperCase() === "AKIA") return "must be upper case, as IAM shows it (e.g. AKIAIOSFODNN7EXAMPLE)";
      return "must be a long-term access key ID: 'AKIA' followed by 16 of A-Z and 2-7 (e.g. AKIAIOSFODNN7EXAMPLE)";
    }
    const rest = chars(s.slice(4));
    if (rest.length !== 16) {
      return `has ${rest.length} characters after 'AKIA' instead of 16 (an access key ID is 20 characters): copy it again, whole`;
    }
    const typos = [];
    rest.forEach((c, i) => { if (!/^[A-Z2-7]$/.test(c)) typos.push(keyTypo(i + 5, c)); });
    if (!typos.length) return null;
    const tail = ": access key IDs use only A-Z and 2-7 after 'AKIA'";
    if (typos.length === 1) return `contains ${typos[0]}${tail}`;
    return `contains ${typos.slice(0, -1).join(", ")} and ${typos[typos.length - 1]}${tail}`;
  }

  function checkSecret(v) {
    return /^[A-Za-z0-9/+]{40}$/.test(v.trim()) ? null : "must be 40 characters of A-Z, a-z, 0-9, '/' and '+'";
  }

  const PARTITIONS = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f"];
  function partitionOf(region) {
    if (region.startsWith("cn-")) return "aws-cn";
    if (region.startsWith("us-gov-")) return "aws-us-gov";
    if (region.startsWith("us-isob-")) return "aws-iso-b";
    if (region.startsWith("us-isof-") || region.startsWith("eu-isof-")) return "aws-iso-f";
    if (region.startsWith("eu-isoe-")) return "aws-iso-e";
    if (region.startsWith("us-iso-")) return "aws-iso";
    return "aws";
  }

  const REGION = /^[a-z]{2}(?:-(?:gov|iso|isob|isoe|isof))?-(?:central|north|south|east|west|northeast|northwest|southeast|southwest)-[1-9][0-9]?$/;
  function checkRegion(v) {
    return REGION.test(v) ? null : "must be an AWS region code such as us-east-1, eu-central-1, us-gov-west-1 or cn-north-1";
  }

  function checkRoleName(v) {
    let s = v.trim();
    if (s.startsWith("arn:")) return "is an ARN: enter the role name (the part after ':role/', e.g. InfraKitchenRole)";
    if (s.startsWith("/")) s = s.slice(1);
    const cut = s.lastIndexOf("/");
    const path = cut >= 0 ? s.slice(0, cut) : null;
    const role = chars(cut >= 0 ? s.slice(cut + 1) : s);
    if (role.length === 0 || role.length > 64 || !role.every(isIam)) {
      return "the role name must be 1 to 64 of A-Z a-z 0-9 + = , . @ _ - (optionally after a path: team/InfraKitchenRole)";
    }
    if (path !== null && (new TextEncoder().encode(path).length > 510 ||
        path.split("/").some((seg) => seg === "" || !chars(seg).every(isIam)))) {
      return "the role path must be segments of A-Z a-z 0-9 + = , . @ _ - separated by '/' (e.g. team/InfraKitchenRole)";
    }
    return null;
  }

  // RoleName::parse_in: a name, or a role's ARN in the integration's account and partition.
  function checkRole(v, account, region) {
    const t = v.trim();
    if (!t.startsWith("arn:")) return checkRoleName(t);
    const all = t.split(":");
    if (all.length < 6) return "is not a valid ARN: enter the role name (e.g. InfraKitchenRole)";
    const [, partition, service, , arnAccount] = all;
    const resource = all.slice(5).join(":");
    const slash = resource.indexOf("/");
    const kind = slash >= 0 ? resource.slice(0, slash) : resource;
    const rest = slash >= 0 ? resource.slice(slash + 1) : "";
    if (!(service === "iam" && kind === "role")) {
      if (service === "iam" && kind === "user") {
        return "is the ARN of an IAM user: enter the name of the role to assume (e.g. InfraKitchenRole), not the ARN of the user";
      }
      if (service === "sts" && kind === "assumed-role") {
        return `is the ARN of an assumed-role session: enter the role name (${rest.split("/")[0]}), not the ARN of a session`;
      }
      return "is an ARN, but not of an IAM role: enter the role name (e.g. InfraKitchenRole) or the role's ARN (arn:aws:iam::123456789012:role/InfraKitchenRole)";
    }
    if (!PARTITIONS.includes(partition) || checkAccount(arnAccount) !== null) {
      return "is not a valid role ARN (arn:aws:iam::123456789012:role/InfraKitchenRole): enter the role name (e.g. InfraKitchenRole)";
    }
    if (account !== null && account !== arnAccount) {
      return `is the ARN of a role in account ${arnAccount}, but aws_account_id is ${account}: the role must be in the integration's account; enter a role of account ${account}, or correct aws_account_id`;
    }
    if (region !== null && partitionOf(region) !== partition) {
      return `is a role ARN of partition ${partition}, but aws_default_region ${region} is in partition ${partitionOf(region)}: choose a region of ${partition}`;
    }
    return checkRoleName(rest);
  }

  function checkExternalId(v) {
    const n = chars(v).length;
    if (n < 2 || n > 1224) return "must be 2 to 1224 characters";
    if (!chars(v).every((c) => isIam(c) || c === ":" || c === "/")) return "may contain only A-Z a-z 0-9 + = , . @ : / _ -";
    return null;
  }

  const DURATION_RANGE = "must be a whole number of seconds from 900 to 43200";
  const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
  // The duration as JSON would carry it: a number, or the text itself when it is none.
  function durationValue(v) {
    const t = v.trim();
    return NUMBER.test(t) ? Number(t) : t;
  }
  function checkDuration(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "must be a number (seconds, 900 to 43200)";
    if (!Number.isInteger(value)) return `${DURATION_RANGE}: ${value} has a fractional part`;
    return value >= 900 && value <= 43200 ? null : DURATION_RANGE;
  }

  // ---- the form's fields ---------------------------------------------------------------
  // API field -> its input; `labels[3]` and the like map to their field.
  const FIELDS = {
    name: "f-name",
    description: "f-description",
    labels: "f-labels",
    aws_account_id: "f-account",
    aws_access_key_id: "f-key",
    aws_secret_access_key: "f-secret",
    aws_assumed_role_name: "f-role",
    aws_external_id: "f-external",
    aws_session_duration: "f-duration",
    aws_default_region: "f-region",
    create_state_bucket: "f-bucket",
  };
  const REQUIRED = ["name", "aws_account_id", "aws_access_key_id", "aws_secret_access_key"];
  // Role delegation: the platform assumes the user's role with an External ID it makes on
  // save, so the form has no keys and no External ID, and the role is required.
  const KEY_FIELDS = ["aws_access_key_id", "aws_secret_access_key", "aws_external_id"];
  const delegated = () => $("f-auth-role").checked;
  const isRequired = (field) => (delegated()
    ? field === "aws_assumed_role_name" || (REQUIRED.includes(field) && !KEY_FIELDS.includes(field))
    : REQUIRED.includes(field));
  const touched = new Set();
  let labels = [];

  const raw = (field) => $(FIELDS[field]).value;
  const validAccount = () => (checkAccount(raw("aws_account_id")) ? null : raw("aws_account_id").trim());
  const givenRegion = () => {
    const r = raw("aws_default_region");
    if (r === "") return "us-east-1";
    return checkRegion(r) ? null : r;
  };

  // The message for one field as the API would give it, or null.
  function fieldError(field) {
    const v = field === "create_state_bucket" ? null : raw(field);
    if (delegated() && KEY_FIELDS.includes(field)) return null; // hidden, and not sent
    if (delegated() && field === "aws_assumed_role_name" && v.trim() === "") {
      return "is required with auth role_delegation (the role the platform assumes)";
    }
    if (isRequired(field) && v.trim() === "") return "is required";
    switch (field) {
      case "name": return checkName(v);
      case "description": return v === "" ? null : checkDescription(v);
      case "labels": {
        if (v !== "") {
          const m = checkLabel(v);
          if (m) return `"${v}" ${m}`;
        }
        return labels.length > 50 ? "at most 50 labels are allowed" : null;
      }
      case "aws_account_id": return checkAccount(v);
      case "aws_access_key_id": return checkAccessKey(v);
      case "aws_secret_access_key": return checkSecret(v);
      case "aws_assumed_role_name": return v.trim() === "" ? null : checkRole(v, validAccount(), givenRegion());
      case "aws_external_id": {
        if (v === "") return null;
        const m = checkExternalId(v);
        if (m) return m;
        if (raw("aws_assumed_role_name").trim() === "") {
          return "is only used with aws_assumed_role_name (the role's trust policy checks it)";
        }
        return null;
      }
      case "aws_session_duration": return v.trim() === "" ? null : checkDuration(durationValue(v));
      case "aws_default_region": return v === "" ? null : checkRegion(v);
      default: return null;
    }
  }

  function showError(inputId, message) {
    const input = $(inputId);
    const out = $(`${inputId}-error`);
    out.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function validate(field) {
    const m = fieldError(field);
    const value = field === "create_state_bucket" ? "" : raw(field);
    // Empty fields are judged once left or submitted; typed ones as they are typed.
    showError(FIELDS[field], touched.has(field) || value !== "" ? m : null);
    return m;
  }

  // Fields whose rules read other fields.
  const DEPENDENTS = {
    aws_account_id: ["aws_assumed_role_name"],
    aws_default_region: ["aws_assumed_role_name"],
    aws_assumed_role_name: ["aws_external_id"],
  };

  // Shows the fields of the chosen kind; the other kind's fields are hidden and not sent.
  function applyKind() {
    const role = delegated();
    for (const id of ["f-key-field", "f-secret-field", "f-external-field"]) $(id).hidden = role;
    for (const f of KEY_FIELDS) if (role) showError(FIELDS[f], null);
    $("f-role-req").hidden = !role;
    if (role) $("f-role").setAttribute("aria-required", "true");
    else $("f-role").removeAttribute("aria-required");
    for (const e of document.querySelectorAll("#f-role-help .for-keys")) e.hidden = role;
    for (const e of document.querySelectorAll("#f-role-help .for-role")) e.hidden = !role;
    // Test Connection needs the External ID, which exists once saved: it comes after Save.
    $("test").hidden = role;
    $("role-first").hidden = !role;
    $("save").textContent = role ? "Save and set up the role" : "Save";
    validate("aws_assumed_role_name");
  }

  function updateBucketName() {
    const acct = validAccount();
    $("bucket-name").textContent = `infrakitchen-${acct || "<AWS_ACCOUNT_ID>"}-bucket`;
  }

  function renderChips() {
    const list = $("chips");
    list.replaceChildren(...labels.map((l, i) => el("li", { class: "chip" },
      el("span", { text: l }),
      el("button", { type: "button", "aria-label": `Remove label ${l}`, "data-chip": i, text: "×" }))));
  }

  // Adds the typed label as a chip; false when it is invalid (its error is shown).
  function commitLabel() {
    const input = $("f-labels");
    const v = input.value.replace(/,+$/, "");
    input.value = v;
    if (v === "") return true;
    touched.add("labels");
    if (validate("labels")) return false;
    const l = normaliseLabel(v);
    if (!labels.includes(l)) labels.push(l);
    input.value = "";
    renderChips();
    validate("labels");
    return true;
  }

  // The request body, or null with every error shown and the first invalid field focused.
  function collect() {
    if (!commitLabel()) { $("f-labels").focus(); return null; }
    let first = null;
    for (const field of Object.keys(FIELDS)) {
      touched.add(field);
      if (validate(field) && !first) first = FIELDS[field];
    }
    if (first) {
      setStatus("form-status", "Some fields need fixing: see the messages next to them.");
      $(first).focus();
      return null;
    }
    const role = delegated();
    const body = role
      ? { name: raw("name"), labels: labels.slice(), aws_account_id: raw("aws_account_id").trim(), auth: "role_delegation" }
      : {
        name: raw("name"),
        labels: labels.slice(),
        aws_account_id: raw("aws_account_id").trim(),
        aws_access_key_id: raw("aws_access_key_id").trim(),
        aws_secret_access_key: raw("aws_secret_access_key").trim(),
      };
    body.create_state_bucket = $("f-bucket").checked;
    if (raw("description") !== "") body.description = raw("description");
    if (raw("aws_assumed_role_name").trim() !== "") body.aws_assumed_role_name = raw("aws_assumed_role_name").trim();
    if (!role && raw("aws_external_id") !== "") body.aws_external_id = raw("aws_external_id");
    if (raw("aws_session_duration").trim() !== "") body.aws_session_duration = durationValue(raw("aws_session_duration"));
    if (raw("aws_default_region") !== "") body.aws_default_region = raw("aws_default_region");
    return body;
  }

  // The API's field errors next to their fields; the rest in the given status line. Focus
  // goes to the first field in error, or to the status line: never lost.
  function showProblem(problem, statusId) {
    const errors = (problem && Array.isArray(problem.errors)) ? problem.errors : [];
    const elsewhere = [];
    const seen = new Set();
    let first = null;
    for (const e of errors) {
      const base = String(e.field).replace(/\[\d+\]$/, "");
      const inputId = FIELDS[base];
      if (!inputId) { elsewhere.push(`${e.field} ${e.message}`); continue; }
      const text = base === e.field ? e.message : `${e.field} ${e.message}`;
      const prior = seen.has(inputId) ? `${$(`${inputId}-error`).textContent}; ` : "";
      seen.add(inputId);
      showError(inputId, prior + text);
      if (!first) first = inputId;
    }
    const detail = problem && problem.detail ? problem.detail : "the request failed";
    setStatus(statusId, elsewhere.length ? `${detail} (${elsewhere.join("; ")})` : seen.size ? "The API refused some fields: see the messages next to them." : detail);
    $(first || statusId).focus();
  }

  function setStatus(id, text) { $(id).textContent = text || ""; }

  // ---- signing in: OpenID Connect, authorization code + PKCE (S256), a public client --
  // The provider comes from the API (config.json) and its discovery document. Sign-in runs
  // in a small window, so this page and its form stay as they are; the window comes back
  // to this very page, which hands the code to the page that opened it and closes. If the
  // browser blocks the window, sign-in can run in this tab instead (the form, less its
  // secret key, is kept in session storage over the round trip).
  const PAGE_PATH = "/integrations/aws/setup";
  const SESSION_KEY = "infrakitchen-setup-session"; // { access_token, expires_at, id_token, who }
  const LOGIN_KEY = "infrakitchen-setup-login"; // a sign-in in this tab, under way
  const DRAFT_KEY = "infrakitchen-setup-draft"; // the form without its secret, over that sign-in
  const NOTE_KEY = "infrakitchen-setup-note"; // a word for this tab's next load
  const MESSAGE_TYPE = "infrakitchen-setup-signin";
  const SKEW_MS = 5000; // a token this close to its expiry counts as expired

  const redirectUri = () => location.origin + PAGE_PATH;
  let oidc = null; // { config, discovery }
  let oidcError = null; // why sign-in is not available
  let oidcReady = Promise.resolve();
  let session = readSession();
  let sessionLapsed = false; // the user was signed in, and no longer is
  let prepared = null; // PKCE verifier, state and nonce for the next sign-in
  let pending = null; // a sign-in in a window: { state, verifier, nonce, popup }
  let blocked = null; // a sign-in whose window the browser blocked
  let resume = null; // { el, status, text }: where the user was when the session ended
  let expiryTimer = null;

  function b64url(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  const randomText = () => b64url(crypto.getRandomValues(new Uint8Array(32)));

  async function prepare() {
    const verifier = randomText();
    const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    prepared = { verifier, challenge: b64url(new Uint8Array(hash)), state: randomText(), nonce: randomText() };
    return prepared;
  }

  // A JWT's payload, decoded, NOT verified: for display only (the API verifies tokens).
  function claimsOf(jwt) {
    try {
      const part = String(jwt).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bin = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
      return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    } catch (_) {
      return null;
    }
  }

  // The ID token's name for the person (Cognito's user name when it has no other).
  function whoOf(c) {
    if (!c) return "an unnamed user";
    const text = (v) => (typeof v === "string" && v ? v : null);
    const name = text(c.name);
    const user = text(c.preferred_username) || text(c["cognito:username"]) || text(c.email);
    if (name && user && name !== user) return `${name} (${user})`;
    return name || user || text(c.sub) || "an unnamed user";
  }

  function readSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      return s && typeof s.access_token === "string" && Number.isFinite(s.expires_at) ? s : null;
    } catch (_) {
      return null;
    }
  }

  const token = () => (session && session.expires_at - SKEW_MS > Date.now() ? session.access_token : null);

  function dropSession() {
    if (session) sessionLapsed = true;
    session = null;
    sessionStorage.removeItem(SESSION_KEY);
    clearTimeout(expiryTimer);
  }

  async function loadOidc() {
    const get = async (url, what) => {
      let r;
      try {
        r = await fetch(url, { cache: "no-store", credentials: "omit", redirect: "error", headers: { Accept: "application/json" } });
      } catch (e) {
        throw new Error(`${what} could not be reached (${e.message})`);
      }
      if (!r.ok) throw new Error(`${what} answered ${r.status}`);
      return r.json();
    };
    try {
      const config = await get(`${PAGE_PATH}/config.json`, "the page's configuration");
      if (!config.issuer || !config.client_id) throw new Error("this API has no identity provider configured");
      const issuer = String(config.issuer).replace(/\/+$/, "");
      const discovery = await get(`${issuer}/.well-known/openid-configuration`, "the identity provider");
      if (String(discovery.issuer || "").replace(/\/+$/, "") !== issuer) {
        throw new Error(`the identity provider calls itself ${discovery.issuer}, not ${issuer}`);
      }
      if (!discovery.authorization_endpoint || !discovery.token_endpoint) {
        throw new Error("the identity provider's discovery document has no authorization or token endpoint");
      }
      oidc = { config: { ...config, issuer }, discovery };
      oidcError = null;
    } catch (e) {
      oidc = null;
      oidcError = e.message;
    }
  }

  function authorizationUrl(p) {
    const { config, discovery } = oidc;
    const u = new URL(discovery.authorization_endpoint);
    const q = {
      response_type: "code",
      client_id: config.client_id,
      redirect_uri: redirectUri(),
      scope: config.scopes || "openid",
      state: p.state,
      nonce: p.nonce,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
    };
    if (config.resource) q.resource = config.resource;
    for (const [k, v] of Object.entries(q)) u.searchParams.set(k, v);
    return u.href;
  }

  function setAuthStatus(text, focus) {
    setStatus("auth-status", text);
    if (focus) $("auth-status").focus();
  }

  // The sign-in control the user can see: focus moves there, not to a hidden one.
  function renderAuth() {
    const signedIn = token() !== null;
    const active = document.activeElement;
    $("auth-who").textContent = signedIn ? `Signed in as ${session.who}.` : "You are not signed in.";
    $("signin").hidden = signedIn;
    $("signout").hidden = !signedIn;
    if (signedIn) {
      $("signin-here").hidden = true;
      $("session-ended").textContent = "";
    }
    if (oidc) $("signin").removeAttribute("aria-disabled");
    else if (oidcError) $("signin").setAttribute("aria-disabled", "true");
    if (active && active.hidden) (signedIn ? $("auth-who") : $("signin")).focus();
  }

  function scheduleExpiry() {
    clearTimeout(expiryTimer);
    if (!session) return;
    const ms = Math.min(session.expires_at - SKEW_MS - Date.now(), 2 ** 31 - 1);
    // When the token lapses the page says so, without taking the focus from anything.
    expiryTimer = setTimeout(() => { if (session && !token()) needSignIn({ background: true }); }, Math.max(0, ms));
  }

  // A call needs a token and there is none (it lapsed, or the API refused it). The form and
  // everything typed stay; for an action of the user, focus goes to Sign in, and comes back
  // to that action's control once signed in again.
  function needSignIn(opts) {
    const o = opts || {};
    dropSession();
    $("session-ended").textContent = sessionLapsed
      ? "Your session has ended. Sign in again to continue — your form is kept."
      : "You are not signed in. Sign in to continue — your form is kept.";
    if (o.refused) setAuthStatus(`The API refused the sign-in (401${o.refused.detail ? `: ${o.refused.detail}` : ""}).`);
    renderAuth();
    if (!o.background) {
      resume = o.resume || null;
      $("signin").focus();
    }
  }

  async function signIn() {
    if ($("signin").getAttribute("aria-disabled") === "true") {
      setAuthStatus(`Sign-in is not available: ${oidcError}.`, true);
      return;
    }
    if (pending && pending.popup && !pending.popup.closed) {
      pending.popup.focus();
      return;
    }
    if (!oidc) await oidcReady;
    if (!oidc) {
      renderAuth();
      setAuthStatus(`Sign-in is not available: ${oidcError}.`, true);
      return;
    }
    const p = prepared || (await prepare());
    prepared = null;
    prepare();
    const popup = window.open(authorizationUrl(p), "infrakitchen-signin", "popup,width=520,height=720");
    if (!popup) {
      blocked = p;
      $("signin-here").hidden = false;
      setAuthStatus("Your browser blocked the sign-in window. Sign in in this tab instead: the page goes to the sign-in page and comes back here, with the form as you left it except the secret access key, which you enter again.");
      $("signin-here").focus();
      return;
    }
    pending = { ...p, popup };
    setAuthStatus("Finish signing in in the sign-in window.");
    const watch = setInterval(() => {
      if (!popup.closed) return;
      clearInterval(watch);
      // The window posts its answer just before it closes: give that message a moment.
      setTimeout(() => {
        if (pending && pending.popup === popup) {
          pending = null;
          setAuthStatus("The sign-in window was closed before you signed in.");
          $("signin").focus();
        }
      }, 1000);
    }, 300);
  }

  // The browser blocked the window: the same sign-in, in this tab.
  function signInHere() {
    if (!blocked || !oidc) return;
    const p = blocked;
    blocked = null;
    sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ state: p.state, verifier: p.verifier, nonce: p.nonce }));
    saveDraft();
    location.assign(authorizationUrl(p));
  }

  const answerOf = (q) => ({
    type: MESSAGE_TYPE,
    state: q.get("state"),
    code: q.get("code"),
    error: q.get("error"),
    error_description: q.get("error_description"),
    iss: q.get("iss"),
  });

  // Exchanges the code the provider sent back for tokens (with the PKCE verifier).
  async function finishSignIn(answer, p) {
    const fail = (why) => {
      setAuthStatus(`Not signed in: ${why}`);
      renderAuth();
      $("signin").focus();
    };
    if (!answer.state || answer.state !== p.state) return fail("the answer does not belong to this page's sign-in. Sign in again.");
    if (answer.error) return fail(`${answer.error_description || answer.error}.`);
    if (answer.iss && answer.iss.replace(/\/+$/, "") !== oidc.config.issuer) return fail(`the answer came from ${answer.iss}, not from ${oidc.config.issuer}.`);
    if (!answer.code) return fail("the identity provider sent no code. Sign in again.");
    setAuthStatus("Signing in…");
    const form = new URLSearchParams({
      grant_type: "authorization_code",
      code: answer.code,
      redirect_uri: redirectUri(),
      client_id: oidc.config.client_id,
      code_verifier: p.verifier,
    });
    if (oidc.config.resource) form.set("resource", oidc.config.resource);
    let resp;
    let data = {};
    try {
      resp = await fetch(oidc.discovery.token_endpoint, {
        method: "POST", body: form, credentials: "omit", cache: "no-store", redirect: "error",
        headers: { Accept: "application/json" },
      });
      data = await resp.json().catch(() => ({}));
    } catch (e) {
      return fail(`the identity provider could not be reached (${e.message}).`);
    }
    if (!resp.ok || typeof data.access_token !== "string") {
      return fail(`the identity provider refused the sign-in (${data.error_description || data.error || resp.status}).`);
    }
    const id = data.id_token ? claimsOf(data.id_token) : null;
    if (id && id.nonce !== p.nonce) return fail("the identity provider's answer does not match this page's request. Sign in again.");
    const atExp = (claimsOf(data.access_token) || {}).exp;
    const ttl = Number(data.expires_in) > 0 ? Number(data.expires_in) * 1000
      : Number.isFinite(atExp) ? atExp * 1000 - Date.now() : 3600 * 1000;
    session = { access_token: data.access_token, expires_at: Date.now() + ttl, id_token: data.id_token || null, who: whoOf(id) };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    sessionLapsed = false;
    scheduleExpiry();
    setAuthStatus("");
    renderAuth();
    const back = resume;
    resume = null;
    if (back && document.contains(back.el) && !back.el.hidden) {
      setStatus(back.status, back.text);
      back.el.focus();
    } else {
      $("auth-who").focus();
    }
    loadList(false, true);
  }

  window.addEventListener("message", (ev) => {
    if (ev.origin !== location.origin || !ev.data || ev.data.type !== MESSAGE_TYPE) return;
    if (!pending || ev.source !== pending.popup) return;
    const p = pending;
    pending = null;
    finishSignIn(ev.data, p);
  });

  // In the sign-in window: hand the provider's answer to the page that opened it, close.
  function answerOpener(q) {
    document.body.replaceChildren(el("main", {},
      el("p", { class: "status", role: "status", text: "Signing in: this window closes itself. If it stays open, close it and go back to the setup page." })));
    window.opener.postMessage(answerOf(q), location.origin);
    window.close();
  }

  function signOut() {
    const s = session;
    dropSession();
    sessionLapsed = false;
    clearTimeout(pollTimer);
    $("list").replaceChildren();
    $("list-more").hidden = true;
    const end = oidc && oidc.discovery.end_session_endpoint;
    if (end) {
      // The provider's session ends too (or the next sign-in would need no password).
      sessionStorage.setItem(NOTE_KEY, "signed-out");
      const u = new URL(end);
      if (s && s.id_token) u.searchParams.set("id_token_hint", s.id_token);
      u.searchParams.set("post_logout_redirect_uri", redirectUri());
      u.searchParams.set("client_id", oidc.config.client_id);
      location.assign(u.href);
      return;
    }
    renderAuth();
    setStatus("list-status", "Sign in to see your integrations.");
    setAuthStatus("You are signed out.");
    $("signin").focus();
  }

  // ---- the form over a sign-in in this tab (never its secret access key) -------------
  function saveDraft() {
    const d = { labels: labels.slice(), user_arn: $("user-arn").value, form_key: formKey, delegated: delegated() };
    for (const [field, id] of Object.entries(FIELDS)) {
      if (field === "aws_secret_access_key" || field === "labels") continue;
      d[field] = field === "create_state_bucket" ? $(id).checked : $(id).value;
    }
    sessionStorage.setItem(DRAFT_KEY, JSON.stringify(d));
  }

  function restoreDraft() {
    let d = null;
    try { d = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null"); } catch (_) { d = null; }
    sessionStorage.removeItem(DRAFT_KEY);
    if (!d) return false;
    for (const [field, id] of Object.entries(FIELDS)) {
      if (field === "aws_secret_access_key" || field === "labels" || !(field in d)) continue;
      if (field === "create_state_bucket") $(id).checked = d[field] === true;
      else $(id).value = String(d[field]);
    }
    labels = Array.isArray(d.labels) ? d.labels.map(String) : [];
    $(d.delegated === true ? "f-auth-role" : "f-auth-keys").checked = true;
    applyKind();
    $("user-arn").value = String(d.user_arn || "");
    formKey = typeof d.form_key === "string" ? d.form_key : null;
    renderChips();
    updateBucketName();
    setStatus("form-status", delegated() ? "Your form is as you left it." : "Your form is as you left it: enter the secret access key again.");
    return true;
  }

  // ---- the API -----------------------------------------------------------------------
  // opts: background (a call the user did not ask for: no focus moves), resume (where to
  // come back to after signing in again).
  async function api(method, path, body, extraHeaders, opts) {
    const t = token();
    if (!t) {
      needSignIn(opts);
      return { status: 401, signIn: true, data: { detail: "not signed in" }, headers: new Headers() };
    }
    const headers = { Accept: "application/json, application/problem+json", Authorization: `Bearer ${t}`, ...(extraHeaders || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(API + path, {
        method, headers, cache: "no-store", credentials: "omit", redirect: "error",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { status: 0, data: { detail: `the API could not be reached (${e.message})` }, headers: new Headers() };
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { detail: text.slice(0, 200) }; }
    }
    if (data && !data.detail && data.message) data.detail = data.message;
    if (resp.status === 401) {
      needSignIn({ ...(opts || {}), refused: data || {} });
      return { status: 401, signIn: true, data: data || {}, headers: resp.headers };
    }
    return { status: resp.status, data: data || {}, headers: resp.headers };
  }

  const again = (control, status, action) => ({ el: control, status, text: `Signed in again. Your form is as you left it: select ${action} to continue.` });

  // ---- rendering a Test Connection report ------------------------------------------
  const STEP_TITLES = {
    platform: "Platform principal",
    credentials: "Credentials",
    account: "Account",
    assume_role: "Assume role",
    role_identity: "Role identity",
    state_bucket: "State bucket",
  };
  const STATUS_TEXT = { passed: "passed", failed: "failed", skipped: "skipped", unreachable: "could not reach AWS" };
  const OUTCOME_TEXT = { passed: "Passed", failed: "Failed", unreachable: "Could not reach AWS" };
  const POLICY_TITLES = {
    role_trust_policy: "The role's trust policy",
    user_assume_role_policy: "The user's policy to assume the role",
    state_bucket_policy: "The state bucket policy",
    key_hygiene_policy: "The user's policy to inspect its own access key",
    trust_policy: "The role's trust policy",
    permissions_policy: "The role's permissions policy (the state bucket)",
    cloudformation_template: "The CloudFormation template",
  };

  // The report's one-sentence summary without the API's field names (it is written for
  // API clients: "see proves", "the assume_role step").
  function plainSummary(text) {
    return String(text || "")
      .replace(/\s*\(see proves\)/g, "")
      .replace(/\(see does_not_prove\)/g, "(see what it does not prove, below)")
      .replace(/\bthe ([a-z_]+) step\b/g, (m, name) => (STEP_TITLES[name] ? `the ${STEP_TITLES[name].toLowerCase()} step` : m));
  }

  function policyBlock(name, doc, level) {
    const id = nextId("policy");
    const title = POLICY_TITLES[name] || name;
    return el("div", { class: "policy" },
      el(level, { id: `${id}-h`, text: title }),
      el("pre", { class: "code", id, tabindex: 0, "aria-labelledby": `${id}-h`, text: JSON.stringify(doc, null, 2) }),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "secondary", "data-copy": id, text: `Copy: ${title}` })));
  }

  function renderReport(report, into, headingLevel) {
    const h = headingLevel || "h3";
    const sub = h === "h3" ? "h4" : "h5";
    const outcome = report.outcome || (report.ok ? "passed" : "failed");
    const steps = el("ol", { class: "steps" }, ...(report.steps || []).map((s) => {
      const li = el("li", { class: `step step-${s.status}`, "data-step": s.name, "data-status": s.status },
        el("div", { class: "step-head" },
          el("strong", { text: STEP_TITLES[s.name] || s.name }),
          el("span", { class: `badge badge-${s.status}`, text: STATUS_TEXT[s.status] || s.status }),
          s.status === "skipped" ? null : el("small", { text: `${s.duration_ms} ms` })),
        el("p", { class: "detail", text: s.detail }),
        Number(s.attempts) > 1
          ? el("p", { class: "attempts", text: `Retried ${s.attempts - 1} time${s.attempts === 2 ? "" : "s"} while IAM changes propagate (${s.attempts} attempts).` })
          : null,
        s.aws_error_code ? el("p", { class: "code-line" }, "AWS error code: ", el("code", { text: s.aws_error_code })) : null,
        s.hint ? el("p", { class: "hint" }, el("strong", { text: "What to do: " }), s.hint) : null);
      for (const [name, doc] of Object.entries(s.policies || {})) li.append(policyBlock(name, doc, sub));
      return li;
    }));
    const parts = [
      el("p", { class: `outcome outcome-${outcome}`, "data-outcome": outcome, text: OUTCOME_TEXT[outcome] || outcome }),
      el("p", { class: "summary", text: plainSummary(report.summary) }),
      steps,
    ];
    // Findings that do not fail the test (the key's age and use, permissions): as text.
    if ((report.warnings || []).length) {
      parts.push(el(h, { text: "Warnings" }), el("ul", { class: "warnings" }, ...report.warnings.map((w) =>
        el("li", { class: "warning", "data-warning": w.code },
          el("span", { text: w.message }),
          w.permission ? el("span", { class: "code-line" }, " Allow: ", el("code", { text: w.permission })) : null))));
    }
    if ((report.proves || []).length) {
      parts.push(el(h, { text: "What this proves" }), el("ul", {}, ...report.proves.map((p) => el("li", { text: p }))));
    }
    if ((report.does_not_prove || []).length) {
      parts.push(el(h, { text: "What it does not prove" }), el("ul", {}, ...report.does_not_prove.map((p) => el("li", { text: p }))));
    }
    into.replaceChildren(...parts);
  }

  // ---- Test Connection and Save ------------------------------------------------------
  let lastTest = null; // { digest, ok }: the form as last tested (a digest, not the form)
  let confirmed = null; // the digest of the form the user chose to save untested
  let formKey = null; // this form's Idempotency-Key: kept until it is saved or edited
  let busy = false;
  let retryAction = null;
  let retryTimer = null;

  async function digest(body) {
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const hash = await crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Busy buttons are aria-disabled, not disabled: a disabled button drops the keyboard
  // focus to the page's body.
  function setBusy(on, message) {
    busy = on;
    for (const id of ["test", "save"]) {
      if (on) $(id).setAttribute("aria-disabled", "true");
      else $(id).removeAttribute("aria-disabled");
    }
    if (message !== undefined) setStatus("form-status", message);
  }

  // Any change to the form: a new request (new key), no stale confirm or error.
  function formEdited() {
    formKey = null;
    hideConfirm(false);
    hideFormError(false);
  }

  function hideConfirm(refocus) {
    if ($("confirm").hidden) return;
    const had = $("confirm").contains(document.activeElement);
    $("confirm").hidden = true;
    if (refocus !== false && had) $("save").focus();
  }

  function hideFormError(refocus) {
    clearInterval(retryTimer);
    retryAction = null;
    if ($("form-error").hidden) return;
    const had = $("form-error").contains(document.activeElement);
    $("form-error").hidden = true;
    if (refocus !== false && had) $("save").focus();
  }

  // Seconds to wait from a Retry-After header (seconds or a date), at most 60.
  function retryAfter(headers) {
    const v = headers && headers.get("Retry-After");
    if (!v) return 0;
    const s = /^\s*\d+\s*$/.test(v) ? Number(v) : (Date.parse(v) - Date.now()) / 1000;
    return Number.isFinite(s) ? Math.min(60, Math.max(0, Math.ceil(s))) : 0;
  }

  const RETRYABLE = new Set([0, 429, 500, 502, 503, 504]);

  // A failure the same request may get past later: what happened, the API's own words,
  // and a Retry control that waits as long as the API asked (Retry-After).
  function showFormError(what, r, action) {
    const why = {
      0: "the API could not be reached",
      429: "too many requests in a short time",
      503: "a service the API depends on is unavailable for a moment",
    }[r.status] || `the API answered with an error (${r.status})`;
    $("form-error-h").textContent = `${what === "save" ? "Not saved yet" : "Not tested"}: ${why}`;
    $("form-error-detail").textContent = r.data && r.data.detail ? `The API says: ${r.data.detail}` : "";
    $("form-error-help").textContent = what === "save"
      ? "Your form is kept. Retry sends the same request again: if the first attempt was saved after all, you get that integration, not a second one."
      : "Your form is kept. Retry runs the test again.";
    hideConfirm(false);
    $("form-error").hidden = false;
    setStatus("form-status", "");
    retryAction = action;
    const b = $("retry");
    let left = retryAfter(r.headers);
    const tick = () => {
      if (left > 0) {
        b.setAttribute("aria-disabled", "true");
        b.textContent = `Retry (in ${left} s)`;
        left -= 1;
      } else {
        clearInterval(retryTimer);
        b.removeAttribute("aria-disabled");
        b.textContent = "Retry";
      }
    };
    clearInterval(retryTimer);
    tick();
    if (b.getAttribute("aria-disabled") === "true") retryTimer = setInterval(tick, 1000);
    b.focus();
  }

  function retry() {
    const b = $("retry");
    if (b.getAttribute("aria-disabled") === "true" || !retryAction || busy) return;
    const action = retryAction;
    $("save").focus();
    hideFormError(false);
    action();
  }

  async function testConnection() {
    if (busy) return;
    const body = collect();
    if (!body) return;
    hideConfirm(false);
    hideFormError(false);
    setBusy(true, "Testing the connection with AWS…");
    const r = await api("POST", "/test-connection", body, undefined, { resume: again($("test"), "form-status", "Test Connection") });
    setBusy(false);
    if (r.status === 200) {
      lastTest = { digest: await digest(body), ok: r.data.ok === true };
      renderReport(r.data, $("report-body"));
      $("report").hidden = false;
      setStatus("form-status", r.data.ok ? "Test Connection passed: you can save." : "Test Connection did not pass: see the report.");
      if (r.data.caller_arn && !$("user-arn").value) $("user-arn").value = r.data.caller_arn;
      $("report-h").focus();
    } else if (r.signIn) {
      setStatus("form-status", "Not tested: sign in again (at the top of the page), then select Test Connection. Your form is kept.");
    } else if (RETRYABLE.has(r.status)) {
      showFormError("test", r, testConnection);
    } else {
      showProblem(r.data, "form-status");
    }
  }

  // Save never saves a form that did not pass Test Connection: it asks first, below the
  // buttons (nothing moves under the pointer), and only "Save untested" saves it.
  async function save(ev) {
    if (ev) ev.preventDefault();
    if (busy) return;
    const body = collect();
    if (!body) return;
    // Role delegation is tested once saved (its External ID is made on save).
    if (body.auth === "role_delegation") {
      await submit(body, false);
      return;
    }
    const d = await digest(body);
    const tested = lastTest && lastTest.digest === d;
    const passed = Boolean(tested && lastTest.ok);
    if (!passed && confirmed !== d) {
      $("confirm-text").textContent = tested
        ? "This form did not pass Test Connection. The guide says to save once the test passes. Save it anyway?"
        : "This form has not been tested, or it changed since its test. The guide says to run Test Connection and save once it passes. Save it anyway?";
      hideFormError(false);
      $("confirm").hidden = false;
      setStatus("form-status", "");
      $("confirm-text").focus();
      return;
    }
    await submit(body, passed);
  }

  async function saveUntested() {
    if (busy) return;
    const body = collect();
    if (!body) return;
    confirmed = await digest(body);
    $("save").focus();
    hideConfirm(false);
    await submit(body, false);
  }

  async function submit(body, passed) {
    if (!formKey) formKey = crypto.randomUUID();
    const key = formKey;
    hideFormError(false);
    setBusy(true, "Saving…");
    const r = await api("POST", "", body, { "Idempotency-Key": key }, { resume: again($("save"), "form-status", "Save") });
    setBusy(false);
    if (r.status === 201 || r.status === 200) {
      // The secret is stored (encrypted) by the API now: the page keeps no copy of it.
      $("f-secret").value = "";
      formKey = null;
      lastTest = null;
      confirmed = null;
      const replayed = (r.headers.get("Idempotent-Replayed") || "").toLowerCase() === "true";
      const next = r.data.auth === "role_delegation" ? " Now create the role in AWS: see Set up the role, below." : "";
      setStatus("form-status", replayed
        ? `Saved as ${r.data.name}: the earlier attempt had been saved, and this is that integration.${next}`
        : `Saved as ${r.data.name}.${next}`);
      showSaved(r.data);
      // The form's passing test was of the typed keys, not of the saved record: test the
      // saved keys once (what Re-test does) so the integration carries its verdict.
      if (passed) await recordSavedTest(r.data);
      loadList(false, true);
    } else if (r.signIn) {
      setStatus("form-status", "Not saved: sign in again (at the top of the page), then select Save. Your form is kept.");
    } else if (RETRYABLE.has(r.status)) {
      showFormError("save", r, async () => {
        const same = collect();
        if (same) await submit(same, passed);
      });
    } else {
      showProblem(r.data, "form-status");
    }
  }

  // ---- the saved integration and its bucket ------------------------------------------
  let pollTimer = null;
  let savedId = null;
  let savedView = null;

  const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  // A time from the API in the user's own time zone, the exact instant in `datetime`.
  function timeEl(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return document.createTextNode(String(iso || "an unknown time"));
    return el("time", { datetime: iso, title: iso, text: TIME_FORMAT.format(d) });
  }

  function lastTestNode(t) {
    if (!t) return document.createTextNode("never tested");
    return el("span", {}, `${t.ok ? "passed" : "failed"} at `, timeEl(t.at));
  }

  // The daily health check's last verdict: ok, or failing since when, where and why.
  function healthNode(h) {
    if (!h) return document.createTextNode("not checked yet");
    if (h.status === "ok") return el("span", { class: "health-ok", "data-health": "ok" }, "ok, checked ", timeEl(h.checked_at));
    return el("span", { class: "health-failing", "data-health": "failing" },
      "failing since ", timeEl(h.since), h.step ? ` at the ${h.step.replace(/_/g, " ")} step` : "",
      h.detail ? `: ${h.detail}${/[.!?]$/.test(h.detail) ? "" : "."}` : ".", h.hint ? el("span", { class: "hint" }, ` ${h.hint}`) : null);
  }

  // An access key's age as IAM told a test; 90 days or more is due for rotation.
  function keyAgeNode(view) {
    const d = new Date(view.key_created_at);
    const days = Math.floor((Date.now() - d.getTime()) / 86400000);
    return el("span", { class: days >= 90 ? "health-failing" : "" }, "created ", timeEl(view.key_created_at),
      days >= 90 ? ` (${days} days ago: rotate it)` : "");
  }

  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of pairs) dl.append(el("dt", { text: k }), el("dd", { "data-fact": k }, v));
    return dl;
  }

  const isDelegation = (view) => view.auth === "role_delegation";

  // How the integration reaches AWS, in one line: never a "null".
  function kindText(view) {
    if (isDelegation(view)) {
      return view.aws_external_id ? `Role delegation, External ID ${view.aws_external_id}` : "Role delegation";
    }
    return view.aws_access_key_id ? `Access keys ${view.aws_access_key_id}` : "Access keys";
  }

  function showSaved(view) {
    savedId = view.id;
    savedView = view;
    const role = isDelegation(view);
    const f = facts([
      ["Name", view.name],
      ["ID", view.id],
      ["AWS account", view.aws_account_id],
      ["Connects with", role ? "Role delegation (no secret stored)" : "Access keys"],
      role ? ["External ID", el("code", { class: "ext-id", text: view.aws_external_id || "none" })]
        : ["Access key", view.aws_access_key_id || "none"],
      ["Role", view.aws_assumed_role_name || "none"],
      ["Region", view.aws_default_region],
      ["Last test", lastTestNode(view.last_test)],
    ]);
    f.id = "saved-facts";
    $("saved-facts").replaceWith(f);
    $("saved").hidden = false;
    $("backend").hidden = true;
    $("bucket-retry").hidden = true;
    $("onboarding").hidden = !role;
    if (role) {
      // The bucket is made through the role: once the role exists and its test passes.
      setStatus("bucket-status", view.state_bucket
        ? `${view.state_bucket.name}: created once the role works, after its Test Connection passes.`
        : "No state bucket was requested for this integration.");
      $("bucket-status").dataset.status = "waiting";
      showOnboarding(view);
      return;
    }
    if (view.state_bucket) {
      showBucket({ integration_id: view.id, ...view.state_bucket });
      schedulePoll(view.id);
    } else {
      setStatus("bucket-status", "No state bucket was requested for this integration.");
    }
    $("saved-h").focus();
  }

  async function recordSavedTest(view) {
    setStatus("form-status", `Saved as ${view.name}. Testing the saved keys to record the result…`);
    const r = await api("POST", `/${encodeURIComponent(view.id)}/test-connection`, undefined, undefined, { background: true });
    const dd = document.querySelector('#saved-facts dd[data-fact="Last test"]');
    if (r.status === 200 && r.data.last_test) {
      if (dd) dd.replaceChildren(lastTestNode(r.data.last_test));
      setStatus("form-status", r.data.ok
        ? `Saved as ${view.name}; its test passed again with the saved keys and is recorded.`
        : `Saved as ${view.name}, but its test with the saved keys did not pass (${plainSummary(r.data.summary)}). Re-test it from the list.`);
    } else {
      setStatus("form-status", `Saved as ${view.name}; its test could not be recorded now (${r.status === 200 ? plainSummary(r.data.summary) : r.data.detail || r.status}). Re-test it from the list.`);
    }
  }

  // ---- role delegation: what to create in AWS, then its test --------------------------
  async function showOnboarding(view) {
    $("onboarding-intro").textContent = `The platform assumes a role in account ${view.aws_account_id} from its own principal, and only with this integration's External ID. Create the role ${view.aws_assumed_role_name} in one of the two ways below, then test the connection.`;
    $("onboarding-body").replaceChildren();
    $("onboarding-report").replaceChildren();
    setStatus("onboarding-test-status", "");
    setStatus("onboarding-status", "Loading the role's setup…");
    $("onboarding-h").focus();
    const r = await api("GET", `/${encodeURIComponent(view.id)}/onboarding`, undefined, undefined, { background: true });
    if (view.id !== savedId) return;
    if (r.status !== 200) {
      setStatus("onboarding-status", r.signIn
        ? "Sign in again, then select Set up another account and save again, or see the integration in the list."
        : `The role's setup could not be loaded (${r.status}: ${r.data.detail || ""}). The External ID above is what the role's trust policy needs.`);
      return;
    }
    setStatus("onboarding-status", "");
    renderOnboarding(r.data, view);
  }

  function renderOnboarding(o, view) {
    const extId = nextId("ext");
    const parts = [
      facts([
        ["External ID", el("span", {},
          el("code", { id: extId, class: "ext-id", text: o.external_id }), " ",
          el("button", { type: "button", class: "secondary", "data-copy": extId, text: "Copy the External ID" }))],
        ["Role", el("code", { text: o.role_arn })],
        ["Platform principal", el("code", { text: o.platform_principal })],
      ]),
    ];
    const way1 = el("div", { class: "onboarding-way", "data-way": "cloudformation" },
      el("h4", { text: "Way 1: with CloudFormation" }));
    if (o.quick_create_link) {
      way1.append(
        el("p", { text: `Opens the AWS console's quick-create page in a new tab, with the role name and External ID filled in: sign in to account ${o.aws_account_id} there and create the stack.` }),
        el("p", {}, el("a", {
          id: "launch-stack", class: "button", href: o.quick_create_link, target: "_blank", rel: "noopener noreferrer",
        }, "Launch stack", el("span", { class: "sr", text: " (opens in a new tab)" }))));
    } else {
      const text = JSON.stringify(o.cloudformation_template, null, 2);
      const id = nextId("template");
      const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
      way1.append(
        el("p", { class: "template-help", text: `This platform offers no one-click link: save the template, then in the CloudFormation console of account ${o.aws_account_id} create a stack from it with RoleName ${o.role_name} and ExternalId ${o.external_id}.` }),
        el("h5", { id: `${id}-h`, text: "The CloudFormation template" }),
        el("pre", { class: "code", id, tabindex: 0, "aria-labelledby": `${id}-h`, text }),
        el("div", { class: "actions" },
          el("button", { type: "button", class: "secondary", "data-copy": id, text: "Copy: The CloudFormation template" }),
          el("a", { id: "template-download", class: "button", href: url, download: `infrakitchen-role-${o.aws_account_id}.json` }, "Download the template")));
    }
    const way2 = el("div", { class: "onboarding-way", "data-way": "by-hand" },
      el("h4", { text: "Way 2: by hand in the IAM console" }),
      el("p", { text: `Create the role ${o.role_name} with a custom trust policy, paste the trust policy below, then add the permissions policy to the role as an inline policy.` }),
      policyBlock("trust_policy", o.trust_policy, "h5"),
      policyBlock("permissions_policy", o.permissions_policy, "h5"));
    parts.push(way1, way2);
    $("onboarding-body").replaceChildren(...parts);
    if (view) savedView = { ...view, aws_external_id: o.external_id || view.aws_external_id };
  }

  async function testOnboarded() {
    const b = $("onboarding-test");
    const view = savedView;
    if (!view || b.getAttribute("aria-disabled") === "true") return;
    b.setAttribute("aria-disabled", "true");
    setStatus("onboarding-test-status", "Testing: the platform assumes your role with the External ID (this can take some seconds while a new role propagates)…");
    const r = await api("POST", `/${encodeURIComponent(view.id)}/test-connection`, undefined, undefined,
      { resume: { el: b, status: "onboarding-test-status", text: "Signed in again: select Test Connection to continue." } });
    b.removeAttribute("aria-disabled");
    if (view.id !== savedId) return;
    if (r.status !== 200) {
      if (!r.signIn) {
        setStatus("onboarding-test-status", `Not tested (${r.status}): ${r.data.detail || ""}`);
        $("onboarding-test-status").focus();
      }
      return;
    }
    renderReport(r.data, $("onboarding-report"), "h5");
    const dd = document.querySelector('#saved-facts dd[data-fact="Last test"]');
    if (dd && r.data.last_test) dd.replaceChildren(lastTestNode(r.data.last_test));
    const outcome = r.data.outcome || (r.data.ok ? "passed" : "failed");
    setStatus("onboarding-test-status", outcome === "passed"
      ? "Test Connection passed: the platform can assume your role. The result is recorded."
      : outcome === "unreachable"
        ? "Test Connection could not reach AWS: nothing was recorded. Try again in a moment."
        : "Test Connection did not pass: see the steps below and what to do.");
    $("onboarding-test-status").focus();
    if (r.data.ok && view.create_state_bucket) await bucketAfterRole(view);
    loadList(false, true);
  }

  // The role works now: the bucket, asked for at save, is made through it. One that
  // failed before the role existed is asked for again, once.
  async function bucketAfterRole(view) {
    const r = await api("GET", `/${encodeURIComponent(view.id)}/state-bucket`, undefined, undefined, { background: true });
    if (r.status !== 200 || view.id !== savedId) return;
    if (r.data.status === "failed") {
      setStatus("bucket-status", `${r.data.name}: it could not be made before the role worked; asking again now…`);
      const again = await api("POST", `/${encodeURIComponent(view.id)}/state-bucket`, undefined, undefined, { background: true });
      if (again.status === 200 || again.status === 202) {
        showBucket(again.data);
        schedulePoll(view.id);
      } else {
        showBucket(r.data);
      }
      return;
    }
    showBucket(r.data);
    if (r.data.status === "pending" || r.data.status === "provisioning") schedulePoll(view.id);
  }

  function showBucket(b) {
    const text = {
      pending: `${b.name}: queued…`,
      provisioning: `${b.name}: being created and hardened…`,
      ready: `${b.name}: ready in ${b.region}.`,
      failed: `${b.name}: failed: ${b.reason || "no reason given"}`,
    }[b.status] || `${b.name}: ${b.status}`;
    const status = $("bucket-status");
    status.textContent = text;
    status.dataset.status = b.status;
    $("bucket-retry").hidden = b.status !== "failed";
    if (b.status === "ready" && b.backend) {
      $("backend-text").textContent = b.backend;
      $("backend").hidden = false;
    }
  }

  function schedulePoll(id) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => pollBucket(id), POLL_MS);
  }

  async function pollBucket(id) {
    if (id !== savedId) return;
    const r = await api("GET", `/${encodeURIComponent(id)}/state-bucket`, undefined, undefined, { background: true });
    if (id !== savedId) return;
    if (r.status === 200) {
      showBucket(r.data);
      if (r.data.status === "pending" || r.data.status === "provisioning") schedulePoll(id);
      else loadList(false, true);
    } else if (r.signIn) {
      setStatus("bucket-status", "Stopped checking the bucket: your session has ended. Sign in again, then see the bucket in the list.");
    } else {
      // A dependency hiccup (503) or throttling: keep asking, a little slower.
      setStatus("bucket-status", `Checking the bucket failed (${r.status}: ${r.data.detail || ""}); trying again…`);
      clearTimeout(pollTimer);
      pollTimer = setTimeout(() => pollBucket(id), Math.max(POLL_MS * 3, retryAfter(r.headers) * 1000));
    }
  }

  async function retryBucket() {
    const b = $("bucket-retry");
    if (!savedId || b.getAttribute("aria-disabled") === "true") return;
    b.setAttribute("aria-disabled", "true");
    const r = await api("POST", `/${encodeURIComponent(savedId)}/state-bucket`, undefined, undefined, { resume: { el: b, status: "bucket-status", text: "Signed in again: select Retry the bucket to continue." } });
    b.removeAttribute("aria-disabled");
    if (r.status === 200 || r.status === 202) {
      showBucket(r.data);
      schedulePoll(savedId);
    } else if (!r.signIn) {
      setStatus("bucket-status", `Retry refused (${r.status}): ${r.data.detail || ""}`);
      $("bucket-status").focus();
    }
  }

  function newForm() {
    clearTimeout(pollTimer);
    savedId = null;
    $("form").reset();
    labels = [];
    renderChips();
    touched.clear();
    for (const f of Object.keys(FIELDS)) showError(FIELDS[f], null);
    formEdited();
    updateBucketName();
    $("saved").hidden = true;
    $("onboarding").hidden = true;
    $("onboarding-body").replaceChildren();
    $("onboarding-report").replaceChildren();
    savedView = null;
    applyKind();
    $("report").hidden = true;
    setStatus("form-status", "");
    $("f-name").focus();
  }

  // ---- the list of integrations --------------------------------------------------------
  let nextToken = null;

  function bucketText(b) {
    if (!b) return "none";
    return b.status === "failed" ? `${b.name}: failed (${b.reason || "no reason"})` : `${b.name}: ${b.status}`;
  }

  function card(view) {
    const li = el("li", { class: "card", "data-id": view.id, "data-name": view.name });
    const report = el("div", { class: "card-report" });
    const status = el("p", { class: "status", role: "status", tabindex: -1 });
    const retest = el("button", { type: "button", class: "secondary", text: "Re-test", "aria-label": `Re-test ${view.name}` });
    const del = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${view.name}` });
    const actions = el("div", { class: "actions" }, retest, del);
    li.append(
      el("h3", { text: view.name, tabindex: -1 }),
      facts([
        ["AWS account", view.aws_account_id],
        ["Connects with", kindText(view)],
        ["Last test", lastTestNode(view.last_test)],
        ["Health", healthNode(view.health)],
        ...(view.key_created_at ? [["Access key", keyAgeNode(view)]] : []),
        ["State bucket", bucketText(view.state_bucket)],
      ]),
      actions, status, report);
    retest.addEventListener("click", async () => {
      if (retest.getAttribute("aria-disabled") === "true") return;
      retest.setAttribute("aria-disabled", "true");
      status.textContent = `Testing ${view.name}…`;
      const r = await api("POST", `/${encodeURIComponent(view.id)}/test-connection`, undefined, undefined,
        { resume: { el: retest, status: "list-status", text: `Signed in again: select Re-test ${view.name} to continue.` } });
      retest.removeAttribute("aria-disabled");
      if (r.status === 200) {
        status.textContent = r.data.recorded ? "Tested; the result is recorded." : "Tested; AWS could not be reached, nothing recorded.";
        renderReport(r.data, report, "h4");
        if (r.data.last_test) li.querySelector('dd[data-fact="Last test"]').replaceChildren(lastTestNode(r.data.last_test));
      } else if (r.signIn) {
        status.textContent = "Not tested: sign in again, then select Re-test.";
      } else {
        status.textContent = `Re-test failed (${r.status}): ${r.data.detail || ""}`;
        status.focus();
      }
    });
    del.addEventListener("click", () => {
      const yes = el("button", { type: "button", class: "danger", text: `Yes, delete ${view.name}` });
      const no = el("button", { type: "button", class: "secondary", text: "Cancel" });
      const confirm = el("div", { class: "actions confirm-inline" }, el("span", { text: `Delete ${view.name}? ${isDelegation(view) ? "Its External ID is forgotten; the role and a state bucket stay in AWS." : "Its keys are forgotten; a state bucket stays in AWS."}` }), yes, no);
      actions.replaceWith(confirm);
      no.addEventListener("click", () => { confirm.replaceWith(actions); del.focus(); });
      yes.addEventListener("click", async () => {
        if (yes.getAttribute("aria-disabled") === "true") return;
        yes.setAttribute("aria-disabled", "true");
        const r = await api("DELETE", `/${encodeURIComponent(view.id)}`, undefined, { "If-Match": `"${view.revision}"` },
          { resume: { el: del, status: "list-status", text: `Signed in again: select Delete ${view.name} to continue.` } });
        if (r.status === 204 || r.status === 404) {
          li.remove();
          setStatus("list-status", `Deleted ${view.name}.`);
          $("list-refresh").focus();
        } else {
          confirm.replaceWith(actions);
          if (r.signIn) {
            status.textContent = "Not deleted: sign in again, then select Delete.";
            return;
          }
          status.textContent = r.status === 412
            ? `${view.name} was changed meanwhile: refresh the list and try again.`
            : `Delete failed (${r.status}): ${r.data.detail || ""}`;
          del.focus();
        }
      });
      no.focus();
    });
    return li;
  }

  // The list's status says what is shown: all of them, or a first part with more to load
  // (the API gives pages, not a total).
  function listText() {
    const n = $("list").children.length;
    const failing = $("list-failing").checked ? " failing" : "";
    if (nextToken) return `${n}${failing} shown, more available: select Load more to see them.`;
    if (!n) return failing ? "No failing integrations." : "No integrations yet.";
    return `${n}${failing} integration${n === 1 ? "" : "s"}.`;
  }

  async function loadList(more, background) {
    if (background && !token()) {
      $("list").replaceChildren();
      $("list-more").hidden = true;
      setStatus("list-status", "Sign in to see your integrations.");
      return;
    }
    const control = more ? $("list-more") : $("list-refresh");
    const filter = $("list-failing").checked ? "&health=failing" : "";
    const q = more && nextToken ? `?limit=20${filter}&next_token=${encodeURIComponent(nextToken)}` : `?limit=20${filter}`;
    setStatus("list-status", "Loading…");
    const r = await api("GET", q, undefined, undefined,
      { background, resume: { el: control, status: "list-status", text: `Signed in again: select ${control.textContent} to continue.` } });
    if (r.signIn) {
      setStatus("list-status", "Sign in to see your integrations.");
      return;
    }
    if (r.status !== 200) {
      setStatus("list-status", `Could not load the list (${r.status}): ${r.data.detail || ""}`);
      if (!background) $("list-status").focus();
      return;
    }
    const items = (r.data.items || []).map(card);
    if (more) $("list").append(...items);
    else $("list").replaceChildren(...items);
    nextToken = r.data.next_token || null;
    $("list-more").hidden = !nextToken;
    setStatus("list-status", listText());
    // "Load more" disappears with the last page: focus goes to the first card it added.
    if (more && !nextToken && items.length) items[0].querySelector("h3").focus();
    else if (more && !nextToken) $("list-status").focus();
  }

  // ---- the policies of the guide -------------------------------------------------------
  async function loadPolicies() {
    const account = validAccount();
    if (!account) {
      touched.add("aws_account_id");
      validate("aws_account_id");
      setStatus("policies-status", "Enter the AWS Account ID in the form first.");
      $("f-account").focus();
      return;
    }
    const q = new URLSearchParams({ aws_account_id: account });
    const role = raw("aws_assumed_role_name").trim();
    const userArn = $("user-arn").value.trim();
    if (role && userArn) {
      q.set("role_name", role);
      q.set("user_arn", userArn);
      if (raw("aws_external_id") && !delegated()) q.set("external_id", raw("aws_external_id"));
    }
    const region = givenRegion();
    if (region) q.set("region", region);
    showError("user-arn", null);
    setStatus("policies-status", "Filling in the policies…");
    const r = await api("GET", `/setup-policies?${q}`, undefined, undefined,
      { resume: { el: $("policies-load"), status: "policies-status", text: "Signed in again: select Fill in the policies to continue." } });
    if (r.signIn) {
      setStatus("policies-status", "Not filled in: sign in, then select Fill in the policies.");
      return;
    }
    if (r.status !== 200) {
      const errs = r.data.errors || [];
      let first = null;
      for (const e of errs) {
        const id = { user_arn: "user-arn", role_name: "f-role", external_id: "f-external" }[e.field];
        if (!id) continue;
        showError(id, e.message);
        first = first || id;
      }
      setStatus("policies-status", `The policies could not be filled in (${r.status}): ${r.data.detail || ""}`);
      $(first || "policies-status").focus();
      return;
    }
    const blocks = Object.entries(r.data.policies || {}).map(([name, doc]) => policyBlock(name, doc, "h4"));
    $("policies").replaceChildren(...blocks);
    setStatus("policies-status", role && !userArn
      ? "The state bucket policy. Enter the IAM user's ARN above for the role's policies too."
      : `Filled in for account ${account}.`);
  }

  // ---- copy buttons ------------------------------------------------------------------
  async function copy(button) {
    const target = $(button.dataset.copy);
    if (!target) return;
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(target.textContent);
      button.textContent = "Copied";
    } catch (_) {
      // No clipboard permission: select the text so that the user can copy it.
      const range = document.createRange();
      range.selectNodeContents(target);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { button.textContent = label; }, 2000);
  }

  // ---- wiring --------------------------------------------------------------------------
  function init() {
    const q = new URLSearchParams(location.search);
    const answer = q.has("state") && (q.has("code") || q.has("error"));
    let inTab = null;
    try { inTab = JSON.parse(sessionStorage.getItem(LOGIN_KEY) || "null"); } catch (_) { inTab = null; }
    if (answer && !(inTab && inTab.state === q.get("state")) && window.opener && window.opener !== window) {
      answerOpener(q); // this is the sign-in window
      return;
    }
    $("signin").addEventListener("click", signIn);
    $("signin-here").addEventListener("click", signInHere);
    $("signout").addEventListener("click", signOut);
    $("form").addEventListener("submit", save);
    $("test").addEventListener("click", testConnection);
    $("confirm-save").addEventListener("click", saveUntested);
    $("confirm-cancel").addEventListener("click", () => { hideConfirm(true); setStatus("form-status", "Not saved."); });
    $("retry").addEventListener("click", retry);
    $("bucket-retry").addEventListener("click", retryBucket);
    $("new-form").addEventListener("click", newForm);
    $("list-refresh").addEventListener("click", () => loadList(false));
    $("list-more").addEventListener("click", () => loadList(true));
    $("list-failing").addEventListener("change", () => loadList(false));
    $("policies-load").addEventListener("click", loadPolicies);
    $("onboarding-test").addEventListener("click", testOnboarded);
    for (const id of ["f-auth-keys", "f-auth-role"]) {
      $(id).addEventListener("change", () => { formEdited(); applyKind(); });
    }
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-copy]");
      if (b) copy(b);
      const chip = ev.target.closest("button[data-chip]");
      if (chip) {
        labels.splice(Number(chip.dataset.chip), 1);
        renderChips();
        validate("labels");
        formEdited();
        $("f-labels").focus();
      }
    });
    for (const [field, id] of Object.entries(FIELDS)) {
      const input = $(id);
      input.addEventListener(field === "create_state_bucket" ? "change" : "input", () => {
        formEdited();
        if (field === "labels" && input.value.endsWith(",")) { commitLabel(); return; }
        validate(field);
        for (const d of DEPENDENTS[field] || []) validate(d);
        if (field === "aws_account_id") updateBucketName();
      });
      input.addEventListener("blur", () => {
        touched.add(field);
        validate(field);
      });
    }
    $("f-labels").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); commitLabel(); }
      if (ev.key === "Backspace" && ev.target.value === "" && labels.length) {
        labels.pop();
        renderChips();
        formEdited();
      }
    });
    updateBucketName();
    applyKind();
    // The earlier page kept a typed token under this name: nothing reads it any more.
    sessionStorage.removeItem("infrakitchen-setup-token");
    if (sessionStorage.getItem(NOTE_KEY) === "signed-out") setAuthStatus("You are signed out.");
    sessionStorage.removeItem(NOTE_KEY);
    if (session && !token()) {
      dropSession();
      $("session-ended").textContent = "Your session has ended. Sign in again to continue.";
    }
    oidcReady = loadOidc().then(() => {
      renderAuth();
      if (oidcError) setAuthStatus(`Sign-in is not available: ${oidcError}.`);
    });
    prepare();
    renderAuth();
    scheduleExpiry();
    if (answer) {
      // Back from a sign-in in this tab: the code is used once, and leaves the address.
      history.replaceState(null, "", PAGE_PATH);
      sessionStorage.removeItem(LOGIN_KEY);
      restoreDraft();
      if (!inTab) {
        setAuthStatus("Not signed in: this sign-in answer belongs to no sign-in of this tab. Sign in again.");
      } else {
        oidcReady.then(() => (oidc ? finishSignIn(answerOf(q), inTab) : null));
      }
    } else if (inTab) {
      // A sign-in in this tab that never came back (the user went back instead).
      sessionStorage.removeItem(LOGIN_KEY);
      restoreDraft();
    }
    loadList(false, true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
