// The advisor console: status, incoming offers (with countdown, transcript and the router's
// explanation), and one panel per contact with chat, media, transfer, end and wrap-up.

import { renderCanned } from "./advisor-canned.js";
import { ChatDesk } from "./advisor-chats.js";
import { ContextPanel } from "./advisor-context.js";
import { wireTransfer } from "./advisor-transfer.js";
import { WrapupForm, setWrapUntil } from "./advisor-wrapup.js";
import { ChatPane, wireComposer } from "./chat.js";
import { agentStateName, channelsText, duration, has, initLanguage, languageName, t } from "./i18n.js";
import { CallControls } from "./call-controls.js";
import { CallView, iceServersFrom, wantsMedia } from "./media.js";
import { errorText, noticeOn, showNotice } from "./notices.js";
import { Signalling, defaultUrl, fetchWsToken } from "./ws.js";

const SETTABLE = new Set(["available", "away", "offline"]);
const ENDED_PANEL_KEEP_MS = 4000;
const PEER_STATES = new Set(["disconnected", "reconnected", "connected", "failed", "closed"]);
const MEDIA_TEXTS = {
  starting: "advisor.media_starting",
  local: "advisor.media_connecting",
  noDevice: "advisor.media_no_device",
  connected: "advisor.media_connected",
  failed: "advisor.media_failed",
  startFailed: "advisor.media_start_failed",
  voice: "advisor.media_voice",
};

initLanguage();

const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"),
  badge: $("agent-state"),
  connection: $("connection"),
  notice: $("notice"),
  offers: $("offers"),
  contacts: $("contacts"),
  offerTemplate: $("offer-template"),
  contactTemplate: $("contact-template"),
  tabs: $("contact-tabs"),
  context: $("context"),
};
/** The console's fixed lists from the page: wrap-up outcome codes, canned replies per language. */
const desk = JSON.parse(el.contacts.dataset.desk || "{}");
const chats = new ChatDesk({ tabs: el.tabs });
const context = new ContextPanel(el.context);
/** Contacts passed on (transferred, or a wrap-up left from before) are no longer the advisor's. */
const HANDED_ON = new Set(["transferred", "wrapup_pending"]);
chats.onActivate = (panel) => context.show(panel?.id ?? null, { held: !HANDED_ON.has(panel?.state) });
window.ccDesk = chats; // for the browser tests

/** @type {Map<string, {node: HTMLElement, timer: number, expiresAt: number}>} */
const offers = new Map();
/** @type {Map<string, object>} */
const contacts = new Map();

const signalling = new Signalling();
window.ccSignalling = signalling; // for the browser tests and for debugging from the console
/** This advisor's ref: their own chat lines are told from other advisors' by it. */
const myRef = () => signalling.welcome?.user ?? null;

const notice = noticeOn(el.notice);

function toggleEmpty(container, map) {
  container.querySelector(".empty")?.classList.toggle("hidden", map.size > 0);
}

function skillsText(skills) {
  return Object.entries(skills ?? {})
    .map(([name, level]) => `${name} ≥ ${level}`)
    .join(", ");
}

function topicName(topic) {
  return has(`customer.t_${topic}`) ? t(`customer.t_${topic}`) : topic;
}

function intentName(intent) {
  return has(`advisor.intent_${intent}`) ? t(`advisor.intent_${intent}`) : intent.replaceAll("_", " ");
}

/** The customer as the advisor calls them: their name, or the guest label. */
function customerName(facts) {
  return facts.guest ? t("advisor.guest") : facts.customer_name;
}

/**
 * Fill the `<dl class="facts">` of an offer or a panel: `items` are [key, label key, value]
 * (a missing value is left out); each item is a `div[data-fact=key]` with its dt and dd.
 */
function renderFacts(dl, items) {
  const rows = items
    .filter(([, , value]) => value !== null && value !== undefined && value !== "")
    .map(([key, label, value]) => {
      const row = document.createElement("div");
      row.dataset.fact = key;
      const dt = document.createElement("dt");
      dt.textContent = t(label);
      const dd = document.createElement("dd");
      dd.textContent = value;
      row.append(dt, dd);
      return row;
    });
  dl.replaceChildren(...rows);
}

/** The VIP badge (the customer's flag) and the priority badge (routing), apart. */
function renderBadges(node, facts, priority) {
  node.querySelector(".vip").classList.toggle("hidden", !facts?.vip);
  const badge = node.querySelector(".priority");
  const p = facts?.priority ?? priority ?? 0;
  badge.classList.toggle("hidden", !(p > 0));
  badge.textContent = t("advisor.priority", { p });
}

