// Several chats at once: the advisor's contact panels side by side (tabs on narrow screens),
// one of them active (the one the advisor works in), an unread count on each panel and tab and
// in the document title, and a short beep for a customer line the advisor is not looking at.
// Reading a panel (working in it, or scrolling its chat to the bottom) clears its count.

import { t } from "./i18n.js";

const BEEP_HZ = 880;
const BEEP_S = 0.12;
const AT_BOTTOM_PX = 24;

/** A short tone through WebAudio (no sound file); silent until the page was interacted with. */
class Beeper {
  constructor() {
    this.context = null;
  }

  beep() {
    try {
      this.context ??= new AudioContext();
      const { context } = this;
      if (context.state === "suspended") context.resume().catch(() => {});
      const osc = context.createOscillator();
      const gain = context.createGain();
      osc.frequency.value = BEEP_HZ;
      gain.gain.setValueAtTime(0.0001, context.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.2, context.currentTime + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, context.currentTime + BEEP_S);
      osc.connect(gain).connect(context.destination);
      osc.start();
      osc.stop(context.currentTime + BEEP_S + 0.02);
      this.count = (this.count ?? 0) + 1; // the browser tests read it (window.ccDesk)
    } catch (err) {
      console.warn("no sound:", err);
    }
  }
}

function atBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight <= AT_BOTTOM_PX;
}

export class ChatDesk {
  /** `tabs` is the tab strip (shown on narrow screens by the stylesheet). */
  constructor({ tabs, title = document.title }) {
    this.tabs = tabs;
    this.baseTitle = title;
    this.panels = new Map();
    this.active = null;
    this.beeper = new Beeper();
    this.onActivate = () => {};
    window.addEventListener("focus", () => this.active && this.readIfSeen(this.active));
    document.addEventListener("visibilitychange", () => this.active && this.readIfSeen(this.active));
  }

  /** Track a panel `{id, node, chat}`; the first one becomes active. */
  add(panel, label) {
    panel.unread = 0;
    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "contact-tab";
    tab.setAttribute("role", "tab");
    tab.dataset.contactId = panel.id;
    tab.innerHTML = '<span class="tab-name"></span> <span class="badge unread hidden"></span>';
    tab.addEventListener("click", () => this.activate(panel, { focus: true }));
    this.tabs.append(tab);
    panel.tab = tab;
    this.label(panel, label);
    const list = panel.node.querySelector(".chat");
    // Working in a panel (a click, a key, focus) is reading it.
    for (const type of ["focusin", "pointerdown"]) {
      panel.node.addEventListener(type, () => {
        this.activate(panel);
        this.read(panel);
      });
    }
    list.addEventListener("scroll", () => {
      if (atBottom(list)) this.read(panel);
    });
    this.panels.set(panel.id, panel);
    if (!this.active) this.activate(panel);
    this.render();
  }

  label(panel, text) {
    if (panel.tab) panel.tab.querySelector(".tab-name").textContent = text;
  }

  remove(panel) {
    panel.tab?.remove();
    this.panels.delete(panel.id);
    if (this.active === panel) {
      this.active = null;
      const next = this.panels.values().next().value;
      if (next) this.activate(next);
      else this.onActivate(null);
    }
    this.render();
  }

  activate(panel, { focus = false } = {}) {
    if (this.active !== panel) {
      this.active = panel;
      for (const p of this.panels.values()) {
        const on = p === panel;
        p.node.classList.toggle("active", on);
        p.tab?.setAttribute("aria-selected", String(on));
      }
      this.onActivate(panel);
    }
    if (focus) panel.node.querySelector(".chat-input:not([disabled])")?.focus();
    this.readIfSeen(panel);
  }

  /** Whether the advisor is looking at `panel` now: active, the page in front, chat at bottom. */
  seen(panel) {
    const list = panel.node.querySelector(".chat");
    return this.active === panel && !document.hidden && document.hasFocus() && atBottom(list);
  }

  readIfSeen(panel) {
    if (this.seen(panel)) this.read(panel);
  }

  read(panel) {
    if (!panel.unread) return;
    panel.unread = 0;
    this.render();
  }

  /** A customer line arrived in `panel`: counted and beeped unless the advisor is looking. */
  customerLine(panel) {
    if (this.seen(panel)) return;
    panel.unread += 1;
    this.beeper.beep();
    this.render();
  }

  total() {
    let sum = 0;
    for (const p of this.panels.values()) sum += p.unread;
    return sum;
  }

  render() {
    for (const p of this.panels.values()) {
      for (const badge of [p.node.querySelector(".unread"), p.tab?.querySelector(".unread")]) {
        if (!badge) continue;
        badge.classList.toggle("hidden", !p.unread);
        badge.textContent = t("desk.unread", { n: p.unread });
        badge.dataset.count = String(p.unread);
      }
    }
    const total = this.total();
    document.title = total ? `(${total}) ${this.baseTitle}` : this.baseTitle;
    this.tabs.classList.toggle("hidden", this.panels.size === 0);
  }
}
