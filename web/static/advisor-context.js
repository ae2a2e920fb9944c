// The customer context side panel: who the active contact's customer is, their earlier contacts
// with the bank (date, channel, intent, advisor, outcome and wrap-up notes) and what they told
// the assistant before the hand-over. Read from GET /api/contacts/{id}/context.

import { ChatPane } from "./chat.js";
import { channelsText, duration, has, languageName, t } from "./i18n.js";

/** An outcome code in words (desk.outcome_<code>), or the code itself. */
export function outcomeName(code) {
  if (!code) return t("desk.no_outcome");
  return has(`desk.outcome_${code}`) ? t(`desk.outcome_${code}`) : code.replaceAll("_", " ");
}

function intentText(intent) {
  if (!intent) return null;
  return has(`advisor.intent_${intent}`) ? t(`advisor.intent_${intent}`) : intent.replaceAll("_", " ");
}

function stateText(state) {
  return has(`advisor.s_${state}`) ? t(`advisor.s_${state}`) : state;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function previousItem(item) {
  const li = el("li", "previous-contact");
  li.dataset.contactId = item.contact_id;
  const head = el("div", "row");
  const when = el("time", "when", new Date(item.started_at).toLocaleString());
  when.dateTime = item.started_at;
  head.append(when, el("span", "badge", channelsText(item.channels)));
  const intent = intentText(item.intent);
  if (intent) head.append(el("span", "hint", intent));
  else if (item.topic) head.append(el("span", "hint", has(`customer.t_${item.topic}`) ? t(`customer.t_${item.topic}`) : item.topic));
  li.append(head);
  const advisors = item.advisors.length ? item.advisors.join(" → ") : t("desk.no_advisor");
  li.append(el("p", "who-handled", t("desk.handled_by", { names: advisors, state: stateText(item.state) })));
  for (const w of item.wrapups) {
    const row = el("div", "wrapup-row");
    row.append(el("span", "badge outcome", outcomeName(w.outcome)));
    if (w.advisor) row.append(el("span", "hint", w.advisor));
    if (w.notes) row.append(el("p", "notes", w.notes));
    li.append(row);
  }
  if (!item.wrapups.length) li.append(el("p", "hint", t("desk.no_wrapup")));
  return li;
}

export class ContextPanel {
  constructor(aside) {
    this.aside = aside;
    this.body = aside.querySelector(".context-body");
    this.empty = aside.querySelector(".context-empty");
    this.error = aside.querySelector(".context-error");
    this.cache = new Map();
    this.showing = null;
  }

  /**
   * Show the context of `contactId` (null: none); `refresh` reads it again. Not `held` (passed
   * on, so no longer the advisor's to read): only what was read while it was.
   */
  async show(contactId, { refresh = false, held = true } = {}) {
    this.showing = contactId;
    this.aside.dataset.contactId = contactId ?? "";
    this.error.classList.add("hidden");
    if (!contactId) {
      this.body.classList.add("hidden");
      this.empty.classList.remove("hidden");
      return;
    }
    try {
      let data = refresh ? null : this.cache.get(contactId);
      if (!data && !held) {
        this.body.classList.add("hidden");
        this.empty.classList.remove("hidden");
        this.empty.textContent = t("desk.context_gone");
        return;
      }
      this.empty.textContent = t("desk.context_none");
      if (!data) {
        const response = await fetch(`/api/contacts/${encodeURIComponent(contactId)}/context`, {
          headers: { Accept: "application/json" },
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          throw new Error(body.message ?? `HTTP ${response.status}`);
        }
        data = await response.json();
        this.cache.set(contactId, data);
      }
      if (this.showing === contactId) this.render(data);
    } catch (err) {
      if (this.showing !== contactId) return;
      this.error.textContent = t("desk.context_failed", { error: err.message });
      this.error.classList.remove("hidden");
    }
  }

  forget(contactId) {
    this.cache.delete(contactId);
    if (this.showing === contactId) this.show(null);
  }

  render(data) {
    const { facts } = data;
    this.empty.classList.add("hidden");
    this.body.classList.remove("hidden");
    this.aside.dataset.loaded = data.contact_id;
    this.body.querySelector(".context-name").textContent = facts.guest ? t("advisor.guest") : facts.customer_name;
    this.body.querySelector(".vip").classList.toggle("hidden", !facts.vip);
    this.body.querySelector(".context-guest").classList.toggle("hidden", !facts.guest);
    const rows = [
      ["language", "advisor.f_language", languageName(facts.language)],
      ["intent", "advisor.f_intent", intentText(facts.intent) ?? t("advisor.no_intent")],
      ["waited", "advisor.f_waited", duration(facts.waiting_s)],
    ].map(([key, label, value]) => {
      const row = el("div");
      row.dataset.fact = key;
      row.append(el("dt", null, t(label)), el("dd", null, value));
      return row;
    });
    this.body.querySelector(".context-facts").replaceChildren(...rows);
    const note = this.body.querySelector(".context-note");
    note.classList.toggle("hidden", !facts.transfer_note);
    note.querySelector(".note-text").textContent = facts.transfer_note
      ? t("desk.note_by", { note: facts.transfer_note, name: facts.transferred_by ?? t("advisor.unknown_advisor") })
      : "";
    const previous = this.body.querySelector(".previous");
    previous.replaceChildren(...data.previous.map(previousItem));
    this.body.querySelector(".previous-none").classList.toggle("hidden", data.previous.length > 0);
    const transcript = this.body.querySelector(".bot-transcript");
    transcript.replaceChildren();
    new ChatPane({ list: transcript, self: "advisor" }).addAll(data.bot_transcript);
    this.body.querySelector(".bot-none").classList.toggle("hidden", data.bot_transcript.length > 0);
  }
}
