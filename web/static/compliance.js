// The compliance console's search: GET /api/compliance/facets fills the form's lists,
// GET /api/compliance/search the results (sortable, paged). The search lives in the page's
// address (?customer=...&sort=...), so back, reload and a shared link show the same results.

import { api, mountCase } from "./compliance-case.js";
import { apply, dateTime, duration, mountLanguage, named, number, t } from "./compliance-i18n.js";

const $ = (id) => document.getElementById(id);
const form = $("search-form");
const body = $("results").tBodies[0];
const LIST_FIELDS = ["advisor", "language", "channel", "topic", "intent", "outcome", "verify"];
const LAST_SEARCH = "cc.compliance.last-search";
let facets = null;
let lastPage = null;

function option(value, label) {
  return new Option(label, value);
}

function fillSelects() {
  const any = () => option("", t("search.any"));
  const lists = {
    advisor: (facets?.advisors ?? []).map((a) => option(String(a.id), a.name)),
    language: (facets?.languages ?? ["en", "zh", "yue"]).map((l) => option(l, t(`lang.${l}`))),
    channel: (facets?.channels ?? ["text", "voice", "video"]).map((c) => option(c, t(`channel.${c}`))),
    topic: (facets?.topics ?? []).map((v) => option(v, named("topic.", v))),
    intent: (facets?.intents ?? []).map((v) => option(v, named("intent.", v))),
    outcome: (facets?.outcomes ?? []).map((o) => option(o, t(`outcome.${o}`))),
    verify: (facets?.verify ?? []).map((v) => option(v, t(`verify.${v}`))),
    vip: [option("true", t("search.yes")), option("false", t("search.no"))],
    held: [option("true", t("search.held_yes")), option("false", t("search.held_no"))],
  };
  for (const [name, options] of Object.entries(lists)) {
    const select = $(`f-${name}`);
    const keep = select.value;
    select.replaceChildren(any(), ...options);
    select.value = keep;
  }
}

/** The page address's search as API parameters. */
function paramsFromLocation() {
  const query = new URLSearchParams(location.search);
  const params = {};
  query.delete("lang"); // the page's language, not a search field
  for (const [key, value] of query) params[key] = params[key] ? [params[key], value].flat() : value;
  return params;
}

function toLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

function formToParams() {
  const data = new FormData(form);
  const params = {};
  for (const key of ["customer", "q", ...LIST_FIELDS, "vip", "held"]) {
    const value = String(data.get(key) ?? "").trim();
    if (value) params[key] = value;
  }
  for (const key of ["from", "to"]) {
    const value = String(data.get(key) ?? "");
    if (value) params[key] = new Date(value).toISOString();
  }
  const min = data.get("min_minutes");
  const max = data.get("max_minutes");
  if (min) params.min_duration_s = String(Number(min) * 60);
  if (max) params.max_duration_s = String(Number(max) * 60);
  const current = paramsFromLocation();
  for (const key of ["sort", "order", "per_page"]) if (current[key]) params[key] = current[key];
  return params;
}

function paramsToForm(params) {
  $("f-customer").value = params.customer ?? "";
  $("f-q").value = params.q ?? "";
  $("f-from").value = toLocalInput(params.from);
  $("f-to").value = toLocalInput(params.to);
  for (const key of [...LIST_FIELDS, "vip", "held"]) $(`f-${key}`).value = [params[key] ?? ""].flat()[0];
  $("f-min").value = params.min_duration_s ? Math.round(params.min_duration_s / 60) : "";
  $("f-max").value = params.max_duration_s ? Math.round(params.max_duration_s / 60) : "";
  $("per-page").value = params.per_page ?? "25";
}

