// The advisor console: status, incoming offers (with countdown, transcript and the router's
// explanation), and one panel per contact with chat, media, transfer, end and wrap-up.

import { MediaLink, iceServersFrom } from "./media.js";
import { Signalling, defaultUrl, fetchWsToken } from "./ws.js";

const SETTABLE = new Set(["available", "away", "offline"]);
const TYPING_SEND_EVERY_MS = 2500;
const TYPING_SHOW_MS = 4000;
const ENDED_PANEL_KEEP_MS = 4000;
const LANGUAGES = { en: "English", zh: "Mandarin", yue: "Cantonese" };
const CHANNEL_NAMES = { text: "Chat", voice: "Voice", video: "Video" };

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
};

/** @type {Map<string, {node: HTMLElement, timer: number, expiresAt: number}>} */
const offers = new Map();
/** @type {Map<string, object>} */
const contacts = new Map();

const signalling = new Signalling();
window.ccSignalling = signalling; // for the browser tests and for debugging from the console

function notice(text, kind = "info") {
  el.notice.textContent = text ?? "";
  el.notice.classList.toggle("hidden", !text);
  el.notice.classList.toggle("error", kind === "error");
}

function toggleEmpty(container, map) {
  container.querySelector(".empty")?.classList.toggle("hidden", map.size > 0);
}

function channelsText(channels) {
  return (channels ?? []).map((c) => CHANNEL_NAMES[c] ?? c).join(" + ");
}

function skillsText(skills) {
  return Object.entries(skills ?? {})
    .map(([name, level]) => `${name} ≥ ${level}`)
    .join(", ");
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function chatLine({ seq, sender, text, at }) {
  const li = document.createElement("li");
  li.className = sender === "advisor" ? "mine" : sender;
  if (seq !== undefined) li.dataset.seq = String(seq);
  li.dataset.sender = sender;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = { advisor: "You", customer: "Customer", bot: "Assistant", system: "Notice" }[sender] ?? sender;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  if (at) li.title = new Date(at).toLocaleString();
  return li;
}

/** Add a line in seq order unless that seq is already shown (history is replayed on reconnect). */
function insertLine(list, seqs, line) {
  if (line.seq !== undefined) {
    if (seqs.has(line.seq)) return false;
    seqs.add(line.seq);
  }
  const after = [...list.children].find((n) => n.dataset.seq && Number(n.dataset.seq) > line.seq);
  list.insertBefore(chatLine(line), after ?? null);
  list.scrollTop = list.scrollHeight;
  return true;
}

// ------------------------------------------------------------------ agent state

function setAgentState(state) {
  el.badge.textContent = state.replace("_", "-");
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
    notice(`Could not change status: ${err.detail ?? err}`, "error");
  } finally {
    el.status.disabled = false;
  }
});

signalling.on("agent.state", (m) => {
  setAgentState(m.state);
  if (m.reason) notice(`Status: ${m.state.replace("_", "-")} (${m.reason.replaceAll("_", " ")})`);
});

// ------------------------------------------------------------------ offers

