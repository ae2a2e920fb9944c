// The audit log of compliance access (GET /api/compliance/audit): who looked at what, when,
// from where and why, filtered by person, action, contact and time. Reading it is audited too.

import { api, mountCase } from "./compliance-case.js";
import { apply, dateTimeSeconds, mountLanguage, number, t } from "./compliance-i18n.js";

const $ = (id) => document.getElementById(id);
const ACTIONS = [
  "grant", "grant_extend", "search", "view", "timeline", "manifest", "media", "verify",
  "hold", "unhold", "export", "export_download", "audit_view",
];
const form = $("audit-form");
let page = 1;
let last = null;

function fillActions() {
  const select = $("a-action");
  const keep = select.value;
  select.replaceChildren(new Option(t("search.any"), ""), ...ACTIONS.map((a) => new Option(t(`action.${a}`), a)));
  select.value = keep;
}

function params() {
  const data = new FormData(form);
  const out = { page: String(page) };
  for (const key of ["actor", "action", "contact"]) {
    const value = String(data.get(key) ?? "").trim();
    if (value) out[key] = value;
  }
  for (const key of ["from", "to"]) {
    const value = String(data.get(key) ?? "");
    if (value) out[key] = new Date(value).toISOString();
  }
  return out;
}

function detailText(row) {
  const d = row.detail ?? {};
  const parts = [];
  if (d.file) parts.push(d.file + (d.range ? ` (${d.range})` : ""));
  const filters = Object.entries(d.filters ?? {}).filter(([k, v]) => v !== null && v !== "" && !(k === "page" && v === 1));
  if (filters.length) parts.push(filters.map(([k, v]) => `${k}=${[v].flat().join(",")}`).join(" "));
  if (d.total !== undefined) parts.push(t("audit.results", { count: number(d.total) }));
  if (d.sha256) parts.push(`SHA-256 ${d.sha256.slice(0, 12)}…`);
  if (d.hold_reason) parts.push(d.hold_reason);
  if (d.contacts?.length && row.action.startsWith("grant")) parts.push(d.contacts.join(", "));
  if (d.grant) parts.push(t("audit.case", { id: d.grant.slice(0, 8) }));
  return parts.join(" · ");
}

function render(result) {
  last = result;
  const body = $("audit").tBodies[0];
  body.replaceChildren();
  for (const row of result.rows) {
    const tr = body.insertRow();
    tr.dataset.action = row.action;
    tr.insertCell().textContent = dateTimeSeconds(row.at);
    tr.insertCell().textContent = row.actor_name;
    tr.insertCell().textContent = t(`action.${row.action}`);
    const contact = tr.insertCell();
    if (row.contact) {
      const link = document.createElement("a");
      link.href = `/compliance/contacts/${encodeURIComponent(row.contact)}`;
      link.textContent = row.contact.slice(0, 10);
      link.title = row.contact;
      contact.append(link);
    } else {
      contact.textContent = "—";
    }
    tr.insertCell().textContent = row.reason ?? "";
    tr.insertCell().textContent = row.address ?? "";
    const detail = tr.insertCell();
    detail.className = "detail";
    detail.textContent = detailText(row);
  }
  if (!result.rows.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 7;
    cell.className = "empty";
    cell.textContent = t("audit.none");
  }
  const pages = Math.max(1, Math.ceil(result.total / result.per_page));
  $("audit-count").textContent = t("audit.count", { count: number(result.total) });
  $("audit-page").textContent = t("results.page", { page: number(result.page), pages: number(pages) });
  $("audit-prev").disabled = result.page <= 1;
  $("audit-next").disabled = result.page >= pages;
}

async function load() {
  $("audit-error").classList.add("hidden");
  try {
    render(await api("/api/compliance/audit", { params: params() }));
  } catch (err) {
    $("audit-error").textContent = t("error.load", { message: err.message });
    $("audit-error").classList.remove("hidden");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  page = 1;
  load();
});
form.addEventListener("reset", () => {
  page = 1;
  setTimeout(load, 0);
});
$("audit-prev").addEventListener("click", () => {
  page = Math.max(1, page - 1);
  load();
});
$("audit-next").addEventListener("click", () => {
  page += 1;
  load();
});
document.addEventListener("languagechange", () => {
  fillActions();
  if (last) render(last);
});

const wanted = new URLSearchParams(location.search).get("contact");
if (wanted) $("a-contact").value = wanted;
mountLanguage($("lang"));
fillActions();
apply(document);
mountCase(() => load());
