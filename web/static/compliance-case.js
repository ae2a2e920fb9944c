// The case every compliance page works under: the officer types the reason once, the server
// signs a short-lived grant for it (POST /api/compliance/grants), and every request carries
// that grant (X-Compliance-Grant, or ?grant= where the browser fetches by itself: media, the
// export download). Opening a contact adds it to the grant (POST /api/compliance/grants/contacts).
//
// The grant is kept in sessionStorage: it follows the officer from page to page in this tab and
// is gone with the tab. When it expires (or the server no longer takes it) the gate comes back
// with the reason filled in; confirming it asks for a new grant covering the same contacts, and
// the request that found it expired is sent again.

import { apply, t, timeOfDay } from "./compliance-i18n.js";

const STORE = "cc.compliance.case";
const GRANT_ERRORS = new Set(["reason_required", "grant_expired", "bad_grant"]);
const $ = (id) => document.getElementById(id);

let current = load();
let onReady = null;
let waiting = null; // {promise, resolve} while the gate is shown to a request that needs a grant
let ticker = null;

function load() {
  try {
    const raw = JSON.parse(sessionStorage.getItem(STORE) ?? "null");
    return raw && typeof raw.grant === "string" ? raw : null;
  } catch {
    return null;
  }
}

function save(value) {
  current = value;
  try {
    if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
    else sessionStorage.removeItem(STORE);
  } catch {
    /* not kept: the next page asks for the reason again */
  }
}

function fresh(value) {
  return Boolean(value) && value.expires_at * 1000 > Date.now() + 5000;
}

function csrf() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** The case in force: {grant, id, reason, contacts, expires_at}, or null. */
export function currentCase() {
  return fresh(current) ? current : null;
}

/** `url` with the case's grant as `?grant=` (media elements and downloads send no headers). */
export function withGrant(url) {
  const token = current?.grant ?? "";
  return `${url}${url.includes("?") ? "&" : "?"}grant=${encodeURIComponent(token)}`;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function send(path, { params, method = "GET", body, grant = true } = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    for (const item of [value].flat()) if (item !== undefined && item !== null && item !== "") query.append(key, item);
  }
  const url = query.size ? `${path}?${query}` : path;
  const headers = { Accept: "application/json" };
  if (grant && current?.grant) headers["X-Compliance-Grant"] = current.grant;
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf();
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: method === "GET" ? undefined : JSON.stringify(body ?? {}),
  });
  if (response.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, "signed_out", t("error.signed_out"));
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? `http_${response.status}`, data?.message ?? (text || `HTTP ${response.status}`));
  }
  return data;
}

/** A JSON request under the case; a grant that lapsed is renewed at the gate, then retried. */
export async function api(path, options = {}) {
  try {
    return await send(path, options);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403 || !GRANT_ERRORS.has(err.code)) throw err;
    await renew(err.code);
    return send(path, options);
  }
}

function stored(reply) {
  return {
    grant: reply.grant,
    id: reply.id,
    reason: reply.reason,
    contacts: reply.contacts ?? [],
    expires_at: reply.expires_at,
  };
}

/** Make sure the case covers `contactId` (the server audits the case taking it in). */
export async function cover(contactId) {
  if (currentCase()?.contacts.includes(contactId)) return current;
  const reply = await api("/api/compliance/grants/contacts", { method: "POST", body: { contacts: [contactId] } });
  save(stored(reply));
  showBar();
  return current;
}

// ------------------------------------------------------------------ the gate and the bar

function needsCase(visible) {
  for (const node of document.querySelectorAll("[data-needs-case]")) node.classList.toggle("hidden", !visible);
}

function expiryText() {
  if (!current) return "";
  const left = Math.max(0, Math.round((current.expires_at * 1000 - Date.now()) / 60000));
  return t("case.expires", { time: timeOfDay(new Date(current.expires_at * 1000).toISOString()), minutes: left });
}

function showBar() {
  $("case-gate").classList.add("hidden");
  const bar = $("case-bar");
  bar.classList.remove("hidden");
  bar.dataset.caseId = current.id;
  $("case-reason-text").textContent = current.reason;
  $("case-expiry").textContent = expiryText();
  document.body.dataset.case = "open";
  needsCase(true);
  clearInterval(ticker);
  ticker = setInterval(() => {
    if (!fresh(current)) {
      renew("grant_expired");
      return;
    }
    $("case-expiry").textContent = expiryText();
  }, 15000);
}

function showGate(code) {
  clearInterval(ticker);
  $("case-bar").classList.add("hidden");
  needsCase(false);
  document.body.dataset.case = "closed";
  const gate = $("case-gate");
  gate.classList.remove("hidden");
  $("case-expired").classList.toggle("hidden", code !== "grant_expired");
  $("case-error").classList.add("hidden");
  const reason = $("case-reason");
  if (current?.reason && !reason.value) reason.value = current.reason;
  reason.focus();
}

/** Show the gate until the officer confirms a reason; the grant carries on the case's contacts. */
function renew(code) {
  if (!waiting) {
    let resolve;
    const promise = new Promise((done) => {
      resolve = done;
    });
    waiting = { promise, resolve };
  }
  showGate(code);
  return waiting.promise;
}

async function open(event) {
  event.preventDefault();
  const reason = $("case-reason").value.trim();
  const error = $("case-error");
  const button = $("case-start");
  error.classList.add("hidden");
  button.disabled = true;
  try {
    const carried = current?.contacts ?? [];
    const reply = await send("/api/compliance/grants", {
      method: "POST",
      body: { reason, contacts: carried },
      grant: false,
    });
    save(stored(reply));
    showBar();
    if (waiting) {
      const { resolve } = waiting;
      waiting = null;
      resolve(current);
    } else {
      onReady?.(current);
    }
  } catch (err) {
    error.textContent = err.code === "reason_required" ? t("gate.too_short") : err.message;
    error.classList.remove("hidden");
  } finally {
    button.disabled = false;
  }
}

function end() {
  save(null);
  $("case-reason").value = "";
  showGate(null);
}

/** Start the page: with a case in force `ready()` at once, else after the gate. */
export function mountCase(ready) {
  onReady = ready;
  $("case-form").addEventListener("submit", open);
  $("case-end").addEventListener("click", end);
  document.addEventListener("languagechange", () => {
    apply($("case-gate"));
    if (current) $("case-expiry").textContent = expiryText();
  });
  if (currentCase()) {
    showBar();
    ready(current);
  } else {
    showGate(current ? "grant_expired" : null);
  }
}