function explanationNode(explanation) {
  const box = document.createElement("div");
  if (!explanation || !explanation.winner) {
    box.textContent = "No explanation given.";
    return box;
  }
  const { winner, candidates = [], trigger, ring, considered } = explanation;
  const lines = [
    trigger === "agent"
      ? `You became free and this was the first contact you can serve (${considered} looked at).`
      : `This contact looked for advisors; you ranked first of ${Math.max(candidates.length, 1)}.`,
    `Skill fit: ${winner.fit_required} (required) + ${winner.fit_optional} (optional); idle ${duration(winner.idle_s)}.`,
  ];
  if (ring) lines.push(`Requirements relaxed to ring ${ring} after waiting.`);
  for (const text of lines) {
    const p = document.createElement("p");
    p.textContent = text;
    box.append(p);
  }
  if (candidates.length > 1) {
    const table = document.createElement("table");
    table.className = "compact";
    table.innerHTML = "<thead><tr><th>Advisor</th><th>Fit</th><th>Idle</th></tr></thead>";
    const body = document.createElement("tbody");
    for (const c of candidates) {
      const row = body.insertRow();
      row.insertCell().textContent = c.agent_id === winner.agent_id ? `${c.agent_id} (you)` : c.agent_id;
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
  node.querySelector(".language").textContent = LANGUAGES[message.language] ?? message.language;
  node.querySelector(".priority").classList.toggle("hidden", !(message.priority > 0));
  const topic = message.topic ? `Topic: ${message.topic}. ` : "";
  node.querySelector(".summary").textContent = `${topic}Needs ${skillsText(message.skills)}.`;
  node.querySelector(".explanation").replaceWith(explanationNode(message.explanation));
  const transcript = node.querySelector(".transcript");
  const lines = message.transcript ?? [];
  const seqs = new Set();
  for (const line of lines) insertLine(transcript, seqs, line);
  node.querySelector(".transcript-box").classList.toggle("hidden", lines.length === 0);
  if (lines.length) node.querySelector(".transcript-box").open = true;

  const expiresAt = Date.parse(message.expires_at);
  const countdown = node.querySelector(".countdown");
  const tick = () => {
    const left = Math.ceil((expiresAt - Date.now()) / 1000);
    countdown.textContent = left > 0 ? `${left} s left` : "expired";
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
      });
      for (const line of ack.transcript ?? []) insertLine(panel.chat, panel.seqs, line);
      applyState(panel, ack.state);
    } catch (err) {
      notice(`Could not accept: ${err.detail ?? err}`, "error");
      removeOffer(message.contact_id);
    }
  });
  reject.addEventListener("click", async () => {
    accept.disabled = reject.disabled = true;
    try {
      await signalling.request("offer.reject", { contact_id: message.contact_id });
    } catch (err) {
      notice(`Could not reject: ${err.detail ?? err}`, "error");
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

function ensureContact(contactId, { channels = [], language = "", mediaUrl = null, topic = null } = {}) {
  let panel = contacts.get(contactId);
  if (panel) {
    if (channels.length) panel.channels = channels;
    if (mediaUrl) panel.mediaUrl = mediaUrl;
    return panel;
  }
  const node = el.contactTemplate.content.firstElementChild.cloneNode(true);
  node.dataset.contactId = contactId;
  panel = {
    id: contactId,
    node,
    channels,
    language,
    topic,
    mediaUrl,
    state: null,
    seqs: new Set(),
    chat: node.querySelector(".chat"),
    typing: node.querySelector(".typing"),
    error: node.querySelector(".error"),
    media: null,
    mediaSignalling: null,
    typingTimer: null,
    lastTypingSent: 0,
    removeTimer: null,
  };
  contacts.set(contactId, panel);
  renderTitle(panel);
  wireContact(panel);
  el.contacts.append(node);
  toggleEmpty(el.contacts, contacts);
  return panel;
}

function renderTitle(panel) {
  const parts = [channelsText(panel.channels) || "Contact"];
  if (panel.language) parts.push(LANGUAGES[panel.language] ?? panel.language);
  if (panel.topic) parts.push(panel.topic);
  const title = panel.node.querySelector(".title");
  const ref = document.createElement("small");
  ref.textContent = `#${panel.id.slice(0, 8)}`;
  ref.title = panel.id;
  title.replaceChildren(parts.join(" · "), ref);
}

function panelError(panel, text) {
  panel.error.textContent = text ?? "";
  panel.error.classList.toggle("hidden", !text);
}

function wireContact(panel) {
  const { node } = panel;
  const input = node.querySelector(".chat-input");
  node.querySelector(".chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      await signalling.request("chat.send", { contact_id: panel.id, text });
      panelError(panel, "");
    } catch (err) {
      input.value = text;
      panelError(panel, err.detail ?? String(err));
    }
  });
  input.addEventListener("input", () => {
    const now = Date.now();
    if (panel.state !== "connected" || now - panel.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    panel.lastTypingSent = now;
    signalling.request("chat.typing", { contact_id: panel.id }).catch(() => {});
  });
  node.querySelector(".end").addEventListener("click", async () => {
    try {
      const ack = await signalling.request("session.end", { contact_id: panel.id });
      applyState(panel, ack.state);
    } catch (err) {
      panelError(panel, err.detail ?? String(err));
    }
  });
  node.querySelector(".wrapup").addEventListener("click", async () => {
    try {
      await signalling.request("wrapup.done", { contact_id: panel.id });
      applyState(panel, "ended");
    } catch (err) {
      panelError(panel, err.detail ?? String(err));
    }
  });
  node.querySelector(".transfer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const fields = {
      contact_id: panel.id,
      skills: { [String(form.get("skill")).trim()]: Number(form.get("level")) },
    };
    if (form.get("language")) fields.language = form.get("language");
    try {
      await signalling.request("session.transfer", fields);
      applyState(panel, "transferred");
    } catch (err) {
      panelError(panel, err.detail ?? String(err));
    }
  });
}

