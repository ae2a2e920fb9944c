// The voice bot's panel on the customer page: whether the assistant listens (`voice.status`)
// and a live caption of what it hears (`voice.caption`: partials, then the final utterance,
// with the recogniser's confidence; an unsure one asks the customer to say it again).

import { t } from "./i18n.js";

export class VoicePanel {
  /** `box` is the panel (`#voice`); the others are its parts, by id. */
  constructor({ box, state, caption, label, text, confidence }) {
    Object.assign(this, { box, state, caption, label, text, confidence });
    this.status = null; // "listening" | "unavailable" | null
    this.last = null; // the last caption message, re-rendered on a language switch
  }

  /** A `voice.status` message. */
  onStatus(message) {
    this.status = message.state;
    this.box.classList.remove("hidden");
    this.render();
  }

  /** A `voice.caption` message. */
  onCaption(message) {
    this.last = message;
    if (!this.status) this.status = "listening";
    this.box.classList.remove("hidden");
    this.render();
  }

  render() {
    if (!this.status) return;
    this.box.dataset.state = this.status;
    this.state.textContent = t(`customer.voice_${this.status}`);
    const message = this.last;
    if (!message || this.status !== "listening") {
      this.caption.classList.add("hidden");
      return;
    }
    const kind = !message.final ? "partial" : message.sure === false ? "unsure" : "heard";
    this.caption.dataset.kind = kind;
    this.label.textContent = t(`customer.voice_caption_${kind}`);
    this.text.textContent = message.text;
    this.confidence.textContent =
      message.final && message.confidence != null
        ? t("customer.voice_confidence", { pct: Math.round(100 * message.confidence) })
        : "";
    this.caption.classList.remove("hidden");
  }

  /**
   * Whether the customer's chat line `text` is the utterance just heard (the server gives it
   * to the bot as if typed): true once per utterance.
   */
  takeHeard(text) {
    const heard = this.last;
    if (!heard?.final || heard.sure === false || heard.taken || heard.text !== text) return false;
    heard.taken = true;
    return true;
  }

  /** The bot let go of the contact (or a new contact starts): nothing is listening. */
  reset() {
    this.status = null;
    this.last = null;
    this.box.classList.add("hidden");
    this.caption.classList.add("hidden");
    this.box.dataset.state = "off";
  }
}
