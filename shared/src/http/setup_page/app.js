// The setup page's script: the setup guide's form, Test Connection, Save, the state
// bucket's status and the list of integrations, all through this API's own routes with
// the bearer token the user enters (kept in sessionStorage, for this tab only).
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
  const TOKEN_KEY = "infrakitchen-setup-token";
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
    if (REQUIRED.includes(field) && v.trim() === "") return "is required";
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
    const body = {
      name: raw("name"),
      labels: labels.slice(),
      aws_account_id: raw("aws_account_id").trim(),
      aws_access_key_id: raw("aws_access_key_id").trim(),
      aws_secret_access_key: raw("aws_secret_access_key").trim(),
      create_state_bucket: $("f-bucket").checked,
    };
    if (raw("description") !== "") body.description = raw("description");
    if (raw("aws_assumed_role_name").trim() !== "") body.aws_assumed_role_name = raw("aws_assumed_role_name").trim();
    if (raw("aws_external_id") !== "") body.aws_external_id = raw("aws_external_id");
    if (raw("aws_session_duration").trim() !== "") body.aws_session_duration = durationValue(raw("aws_session_duration"));
    if (raw("aws_default_region") !== "") body.aws_default_region = raw("aws_default_region");
    return body;
  }

  // The API's field errors next to their fields; the rest in the form's status line.
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
    if (first) $(first).focus();
  }

  function setStatus(id, text) { $(id).textContent = text || ""; }

  // ---- the API -----------------------------------------------------------------------
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

  async function api(method, path, body, extraHeaders) {
    const headers = { Accept: "application/json, application/problem+json", ...(extraHeaders || {}) };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(API + path, {
        method, headers, cache: "no-store", credentials: "omit", redirect: "error",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { status: 0, data: { detail: `the API could not be reached (${e.message})` } };
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { detail: text.slice(0, 200) }; }
    }
    if (resp.status === 401) {
      showError("token", "The API refused the token (401): enter a valid one above.");
      setStatus("token-status", "");
    }
    if (data && !data.detail && data.message) data.detail = data.message;
    return { status: resp.status, data: data || {} };
  }

  // ---- the token -----------------------------------------------------------------------
  function showTokenState() {
    const has = token() !== "";
    $("token-forget").hidden = !has;
    setStatus("token-status", has ? "A token is set for this tab." : "Enter your token to use the page.");
  }

  async function useToken(ev) {
    ev.preventDefault();
    const input = $("token");
    const value = input.value.trim();
    if (!value) { showError("token", "is required"); input.focus(); return; }
    sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    showError("token", null);
    const r = await api("GET", "?limit=1");
    if (r.status === 401) { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); input.focus(); return; }
    showTokenState();
    setStatus("token-status", r.status === 200 ? "Token accepted." : `The API answered ${r.status}: ${r.data.detail || ""}`);
    loadList(false);
  }

  function forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    $("list").replaceChildren();
    $("token").focus();
  }

  // ---- rendering a Test Connection report ------------------------------------------
  const STEP_TITLES = {
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
  };

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
        s.aws_error_code ? el("p", { class: "code-line" }, "AWS error code: ", el("code", { text: s.aws_error_code })) : null,
        s.hint ? el("p", { class: "hint" }, el("strong", { text: "What to do: " }), s.hint) : null);
      for (const [name, doc] of Object.entries(s.policies || {})) li.append(policyBlock(name, doc, sub));
      return li;
    }));
    const parts = [
      el("p", { class: `outcome outcome-${outcome}`, "data-outcome": outcome, text: OUTCOME_TEXT[outcome] || outcome }),
      el("p", { class: "summary", text: report.summary || "" }),
      steps,
    ];
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
  let untestedWarned = null; // the digest the untested-save warning was shown for
  let busy = false;

  async function digest(body) {
    const bytes = new TextEncoder().encode(JSON.stringify(body));
    const hash = await crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setBusy(on, message) {
    busy = on;
    for (const id of ["test", "save"]) $(id).disabled = on;
    if (message !== undefined) setStatus("form-status", message);
  }

  async function testConnection() {
    if (busy) return;
    const body = collect();
    if (!body) return;
    setBusy(true, "Testing the connection with AWS…");
    $("form-warning").hidden = true;
    const r = await api("POST", "/test-connection", body);
    setBusy(false);
    if (r.status === 200) {
      lastTest = { digest: await digest(body), ok: r.data.ok === true };
      renderReport(r.data, $("report-body"));
      $("report").hidden = false;
      setStatus("form-status", r.data.ok ? "Test Connection passed: you can save." : "Test Connection did not pass: see the report.");
      if (r.data.caller_arn && !$("user-arn").value) $("user-arn").value = r.data.caller_arn;
      $("report-h").focus();
    } else if (r.status === 429) {
      setStatus("form-status", "Too many tests in a short time: wait a few seconds and test again.");
    } else {
      showProblem(r.data, "form-status");
    }
  }

  async function save(ev) {
    ev.preventDefault();
    if (busy) return;
    const body = collect();
    if (!body) return;
    const d = await digest(body);
    const tested = lastTest && lastTest.digest === d;
    const passed = Boolean(tested && lastTest.ok);
    if (!passed && untestedWarned !== d) {
      untestedWarned = d;
      const w = $("form-warning");
      w.textContent = tested
        ? "This form did not pass Test Connection. The guide says to save once the test passes. Select Save again to save it anyway."
        : "This form has not been tested (or changed since its test). The guide says to run Test Connection and save once it passes. Select Save again to save it anyway.";
      w.hidden = false;
      setStatus("form-status", "Not saved yet: see the warning above.");
      return;
    }
    $("form-warning").hidden = true;
    setBusy(true, "Saving…");
    const r = await api("POST", "", body, { "Idempotency-Key": crypto.randomUUID() });
    setBusy(false);
    if (r.status === 201) {
      // The secret is stored (encrypted) by the API now: the page keeps no copy of it.
      $("f-secret").value = "";
      lastTest = null;
      untestedWarned = null;
      setStatus("form-status", `Saved as ${r.data.name}.`);
      showSaved(r.data);
      // The form's passing test was of the typed keys, not of the saved record: test the
      // saved keys once (what Re-test does) so the integration carries its verdict.
      if (passed) await recordSavedTest(r.data);
      loadList(false);
    } else if (r.status === 409) {
      showProblem(r.data, "form-status");
      if (!(r.data.errors || []).length) setStatus("form-status", r.data.detail || "Conflict");
    } else {
      showProblem(r.data, "form-status");
    }
  }

  // ---- the saved integration and its bucket ------------------------------------------
  let pollTimer = null;
  let savedId = null;

  function lastTestText(t) {
    if (!t) return "never tested";
    return `${t.ok ? "passed" : "failed"} at ${t.at}`;
  }

  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [k, v] of pairs) dl.append(el("dt", { text: k }), el("dd", { text: v, "data-fact": k }));
    return dl;
  }

  function showSaved(view) {
    savedId = view.id;
    const f = facts([
      ["Name", view.name],
      ["ID", view.id],
      ["AWS account", view.aws_account_id],
      ["Access key", view.aws_access_key_id],
      ["Role", view.aws_assumed_role_name || "none"],
      ["Region", view.aws_default_region],
      ["Last test", lastTestText(view.last_test)],
    ]);
    f.id = "saved-facts";
    $("saved-facts").replaceWith(f);
    $("saved").hidden = false;
    $("backend").hidden = true;
    $("bucket-retry").hidden = true;
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
    const r = await api("POST", `/${encodeURIComponent(view.id)}/test-connection`);
    const dd = document.querySelector('#saved-facts dd[data-fact="Last test"]');
    if (r.status === 200 && r.data.last_test) {
      if (dd) dd.textContent = lastTestText(r.data.last_test);
      setStatus("form-status", r.data.ok
        ? `Saved as ${view.name}; its test passed again with the saved keys and is recorded.`
        : `Saved as ${view.name}, but its test with the saved keys did not pass (${r.data.summary}). Re-test it from the list.`);
    } else {
      setStatus("form-status", `Saved as ${view.name}; its test could not be recorded now (${r.status === 200 ? r.data.summary : r.data.detail || r.status}). Re-test it from the list.`);
    }
  }

  function showBucket(b) {
    const text = {
      pending: `${b.name}: queued (pending)…`,
      provisioning: `${b.name}: being created and hardened (provisioning)…`,
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
    const r = await api("GET", `/${encodeURIComponent(id)}/state-bucket`);
    if (id !== savedId) return;
    if (r.status === 200) {
      showBucket(r.data);
      if (r.data.status === "pending" || r.data.status === "provisioning") schedulePoll(id);
      else loadList(false);
    } else if (r.status === 401) {
      setStatus("bucket-status", "Stopped checking the bucket: the token was refused.");
    } else {
      // A dependency hiccup (503) or throttling: keep asking, a little slower.
      setStatus("bucket-status", `Checking the bucket failed (${r.status}: ${r.data.detail || ""}); retrying…`);
      clearTimeout(pollTimer);
      pollTimer = setTimeout(() => pollBucket(id), POLL_MS * 3);
    }
  }

  async function retryBucket() {
    if (!savedId) return;
    $("bucket-retry").disabled = true;
    const r = await api("POST", `/${encodeURIComponent(savedId)}/state-bucket`);
    $("bucket-retry").disabled = false;
    if (r.status === 200 || r.status === 202) {
      showBucket(r.data);
      schedulePoll(savedId);
    } else {
      setStatus("bucket-status", `Retry refused (${r.status}): ${r.data.detail || ""}`);
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
    updateBucketName();
    $("saved").hidden = true;
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
    const status = el("p", { class: "status", role: "status" });
    const retest = el("button", { type: "button", class: "secondary", text: "Re-test", "aria-label": `Re-test ${view.name}` });
    const del = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${view.name}` });
    const actions = el("div", { class: "actions" }, retest, del);
    li.append(
      el("h3", { text: view.name }),
      facts([
        ["AWS account", view.aws_account_id],
        ["Access key", view.aws_access_key_id],
        ["Last test", lastTestText(view.last_test)],
        ["State bucket", bucketText(view.state_bucket)],
      ]),
      actions, status, report);
    retest.addEventListener("click", async () => {
      retest.disabled = true;
      status.textContent = `Testing ${view.name}…`;
      const r = await api("POST", `/${encodeURIComponent(view.id)}/test-connection`);
      retest.disabled = false;
      if (r.status === 200) {
        status.textContent = r.data.recorded ? "Tested; the result is recorded." : "Tested; AWS could not be reached, nothing recorded.";
        renderReport(r.data, report, "h4");
        if (r.data.last_test) li.querySelector('dd[data-fact="Last test"]').textContent = lastTestText(r.data.last_test);
      } else {
        status.textContent = `Re-test failed (${r.status}): ${r.data.detail || ""}`;
      }
    });
    del.addEventListener("click", () => {
      const yes = el("button", { type: "button", class: "danger", text: `Yes, delete ${view.name}` });
      const no = el("button", { type: "button", class: "secondary", text: "Cancel" });
      const confirm = el("div", { class: "actions confirm" }, el("span", { text: `Delete ${view.name}? Its keys are forgotten; a state bucket stays in AWS.` }), yes, no);
      actions.replaceWith(confirm);
      no.addEventListener("click", () => { confirm.replaceWith(actions); del.focus(); });
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        const r = await api("DELETE", `/${encodeURIComponent(view.id)}`, undefined, { "If-Match": `"${view.revision}"` });
        if (r.status === 204 || r.status === 404) {
          li.remove();
          setStatus("list-status", `Deleted ${view.name}.`);
          $("list-refresh").focus();
        } else {
          confirm.replaceWith(actions);
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

  async function loadList(more) {
    if (!token()) { setStatus("list-status", "Enter your token above to see your integrations."); return; }
    const q = more && nextToken ? `?limit=20&next_token=${encodeURIComponent(nextToken)}` : "?limit=20";
    setStatus("list-status", "Loading…");
    const r = await api("GET", q);
    if (r.status !== 200) {
      setStatus("list-status", `Could not load the list (${r.status}): ${r.data.detail || ""}`);
      return;
    }
    const items = (r.data.items || []).map(card);
    if (more) $("list").append(...items);
    else $("list").replaceChildren(...items);
    nextToken = r.data.next_token || null;
    $("list-more").hidden = !nextToken;
    const n = $("list").children.length;
    setStatus("list-status", n ? `${n} integration${n === 1 ? "" : "s"}.` : "No integrations yet.");
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
      if (raw("aws_external_id")) q.set("external_id", raw("aws_external_id"));
    }
    const region = givenRegion();
    if (region) q.set("region", region);
    showError("user-arn", null);
    setStatus("policies-status", "Filling in the policies…");
    const r = await api("GET", `/setup-policies?${q}`);
    if (r.status !== 200) {
      const errs = r.data.errors || [];
      for (const e of errs) {
        if (e.field === "user_arn") showError("user-arn", e.message);
        else if (e.field === "role_name") showError("f-role", e.message);
        else if (e.field === "external_id") showError("f-external", e.message);
      }
      setStatus("policies-status", `The policies could not be filled in (${r.status}): ${r.data.detail || ""}`);
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
    $("token-form").addEventListener("submit", useToken);
    $("token-forget").addEventListener("click", forgetToken);
    $("form").addEventListener("submit", save);
    $("test").addEventListener("click", testConnection);
    $("bucket-retry").addEventListener("click", retryBucket);
    $("new-form").addEventListener("click", newForm);
    $("list-refresh").addEventListener("click", () => loadList(false));
    $("list-more").addEventListener("click", () => loadList(true));
    $("policies-load").addEventListener("click", loadPolicies);
    document.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-copy]");
      if (b) copy(b);
      const chip = ev.target.closest("button[data-chip]");
      if (chip) {
        labels.splice(Number(chip.dataset.chip), 1);
        renderChips();
        validate("labels");
        $("f-labels").focus();
      }
    });
    for (const [field, id] of Object.entries(FIELDS)) {
      const input = $(id);
      input.addEventListener(field === "create_state_bucket" ? "change" : "input", () => {
        if (field === "labels" && input.value.endsWith(",")) { commitLabel(); return; }
        validate(field);
        for (const d of DEPENDENTS[field] || []) validate(d);
        if (field === "aws_account_id") updateBucketName();
        if (!$("form-warning").hidden) $("form-warning").hidden = true;
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
      }
    });
    updateBucketName();
    showTokenState();
    loadList(false);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
