// The transfer picker of a contact panel: skills and languages that exist, who could take the
// contact now (GET /api/contacts/{id}/transfer-options), a note for the next advisor. A transfer
// nobody signed in could serve is not made silently: the advisor is warned and may send it
// anyway (it then waits in the queue), or the server refuses it with `nobody_can_serve`.

import { has, languageName, t } from "./i18n.js";
import { errorText } from "./notices.js";

const NOBODY = "nobody_can_serve";

function option(value, text) {
  const node = document.createElement("option");
  node.value = value;
  node.textContent = text;
  return node;
}

function skillName(skill) {
  return has(`desk.skill_${skill}`) ? t(`desk.skill_${skill}`) : skill.replaceAll("_", " ");
}

/**
 * Wire `panel.node`'s transfer form: `contactId()` is the contact, `onDone()` is called once the
 * server took the transfer, `onError(text)` shows a failure.
 */
export function wireTransfer({ node, signalling, contactId, onDone, onError }) {
  const box = node.querySelector(".transfer-box");
  const form = node.querySelector(".transfer-form");
  const skill = form.elements.skill;
  const level = form.elements.level;
  const language = form.elements.language;
  const whoCan = form.querySelector(".who-can");
  const warning = form.querySelector(".transfer-warning");
  const anyway = form.querySelector(".transfer-anyway");
  let options = null;
  let asked = 0;

  function warn(text) {
    warning.textContent = text;
    warning.classList.toggle("hidden", !text);
    anyway.classList.toggle("hidden", !text);
  }

  async function refresh() {
    const mine = ++asked;
    const query = new URLSearchParams({ skill: skill.value || "general", level: level.value });
    if (language.value) query.set("language", language.value);
    try {
      const response = await fetch(`/api/contacts/${encodeURIComponent(contactId())}/transfer-options?${query}`, {
        headers: { Accept: "application/json" },
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.message ?? `HTTP ${response.status}`);
      if (mine !== asked) return;
      fill(body);
    } catch (err) {
      if (mine === asked) whoCan.textContent = t("desk.who_failed", { error: err.message });
    }
  }

  function fill(body) {
    const firstTime = options === null;
    options = body;
    if (firstTime || skill.options.length !== body.skills.length) {
      const chosen = skill.value || (body.skills.includes("general") ? "general" : body.skills[0]);
      skill.replaceChildren(...body.skills.map((s) => option(s, skillName(s))));
      if (chosen) skill.value = chosen;
      const same = language.querySelector("option[value='']");
      language.replaceChildren(same, ...body.languages.map((l) => option(l, languageName(l))));
      if (firstTime) return void refresh(); // the list was for "general": ask for the chosen one
    }
    form.dataset.servable = String(body.servable);
    form.dataset.now = String(body.now.length);
    if (body.now.length) {
      whoCan.textContent = t("desk.who_now", { names: body.now.join(", "), n: body.now.length });
    } else if (body.later.length) {
      whoCan.textContent = t("desk.who_later", { n: body.later.length });
    } else {
      whoCan.textContent = t("desk.who_nobody");
    }
    whoCan.classList.toggle("nobody", !body.servable);
    warn("");
  }

  async function send(queueAnyway) {
    const fields = {
      contact_id: contactId(),
      skills: { [skill.value]: Number(level.value) },
    };
    if (language.value) fields.language = language.value;
    const note = form.elements.note.value.trim();
    if (note) fields.note = note;
    if (queueAnyway) fields.queue_anyway = true;
    try {
      await signalling.request("session.transfer", fields);
      warn("");
      onDone();
    } catch (err) {
      if (err.code === NOBODY) warn(t("desk.nobody_warning"));
      else onError(errorText(err));
    }
  }

  box.addEventListener("toggle", () => {
    if (box.open) refresh();
  });
  for (const input of [skill, level, language]) input.addEventListener("change", refresh);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (options && options.servable === false) {
      warn(t("desk.nobody_warning")); // told before it is made: "Transfer anyway" sends it
      return;
    }
    send(false);
  });
  anyway.addEventListener("click", () => send(true));
}
