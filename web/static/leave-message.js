// While nobody who could serve the contact is signed in (queue.position's `staffed` is false),
// the customer page offers to leave a message, with a callback number if wanted, instead of an
// estimate that means nothing. session.leave_message keeps it on the contact for the advisors
// and supervisors (contacts/left_messages.py) and ends the waiting.

import { t } from "./i18n.js";
import { errorText } from "./notices.js";

let ids = 0;

export class LeaveMessage {
  /**
   * @param {object} options
   * @param {HTMLElement} options.after the element the box goes after
   * @param {import("./ws.js").Signalling} options.signalling
   * @param {() => string|null} options.contactId
   * @param {(text: string, kind?: string) => void} options.notice
   */
  constructor({ after, signalling, contactId, notice }) {
    this.signalling = signalling;
    this.contactId = contactId;
    this.notice = notice;
    const n = ++ids;
    const form = document.createElement("form");
    form.className = "leave-message hidden";
    form.innerHTML = `
      <p class="lm-why"></p>
      <label><span class="lm-text-label"></span>
        <textarea name="text" rows="3" maxlength="2000" required></textarea></label>
      <label class="check"><input type="checkbox" name="callback" id="lm-callback-${n}"> <span class="lm-callback-label"></span></label>
      <label class="lm-phone hidden"><span class="lm-phone-label"></span>
        <input name="phone" type="tel" autocomplete="tel" inputmode="tel" maxlength="24" pattern="\\+?[0-9][0-9 \\(\\)\\-]{5,23}"></label>
      <button type="submit" class="lm-send"></button>`;
    after.after(form);
    this.form = form;
    this.callback = form.elements.callback;
    this.phone = form.elements.phone;
    this.callback.addEventListener("change", () => {
      form.querySelector(".lm-phone").classList.toggle("hidden", !this.callback.checked);
      this.phone.required = this.callback.checked;
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._send();
    });
    this._texts();
  }

  _texts() {
    const q = (s) => this.form.querySelector(s);
    q(".lm-why").textContent = t("calls.nobody_why");
    q(".lm-text-label").textContent = t("calls.message_label");
    q(".lm-callback-label").textContent = t("calls.callback_label");
    q(".lm-phone-label").textContent = t("calls.phone_label");
    q(".lm-send").textContent = t("calls.message_send");
  }

  /** Show the offer while the contact waits with nobody to serve it. */
  update(state, queue) {
    this._texts(); // the page's language may have changed
    this.form.classList.toggle("hidden", !(state === "queued" && queue && queue.staffed === false));
  }

  async _send() {
    const contactId = this.contactId();
    if (!contactId) return;
    const button = this.form.querySelector(".lm-send");
    button.disabled = true;
    const fields = { contact_id: contactId, text: this.form.elements.text.value.trim(), callback: this.callback.checked };
    if (this.callback.checked) fields.phone = this.phone.value.trim();
    try {
      await this.signalling.request("session.leave_message", fields);
      this.form.reset();
      this.form.classList.add("hidden");
    } catch (err) {
      this.notice(errorText(err), "error");
    } finally {
      button.disabled = false;
    }
  }
}