function contactStateName(state) {
  return has(`advisor.s_${state}`) ? t(`advisor.s_${state}`) : state.replace("_", "-");
}

// ------------------------------------------------------------------ agent state

function setAgentState(state) {
  el.badge.textContent = agentStateName(state);
  el.badge.dataset.state = state;
  if (SETTABLE.has(state)) el.status.value = state;
}

el.status.addEventListener("change", async () => {
  const wanted = el.status.value;
  el.status.disabled = true;
  try {
    const ack = await signalling.request("agent.status", { status: wanted });
    setAgentState(ack.state);
  } catch (err) {
    notice(t("advisor.status_failed", { error: errorText(err) }), "error");
  } finally {
    el.status.disabled = false;
  }
});

signalling.on("agent.state", (m) => {
  setAgentState(m.state);
  setWrapUntil(m.state === "wrap_up" ? m.wrap_up_until : null);
  if (m.reason === "missed_offers") {
    notice(t("desk.away_missed", { n: m.missed_offers ?? 3 }), "error");
  } else if (m.reason) {
    notice(t("advisor.status_notice", { state: agentStateName(m.state), reason: m.reason.replaceAll("_", " ") }));
  }
});

// ------------------------------------------------------------------ offers

function explanationNode(explanation) {
  const box = document.createElement("div");
  if (!explanation || !explanation.winner) {
    box.textContent = t("advisor.no_explanation");
    return box;
  }
  const { winner, candidates = [], trigger, ring, considered } = explanation;
  const lines = [
    trigger === "agent"
      ? t("advisor.why_agent", { considered })
      : t("advisor.why_contact", { count: Math.max(candidates.length, 1) }),
    t("advisor.why_fit", {
      required: winner.fit_required,
      optional: winner.fit_optional,
      idle: duration(winner.idle_s),
    }),
  ];
  if (ring) lines.push(t("advisor.why_ring", { ring }));
  for (const text of lines) {
    const p = document.createElement("p");
    p.textContent = text;
    box.append(p);
  }
  if (candidates.length > 1) {
    const table = document.createElement("table");
    table.className = "compact";
    const head = table.createTHead().insertRow();
    for (const key of ["advisor.col_advisor", "advisor.col_fit", "advisor.col_idle"]) {
      const th = document.createElement("th");
      th.textContent = t(key);
      head.append(th);
    }
    const body = document.createElement("tbody");
    for (const c of candidates) {
      const row = body.insertRow();
      const name = c.name || t("advisor.unknown_advisor");
      row.insertCell().textContent =
        c.agent_id === winner.agent_id ? t("advisor.that_is_you", { name }) : name;
      row.insertCell().textContent = `${c.fit_required} + ${c.fit_optional}`;
      row.insertCell().textContent = duration(c.idle_s);
    }
    table.append(body);
    box.append(table);
  }
  return box;
}

function removeOffer(contactId) {
  const offer = offers.get(contactId);
  if (!offer) return;
  clearInterval(offer.timer);
  offer.node.remove();
  offers.delete(contactId);
  toggleEmpty(el.offers, offers);
}