function applyState(panel, state) {
  panel.state = state;
  const badge = panel.node.querySelector(".state");
  badge.textContent = state.replace("_", "-");
  badge.dataset.state = state;
  const connected = state === "connected";
  panel.node.querySelector(".chat-form").classList.toggle("hidden", !connected);
  panel.node.querySelector(".transfer-box").classList.toggle("hidden", !connected);
  panel.node.querySelector(".end").classList.toggle("hidden", !connected);
  panel.node.querySelector(".wrapup").classList.toggle("hidden", state !== "wrap_up");
  renderTitle(panel);
  if (connected && wantsMedia(panel)) startMedia(panel);
  else if (!connected) stopMedia(panel);
  if (state === "ended" || state === "transferred" || state === "abandoned") {
    clearTimeout(panel.removeTimer);
    panel.removeTimer = setTimeout(() => removeContact(panel.id), ENDED_PANEL_KEEP_MS);
  }
}

function removeContact(contactId) {
  const panel = contacts.get(contactId);
  if (!panel) return;
  stopMedia(panel);
  panel.node.remove();
  contacts.delete(contactId);
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
  if (!panel && !["connected", "wrap_up"].includes(m.state)) return;
  const target = ensureContact(m.contact_id, { channels: m.channels });
  removeOffer(m.contact_id);
  applyState(target, m.state);
});

signalling.on("chat.message", (m) => {
  const panel = contacts.get(m.contact_id);
  if (!panel) return;
  insertLine(panel.chat, panel.seqs, m);
  if (m.sender === "customer") hideTyping(panel);
});

function hideTyping(panel) {
  clearTimeout(panel.typingTimer);
  panel.typing.classList.add("hidden");
}

signalling.on("chat.typing", (m) => {
  const panel = contacts.get(m.contact_id);
  if (!panel || m.sender !== "customer") return;
  panel.typing.classList.remove("hidden");
  clearTimeout(panel.typingTimer);
  panel.typingTimer = setTimeout(() => hideTyping(panel), TYPING_SHOW_MS);
});

signalling.on("peer.event", (m) => {
  const panel = contacts.get(m.contact_id);
  if (!panel || m.party !== "customer") return;
  const text = {
    disconnected: "Customer disconnected — waiting for them to come back",
    reconnected: "Customer is back",
    connected: "Customer's call connected",
    failed: "Customer's call failed",
    closed: "Customer left the call",
  };
  panel.node.querySelector(".peer").textContent = text[m.state] ?? `Customer: ${m.state}`;
});

// ------------------------------------------------------------------ media

function wantsMedia(panel) {
  return panel.channels.includes("voice") || panel.channels.includes("video");
}

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
  if (panel.mediaSignalling) return panel.mediaSignalling;
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
  if (panel.media && !panel.media.closed && (panel.media.active || !panel.media.pc)) return;
  panel.media?.stop();
  const box = panel.node.querySelector(".media");
  const status = panel.node.querySelector(".media-status");
  box.classList.remove("hidden");
  box.classList.toggle("voice", !panel.channels.includes("video"));
  const link = new MediaLink({
    signalling: null,
    contactId: panel.id,
    channels: panel.channels,
    localEl: panel.node.querySelector(".local"),
    remoteEl: panel.node.querySelector(".remote"),
    iceServers: iceServersFrom(el.contacts),
    onChange: (state, detail) => {
      const text = {
        starting: "Starting your microphone and camera…",
        local: detail?.error ? `No local media (${detail.error}); you can still hear the customer.` : "Connecting…",
        connected: "Call connected.",
        failed: "The call could not connect.",
      }[state];
      const voice = !panel.channels.includes("video");
      if (text) status.textContent = voice ? `Voice call — ${text}` : text;
      box.dataset.state = state;
    },
  });
  panel.media = link;
  mediaSocket(panel)
    .then((socket) => {
      link.signalling = socket;
      return link.start();
    })
    .catch((err) => {
      console.error("media", err);
      status.textContent = `The call could not start: ${err.detail ?? err.message ?? err}`;
    });
}

function stopMedia(panel) {
  panel.media?.stop();
  panel.media = null;
  panel.mediaSignalling?.close();
  panel.mediaSignalling = null;
  panel.node.querySelector(".media").classList.add("hidden");
}

// ------------------------------------------------------------------ connection

signalling.on("open", ({ reconnected }) => {
  el.connection.textContent = "Online";
  document.body.dataset.connection = "open";
  if (reconnected) notice("Reconnected. Your status was reset by the server: set it again if needed.");
});
signalling.on("close", ({ willRetry }) => {
  el.connection.textContent = willRetry ? "Connection lost — reconnecting…" : "Disconnected";
  document.body.dataset.connection = "closed";
  for (const contactId of [...offers.keys()]) removeOffer(contactId);
});
signalling.on("error", (err) => console.warn("server:", err.code, err.detail));
window.addEventListener("pagehide", () => {
  for (const panel of contacts.values()) stopMedia(panel);
});

signalling.connect().catch((err) => {
  el.connection.textContent = `Not connected: ${err.detail ?? err.message ?? err}`;
});
