// The admin page: accounts from GET /api/admin/users (views/admin.py); a form that creates
// (POST) or edits (PATCH, only the fields that changed are sent) one; reset password and
// disable/enable. Every change is audited by the server and pushed to the router at once.

import { initLanguage, languageName, t } from "./i18n.js";
import { errorText, noticeOn } from "./notices.js";
import { csrfToken } from "./ws.js";

initLanguage();

const $ = (id) => document.getElementById(id);
const form = $("user-form");
const notice = noticeOn($("form-notice"));
const CHANNELS = ["text", "voice", "video"];
let users = [];
let selected = null; // the account being edited, or null for a new one

async function call(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken(), Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error((await response.text()) || `HTTP ${response.status}`);
  return response.json();
}

function skillsText(skills) {
  const entries = Object.entries(skills ?? {});
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(", ") : "—";
}

function renderUsers() {
  const body = $("users").tBodies[0];
  body.replaceChildren();
  for (const u of users) {
    const row = body.insertRow();
    row.dataset.user = u.username;
    row.tabIndex = 0;
    row.setAttribute("aria-selected", String(selected?.id === u.id));
    if (u.disabled) row.className = "disabled";
    const who = row.insertCell();
    const strong = document.createElement("strong");
    strong.textContent = u.display_name;
    const small = document.createElement("div");
    small.className = "hint";
    small.textContent = u.username;
    who.append(strong, small);
    row.insertCell().textContent = t(`admin.role_${u.role}`);
    row.insertCell().textContent = u.languages.map(languageName).join(", ");
    row.insertCell().textContent = skillsText(u.skills);
    const state = row.insertCell();
    const badge = document.createElement("span");
    badge.className = "badge";
    // a password this page set (new account, reset) that the user has not replaced yet
    const due = u.must_change_password && !u.disabled;
    badge.dataset.state = u.disabled ? "offline" : due ? "away" : "available";
    badge.textContent = t(u.disabled ? "admin.disabled" : due ? "admin.must_change" : "admin.active");
    state.append(badge);
    const pick = () => edit(u);
    row.addEventListener("click", pick);
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pick();
      }
    });
  }
}

async function load() {
  try {
    users = (await call("GET", "/api/admin/users")).users;
    renderUsers();
  } catch (err) {
    notice(t("admin.load_failed", { error: errorText(err) }), "error");
  }
}

// ------------------------------------------------------------------ the form

function addSkill(name = "", level = 3) {
  const row = $("skill-row").content.firstElementChild.cloneNode(true);
  for (const node of row.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  row.querySelector(".skill-name").value = name;
  row.querySelector(".skill-level").value = String(level);
  row.querySelector(".remove-skill").addEventListener("click", () => row.remove());
  $("skills").append(row);
  return row;
}

function fill(u) {
  $("f-username").value = u?.username ?? "";
  $("f-username").readOnly = Boolean(u);
  $("f-display").value = u?.display_name ?? "";
  $("f-password").value = "";
  $("password-label").classList.toggle("hidden", Boolean(u));
  $("f-role").value = u?.role ?? "advisor";
  const langs = u?.languages ?? ["en"];
  for (const box of $("f-languages").querySelectorAll("input")) box.checked = langs.includes(box.value);
  $("skills").replaceChildren();
  for (const [name, level] of Object.entries(u?.skills ?? { general: 3 })) addSkill(name, level);
  const cap = u?.capacity ?? { text: 3, voice: 1, video: 1 };
  for (const ch of CHANNELS) $(`f-cap-${ch}`).value = String(cap[ch] ?? 0);
  $("f-vip").checked = Boolean(u?.vip);
  $("form-heading").textContent = u ? t("admin.edit_heading", { name: u.display_name }) : t("admin.create_heading");
  $("save").textContent = t(u ? "admin.save" : "admin.create");
  $("reset-password").classList.toggle("hidden", !u);
  $("toggle-disabled").classList.toggle("hidden", !u);
  if (u) {
    $("toggle-disabled").textContent = t(u.disabled ? "admin.enable" : "admin.disable");
    $("toggle-disabled").classList.toggle("enable", u.disabled);
  }
}

function edit(u) {
  selected = u;
  notice("");
  fill(u);
  renderUsers();
}

function formValues() {
  const skills = {};
  for (const row of $("skills").querySelectorAll(".skill-row")) {
    const name = row.querySelector(".skill-name").value.trim();
    if (name) skills[name] = Number(row.querySelector(".skill-level").value);
  }
  const capacity = {};
  for (const ch of CHANNELS) capacity[ch] = Number($(`f-cap-${ch}`).value || 0);
  return {
    display_name: $("f-display").value.trim(),
    role: $("f-role").value,
    languages: [...$("f-languages").querySelectorAll("input:checked")].map((b) => b.value),
    skills,
    capacity,
    vip: $("f-vip").checked,
  };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const sortedKeys = (o) => Object.fromEntries(Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b)));

async function save(event) {
  event.preventDefault();
  const values = formValues();
  try {
    if (!selected) {
      const body = { ...values, username: $("f-username").value.trim(), password: $("f-password").value };
      if (!body.display_name) delete body.display_name;
      const { user } = await call("POST", "/api/admin/users", body);
      await load();
      edit(users.find((u) => u.id === user.id) ?? user);
      notice(t("admin.created_temporary", { name: user.display_name }));
      return;
    }
    const change = {};
    for (const [key, value] of Object.entries(values)) {
      const before = key === "skills" || key === "capacity" ? sortedKeys(selected[key]) : selected[key];
      const after = key === "skills" || key === "capacity" ? sortedKeys(value) : value;
      if (!same(before, after)) change[key] = value;
    }
    if (!Object.keys(change).length) return notice(t("admin.nothing_changed"));
    const result = await call("PATCH", `/api/admin/users/${selected.id}`, change);
    await load();
    edit(users.find((u) => u.id === selected.id) ?? result.user);
    notice(t("admin.saved", { fields: result.changed.join(", ") }));
  } catch (err) {
    notice(t("admin.failed", { error: errorText(err) }), "error");
  }
}

async function toggleDisabled() {
  if (!selected) return;
  const disabled = !selected.disabled;
  try {
    const result = await call("PATCH", `/api/admin/users/${selected.id}`, { disabled });
    await load();
    edit(users.find((u) => u.id === selected.id) ?? result.user);
    notice(
      disabled
        ? t("admin.disabled_done", { name: result.user.display_name, n: result.contacts_ended?.length ?? 0 })
        : t("admin.enabled_done", { name: result.user.display_name }),
    );
  } catch (err) {
    notice(t("admin.failed", { error: errorText(err) }), "error");
  }
}

async function resetPassword() {
  if (!selected) return;
  try {
    const result = await call("POST", `/api/admin/users/${selected.id}/password-reset`);
    await load();
    edit(users.find((u) => u.id === selected.id) ?? result.user);
    notice(t("admin.password_done", { name: result.user.display_name, password: result.temporary_password }));
  } catch (err) {
    notice(t("admin.failed", { error: errorText(err) }), "error");
  }
}

form.addEventListener("submit", save);
$("add-skill").addEventListener("click", () => addSkill("", 3).querySelector("input").focus());
$("toggle-disabled").addEventListener("click", toggleDisabled);
$("reset-password").addEventListener("click", resetPassword);
$("new-user").addEventListener("click", () => edit(null));
fill(null);
load();