function onOffer(message) {
  removeOffer(message.contact_id);
  const node = el.offerTemplate.content.firstElementChild.cloneNode(true);
  node.dataset.contactId = message.contact_id;
  node.querySelector(".channels").textContent = channelsText(message.channels);
  node.querySelector(".language").textContent = languageName(message.language);
  const facts = message.facts ?? null;
  renderBadges(node, facts, message.priority);
  const receivedAt = Date.now();
  const renderOfferFacts = () => {
    if (!facts) return;
    renderFacts(node.querySelector(".facts"), [
      ["customer", "advisor.f_customer", customerName(facts)],
      ["intent", "advisor.f_intent", facts.intent ? intentName(facts.intent) : t("advisor.no_intent")],
      ["waiting", "advisor.f_waiting", duration(facts.waiting_s + (Date.now() - receivedAt) / 1000)],
    ]);
  };
  renderOfferFacts();
  const note = node.querySelector(".transfer-note");
  note.classList.toggle("hidden", !facts?.transfer_note);
  if (facts?.transfer_note) note.textContent = noteText(facts);
  const skills = skillsText(message.skills);
  node.querySelector(".summary").textContent = message.topic
    ? t("advisor.summary_topic", { topic: topicName(message.topic), skills })
    : t("advisor.summary", { skills });
  node.querySelector(".explanation").replaceWith(explanationNode(message.explanation));
  const lines = message.transcript ?? [];
  new ChatPane({ list: node.querySelector(".transcript"), self: "advisor", selfRef: myRef }).addAll(lines);
  node.querySelector(".transcript-box").classList.toggle("hidden", lines.length === 0);
  if (lines.length) node.querySelector(".transcript-box").open = true;

  const expiresAt = Date.parse(message.expires_at);
  const countdown = node.querySelector(".countdown");
  const tick = () => {
    renderOfferFacts();
    const left = Math.ceil((expiresAt - Date.now()) / 1000);
    countdown.textContent = left > 0 ? t("advisor.seconds_left", { left }) : t("advisor.expired");
    countdown.classList.toggle("urgent", left <= 5);
    if (left <= 0) {
      node.querySelectorAll("button").forEach((b) => (b.disabled = true));
      // the server withdraws it; remove it ourselves too in case that notice is lost
      setTimeout(() => removeOffer(message.contact_id), 1500);
      clearInterval(offers.get(message.contact_id)?.timer);
    }
  };
  const accept = node.querySelector(".accept");
  const reject = node.querySelector(".reject");
  accept.addEventListener("click", async () => {
    accept.disabled = reject.disabled = true;
    try {
      const ack = await signalling.request("offer.accept", { contact_id: message.contact_id });
      removeOffer(message.contact_id);
      const panel = ensureContact(ack.contact_id, {
        channels: ack.channels,
        language: ack.language,
        mediaUrl: message.media_url ?? ack.media_url ?? null,
        topic: message.topic,
        facts: ack.facts ?? facts,
      });
      panel.chat.addAll(ack.transcript);
      applyState(panel, ack.state);
    } catch (err) {
      notice(t("advisor.accept_failed", { error: errorText(err) }), "error");
      removeOffer(message.contact_id);
    }
  });
  reject.addEventListener("click", async () => {
    accept.disabled = reject.disabled = true;
    try {
      await signalling.request("offer.reject", { contact_id: message.contact_id });
    } catch (err) {
      notice(t("advisor.reject_failed", { error: errorText(err) }), "error");
    }
    removeOffer(message.contact_id);
  });

  el.offers.append(node);
  offers.set(message.contact_id, { node, timer: setInterval(tick, 500), expiresAt });
  tick();
  toggleEmpty(el.offers, offers);
}

signalling.on("offer", onOffer);

// ------------------------------------------------------------------ contacts

function ensureContact(
  contactId,
  { channels = [], language = "", mediaUrl = null, topic = null, facts = null, state = null } = {},
) {
  let panel = contacts.get(contactId);
  if (panel) {
    if (channels.length) panel.channels = channels;
    if (mediaUrl) panel.mediaUrl = mediaUrl;
    if (facts) panel.facts = facts;
    return panel;
  }
  const node = el.contactTemplate.content.firstElementChild.cloneNode(true);
  node.dataset.contactId = contactId;
  panel = {
    id: contactId,
    node,
    channels,
    language: facts?.language ?? language,
    topic: facts?.topic ?? topic,
    facts,
    mediaUrl,
    state, // known before the panel is shown: whether its context may be read

    chat: new ChatPane({
      list: node.querySelector(".chat"),
      typing: node.querySelector(".typing"),
      self: "advisor",
      peer: "customer",
      selfRef: myRef,
    }),
    call: new CallView({
      box: node.querySelector(".media"),
      status: node.querySelector(".media-status"),
      localEl: node.querySelector(".local"),
      remoteEl: node.querySelector(".remote"),
      iceServers: iceServersFrom(el.contacts),
      texts: MEDIA_TEXTS,
    }),
    error: node.querySelector(".error"),
    controls: null,
    mediaSignalling: null,
    removeTimer: null,
  };
  panel.controls = new CallControls({
    box: node.querySelector(".media"),
    call: panel.call,
    signalling,
    party: "advisor",
    contactId: () => panel.id,
    notice: (text, kind) => (kind === "error" ? panelError(panel, text) : (node.querySelector(".peer").textContent = text)),
  });
  contacts.set(contactId, panel);
  panel.wrapup = new WrapupForm({
    node,
    signalling,
    contactId: () => panel.id,
    outcomes: desk.outcomes ?? [],
    onDone: () => {
      panel.wrappedUp = true;
      applyState(panel, "ended");
    },
    onError: (text) => panelError(panel, text),
  });
  renderTitle(panel);
  wireContact(panel);
  el.contacts.append(node);
  chats.add(panel, titleText(panel));
  renderCanned({ node, catalogue: desk.canned, language: panel.language });
  toggleEmpty(el.contacts, contacts);
  return panel;
}

