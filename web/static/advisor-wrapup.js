// Wrap-up of a contact panel: an outcome code (the configured list), notes, and the wrap-up
// timer with "Ready" to end it early. Shown once the contact ends (wrap_up) and also after the
// advisor transferred it on; if the time runs out first, what was typed can still be recorded.

import { duration, t } from "./i18n.js";
import { outcomeName } from "./advisor-context.js";
import { errorText } from "./notices.js";

/** The advisor's wrap-up deadline (epoch ms) from agent.state; null when not in wrap-up. */
let wrapUntil = null;
const forms = new Set();

export function setWrapUntil(isoOrNull) {
  wrapUntil = isoOrNull ? Date.parse(isoOrNull) : null;
  for (const form of forms) form.tick();
}

export class WrapupForm {
  /** `outcomes`: the codes; `onDone(ack)` once the server kept it. */
  constructor({ node, signalling, contactId, outcomes, onDone, onError }) {
    this.form = node.querySelector(".wrapup-form");
    this.timer = node.querySelector(".wrapup-timer");
    this.signalling = signalling;
    this.contactId = contactId;
    this.onDone = onDone;
    this.onError = onError;
    const select = this.form.elements.outcome;
    for (const code of outcomes) {
      const option = document.createElement("option");
      option.value = code;
      option.textContent = outcomeName(code);
      select.append(option);
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.interval = null;
  }

  open(reason) {
    this.form.classList.remove("hidden");
    this.form.dataset.reason = reason;
    forms.add(this);
    clearInterval(this.interval);
    this.interval = setInterval(() => this.tick(), 500);
    this.tick();
  }

  close() {
    clearInterval(this.interval);
    forms.delete(this);
    this.form.classList.add("hidden");
  }

  /** The router's wrap-up time ran out: the contact ended, the form stays for the record. */
  timeUp() {
    this.form.dataset.late = "true";
    this.tick();
  }

  tick() {
    const left = wrapUntil ? Math.ceil((wrapUntil - Date.now()) / 1000) : null;
    if (this.form.dataset.late === "true" || (left !== null && left <= 0)) {
      this.timer.textContent = t("desk.wrapup_over");
      this.timer.classList.add("urgent");
    } else if (left !== null) {
      this.timer.textContent = t("desk.wrapup_left", { left: duration(left) });
      this.timer.classList.toggle("urgent", left <= 10);
    } else {
      this.timer.textContent = t("desk.wrapup_open");
    }
  }

  async submit() {
    const outcome = this.form.elements.outcome.value;
    const notes = this.form.elements.notes.value.trim();
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const fields = { contact_id: this.contactId(), outcome };
      if (notes) fields.notes = notes;
      const ack = await this.signalling.request("wrapup.done", fields);
      this.close();
      this.onDone(ack);
    } catch (err) {
      this.onError(t("desk.wrapup_failed", { error: errorText(err) }));
    } finally {
      button.disabled = false;
    }
  }
}
