// The chat pane of the customer page and the advisor console: lines in seq order without
// repeats (history is replayed on reconnect), the other side's typing indicator, and the
// composer that sends lines and, throttled, "typing" notices.

import { has, t } from "./i18n.js";

export const TYPING_SEND_EVERY_MS = 2500;
export const TYPING_SHOW_MS = 4000;

/**
 * Whether `line` is the reader's own: of the reader's side, and when the reader is an advisor
 * (`selfRef`, their ref), written by them: after a transfer a contact has other advisors' lines.
 */
export function isMine(line, self, selfRef = null) {
  if (line.sender !== self) return false;
  return !selfRef || !line.sender_ref || line.sender_ref === selfRef;
}

/** Who wrote a line, as the reader `self` ("customer" or "advisor") calls them. */
export function senderLabel(line, self, selfRef = null) {
  if (isMine(line, self, selfRef)) return t("chat.you");
  if (line.sender === "advisor" && line.sender_name) return t("chat.sender.named_advisor", { name: line.sender_name });
  const { sender } = line;
  return has(`chat.sender.${sender}`) ? t(`chat.sender.${sender}`) : sender;
}

/** One `<li>` of a chat: the reader's own lines are class "mine". */
export function renderLine(line, self, selfRef = null) {
  const { seq, sender, text, at } = line;
  const li = document.createElement("li");
  li.className = isMine(line, self, selfRef) ? "mine" : sender;
  if (seq !== undefined) li.dataset.seq = String(seq);
  li.dataset.sender = sender;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = senderLabel(line, self, selfRef);
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  if (at) li.title = new Date(at).toLocaleString();
  return li;
}

export class ChatPane {
  /**
   * `list` is the `<ol>` of lines, `typing` the indicator (optional); `self` is the reader's
   * side and `peer` the side whose typing is shown; `selfRef()` the reader's ref (advisors).
   */
  constructor({ list, typing = null, self, peer = null, selfRef = () => null, showTypingMs = TYPING_SHOW_MS }) {
    this.list = list;
    this.selfRef = selfRef;
    this.typing = typing;
    this.self = self;
    this.peer = peer;
    this.showTypingMs = showTypingMs;
    this.seqs = new Set();
    this.typingTimer = null;
  }

  /** Insert in seq order; a seq shown before is skipped (false). A line without seq goes last. */
  add(line) {
    if (line.seq !== undefined) {
      if (this.seqs.has(line.seq)) return false;
      this.seqs.add(line.seq);
    }
    const after = [...this.list.children].find((n) => n.dataset.seq && Number(n.dataset.seq) > line.seq);
    this.list.insertBefore(renderLine(line, this.self, this.selfRef()), after ?? null);
    if (line.sender === this.peer) this.hideTyping(); // their line ends their typing
    this.list.scrollTop = this.list.scrollHeight;
    return true;
  }

  addAll(lines) {
    for (const line of lines ?? []) this.add(line);
  }

  clear() {
    this.seqs.clear();
    this.list.replaceChildren();
  }

  /** `sender` is typing: show the indicator for a while if that is the peer. */
  typingFrom(sender) {
    if (!this.typing || sender !== this.peer) return;
    this.typing.classList.remove("hidden");
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.hideTyping(), this.showTypingMs);
  }

  hideTyping() {
    clearTimeout(this.typingTimer);
    this.typing?.classList.add("hidden");
  }
}

/**
 * Wire a chat form to the contact `contactId()` (none: nothing is sent): on submit the trimmed
 * text goes out as `chat.send`; on failure it is put back in the input for another try and
 * `onError(err)` hears why. While `typingActive()`, typing in the input sends `chat.typing` at
 * most every `everyMs`.
 */
export function wireComposer({
  form,
  input,
  signalling,
  contactId,
  typingActive = () => false,
  onSent = () => {},
  onError,
  everyMs = TYPING_SEND_EVERY_MS,
}) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    const id = contactId();
    if (!text || !id) return;
    input.value = "";
    try {
      await signalling.request("chat.send", { contact_id: id, text });
      onSent();
    } catch (err) {
      input.value = text; // not lost: it can be sent again
      onError(err);
    }
  });
  let lastSent = 0;
  input.addEventListener("input", () => {
    const now = Date.now();
    const id = contactId();
    if (!id || !typingActive() || now - lastSent < everyMs) return;
    lastSent = now;
    signalling.request("chat.typing", { contact_id: id }).catch(() => {});
  });
}