/** The note of the advisor who transferred the contact, with their name. */
function noteText(facts) {
  return t("desk.note_by", { note: facts.transfer_note, name: facts.transferred_by ?? t("advisor.unknown_advisor") });
}

function titleText(panel) {
  return panel.facts ? customerName(panel.facts) : channelsText(panel.channels) || t("advisor.contact");
}

/** The panel's header: who the customer is, then channel, language, topic, intent, wait. */
function renderTitle(panel) {
  const { facts } = panel;
  const title = panel.node.querySelector(".title");
  const ref = document.createElement("small");
  ref.textContent = `#${panel.id.slice(0, 8)}`;
  ref.title = panel.id;
  title.replaceChildren(titleText(panel), ref);
  chats.label(panel, titleText(panel));
  const note = panel.node.querySelector(".transfer-note");
  note.classList.toggle("hidden", !facts?.transfer_note);
  note.textContent = facts?.transfer_note ? noteText(facts) : "";
  renderBadges(panel.node, facts, 0);
  const language = facts?.language ?? panel.language;
  const topic = facts?.topic ?? panel.topic;
  renderFacts(panel.node.querySelector(".facts"), [
    ["channel", "advisor.f_channel", channelsText(panel.channels)],
    ["language", "advisor.f_language", language ? languageName(language) : null],
    ["topic", "advisor.f_topic", topic ? topicName(topic) : null],
    ["intent", "advisor.f_intent", facts ? (facts.intent ? intentName(facts.intent) : t("advisor.no_intent")) : null],
    ["waited", "advisor.f_waited", facts ? duration(facts.waiting_s) : null],
  ]);
}

function panelError(panel, text) {
  showNotice(panel.error, text, "error");
}

/** A button or form of the panel that sends `request()` and then shows `state`. */
function onAction(panel, target, eventName, request) {
  target.addEventListener(eventName, async (event) => {
    event.preventDefault();
    try {
      applyState(panel, await request(event));
    } catch (err) {
      panelError(panel, errorText(err));
    }
  });
}

function wireContact(panel) {
  const { node } = panel;
  wireComposer({
    form: node.querySelector(".chat-form"),
    input: node.querySelector(".chat-input"),
    signalling,
    contactId: () => panel.id,
    typingActive: () => panel.state === "connected",
    onSent: () => panelError(panel, ""),
    onError: (err) => panelError(panel, errorText(err)),
  });
  onAction(panel, node.querySelector(".end"), "click", async () => {
    const ack = await signalling.request("session.end", { contact_id: panel.id });
    return ack.state;
  });
  wireTransfer({
    node,
    signalling,
    contactId: () => panel.id,
    onDone: () => applyState(panel, "transferred"),
    onError: (text) => panelError(panel, text),
  });
}

function applyState(panel, state) {
  panel.state = state;
  if (state === "connected") panel.accepted = true;
  const badge = panel.node.querySelector(".state");
  badge.textContent = contactStateName(state);
  badge.dataset.state = state;
  const connected = state === "connected";
  panel.node.querySelector(".chat-form").classList.toggle("hidden", !connected);
  panel.node.querySelector(".transfer-box").classList.toggle("hidden", !connected);
  panel.node.querySelector(".end").classList.toggle("hidden", !connected);
  const canned = panel.node.querySelector(".canned");
  canned.classList.toggle("hidden", !connected || canned.children.length === 0);
  renderTitle(panel);
  if (connected && wantsMedia(panel.channels)) startMedia(panel);
  else stopMedia(panel); // not connected, or the call was dropped for the chat (a downgrade)
  panel.controls.update(state, panel.channels);
  // Wrap-up after the end, and after a transfer away; the panel stays until it is recorded.
  // (wrapup_pending: one the advisor had not recorded when the console was last open)
  if (state === "wrapup_pending") panel.accepted = true;
  if (["wrap_up", "transferred", "wrapup_pending"].includes(state) && !panel.wrappedUp) panel.wrapup.open(state);
  if (state === "ended" && !panel.wrappedUp && panel.accepted) {
    panel.wrapup.timeUp(); // the wrap-up time ran out: what the advisor types is still kept
    return;
  }
  if (state === "ended" || state === "abandoned") {
    panel.wrapup.close();
    clearTimeout(panel.removeTimer);
    panel.removeTimer = setTimeout(() => removeContact(panel.id), ENDED_PANEL_KEEP_MS);
  }
}