function go(params, { push = true } = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) for (const v of [value].flat()) query.append(key, v);
  const url = `${location.pathname}${query.size ? `?${query}` : ""}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  sessionStorage.setItem(LAST_SEARCH, url);
  return run(params);
}

function marked(text, words) {
  const span = document.createElement("span");
  if (!words.length) {
    span.textContent = text;
    return span;
  }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    span.append(text.slice(last, match.index));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    span.append(mark);
    last = match.index + match[0].length;
  }
  span.append(text.slice(last));
  return span;
}

function badge(text, kind) {
  const node = document.createElement("span");
  node.className = `badge ${kind ?? ""}`.trim();
  node.textContent = text;
  return node;
}

function row(result, words) {
  const tr = body.insertRow();
  tr.dataset.contactId = result.id;
  tr.tabIndex = 0;
  tr.className = "result";
  const open = () => {
    location.assign(`/compliance/contacts/${encodeURIComponent(result.id)}`);
  };
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter") open();
  });
  tr.insertCell().textContent = dateTime(result.started_at);
  const who = tr.insertCell();
  who.className = "customer";
  const name = document.createElement("a");
  name.href = `/compliance/contacts/${encodeURIComponent(result.id)}`;
  name.textContent = result.customer.name;
  who.append(name);
  if (result.vip) who.append(" ", badge(t("vip"), "vip"));
  if (result.match) {
    const line = document.createElement("div");
    line.className = "match";
    line.append(`${t(`party.${result.match.sender}`) || result.match.sender}: `, marked(result.match.text, lastPage?.highlight ?? words));
    who.append(line);
  }
  tr.insertCell().textContent = result.advisors.map((a) => a.name).join(", ") || "—";
  const channels = tr.insertCell();
  channels.className = "channels";
  for (const c of result.channels) channels.append(badge(t(`channel.${c}`), `channel ${c}`));
  tr.insertCell().textContent = t(`lang.${result.language}`);
  tr.insertCell().textContent =
    [named("topic.", result.topic), named("intent.", result.intent)].filter(Boolean).join(" · ") || "—";
  const length = tr.insertCell();
  length.className = "num";
  length.textContent = duration(result.duration_s);
  tr.insertCell().append(badge(t(`outcome.${result.outcome}`), `outcome ${result.outcome}`));
  const verify = tr.insertCell();
  verify.append(badge(t(`verify.${result.verify}`), `verify ${result.verify}`));
  verify.dataset.verify = result.verify;
  const hold = tr.insertCell();
  hold.dataset.held = String(result.held);
  hold.append(result.held ? badge(t("hold.held"), "held") : t("hold.free"));
  return tr;
}

function render(page, took) {
  lastPage = page;
  body.replaceChildren();
  for (const result of page.results) row(result, page.highlight ?? []);
  if (!page.results.length) {
    const tr = body.insertRow();
    const cell = tr.insertCell();
    cell.colSpan = 10;
    cell.className = "empty";
    cell.textContent = t("results.none");
  }
  $("results-count").textContent =
    page.total === 1 ? t("results.count_one") : t("results.count", { count: number(page.total) });
  $("results-took").textContent = took === undefined ? "" : t("results.took", { ms: Math.round(took) });
  $("page-info").textContent = t("results.page", { page: number(page.page), pages: number(page.pages) });
  $("page-prev").disabled = page.page <= 1;
  $("page-next").disabled = page.page >= page.pages;
  for (const th of document.querySelectorAll("#results th[data-sort]")) {
    const active = th.dataset.sort === page.sort;
    th.setAttribute("aria-sort", active ? (page.order === "asc" ? "ascending" : "descending") : "none");
    th.querySelector("button").title = t("sort.by", { column: th.textContent.trim() });
  }
}

let generation = 0;

async function run(params) {
  const mine = ++generation; // a newer search makes an older answer stale
  const table = $("results");
  const error = $("results-error");
  error.classList.add("hidden");
  $("results-count").textContent = t("results.loading");
  table.setAttribute("aria-busy", "true");
  const started = performance.now();
  try {
    const page = await api("/api/compliance/search", { params });
    if (mine !== generation) return;
    render(page, performance.now() - started);
  } catch (err) {
    if (mine !== generation) return;
    error.textContent = t("error.load", { message: err.message });
    error.classList.remove("hidden");
    $("results-count").textContent = "";
  } finally {
    if (mine === generation) {
      table.removeAttribute("aria-busy");
      table.dataset.searched = new URLSearchParams(
        Object.entries(params).flatMap(([k, v]) => [v].flat().map((item) => [k, item])),
      ).toString();
    }
  }
}

function sortBy(key) {
  const params = paramsFromLocation();
  const same = (params.sort ?? "started") === key;
  params.sort = key;
  params.order = same && (params.order ?? "desc") === "desc" ? "asc" : "desc";
  delete params.page;
  go(params);
}

function turn(delta) {
  const params = paramsFromLocation();
  params.page = String(Math.max(1, Number(params.page ?? 1) + delta));
  go(params);
}

async function ready() {
  try {
    facets = await api("/api/compliance/facets");
  } catch {
    facets = null; // the lists stay short; searching still works
  }
  fillSelects();
  const params = paramsFromLocation();
  paramsToForm(params);
  await go(params, { push: false });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  go(formToParams());
});
form.addEventListener("reset", () => {
  setTimeout(() => go({}), 0);
});
for (const th of document.querySelectorAll("#results th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.sort));
}
$("page-prev").addEventListener("click", () => turn(-1));
$("page-next").addEventListener("click", () => turn(1));
$("per-page").addEventListener("change", () => {
  const params = paramsFromLocation();
  params.per_page = $("per-page").value;
  delete params.page;
  go(params);
});
window.addEventListener("popstate", () => {
  const params = paramsFromLocation();
  paramsToForm(params);
  run(params);
});
document.addEventListener("languagechange", () => {
  fillSelects();
  paramsToForm(paramsFromLocation());
  if (lastPage) render(lastPage);
});

mountLanguage($("lang"));
apply(document);
mountCase(ready);