function removeContact(contactId) {
  const panel = contacts.get(contactId);
  if (!panel) return;
  stopMedia(panel);
  panel.controls.dispose();
  panel.wrapup.close();
  panel.node.remove();
  contacts.delete(contactId);
  chats.remove(panel);
  context.forget(contactId);
  toggleEmpty(el.contacts, contacts);
}

signalling.on("session.state", (m) => {
  if (m.state === "withdrawn") {
    removeOffer(m.contact_id);
    return;
  }
  const panel = contacts.get(m.contact_id);
  if (m.state === "queued" && m.reason === "transferred_away") {
    if (panel) applyState(panel, "transferred");
    return;
  }
  if (!panel && !["connected", "wrap_up", "wrapup_pending"].includes(m.state)) return;
  const target = ensureContact(m.contact_id, { channels: m.channels, facts: m.facts ?? null, state: m.state });
  removeOffer(m.contact_id);
  applyState(target, m.state);
});

signalling.on("chat.message", (m) => {
  const panel = contacts.get(m.contact_id);
  if (panel?.chat.add(m) && m.sender === "customer") chats.customerLine(panel);
});

signalling.on("chat.typing", (m) => {
  contacts.get(m.contact_id)?.chat.typingFrom(m.sender);
});

signalling.on("peer.event", (m) => {
  const panel = contacts.get(m.contact_id);
  if (!panel || m.party !== "customer") return;
  panel.node.querySelector(".peer").textContent = PEER_STATES.has(m.state)
    ? t(`advisor.peer_${m.state}`)
    : t("advisor.peer_other", { state: m.state });
});

// ------------------------------------------------------------------ media

function sameServer(url) {
  try {
    const theirs = new URL(url);
    const ours = new URL(defaultUrl());
    return theirs.host === ours.host && theirs.pathname === ours.pathname;
  } catch {
    return true;
  }
}

/** The socket to send rtc.offer on: the main one, or one to the instance holding the media. */
async function mediaSocket(panel) {
  if (!panel.mediaUrl || sameServer(panel.mediaUrl)) return signalling;
  if (panel.mediaSignalling?.connected) return panel.mediaSignalling;
  panel.mediaSignalling?.close(); // that server is gone (it does not reconnect): a new socket
  panel.mediaSignalling = null;
  const other = new Signalling({ url: panel.mediaUrl, token: fetchWsToken, reconnect: false });
  try {
    await other.connect();
  } catch (err) {
    // Unreachable from here (a misconfigured public URL, say): try our own server instead.
    console.warn(`media server ${panel.mediaUrl} unreachable, using this one`, err);
    other.close();
    return signalling;
  }
  panel.mediaSignalling = other;
  return other;
}

function startMedia(panel) {
  panel.call.start({ contactId: panel.id, channels: panel.channels, signalling: () => mediaSocket(panel), online: signalling });
}

function stopMedia(panel) {
  panel.call.stop();
  panel.mediaSignalling?.close();
  panel.mediaSignalling = null;
}

// ------------------------------------------------------------------ connection

signalling.on("open", ({ reconnected }) => {
  el.connection.textContent = t("advisor.online");
  document.body.dataset.connection = "open";
  if (reconnected) notice(t("advisor.reconnected"));
});
signalling.on("close", ({ willRetry }) => {
  el.connection.textContent = willRetry ? t("advisor.reconnecting") : t("advisor.disconnected");
  document.body.dataset.connection = "closed";
  for (const contactId of [...offers.keys()]) removeOffer(contactId);
});
signalling.on("error", (err) => console.warn("server:", err.code, err.detail));
window.addEventListener("pagehide", () => {
  for (const panel of contacts.values()) stopMedia(panel);
});

el.badge.textContent = agentStateName(el.badge.dataset.state);
el.connection.textContent = t("advisor.connecting");
signalling.connect().catch((err) => {
  el.connection.textContent = t("advisor.not_connected", { error: errorText(err) });
});
